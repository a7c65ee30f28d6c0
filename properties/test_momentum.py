"""Momentum as the documents and torch write it (rules ``sgd`` and ``book_momentum``):

* the book's v = m·v + lr·g with m + lr = 1 is an exponentially weighted moving average of the gradients (002
  §8.3.3), and torch's buffer b = m·b + (1 − τ)·g with dampening τ = m is one too from its second step (its first
  sets b = g, undampened);
* the book's form (v = m·v + lr·g, x −= v) and torch's (b = m·b + g, x −= lr·b) give the same trajectory while
  lr stays constant (v = lr·b) and differ once lr changes between steps;
* Nesterov momentum in torch's form equals Sutskever et al.'s look-ahead form.

Each closed form is evaluated in extended precision on the gradients the run was fed (lockstep) and compared with
the suite's trajectory tolerance for the run's own rule (``properties/quadratics.py``, ``lockstep_tolerance``).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.quadratics import (LD, Runner, SubjectRunner, assert_matches, closed_loop, judged_tolerance,
                                   known_deviations, needs, rule_hyperparameters, schedules, sketch, smooth_problems)

MAX_STEPS = 12


def momentum_sums(grads: np.ndarray, weights) -> np.ndarray:
    """Rows t = 1..T of Σ_{j≤t} weights(t, j)·g_j, in extended precision (explicit sums, not a recursion)."""
    T = grads.shape[0]
    g = grads.astype(LD)
    return np.array([sum(LD(weights(t, j)) * g[j - 1] for j in range(1, t + 1)) for t in range(1, T + 1)])


def trajectory(x0: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """x_0 and x_t = x_{t−1} − steps_t, in extended precision (rows x_0 … x_T)."""
    return np.vstack([x0.astype(LD), x0.astype(LD) - np.cumsum(steps, axis=0)])


# ---- the moving average ------------------------------------------------------------------------------------------
def check_momentum_is_ema(runner: Runner, problem, hp: dict, steps: int, lrs=None) -> None:
    """The momentum buffer is an exponentially weighted moving average of the gradients, with weight 1 − m on the
    newest (``sgd``: dampening τ = m, so b_1 = g_1 and b_t = m·b_{t−1} + (1 − τ)·g_t = m·b_{t−1} + (1 − m)·g_t, i.e.
    b_t = m^{t−1} g_1 + (1 − m) Σ_{2≤j≤t} m^{t−j} g_j, and x_t = x_{t−1} − lr_t·b_t; ``book_momentum`` with
    lr = 1 − m: v_t = (1 − m) Σ_{j≤t} m^{t−j} g_j, weights summing to 1 − m^t, and x_t = x_{t−1} − v_t)."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, lrs)
    tol = judged_tolerance(runner, hp, run)
    m = LD(hp["momentum"])
    if runner.rule.name == "sgd":
        b = momentum_sums(run.grads, lambda t, j: m ** (t - 1) if j == 1 else (1 - m) * m ** (t - j))
        expected = trajectory(run.xs[0], np.array(run.lrs, dtype=LD)[:, None] * b)
        claim = ("with dampening = momentum = m, SGD's buffer is an EMA of the gradients after its first step "
                 "(b_1 = g_1, b_t = m b_{t−1} + (1 − m) g_t)")
    else:
        v = momentum_sums(run.grads, lambda t, j: (1 - m) * m ** (t - j))
        expected = trajectory(run.xs[0], v)
        claim = "with m + lr = 1, the book's momentum v = m v + lr g is an EMA of the gradients (002 §8.3.3)"
    assert_matches(runner, claim, hp, problem, run, expected.astype(np.float64), tol)


@st.composite
def ema_cases(draw, runner: Runner) -> dict:
    """A problem, momentum m (edges 0, ½, 0.9, 1 first) with dampening = m (SGD) or lr = 1 − m (the book), lr
    drawn for SGD, 1–12 steps."""
    problem = draw(smooth_problems(), label="problem")
    m = draw(st.sampled_from([0.0, 0.9, 0.5, 1.0]) | st.floats(0.0, 0.999), label="momentum")
    rule = runner.rule
    if rule.name == "sgd":
        hp = draw(rule_hyperparameters(rule, {"lr"}, momentum=m, dampening=m), label="hyperparameters")
    else:
        m = min(m, 0.999)
        hp = {**rule.defaults(), "momentum": m, "lr": 1.0 - m}
    return {"problem": problem, "hp": hp, "steps": draw(st.integers(1, MAX_STEPS), label="steps")}


@pytest.mark.applies_to("sgd", "book_momentum")
@given(data=st.data())
def test_momentum_buffer_is_an_ema_of_gradients(subject, data):
    """Momentum with m + lr = 1 (the book) or dampening = momentum = m (torch SGD, after its first step, whose
    buffer is the gradient itself) keeps an exponentially weighted moving average of the gradients: each step
    moves x by (lr ×) Σ_j w_j g_j with w_j = (1 − m) m^{t−j}, on closed-loop runs over random quadratics and the
    documents' surfaces."""
    needs(subject, "momentum", *(["dampening"] if subject.rule.name == "sgd" else []))
    runner = SubjectRunner(subject)
    check_momentum_is_ema(runner, **data.draw(ema_cases(runner), label="case"))


# ---- the book's form and torch's ---------------------------------------------------------------------------------
def book_and_torch_forms(run, m: float) -> tuple[np.ndarray, np.ndarray]:
    """The trajectories of torch's form (b_t = Σ m^{t−j} g_j, x_t = x_{t−1} − lr_t b_t) and the book's
    (v_t = Σ m^{t−j} lr_j g_j, x_t = x_{t−1} − v_t) on ``run``'s gradients and learning rates."""
    m = LD(m)
    lrs = np.array(run.lrs, dtype=LD)
    b = momentum_sums(run.grads, lambda t, j: m ** (t - j))
    v = momentum_sums(run.grads, lambda t, j: m ** (t - j) * lrs[j - 1])
    return trajectory(run.xs[0], lrs[:, None] * b), trajectory(run.xs[0], v)


def check_book_and_torch_momentum(runner: Runner, problem, hp: dict, steps: int, lrs: list[float]) -> None:
    """Torch's momentum (b = m·b + g, x −= lr·b: rule ``sgd`` with dampening 0) and the book's (v = m·v + lr·g,
    x −= v: ``book_momentum``) give the same trajectory while lr is constant — then v_t = lr·b_t — and differ when
    lr changes between steps (v_t = Σ m^{t−j} lr_j g_j, but lr_t·b_t = lr_t Σ m^{t−j} g_j). The run follows its
    own rule's form in both cases, and, under a constant lr, the other form too."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, lrs)
    tol = judged_tolerance(runner, hp, run)
    torch_form, book_form = (f.astype(np.float64) for f in book_and_torch_forms(run, hp["momentum"]))
    own, other = (torch_form, book_form) if runner.rule.name == "sgd" else (book_form, torch_form)
    names = ("torch's b = m b + g, x −= lr b", "the book's v = m v + lr g, x −= v")
    own_name, other_name = names if runner.rule.name == "sgd" else names[::-1]
    constant = all(lr == run.lrs[0] for lr in run.lrs)
    if not constant:
        # The example must tell the forms apart: somewhere they differ by more than the tolerance.
        assume(np.any(np.abs(own - other) > 2 * tol))
    assert_matches(runner, f"momentum in {own_name} form follows that form"
                   + (" (lr constant)" if constant else " when lr changes between steps"), hp, problem, run, own, tol)
    if constant:
        assert_matches(runner, f"under a constant lr, {own_name} gives the same trajectory as {other_name}", hp,
                       problem, run, other, tol)


@st.composite
def form_cases(draw, runner: Runner) -> dict:
    """A problem, momentum m > 0 (SGD: dampening 0, no Nesterov, weight decay or maximize), a drawn lr, 2–12 steps,
    and either a constant lr or — if the runner has param groups to change it through — a schedule."""
    problem = draw(smooth_problems(), label="problem")
    m = draw(st.sampled_from([0.9, 0.1, 0.5]) | st.floats(0.01, 0.999), label="momentum")
    rule = runner.rule
    held = {"momentum": m} if rule.name == "book_momentum" else {"momentum": m, "dampening": 0.0}
    hp = draw(rule_hyperparameters(rule, {"lr"}, **held), label="hyperparameters")
    steps = draw(st.integers(2, MAX_STEPS), label="steps")
    lrs = draw(schedules(runner, hp["lr"], steps), label="lrs") or [hp["lr"]] * steps
    return {"problem": problem, "hp": hp, "steps": steps, "lrs": lrs}


@pytest.mark.applies_to("sgd", "book_momentum")
@given(data=st.data())
def test_book_momentum_equals_torch_momentum_only_under_constant_lr(subject, data):
    """The book's momentum (002 eqs. 8.1–8.2) and torch's SGD momentum coincide under a constant learning rate
    (v = lr·b) and differ when the learning rate changes between steps; an implementation follows its own rule's
    form in both cases (closed-loop runs on random quadratics and the documents' surfaces; lr changes only for
    implementations with param groups)."""
    needs(subject, "momentum")
    runner = SubjectRunner(subject)
    check_book_and_torch_momentum(runner, **data.draw(form_cases(runner), label="case"))


# ---- Nesterov ------------------------------------------------------------------------------------------------------
def lookahead_form(run, m: float, lr: float, sign: float) -> np.ndarray:
    """Sutskever et al. (2013) eq. 3–4: v_{t+1} = m v_t − lr ∇f(θ_t + m v_t), θ_{t+1} = θ_t + v_{t+1}, from θ_0 = x_0,
    v_0 = 0; returns the look-ahead points θ_t + m v_t. The gradient at the look-ahead point of step t is the one
    the run was fed at step t (times ``sign``: −1 under maximize), since that point is x_t (the claim)."""
    m, lr = LD(m), LD(lr)
    theta = run.xs[0].astype(LD)
    v = np.zeros_like(theta)
    out = [theta + m * v]
    for g in run.grads:
        v = m * v - lr * LD(sign) * g.astype(LD)
        theta = theta + v
        out.append(theta + m * v)
    return np.array(out)


def check_nesterov_is_lookahead(runner: Runner, problem, hp: dict, steps: int) -> None:
    """Torch's Nesterov momentum — b_t = m b_{t−1} + g_t, x −= lr (g_t + m b_t) — is the look-ahead form
    v_{t+1} = m v_t − lr ∇f(θ_t + m v_t), θ_{t+1} = θ_t + v_{t+1} seen at its look-ahead point: x_t = θ_t + m v_t
    (Sutskever et al. 2013; Bengio et al. 2013), under a constant lr."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps)
    tol = judged_tolerance(runner, hp, run)
    expected = lookahead_form(run, hp["momentum"], hp["lr"], -1.0 if hp["maximize"] else 1.0)
    assert_matches(runner, "Nesterov momentum equals the look-ahead form θ_t + m v_t (Sutskever et al. 2013)", hp,
                   problem, run, expected.astype(np.float64), tol)


@st.composite
def nesterov_cases(draw, runner: Runner) -> dict:
    """A problem, momentum m > 0 with nesterov=True, dampening 0, no weight decay; lr and maximize drawn."""
    m = draw(st.sampled_from([0.9, 0.5]) | st.floats(0.01, 0.999), label="momentum")
    hp = draw(rule_hyperparameters(runner.rule, runner.accepted & {"lr", "maximize"}, momentum=m, dampening=0.0,
                                   nesterov=True, weight_decay=0.0), label="hyperparameters")
    return {"problem": draw(smooth_problems(), label="problem"), "hp": hp,
            "steps": draw(st.integers(1, MAX_STEPS), label="steps")}


@pytest.mark.applies_to("sgd")
@given(data=st.data())
def test_nesterov_equals_its_lookahead_form(subject, data):
    """SGD with nesterov=True (momentum m > 0, dampening 0, constant lr, maximize drawn) moves its parameters along
    the look-ahead points θ_t + m v_t of Sutskever et al.'s form, on closed-loop runs over random quadratics and
    the documents' surfaces."""
    needs(subject, "momentum", "nesterov")
    runner = SubjectRunner(subject)
    check_nesterov_is_lookahead(runner, **data.draw(nesterov_cases(runner), label="case"))
