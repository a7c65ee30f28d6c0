"""Gradient descent on L-smooth functions (rule ``sgd`` with momentum 0, and the book's momentum with m = 0):

* a step with 0 < η ≤ 1/L does not increase f, by at least η(1 − Lη/2)‖∇f‖² (the descent lemma);
* on a quadratic, each eigencomponent of x − x* is multiplied by exactly 1 − ηλ_i per step: for η < 2/L the
  iterates converge at rate max_i |1 − ηλ_i|, for η > 2/L the component along the top eigenvector grows without
  bound at rate |1 − ηλ_max| (002's paraboloids are explicit cases).

Each check runs a runner (an implementation or the reference rule) in closed loop on a drawn problem and judges
every step, with rounding allowed for by the written model in its docstring.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.quadratics import (LD, SUBNORMAL, U, U_EXT, Quadratic, Runner, SubjectRunner, book_paraboloids,
                                   closed_loop, failure, needs, quadratics, smooth_problems)

GD_RULES = ("sgd", "book_momentum")
#: an implementation computes x − ηg with two roundings (ηg, then the subtraction), each ≤ u relative (plus, in
#: the subnormal range, an absolute error ≤ half the smallest subnormal); the budget allows twice that, for
#: second-order terms and one more rounding (of −η, or of η·g in another order).
STEP_ROUNDINGS = 2.0
DESCENT_STEPS = 8
RATE_STEPS = 30


def gd_hyperparameters(rule, lr: float) -> dict:
    """Plain gradient descent in ``rule``: lr = η, momentum 0 (and SGD's other hyperparameters at their defaults:
    no dampening, weight decay, Nesterov or maximize)."""
    return {**rule.defaults(), "lr": lr, "momentum": 0.0}


def step_budget(x_next: np.ndarray, lr: float, g: np.ndarray) -> np.ndarray:
    """Elementwise bound on |x⁺ − (x − ηg)| for an implementation of x⁺ = x − ηg (see STEP_ROUNDINGS)."""
    return STEP_ROUNDINGS * (U * (np.abs(x_next) + lr * np.abs(g)) + SUBNORMAL)


def check_descent_lemma(runner: Runner, problem, fraction: float, steps: int = DESCENT_STEPS) -> None:
    """GD with η = fraction/L, 0 < fraction ≤ 1, on an L-smooth f: every step satisfies

        f(x⁺) ≤ f(x) − η(1 − Lη/2)‖g‖² + slack

    where g is the gradient fed (∇f to within e, the problem's rounding of it) and the slack allows for rounding:
    η|e|ᵀ|g| (g is not exactly ∇f); (|∇f(x⁺)| + L‖R‖)ᵀR + (L/2)‖R‖² (x⁺ is off x − ηg by at most R, the step
    budget); the evaluation errors of f(x) and f(x⁺); and that of the bound itself in extended precision (γ_{n+6}
    of its terms). Derivation: L-smoothness gives f(y) ≤ f(x) + ∇f(x)ᵀ(y − x) + (L/2)‖y − x‖², applied from x to
    y = x − ηg (with ∇f(x)ᵀg ≥ ‖g‖² − |e|ᵀ|g|) and from y to x⁺. Steps with an end outside the convex region where
    L holds are not judged.
    """
    __tracebackhide__ = True
    L = problem.L
    lr = fraction / L
    hp = gd_hyperparameters(runner.rule, lr)
    run = closed_loop(runner, problem, hp, steps)
    values, grad_errors = {}, {}

    def value(t):
        if t not in values:
            values[t] = problem.value(run.xs[t])
        return values[t]

    def grad_error(t):
        if t not in grad_errors:
            grad_errors[t] = problem.grad_error(run.xs[t])
        return grad_errors[t]

    for t in range(steps):
        x, x_next, g = run.xs[t], run.xs[t + 1], run.grads[t]
        if not np.all(np.isfinite(x_next)):
            raise failure(runner, "a GD step with η ≤ 1/L keeps x finite", hp, problem, run, t + 1,
                          int(np.argmin(np.isfinite(x_next))), np.nan, x_next[np.argmin(np.isfinite(x_next))])
        if not (problem.in_region(x) and problem.in_region(x - lr * g) and problem.in_region(x_next)):
            continue
        (f0, e0), (f1, e1) = value(t), value(t + 1)
        e_g = grad_error(t)
        R = step_budget(x_next, lr, g)
        g_next = run.grads[t + 1] if t + 1 < steps else problem.grad(x_next)
        normR = float(np.linalg.norm(R))
        slack = (lr * float(np.abs(e_g) @ np.abs(g))
                 + float((np.abs(g_next) + grad_error(t + 1) + L * normR) @ R) + L / 2 * normR**2
                 + e0 + e1)
        gg = g.astype(LD) @ g.astype(LD)
        decrease = LD(lr) * (1 - LD(L) * LD(lr) / 2) * gg
        slack += (g.shape[0] + 6) * U_EXT * float(abs(f0) + decrease)  # evaluating this bound
        bound = f0 - decrease + LD(slack)
        if not f1 <= bound:
            raise failure(
                runner, "a gradient step with 0 < η ≤ 1/L decreases f by at least η(1 − Lη/2)‖∇f‖² "
                "(the descent lemma)", hp, problem, run, t + 1, int(np.argmax(np.abs(x_next - (x - lr * g)))),
                float(bound), float(f1), None,
                f"f(x_{t}) = {float(f0)!r}, f(x_{t + 1}) = {float(f1)!r} > bound {float(bound)!r} "
                f"(η = {lr!r} = {fraction!r}/L, L = {L!r}, ‖g‖² = {float(gg)!r}, rounding slack {slack:.3g})")


def check_gd_rate(runner: Runner, problem: Quadratic, lr: float, steps: int = RATE_STEPS):
    """GD with step η on f = ½(x − x*)ᵀQΛQᵀ(x − x*) + c: the coordinates c(t) = Qᵀ(x_t − x*) satisfy

        c_i(t) = (1 − ηλ_i)^t · c_i(0)

    — for η < 2/L every component shrinks and x → x* at rate max_i |1 − ηλ_i|; for η > 2/L the top component
    grows by |1 − ηλ_max| > 1 per step, without bound; at η = 2/L it flips sign forever.

    Rounding model (all terms computed from the run, in extended precision, except R): the implementation's
    x_{s+1} = x_s − ηg_s + r_s with |r_s| ≤ R_s (the step budget), g_s = A d_s + e_s with A the stored matrix
    and e_s the gradient's rounding (observed), A = QΛQᵀ + E_A (storage error, observed) and QᵀQ = I + D_Q. Then
    c(s+1) = (I − ηΛ)c(s) + ε_s with |ε_s| ≤ η|D_QΛc(s)| + η|Qᵀ(E_A d_s + e_s)| + |Q|ᵀR_s, so
    |c_i(t) − (1 − ηλ_i)^t c_i(0)| ≤ E_i(t), E_i(s+1) = |1 − ηλ_i| E_i(s) + |ε_s,i|, plus the extended-precision
    evaluation of c (γ_{n+1} relative to |Q|ᵀ|d|). Returns the run.
    """
    __tracebackhide__ = True
    hp = gd_hyperparameters(runner.rule, lr)
    run = closed_loop(runner, problem, hp, steps)
    n = problem.dim
    Q = np.eye(n) if problem.Q is None else problem.Q
    q = Q.astype(LD)
    lam = problem.lam.astype(LD)
    A = problem.A.astype(LD)
    E_A = A - (q * lam) @ q.T
    D_Q = q.T @ q - np.eye(n, dtype=LD)
    x_star = problem.x_star.astype(LD)
    factor = 1 - LD(lr) * lam
    rho = np.abs(factor).astype(np.float64)
    c0 = q.T @ (run.xs[0].astype(LD) - x_star)
    E = np.zeros(n)
    for t in range(steps + 1):
        d = run.xs[t].astype(LD) - x_star
        c = q.T @ d
        predicted = factor**t * c0
        slop = (n + 1) * U_EXT * (np.abs(Q).T @ np.abs(d.astype(np.float64)))
        off = np.abs((c - predicted).astype(np.float64))
        with np.errstate(invalid="ignore"):
            bad = ~(off <= E + slop)
        if bad.any():
            i = int(np.argmax(bad))
            raise failure(
                runner, "GD on a quadratic multiplies the i-th eigencomponent of x − x* by exactly 1 − ηλ_i per "
                "step (convergence at rate max|1 − ηλ| for η < 2/L, growth at |1 − ηλ_max| for η > 2/L)", hp,
                problem, run, t, i, float(predicted[i]), float(c[i]), float(E[i] + slop[i]),
                f"this is eigencomponent {i} (λ_{i} = {problem.lam[i]!r}, 1 − ηλ_{i} = {float(factor[i])!r}); "
                f"η = {lr!r} = {lr * problem.L:.6g}/L; the element above indexes the eigenbasis")
        if t == steps:
            break
        g = run.grads[t]
        e = g.astype(LD) - A @ d
        eps = (lr * np.abs((D_Q @ (lam * c)).astype(np.float64)) + lr * np.abs((q.T @ (E_A @ d + e)).astype(np.float64))
               + np.abs(Q).T @ step_budget(run.xs[t + 1], lr, g)
               + lr * (n + 2) * U_EXT * (np.abs(Q).T @ (np.abs(problem.A) @ np.abs(d.astype(np.float64)))))
        E = rho * E + eps
    return run


@st.composite
def descent_cases(draw, runner: Runner) -> dict:
    """An L-smooth problem (``smooth_problems``) and η·L in (0, 1], edges 1 and ½ first."""
    return {"problem": draw(smooth_problems(), label="problem"),
            "fraction": draw(st.sampled_from([1.0, 0.5]) | st.floats(1e-3, 1.0), label="η·L")}


@st.composite
def rate_cases(draw, runner: Runner) -> dict:
    """A positive-definite quadratic and η = κ·2/L: κ in (0, 1) (converges), in (1, 1.5] (diverges), or an edge:
    κ = 1 (zig-zags forever), κ = ½ (η = 1/L: the top component vanishes in one step), η = 1/λ_i for one i."""
    problem = draw(quadratics(definite=True), label="problem")
    L = float(np.max(problem.lam))
    kind = draw(st.sampled_from(["converges", "diverges", "2/L", "1/L", "1/λ_i"]), label="η")
    if kind == "converges":
        lr = draw(st.floats(0.01, 0.99), label="κ") * 2 / L
    elif kind == "diverges":
        lr = draw(st.floats(1.01, 1.5), label="κ") * 2 / L
    elif kind == "2/L":
        lr = 2 / L
    elif kind == "1/L":
        lr = 1 / L
    else:
        lr = 1 / float(problem.lam[draw(st.integers(0, problem.dim - 1), label="i")])
    return {"problem": problem, "lr": lr}


@pytest.mark.applies_to(*GD_RULES)
@given(data=st.data())
def test_gradient_step_with_small_lr_decreases_f(subject, data):
    """On L-smooth functions — random quadratics with a drawn spectrum (indefinite ones too) and the documents'
    smooth surfaces (function_2d, pathological_loss, regression, cosh, x·cos, the saddle, Rosenbrock) — every GD
    step with 0 < η ≤ 1/L gives f(x⁺) ≤ f(x) − η(1 − Lη/2)‖∇f(x)‖² (≤ f(x)), up to the rounding slack of
    ``check_descent_lemma``."""
    needs(subject, momentum=0.0)
    runner = SubjectRunner(subject)
    check_descent_lemma(runner, **data.draw(descent_cases(runner), label="case"))


@pytest.mark.applies_to(*GD_RULES)
@given(data=st.data())
def test_gd_on_quadratic_converges_below_2_over_L_and_diverges_above(subject, data):
    """On random positive-definite quadratics with a drawn spectrum, GD's eigencomponents evolve exactly as
    (1 − ηλ_i)^t (``check_gd_rate``): convergence at rate max|1 − ηλ| for η < 2/L, growth without bound at rate
    |1 − ηλ_max| for η > 2/L from a start with a component along the top eigenvector."""
    needs(subject, momentum=0.0)
    runner = SubjectRunner(subject)
    check_gd_rate(runner, **data.draw(rate_cases(runner), label="case"))


@pytest.mark.applies_to(*GD_RULES)
@pytest.mark.parametrize("index", range(len(book_paraboloids())),
                         ids=[f"{p.name.split()[1]}-lr{lr}" for p, lr, _ in book_paraboloids()])
def test_book_paraboloids(subject, index):
    """002 §8.3.1, from (6, 6): on 0.2x1² + 0.2x2² − 5, lr 2.5 lands on the minimum (0, 0) in one step; on
    0.2x1² + 2x2² − 5 (L = 4) lr 0.1 converges, lr 0.5 = 2/L zig-zags forever in x2, and lr 0.51 zig-zags off to
    infinity (|x2| grows by 1.04 per step) — each as ``check_gd_rate`` predicts, over 100 steps."""
    needs(subject, momentum=0.0)
    problem, lr, claim = book_paraboloids()[index]
    check_gd_rate(SubjectRunner(subject), problem, lr, steps=100)
