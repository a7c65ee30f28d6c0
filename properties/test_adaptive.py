"""Adaptive rules: the Adam family, Adagrad and RMSProp.

* Adam's first moment is an exponentially weighted moving average of the gradients with weight 1 − β1, bias
  corrected; under gradients of constant magnitude c its second moment is exactly c², so each step is
  lr·m̂_t/(c + ε) — and a constant gradient moves each element by exactly lr·c/(c + ε) (lr·sign(g) for ε = 0);
* |m̂_t|/√v̂_t ≤ B_t, the tight Cauchy–Schwarz bound (not 1: see ``check_adam_step_bound``);
* with ε = 0 the Adam family, RMSprop, Adagrad and Rprop are invariant to scaling the gradients by c > 0;
* AdamW with weight_decay = 0 is Adam, and Adam with decoupled weight decay is AdamW; decoupled decay multiplies
  the parameter by (1 − lr·λ);
* Adagrad's effective step lr/(1 + (t − 1)η)/(√s_t + ε) never increases; RMSprop's square average is an EMA of g².

Closed forms are evaluated in extended precision on the gradients the run was fed, and compared with the suite's
trajectory tolerance for the run's rule (``lockstep_tolerance``); invariances between two runs of the same
implementation are exact where the arithmetic makes them exact (said in each docstring).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.quadratics import (LD, SUBNORMAL, U, U_EXT, Constant, Runner, SubjectRunner, abs_problems, as_case,
                                   assert_identical, assert_matches, assume_no_known_deviation, closed_loop, failure,
                                   heavy, judged_tolerance, known_deviations, lockstep_tolerance, needs,
                                   runner_hyperparameters, schedules, sketch, smooth_problems)
from reference.registry import RULES
from reference.trajectory import reference_trajectory

MAX_STEPS = 8


def _sign(hp: dict) -> LD:
    return LD(-1.0) if hp.get("maximize") else LD(1.0)


def _decoupled(rule_name: str, hp: dict) -> bool:
    return rule_name == "adamw" or bool(hp.get("decoupled_weight_decay"))


def decay_factors(rule_name: str, hp: dict, lrs) -> np.ndarray:
    """Per step, the factor decoupled weight decay multiplies θ by before the update (1 where there is none)."""
    lam = hp.get("weight_decay", 0.0) if _decoupled(rule_name, hp) else 0.0
    return np.array([1 - LD(lr) * LD(lam) for lr in lrs], dtype=LD)


def ema(values: np.ndarray, beta: float, t: int) -> np.ndarray:
    """(1 − β) Σ_{j≤t} β^{t−j} values_j (rows j = 1..t), in extended precision, as an explicit sum."""
    beta = LD(beta)
    return sum((1 - beta) * beta ** (t - j) * values[j - 1].astype(LD) for j in range(1, t + 1))


# ---- the float64 scalars 1 − β^t -----------------------------------------------------------------------------------
def bias_corrections(rule_name: str, hp: dict) -> tuple[float, ...]:
    """The β's whose bias correction 1 − β^t the rule divides by (none for the book's Adam)."""
    if rule_name in ("adam", "adamw"):
        return tuple(hp["betas"])
    if rule_name == "adamax":
        return (hp["betas"][0],)
    return ()


def kappa(rule_name: str, hp: dict, t: int) -> float:
    """The relative error of step t's size from the float64 bias corrections: 1 − β^t, with β^t within max(2, t)·u
    relative (a pow within one ulp, or t multiplications), is off by max(2, t)·u·β^t/(1 − β^t) relative, plus u for
    the subtraction."""
    return sum(max(2, t) * U * b**t / (1 - b**t) + U for b in bias_corrections(rule_name, hp) if b != 0)


# ---- Adam's moments under gradients of constant magnitude ----------------------------------------------------------
def adam_constant_magnitude_trajectory(rule_name: str, hp: dict, run, c: np.ndarray) -> np.ndarray:
    """x_t for gradients ±c (elementwise magnitude c, any signs): √v̂_t = c exactly, so
    adam, adamw, adamax:  x_t = d_t x_{t−1} − lr_t m̂_t/(c + ε),  m̂_t = EMA_β1(g)_t/(1 − β1^t);
    book_adam:            x_t = x_{t−1} − lr·v_t/(ε + c√(1 − γ_s^t)),  v_t = EMA_γv(g)_t (no bias correction);
    d_t the decoupled decay factor (1 − lr_t λ for adamw, else 1); AdaMax's u_t = max(β2 u, |g| + ε) = c + ε."""
    g = run.grads.astype(LD) * _sign(hp)
    c = c.astype(LD)
    eps = LD(hp["eps"])
    decay = decay_factors(rule_name, hp, run.lrs)
    x = run.xs[0].astype(LD)
    out = [x]
    for t in range(1, run.steps + 1):
        lr = LD(run.lrs[t - 1])
        if rule_name == "book_adam":
            step = lr * ema(g, hp["gamma_v"], t) / (eps + c * np.sqrt(1 - LD(hp["gamma_s"]) ** t))
        else:
            beta1 = hp["betas"][0]
            step = lr * (ema(g, beta1, t) / (1 - LD(beta1) ** t)) / (c + eps)
        x = decay[t - 1] * x - step
        out.append(x)
    return np.array(out)


def check_adam_moments_under_constant_magnitude(runner: Runner, problem, hp: dict, steps: int, lrs=None) -> None:
    """On f = Σ c_i|x_i − x*_i| every gradient element has magnitude c_i, so v̂_t = c² exactly (v_t = (1 − β2^t)c²)
    and the step exposes the first moment: x moves by lr·m̂_t/(c + ε), m̂_t the bias-corrected exponentially
    weighted moving average of the gradients with weight 1 − β1 (``adam_constant_magnitude_trajectory``). Where a
    gradient keeps its sign, m̂_t = g exactly: each step moves that element by lr·c/(c + ε)."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, lrs)
    assume(np.all(np.abs(run.grads) == problem.c))  # an element landing exactly on x*_i gets a zero gradient
    tol = judged_tolerance(runner, hp, run)
    expected = adam_constant_magnitude_trajectory(runner.rule.name, hp, run, problem.c)
    assert_matches(runner, "under gradients of constant magnitude c, each step is lr·m̂_t/(c + ε) with m̂_t the "
                   "(bias-corrected) EMA of the gradients, weight 1 − β1", hp, problem, run,
                   expected.astype(np.float64), tol)


ADAM_EMA_RULES = ("adam", "adamw", "adamax", "book_adam")


@st.composite
def adam_ema_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn (coupled weight decay held at 0: it would change the gradients' magnitude), an lr
    schedule, 1–8 steps, and f = Σ c_i|x_i − x*_i| with starts far from (constant sign) or near (flipping) x*."""
    hp = draw(runner_hyperparameters(runner), label="hyperparameters")
    if "weight_decay" in hp and not _decoupled(runner.rule.name, hp):
        hp["weight_decay"] = 0.0
    steps = draw(st.integers(1, MAX_STEPS), label="steps")
    lrs = draw(schedules(runner, hp["lr"], steps), label="lrs")
    problem = draw(abs_problems(max_steps=steps, max_lr=max(lrs or [hp["lr"]])), label="problem")
    return {"problem": problem, "hp": hp, "steps": steps, "lrs": lrs}


@pytest.mark.applies_to(*ADAM_EMA_RULES)
@heavy()
@given(data=st.data())
def test_adam_first_moment_is_an_ema_of_gradients(subject, data):
    """Adam, AdamW, AdaMax and the book's Adam, closed loop on f = Σ c_i|x_i − x*_i| (001's 5|x| per element, from
    starts that keep the gradient's sign or make it flip): each step moves x by lr·m̂_t/(c + ε), m̂_t the
    bias-corrected EMA of the gradients with weight 1 − β1 (the book's: uncorrected, over c√(1 − γ_s^t) + ε); a
    constant gradient moves an element by exactly lr·c/(c + ε) per step."""
    runner = SubjectRunner(subject)
    check_adam_moments_under_constant_magnitude(runner, **data.draw(adam_ema_cases(runner), label="case"))


# ---- the step bound ------------------------------------------------------------------------------------------------
def step_bound(rule_name: str, hp: dict, t: int) -> float:
    """The tight bound B_t on |step|/lr after t steps, for any gradients (Cauchy–Schwarz):
    Adam:  m̂_t = Σ_j w_j g_j, v̂_t = Σ_j ω_j g_j² with w_j = (1−β1)β1^{t−j}/(1−β1^t), ω_j = (1−β2)β2^{t−j}/(1−β2^t),
           so |m̂_t| ≤ √(Σ w_j²/ω_j)·√v̂_t, with equality for g_j ∝ w_j/ω_j; AMSGrad's v̂ is larger, ε only helps.
           The book's Adam: the same with w_j = (1−γv)γv^{t−j}, ω_j = (1−γs)γs^{t−j} (no bias correction).
    AdaMax: u_t ≥ β2^{t−j}|g_j| for every j, so |m_t|/((1−β1^t)u_t) ≤ (1−β1)/(1−β1^t)·Σ_{k<t}(β1/β2)^k.
    inf where a weight is positive but its denominator's is 0 (β2 = 0 with β1 > 0: no bound)."""
    if rule_name == "adamax":
        b1, b2 = hp["betas"]
        if t == 1 or b1 == 0:
            return 1.0
        if b2 == 0:
            return math.inf
        try:
            return (1 - b1) / (1 - b1**t) * sum((b1 / b2) ** k for k in range(t))
        except OverflowError:
            return math.inf
    if rule_name == "book_adam":
        b1, b2, c1, c2 = hp["gamma_v"], hp["gamma_s"], 1.0, 1.0
    else:
        (b1, b2), c1, c2 = hp["betas"], 1 - hp["betas"][0] ** t, 1 - hp["betas"][1] ** t
    total = 0.0
    for j in range(1, t + 1):
        w = (1 - b1) * b1 ** (t - j) / c1
        om = (1 - b2) * b2 ** (t - j) / c2
        if w == 0:
            continue
        if om == 0:
            return math.inf
        total += w * w / om
    return math.sqrt(total)


def check_adam_step_bound(runner: Runner, problem, hp: dict, steps: int, growth: float) -> None:
    """|θ_t − d_t θ_{t−1}| ≤ lr_t·B_t elementwise (``step_bound``; d_t the decoupled decay factor).

    Kingma & Ba (2015, §2.1) state "|Δ_t| ≤ α·(1 − β1)/√(1 − β2) in the case (1 − β1) > √(1 − β2), and |Δ_t| ≤ α
    otherwise"; as bounds for all gradient sequences these do not hold: B_t — attained by g_j ∝ w_j/ω_j — exceeds 1
    from t = 2 on whenever β1 > 0 and β2 < 1 (defaults: B_50 = 1.61, B_2000 = 6.76 > (1 − β1)/√(1 − β2) = 3.16).
    What is true is |Δ_1| = α·|g|/(|g| + ε) ≤ α at the first step (B_1 = 1) and |Δ_t| ≤ α·B_t. AdaMax's |Δ_t| ≤ α
    (§7.1) likewise holds at t = 1 only. The run is fed growth^t·∇f(x_t) (growth ≥ 1 brings gradients nearer the
    worst case, whose magnitudes grow by β2/β1 per step); the tolerance is the trajectory tolerance of θ_t and
    θ_{t−1}."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, feed=lambda g, t, x: g * growth**t)
    tol = judged_tolerance(runner, hp, run)
    decay = decay_factors(runner.rule.name, hp, run.lrs)
    xs = run.xs.astype(LD)
    for t in range(1, steps + 1):
        B = step_bound(runner.rule.name, hp, t)
        if math.isinf(B):
            continue
        moved = np.abs((xs[t] - decay[t - 1] * xs[t - 1]).astype(np.float64))
        limit = (run.lrs[t - 1] * B * (1 + kappa(runner.rule.name, hp, t)) + tol[t]
                 + abs(float(decay[t - 1])) * tol[t - 1])
        with np.errstate(invalid="ignore"):
            bad = ~(moved <= limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise failure(runner, "no element moves more than lr·B_t in step t (B_t the tight Cauchy–Schwarz "
                          "bound on |m̂_t|/√v̂_t; B_1 = 1)", hp, problem, run, t, i, run.lrs[t - 1] * B,
                          moved[i], float(limit[i] - run.lrs[t - 1] * B), f"B_{t} = {B!r}")


ADAM_BOUND_RULES = ("adam", "adamw", "adamax", "book_adam")


@st.composite
def bound_cases(draw, runner: Runner) -> dict:
    """Every hyperparameter drawn, a smooth problem, gradients growing by a factor 1–1.3 per step, 1–8 steps."""
    return {"hp": draw(runner_hyperparameters(runner), label="hyperparameters"),
            "problem": draw(smooth_problems(), label="problem"),
            "growth": draw(st.sampled_from([1.0, 1.11]) | st.floats(1.0, 1.3), label="growth"),
            "steps": draw(st.integers(1, MAX_STEPS), label="steps")}


@pytest.mark.applies_to(*ADAM_BOUND_RULES)
@heavy()
@given(data=st.data())
def test_adam_step_is_bounded_by_lr_times_cauchy_schwarz_bound(subject, data):
    """Adam, AdamW, AdaMax and the book's Adam never move an element by more than lr·B_t in step t — B_1 = 1, so
    the first step moves at most lr — over every hyperparameter (ε ≥ 0, AMSGrad, weight decay, maximize) on
    closed-loop runs over random quadratics and the documents' surfaces with gradients growing by a drawn factor
    per step (``check_adam_step_bound``, which says why K&B's "|Δ_t| ≤ α" is not tested)."""
    runner = SubjectRunner(subject)
    check_adam_step_bound(runner, **data.draw(bound_cases(runner), label="case"))


def worst_case_gradients(rule_name: str, hp: dict, T: int, scale: np.ndarray) -> list[np.ndarray]:
    """g_j = scale·w_j/ω_j (j = 1..T), the sequence that attains B_T for Adam (``step_bound``)."""
    (b1, b2) = hp["betas"]
    return [scale * ((1 - b1) * b1 ** (T - j) / (1 - b1**T)) / ((1 - b2) * b2 ** (T - j) / (1 - b2**T))
            for j in range(1, T + 1)]


def check_worst_case_attains_bound(runner: Runner, T: int) -> None:
    """Fed g_j = s·w_j/ω_j (``worst_case_gradients``; defaults β = (0.9, 0.999), ε = 0, no weight decay, lr 1e-3),
    step T moves every element by exactly lr·B_T, within the trajectory tolerance (which bounds the bias
    corrections' rounding too: β^t is charged t − 1 roundings)."""
    __tracebackhide__ = True
    hp = {**runner.rule.defaults(), "lr": 1e-3, "eps": 0.0, "weight_decay": 0.0}
    grads = worst_case_gradients(runner.rule.name, hp, T, np.array([1.0, 2.0, 1e-3]))
    run = runner.run(hp, np.array([1.0, -1.0, 0.5]), lambda x, t: grads[t].copy(), T)
    tol = lockstep_tolerance(runner.rule, hp, run)
    B = step_bound("adam", hp, T)
    expected = run.xs.astype(np.float64).copy()
    expected[T] = run.xs[T - 1] - hp["lr"] * B
    assert tol is not None
    assert_matches(runner, f"the worst-case sequence makes step {T} move by lr·B_{T} = lr·{B:.6g}", hp,
                   "g_j ∝ w_j/ω_j", run, expected, tol)


@pytest.mark.applies_to("adam", "adamw")
@pytest.mark.parametrize("T", [2, 10, 50])
def test_adam_step_exceeds_lr_on_the_worst_case_sequence(subject, T):
    """The bound B_T is attained: fed g_j ∝ w_j/ω_j (defaults β = (0.9, 0.999), ε = 0, no weight decay), step T moves
    every element by lr·B_T (B_2 = 1.0014, B_10 = 1.043, B_50 = 1.614) — more than lr, so "|Δ_t| ≤ α" is not a
    property an implementation must have."""
    needs(subject, "eps", weight_decay=0.0)
    check_worst_case_attains_bound(SubjectRunner(subject), T)


# ---- decoupled weight decay ----------------------------------------------------------------------------------------
#: the decay writes θ·(1 − γλ) with ≤ 2 roundings on a factor computed with ≤ 2 (or θ − (γλ)θ with 3): per step
#: ≤ 2u(a + |1 − a|)|θ| to first order (a = γλ); 3u covers second-order terms.
DECAY_ROUNDINGS = 3.0


def check_decoupled_decay(runner: Runner, problem: Constant, hp: dict, steps: int, lrs: list[float]) -> None:
    """With zero gradients (m = v = 0, so the Adam step lr·0/(0 + ε) is exactly 0 for ε > 0) decoupled weight decay
    alone moves θ: θ_t = θ_0·∏_{s≤t}(1 − lr_s·λ).

    Rounding model: θ_{s+1} has error E_{s+1} ≤ |1 − a_s|·E_s + DECAY_ROUNDINGS·u·(a_s + |1 − a_s|)|θ_s| + 2·(the
    smallest subnormal), a_s = lr_s·λ, θ_s the run's — for an implementation that flushes subnormals to zero
    (``--subnormals=flush``, XLA on CPU) the smallest normal number instead, what a flushed result loses; the
    product is evaluated in extended precision (t·u_ext relative)."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, lrs)
    flushes = getattr(getattr(runner, "subject", None), "subnormals", "ieee") == "flush"
    floor = np.finfo(np.float64).tiny if flushes else 2 * SUBNORMAL
    lam = LD(hp["weight_decay"])
    expected = [run.xs[0].astype(LD)]
    E = np.zeros_like(run.xs[0])
    bounds = [E]
    for s in range(steps):
        a = LD(run.lrs[s]) * lam
        expected.append(expected[-1] * (1 - a))
        af = float(a)
        E = abs(1 - af) * E + DECAY_ROUNDINGS * U * (af + abs(1 - af)) * np.abs(run.xs[s]) + floor
        bounds.append(E + (s + 1) * 4 * U_EXT * np.abs(expected[-1].astype(np.float64)))
    assert_matches(runner, "decoupled weight decay multiplies θ by (1 − lr·λ) per step (zero gradients)", hp, problem,
                   run, np.array(expected).astype(np.float64), np.array(bounds))


@st.composite
def decay_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn with decoupled decay (ε > 0: a drawn 0 is replaced by the default), 1–12 steps, an lr
    schedule, a start of 1–8 elements in ±1e3."""
    rule = runner.rule
    held = {} if rule.name == "adamw" else {"decoupled_weight_decay": True}
    hp = draw(runner_hyperparameters(runner, **held), label="hyperparameters")
    if hp["eps"] == 0:
        hp["eps"] = rule.hyper("eps").default
    steps = draw(st.integers(1, 12), label="steps")
    lrs = draw(schedules(runner, hp["lr"], steps), label="lrs") or [hp["lr"]] * steps
    x0 = np.array(draw(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), label="x0"))
    return {"problem": Constant(x0), "hp": hp, "steps": steps, "lrs": lrs}


@pytest.mark.applies_to("adamw", "adam", "nadam", "radam")
@given(data=st.data())
def test_decoupled_weight_decay_multiplies_parameters_by_one_minus_lr_lambda(subject, data):
    """AdamW — and Adam, NAdam, RAdam with decoupled_weight_decay=True — fed zero gradients: θ_t = θ_0·∏(1 − lr_s·λ),
    for drawn λ, lr (and scheduled lr), ε > 0 (ε = 0 would make the zero step 0/0), AMSGrad, maximize."""
    needs(subject, "weight_decay", *([] if subject.rule.name == "adamw" else ["decoupled_weight_decay"]))
    runner = SubjectRunner(subject)
    check_decoupled_decay(runner, **data.draw(decay_cases(runner), label="case"))


def check_decay_free_form_is_the_other_rule(runner: Runner, problem, hp: dict, steps: int, other: str,
                                            other_hp: dict) -> None:
    """The run (fed ∇f in closed loop) equals the reference rule ``other`` fed the same gradients, within the
    trajectory tolerance of ``other``."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps)
    rule = RULES[other]
    assume_no_known_deviation(runner, hp, run)
    tol = lockstep_tolerance(rule, other_hp, run)
    assume(tol is not None)
    expected = np.vstack([run.xs[0]] + [row[0] for row in reference_trajectory(as_case(rule, other_hp, run))])
    # the bound covers the float64 reference's own rounding as well as the run's
    what = ("AdamW with weight_decay = 0 is Adam" if runner.rule.name == "adamw"
            else "Adam with decoupled_weight_decay=True is AdamW")
    assert_matches(runner, what + f" (the reference rule {other!r})", hp, problem, run, expected, tol)


@st.composite
def adamw_cases(draw, runner: Runner) -> dict:
    """AdamW with weight_decay = 0, compared with the rule ``adam``; or Adam with decoupled_weight_decay=True,
    compared with ``adamw``; other hyperparameters drawn, a smooth problem, 1–8 steps."""
    rule = runner.rule
    if rule.name == "adamw":
        hp = draw(runner_hyperparameters(runner, weight_decay=0.0), label="hyperparameters")
        other, other_hp = "adam", {**hp, "decoupled_weight_decay": False}
    else:
        hp = draw(runner_hyperparameters(runner, decoupled_weight_decay=True), label="hyperparameters")
        other, other_hp = "adamw", {k: v for k, v in hp.items() if k != "decoupled_weight_decay"}
    return {"problem": draw(smooth_problems(), label="problem"), "hp": hp, "other": other, "other_hp": other_hp,
            "steps": draw(st.integers(1, MAX_STEPS), label="steps")}


@pytest.mark.applies_to("adamw", "adam")
@heavy()
@given(data=st.data())
def test_adamw_without_decay_is_adam(subject, data):
    """AdamW with weight_decay = 0 follows Adam's rule (Loshchilov & Hutter: decoupling only changes how λ enters);
    Adam with decoupled_weight_decay=True follows AdamW's — on closed-loop runs over random quadratics and the
    documents' surfaces, other hyperparameters drawn."""
    if subject.rule.name == "adamw":
        needs(subject, weight_decay=0.0)
    else:
        needs(subject, "decoupled_weight_decay")
    runner = SubjectRunner(subject)
    check_decay_free_form_is_the_other_rule(runner, **data.draw(adamw_cases(runner), label="case"))


# ---- scale invariance ----------------------------------------------------------------------------------------------
SCALE_INVARIANT = ("adam", "adamw", "nadam", "adamax", "rmsprop", "adagrad", "rprop")


def scale_invariance_hyperparameters(rule_name: str, hp: dict) -> dict:
    """What scale invariance needs: ε = 0 (the Adam family, RMSprop, Adagrad), no coupled weight decay (λθ does not
    scale with g; decoupled decay does not involve g)."""
    hp = dict(hp)
    if "eps" in hp:
        hp["eps"] = 0.0
    if "weight_decay" in hp and not _decoupled(rule_name, hp):
        hp["weight_decay"] = 0.0
    return hp


def check_scale_invariance(runner: Runner, problem, hp: dict, steps: int, k: int, lrs=None) -> None:
    """Feeding c·∇f (c = 2^k) instead of ∇f leaves every step unchanged, bit for bit: m and ḡ scale by c, v, s and
    max-v by c², √ by c, and every ratio m̂/√v̂, g/√v, Rprop's signs are unchanged; Adagrad's initial accumulator
    value is scaled by c² with them. Exact for a power of two: scaling by 2^k commutes with every correctly rounded
    +, ×, ÷, √ (and fused multiply-add) as long as no result under- or overflows (such runs are not judged)."""
    __tracebackhide__ = True
    c = 2.0**k
    hp_scaled = dict(hp)
    if "initial_accumulator_value" in hp:
        hp_scaled["initial_accumulator_value"] = hp["initial_accumulator_value"] * c * c
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        base = closed_loop(runner, problem, hp, steps, lrs)
        scaled = closed_loop(runner, problem, hp_scaled, steps, lrs, feed=lambda g, t, x: g * c)
    big = np.abs(base.grads) * max(c, 1.0)
    small = np.abs(base.grads) * min(c, 1.0)
    # squares of the scaled gradients (and sums of them) must stay normal numbers, far from overflow
    assume(np.all((base.grads == 0) | ((small > 1e-100) & (big < 1e100))))
    assert_identical(runner, f"with ε = 0, scaling every gradient by c = 2^{k} changes nothing", hp, problem, scaled,
                     base, "the parameters of the unscaled run")


@st.composite
def scale_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn, then ε = 0 and coupled weight decay 0; k in −12..12 (not 0); 1–12 steps; an lr
    schedule; a smooth problem."""
    hp = scale_invariance_hyperparameters(
        runner.rule.name, draw(runner_hyperparameters(runner), label="hyperparameters"))
    steps = draw(st.integers(1, 12), label="steps")
    return {"hp": hp, "k": draw(st.integers(-12, 12).filter(lambda v: v != 0), label="k"), "steps": steps,
            "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs"),
            "problem": draw(smooth_problems(), label="problem")}


@pytest.mark.applies_to(*SCALE_INVARIANT)
@heavy()
@given(data=st.data())
def test_adaptive_rules_with_zero_eps_are_invariant_to_gradient_scale(subject, data):
    """Adam, AdamW, NAdam, AdaMax, RMSprop (centered or not, with momentum), Adagrad and Rprop with ε = 0 take the
    same steps when every gradient is multiplied by c > 0 (checked for c = 2^k, k in −12..12, where it is exact),
    over their other hyperparameters (decoupled weight decay included; coupled weight decay held at 0), on
    closed-loop runs over random quadratics and the documents' surfaces. RAdam is not invariant (before
    rectification it steps by lr·m̂), nor are SGD, ASGD and Adadelta (ε inside its square roots)."""
    if "eps" in subject.rule.names:
        needs(subject, "eps")
    runner = SubjectRunner(subject)
    check_scale_invariance(runner, **data.draw(scale_cases(runner), label="case"))


# ---- Adagrad and RMSProp -------------------------------------------------------------------------------------------
def adagrad_steps(rule_name: str, hp: dict, run) -> tuple[np.ndarray, np.ndarray]:
    """(x_0 … x_T, the effective step sizes η_t) of Adagrad on the run's gradients, in extended precision:
    adagrad: η_t = lr/(1 + (t − 1)·lr_decay)/(√(τ + Σ_{j≤t} g_j²) + ε);  book_adagrad: lr/(ε + √Σ_{j≤t} g_j²)."""
    g = run.grads.astype(LD)
    x = run.xs[0].astype(LD)
    xs, etas = [x], []
    total = np.full_like(x, LD(hp.get("initial_accumulator_value", 0.0)))
    for t in range(1, run.steps + 1):
        total = total + g[t - 1] * g[t - 1]
        lr = LD(hp["lr"]) / (1 + (t - 1) * LD(hp.get("lr_decay", 0.0)))
        eta = lr / (np.sqrt(total) + LD(hp["eps"]))
        x = x - eta * _sign(hp) * g[t - 1]
        xs.append(x)
        etas.append(eta)
    return np.array(xs), np.array(etas)


def check_adagrad_effective_step(runner: Runner, problem, hp: dict, steps: int) -> None:
    """Adagrad's effective step size η_t = lr/(1 + (t − 1)η)/(√s_t + ε), s_t = τ + Σ_{j≤t} g_j², never increases:
    the run follows x_t = x_{t−1} − η_t g_t (``adagrad_steps``), and the observed |x_t − x_{t−1}|/|g_t| is
    non-increasing over the steps where g ≠ 0, to within the trajectory tolerance of x_t and x_{t−1} over |g_t|."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps)
    tol = judged_tolerance(runner, hp, run)
    expected, _ = adagrad_steps(runner.rule.name, hp, run)
    assert_matches(runner, "each step is x_t = x_{t−1} − lr/(1 + (t−1)η)/(√(τ + Σ g²) + ε)·g_t", hp, problem, run,
                   expected.astype(np.float64), tol)
    moved = np.abs(np.diff(run.xs.astype(LD), axis=0)).astype(np.float64)
    g = np.abs(run.grads)
    err = tol[1:] + tol[:-1]
    for i in range(run.xs.shape[1]):
        seen = [(t, moved[t, i] / g[t, i], err[t, i] / g[t, i]) for t in range(steps) if g[t, i] > 0]
        for (t0, r0, e0), (t1, r1, e1) in zip(seen, seen[1:]):
            if not r1 <= r0 + e0 + e1:
                raise failure(runner, "Adagrad's effective step size |Δx|/|g| never increases", hp, problem, run,
                              t1 + 1, i, r0, r1, e0 + e1, f"at step {t0 + 1} it was {r0!r}, at step {t1 + 1} {r1!r}")


@st.composite
def adagrad_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn (weight decay 0: it would change the gradient Adagrad divides), a smooth problem,
    1–8 steps."""
    held = {"weight_decay": 0.0} if "weight_decay" in runner.rule.names else {}
    return {"hp": draw(runner_hyperparameters(runner, **held), label="hyperparameters"),
            "problem": draw(smooth_problems(), label="problem"),
            "steps": draw(st.integers(1, MAX_STEPS), label="steps")}


@pytest.mark.applies_to("adagrad", "book_adagrad")
@given(data=st.data())
def test_adagrad_effective_step_never_increases(subject, data):
    """Adagrad (lr_decay, initial accumulator, ε, maximize drawn; no weight decay) and the book's Adagrad: every
    step is lr_t/(√s_t + ε)·g_t with s_t the sum of squared gradients, and that effective step size never
    increases — on closed-loop runs over random quadratics and the documents' surfaces."""
    runner = SubjectRunner(subject)
    check_adagrad_effective_step(runner, **data.draw(adagrad_cases(runner), label="case"))


def rmsprop_trajectory(rule_name: str, hp: dict, run) -> np.ndarray:
    """x_t = x_{t−1} − lr_t·g_t/(√v_t + ε) with v_t = (1 − α) Σ_{j≤t} α^{t−j} g_j² (``book_rmsprop``: α = γ)."""
    alpha = hp["gamma"] if rule_name == "book_rmsprop" else hp["alpha"]
    g = run.grads.astype(LD)
    x = run.xs[0].astype(LD)
    xs = [x]
    for t in range(1, run.steps + 1):
        v = ema(g * g, alpha, t)
        x = x - LD(run.lrs[t - 1]) * _sign(hp) * g[t - 1] / (np.sqrt(v) + LD(hp["eps"]))
        xs.append(x)
    return np.array(xs)


def check_rmsprop_square_average(runner: Runner, problem, hp: dict, steps: int, lrs=None) -> None:
    """RMSprop's square average is the exponentially weighted moving average v_t = (1 − α) Σ α^{t−j} g_j² of the
    squared gradients, seen through the steps x_t = x_{t−1} − lr_t g_t/(√v_t + ε) (``rmsprop_trajectory``)."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        run = closed_loop(runner, problem, hp, steps, lrs)
    tol = judged_tolerance(runner, hp, run)
    expected = rmsprop_trajectory(runner.rule.name, hp, run)
    assert_matches(runner, "the square average is the EMA (1 − α)Σ α^{t−j} g_j² of the squared gradients", hp,
                   problem, run, expected.astype(np.float64), tol)


@st.composite
def rmsprop_cases(draw, runner: Runner) -> dict:
    """Not centered, no momentum or weight decay; α, ε, maximize drawn; 1–8 steps; an lr schedule; a smooth
    problem."""
    held = {"centered": False, "momentum": 0.0, "weight_decay": 0.0} if runner.rule.name == "rmsprop" else {}
    hp = draw(runner_hyperparameters(runner, **held), label="hyperparameters")
    steps = draw(st.integers(1, MAX_STEPS), label="steps")
    return {"hp": hp, "steps": steps, "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs"),
            "problem": draw(smooth_problems(), label="problem")}


@pytest.mark.applies_to("rmsprop", "book_rmsprop")
@given(data=st.data())
def test_rmsprop_square_average_is_an_ema_of_squared_gradients(subject, data):
    """RMSprop (not centered, no momentum or weight decay; α, ε, maximize and a scheduled lr drawn) and the book's
    RMSProp: each step divides g by √v_t + ε with v_t the EMA of g² with weight 1 − α (002 eq. 8.5), on
    closed-loop runs over random quadratics and the documents' surfaces."""
    runner = SubjectRunner(subject)
    check_rmsprop_square_average(runner, **data.draw(rmsprop_cases(runner), label="case"))
