"""Golden values: the numbers the documents print, reproduced by the reference rules (float64) and, for the SGD
runs, by the implementation under test in the document's loop and dtype.

Each printed number p is matched at the precision it is printed with, d decimals, allowing for the rounding the
document's own arithmetic made and for ours:

    |value − p| ≤ ½·10⁻ᵈ  +  B_doc  +  B_run

* ½·10⁻ᵈ: printing to d decimals moved the document's value by at most half a unit of its last digit. This is
  "compared at the printed precision" (rounding to d decimals), without the flip rounding would make for a value
  within rounding error of a half-way point. Full float reprs (003's losses) carry no printing error.
* B_doc: how far the document's arithmetic may carry the printed quantity from the exact float64 reference — the
  suite's error bound (``properties/error_bound.py``, ``properties/tolerances.arithmetic``): the reference
  computation (``reference_gd`` with rule ``sgd``; the Newton step) run on ``Bounded`` values under
  ``arithmetic(doc dtype)``, every operation charged with two roundings (2(u + u₆₄) relative, 2η absolute) and
  every input held in the dtype with its own (x0, the learning rates, c). B_run is the same bound for the
  arithmetic of the run being checked (float64 for the reference rule, the document's dtype for an implementation):
  the document and the run are two implementations of the same formula, each within its bound of the exact
  reference. No other term: the bound already charges every rounding of every step.

An iteration is bounded one step at a time (``bounded_gd``, ``bounded_newton``): the bound of x_{k+1} is the step's
own rounding, computed from the exact x_k, plus how far the exact step can move for an input anywhere within x_k's
bound (and the state's) — the mean-value form, with the derivative enclosed over that box. For GD, x_{k+1} =
x_k − γ∇f(x_k) moves by (I − γ∇²f(ξ))·δ, ∇²f(ξ) enclosed by the problem's Hessian evaluated on the box; for
momentum the rule is linear in θ, g and the buffer, and the rule itself, run on the identity and on that enclosure,
gives the Jacobian. For Newton's x − η f'(x)/f''(x) (1-D), f'(x̂) = f'(x) + f''(ξ)δ gives a move of
δ(1 − η f''(ξ)/f''(x̂)) − η f'(x)(1/f''(x̂) − 1/f''(x)), with f''(ξ) and f''(x̂) enclosed by f'' on the box. Running
the iterations on Bounded values directly instead (interval arithmetic) bounds x − γ∇f(x) as if its two x's erred
independently: the bound grows by (1 + γ|∇²f|) a step where the error contracts by |1 − γ∇²f|, and over 003's 100
epochs reaches 5·10⁶ on θ ≈ (0.9, 2.5), which float32 runs reproduce to 10⁻⁷ (the mean-value form: 6·10⁻⁶); on
004's Newton runs it reaches 0.015 (cosh) and ∞ (x·cos). A problem without a Hessian (001's 5|x|, whose
∇f = 5·sign(x) is exact on a box that excludes 0) is run on Bounded values directly. The mean-value form charges each
operation's rounding at the exact iterate's magnitudes, as the error bound does everywhere; the enclosures are
evaluated in float64 (``EXACT``: interval arithmetic without rounding), whose own rounding is ~10⁻¹⁶ of a bound.

The documents' arithmetic: 001 and 003 run torch in float32 (``torch.Tensor([x0])``, ``np.float32`` data); 004 runs
Python floats (float64) for x² and x1² + 2x2², and JAX float32 where c is a ``d2l.tensor`` (x·cos(cx), cosh(cx));
002's is exact on paper (checked with float64's bound).

Every golden is a ``check_*`` function raising AssertionError, called here on the reference (``reference_gd`` with
rule ``sgd``; ``reference.newton``) and — for the SGD runs — on the implementation under test (``subject``, rule
``sgd``: by default torch.optim.SGD in each code path and the documents' template ``GD``), in the document's dtype;
``properties/test_problem_self_checks.py`` calls them on broken variants. A run that needs a hyperparameter or API
the implementation lacks (momentum; param_groups, which a scheduler writes) is skipped, saying so.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import pytest
import torch

from optimizers import adapters
from properties.error_bound import Bounded, Rounding, lift, rounding
from properties.tolerances import arithmetic, unit_roundoff
from reference import problems
from reference.newton import newton, newton_step
from reference.registry import RULES
from reference.schedulers import exponential_lr
from reference.trajectory import Case, Group

U64 = unit_roundoff(torch.float64)
SGD = RULES["sgd"]
#: interval arithmetic without rounding: how far an exact step moves for inputs anywhere within their bounds
EXACT = Rounding(torch.float64, u=0.0, eta=0.0)


# ---- the model ------------------------------------------------------------------------------------------------------
def _held(x0: torch.Tensor, dtype: torch.dtype) -> Bounded:
    """x0 as the document holds it: exact, with its rounding to the dtype as its bound."""
    return Bounded(x0.clone(), torch.abs(x0.to(dtype).to(torch.float64) - x0))


def _exact(b: Bounded) -> Bounded:
    return Bounded(np.array(b.v, dtype=np.float64))


def _largest(b) -> np.ndarray:
    """|v| + e, elementwise: the largest magnitude within a Bounded value's bound (a tensor: its magnitude)."""
    b = lift(b)
    return np.abs(np.asarray(b.v, dtype=np.float64)) + b.error()


def _sgd_step(problem, x: Bounded, state: dict, hp: dict, r: Rounding) -> tuple[Bounded, dict]:
    """One step of the SGD rule from an iterate (and state) known within their bounds (module docstring): the
    step's rounding from the exact values under ``r``, plus the exact step's move over the box, through the
    Jacobian of (x, state) → (x', state') that the rule (linear in θ, g and its buffer) gives when run on the
    identity and on the enclosure of ∇²f over the box."""
    with rounding(r):
        x_next, s_next = SGD.update(_exact(x), problem.grad(_exact(x)), {k: _exact(v) for k, v in state.items()}, **hp)
    n = x.v.shape[0]
    eye, zero = np.eye(n), np.zeros((n, n))
    with rounding(EXACT):
        hessian = lift(problem.hessian(x))   # ∇²f over x ± e: row i, column j is ∂g_i/∂x_j
        columns = {"x": SGD.update(Bounded(eye), hessian, {k: Bounded(zero) for k in state}, **hp)}
        for k in state:
            columns[k] = SGD.update(Bounded(zero), Bounded(zero), {j: Bounded(eye if j == k else zero) for j in state},
                                    **hp)
    errors = {"x": x.error(), **{k: v.error() for k, v in state.items()}}

    def moved(out):   # Σ over inputs of |∂out/∂input| over the box, times the input's bound
        return sum(_largest(out(columns[k])) @ errors[k] for k in columns)

    x_out = Bounded(x_next.v, x_next.error() + moved(lambda c: c[0]))
    s_out = {k: Bounded(v.v, v.error() + moved(lambda c, k=k: c[1][k])) for k, v in s_next.items()}
    return x_out, s_out


def bounded_gd(problem, steps, dtype, lrs=None, **hp) -> tuple[list[Bounded], list[Bounded]]:
    """``reference_gd`` in the arithmetic of ``dtype``, as Bounded values: (iterates x_0 … x_steps, losses
    f(x_0) … f(x_{steps−1})), each within its bound of every run of the same loop in that dtype."""
    hp = {**SGD.defaults(), **hp}
    r = arithmetic(dtype)
    x, state = _held(problem.x0, dtype), {}
    xs, losses = [x], []
    for t in range(steps):
        step_hp = hp if lrs is None else {**hp, "lr": lrs[t]}
        with rounding(r):
            losses.append(problem.f(x))
            if problem.hessian is None:
                x, state = SGD.update(x, problem.grad(x), state, **step_hp)
        if problem.hessian is not None:
            x, state = _sgd_step(problem, x, state, step_hp, r)
        xs.append(x)
    return xs, losses


def bounded_newton(problem, steps, dtype, eta: float = 1.0) -> Bounded:
    """x_steps of 004's Newton iteration x ← x − η f'(x)/f''(x) (1-D: ``newton_step``'s solve is that division) in
    the arithmetic of ``dtype``, as a Bounded value (module docstring)."""
    r = arithmetic(dtype)
    x = _held(problem.x0, dtype)
    for _ in range(steps):
        with rounding(r):
            x_next = _exact(x) - eta * problem.grad(_exact(x)) / torch.diag(problem.hessian(_exact(x)))
        with rounding(EXACT):
            h = torch.diag(problem.hessian(x))      # f'' over x ± e
            g = problem.grad(_exact(x))
            moved = (_largest(1 - eta * (h / h)) * x.error()
                     + eta * np.abs(np.asarray(g.v, dtype=np.float64)) * (1 / h).error())
        x = Bounded(x_next.v, x_next.error() + moved)
    return x


def golden_tolerance(decimals: int | None, *bounds) -> np.ndarray:
    """½·10⁻ᵈ (none for ``decimals=None``: a full float repr) + the bounds, elementwise."""
    half = 0.0 if decimals is None else 0.5 * 10.0**-decimals
    return half + sum(np.asarray(b, dtype=np.float64) for b in bounds)


def assert_printed(what: str, actual, printed, tol, labels) -> None:
    """Every value within its tolerance of the printed number; the failures listed in the document's terms."""
    __tracebackhide__ = True
    printed = np.asarray(printed, dtype=np.float64)
    actual, tol = (np.broadcast_to(np.asarray(a, dtype=np.float64), printed.shape) for a in (actual, tol))
    bad = [i for i in range(len(printed)) if not abs(actual[i] - printed[i]) <= tol[i]]
    if bad:
        lines = [f"{what}: {len(bad)} of {len(printed)} printed values not reproduced"]
        lines += [f"  {labels[i]}: got {float(actual[i])!r}, but the document prints {float(printed[i])!r} "
                  f"(error {abs(actual[i] - printed[i]):.3g} > tolerance {tol[i]:.3g})" for i in bad[:8]]
        raise AssertionError("\n".join(lines))


def _last(xs: list[Bounded]) -> np.ndarray:
    """The bound of the last iterate."""
    return xs[-1].error()


def _each(values: list[Bounded]) -> np.ndarray:
    """The bounds of a list of scalars (the losses)."""
    return np.array([float(v.error()) for v in values])


def _labels(n: int) -> list[str]:
    return [f"iteration {i}" for i in range(n)]


# ---- runs: the reference rule, the implementation under test --------------------------------------------------------
def reference_runner(update=SGD.update) -> Callable:
    """``gd(problem, steps, dtype, lrs=None, **hp) -> (iterates x_0 … x_steps, losses f(x_0) … f(x_{steps−1}))``: the
    SGD rule ``update`` (hp: lr, momentum, …; the rest at its defaults) on ``problem`` from its x0, learning rate
    lrs[t] at step t if given, computed in ``dtype``."""
    def gd(problem, steps, dtype=torch.float64, lrs=None, **hp):
        hp = {**SGD.defaults(), **hp}
        x = problem.x0.to(dtype)
        state: dict = {}
        xs, losses = [x], []
        for t in range(steps):
            losses.append(problem.f(x))
            x, state = update(x, problem.grad(x), state, **(hp if lrs is None else {**hp, "lr": lrs[t]}))
            xs.append(x)
        return [v.to(torch.float64).numpy() for v in xs], np.array([float(v) for v in losses])
    return gd


reference_gd = reference_runner()


def _need(subject, hp: dict, param_groups: bool = False) -> dict:
    """The constructor arguments for ``subject``; skip if it cannot take a hyperparameter the document sets (a value
    other than the rule's default), or has no param_groups where a scheduler must change its learning rate."""
    defaults = subject.rule.defaults()
    missing = [k for k, v in hp.items() if k not in subject.caps.accepted and v != defaults.get(k)]
    if missing:
        pytest.skip(f"{subject.id} does not accept {', '.join(missing)}, which the document sets")
    if param_groups and not subject.caps.param_groups:
        pytest.skip(f"{subject.id} has no param_groups: a learning-rate scheduler cannot change its lr")
    return {**{k: v for k, v in hp.items() if k in subject.caps.accepted}, **subject.fixed}


def subject_runner(subject) -> Callable:
    """The implementation under test in the documents' loop, as ``reference_runner``'s ``gd``: x = Parameter(x0) in
    ``dtype``; each step records f(x), sets the gradient (the problem's ∇f, in ``dtype``) and calls step(); lrs[t]
    is written into every param group before step t, as a scheduler does. Run by the suite's one driver
    (``adapters.implementation_trajectory``), closed loop."""
    def gd(problem, steps, dtype=torch.float64, lrs=None, **hp):
        _need(subject, hp, param_groups=lrs is not None)
        hp = {**subject.rule.defaults(), **hp}
        x0 = problem.x0.to(dtype).double().numpy()
        case = Case(subject.rule, [Group((0,), hp)], [x0], [[None]] * steps,
                    [[hp["lr"] if lrs is None else lrs[t]] for t in range(steps)], dtype)
        losses = []

        def feedback(parts, t):
            x = torch.tensor(parts[0]).to(dtype)
            with torch.no_grad():
                losses.append(float(problem.f(x)))
                return [problem.grad(x).double().numpy()]

        xs = [x0, *(row[0] for row in adapters.implementation_trajectory(subject, case, feedback))]
        return xs, np.array(losses)
    return gd


# ---- 004: gradient descent section of an open textbook (JAX) ---------------------------------------------------------
GD_SQUARE = ((0.2, 0.060466), (0.05, 3.486784), (1.1, 61.917364))  # (η, printed "epoch 10, x: …")
X_COS_GD_PRINTED = -1.528165
ELLIPSE_PRINTED = (-0.057646, -0.000073)
NEWTON_COSH_PRINTED = 0.000000
NEWTON_X_COS_PRINTED = 26.834133


@functools.cache
def _bound_gd_square(eta, dtype):
    return _last(bounded_gd(problems.square(), 10, dtype, lr=eta)[0])


def check_004_gd_on_square(gd, dtype=torch.float64) -> None:
    """004: GD on f(x) = x² from x = 10, 10 steps: "epoch 10, x: 0.060466" (η = 0.2, converges), 3.486784
    (η = 0.05, "takes forever"), 61.917364 (η = 1.1, diverges) — x_10 = 10(1 − 2η)¹⁰. Python floats; 6 decimals."""
    for eta, printed in GD_SQUARE:
        xs, _ = gd(problems.square(), 10, dtype, lr=eta)
        tol = golden_tolerance(6, _bound_gd_square(eta, torch.float64), _bound_gd_square(eta, dtype))
        assert_printed(f"004 GD on x², η = {eta}", xs[-1], [printed], tol, ["x_10"])


@functools.cache
def _bound_gd_x_cos(dtype):
    return _last(bounded_gd(problems.x_cos(), 10, dtype, lr=2.0)[0])


def check_004_gd_on_x_cos(gd, dtype=torch.float64) -> None:
    """004: GD on f(x) = x·cos(cx), c = 0.15π (a float32 ``d2l.tensor``), η = 2, from x = 10, 10 steps, "ends up in
    whichever basin it falls into": "epoch 10, x: −1.528165". JAX computes in float32 and the iterates oscillate
    around the local minimum: the float64 run gives −1.52816596, 9.6e-7 from the printed digits, within the bound
    of float32 arithmetic on this run (1.3e-5)."""
    xs, _ = gd(problems.x_cos(), 10, dtype, lr=2.0)
    assert_printed("004 GD on x·cos(cx), η = 2", xs[-1], [X_COS_GD_PRINTED],
                   golden_tolerance(6, _bound_gd_x_cos(torch.float32), _bound_gd_x_cos(dtype)), ["x_10"])


@functools.cache
def _bound_gd_ellipse(dtype):
    return _last(bounded_gd(problems.ellipse(), 20, dtype, lr=0.1)[0])


def check_004_gd_on_ellipse(gd, dtype=torch.float64) -> None:
    """004: GD on f(x1, x2) = x1² + 2x2² from (−5, −2), η = 0.1, 20 steps: "epoch 20, x1: −0.057646, x2: −0.000073"
    (= (−5·0.8²⁰, −2·0.6²⁰)). Python floats; 6 decimals."""
    xs, _ = gd(problems.ellipse(), 20, dtype, lr=0.1)
    assert_printed("004 GD on x1² + 2x2², η = 0.1", xs[-1], ELLIPSE_PRINTED,
                   golden_tolerance(6, _bound_gd_ellipse(torch.float64), _bound_gd_ellipse(dtype)), ["x1_20", "x2_20"])


def _newton_x10(problem, dtype, step=newton_step):
    p = problems.Problem(problem.name, problem.f, problem.grad, problem.hessian, problem.x0.to(dtype))
    return newton(p, 10, step=step)[-1].to(torch.float64).numpy()


@functools.cache
def _bound_newton(name, dtype):
    problem = {"cosh": problems.cosh(0.5), "x_cos": problems.x_cos()}[name]
    return bounded_newton(problem, 10, dtype).error()


def _newton_tolerance(name) -> np.ndarray:
    """6 decimals; the document's float32 bound and the float64 bound of the reference Newton run checked."""
    return golden_tolerance(6, _bound_newton(name, torch.float32), _bound_newton(name, torch.float64))


def check_004_newton_on_cosh(step=newton_step) -> None:
    """004: Newton's method (η = 1) on f(x) = cosh(cx), c = 0.5 (a float32 ``d2l.tensor``; 0.5 is exact), from
    x = 10, 10 steps: "epoch 10, x: 0.000000". (The text says "one Newton step finds the minimum"; it does not —
    the first step goes to 10 − tanh(5)/0.5 = 8.00018, see properties/test_newton.py — but the 10th is 0 to 6
    decimals.)"""
    assert_printed("004 Newton on cosh(0.5x)", _newton_x10(problems.cosh(0.5), torch.float64, step),
                   [NEWTON_COSH_PRINTED], _newton_tolerance("cosh"), ["x_10"])


def check_004_newton_on_x_cos(step=newton_step) -> None:
    """004: Newton's method (η = 1) on f(x) = x·cos(cx), c = 0.15π, from x = 10, 10 steps: "epoch 10,
    x: 26.834133", a local maximum. The document's c is float32 (``d2l.tensor(0.15 * np.pi)``) and so is its
    arithmetic: in float64 with that c Newton converges to 26.8341321665, and a float32 iterate can get no closer
    than the float32 spacing there (1.9e-6); float32 runs end on 26.83413315, printed 26.834133. The bound of float32
    arithmetic on the run (6.7e-6: about the last step's rounding, Newton contracting the rest) accounts for it.
    (With c = 0.15π in float64 the fixed point, 26.8341329, would also print 26.834133; but that is not the
    document's c.)"""
    assert_printed("004 Newton on x·cos(cx)", _newton_x10(problems.x_cos(), torch.float64, step),
                   [NEWTON_X_COS_PRINTED], _newton_tolerance("x_cos"), ["x_10"])


# ---- 002: "Optimizers" chapter of a book on torch for R -----------------------------------------------------------
@functools.cache
def _bound_one_step(dtype):
    return _last(bounded_gd(problems.paraboloid_isotropic(), 1, dtype, lr=2.5)[0])


def check_002_one_step_on_isotropic_paraboloid(gd, dtype=torch.float64) -> None:
    """002 §8.3.1: on f = 0.2x1² + 0.2x2² − 5 from (6, 6), steepest descent with learning rate 2.5 arrives "at the
    minimum in a single step: (6 − 2.5·0.4·6, 6 − 2.5·0.4·6) = (0, 0)". Exact on paper, so no printing error; the
    bound of float64 arithmetic on quantities of size 6 (the float64 run ends on −8.9e-16)."""
    xs, _ = gd(problems.paraboloid_isotropic(), 1, dtype, lr=2.5)
    assert_printed("002 one GD step, lr 2.5", xs[-1], (0.0, 0.0),
                   golden_tolerance(None, _bound_one_step(torch.float64), _bound_one_step(dtype)), ["x1_1", "x2_1"])


# ---- 001: "Appendix F: Optimization" notebook -----------------------------------------------------------------------
BY_HAND_LOSSES = (64.0, 40.960, 26.214, 16.777, 10.737, 6.872, 4.398, 2.815, 1.801, 1.153, 0.738, 0.472, 0.302,
                  0.193, 0.124, 0.079, 0.051, 0.032, 0.021, 0.013)
MOMENTUM_LOSSES = (64.0, 61.466, 56.840, 50.662, 43.507, 35.934, 28.444, 21.452, 15.268, 10.096)
EXP_LR_LOSSES = (40.0, 27.500, 17.500, 9.500, 3.100, 2.020, 2.076, 1.201, 1.421, 0.677, 1.001, 0.341, 0.733, 0.126,
                 0.561)
EXP_LR_LRS = (0.4, 0.32000000000000006, 0.25600000000000006, 0.20480000000000007, 0.16384000000000007,
              0.13107200000000005, 0.10485760000000005, 0.08388608000000004, 0.06710886400000003,
              0.05368709120000003, 0.042949672960000025, 0.03435973836800002, 0.027487790694400018,
              0.021990232555520017, 0.017592186044416015)


@functools.cache
def _bound_by_hand(dtype):
    return _each(bounded_gd(problems.square(8.0), len(BY_HAND_LOSSES), dtype, lr=0.1)[1])


def check_001_gd_by_hand_on_square(gd, dtype=torch.float32) -> None:
    """001 "Optimizing by hand": x.data = x − 0.1·x.grad on f(x) = x² from x = 8 in float32, printing y = x² before
    each update: 64, 40.960, 26.214, …, 0.013 (= 64·0.64ⁱ). The notebook sets ``iterations = 30`` but its output
    shows 20 lines; those 20 are checked, at the 3 decimals of ``torch.set_printoptions(precision=3)``."""
    n = len(BY_HAND_LOSSES)
    _, losses = gd(problems.square(8.0), n, dtype, lr=0.1)
    assert_printed("001 GD by hand on x², lr 0.1", losses, BY_HAND_LOSSES,
                   golden_tolerance(3, _bound_by_hand(torch.float32), _bound_by_hand(dtype)), _labels(n))


@functools.cache
def _bound_momentum(dtype):
    return _each(bounded_gd(problems.square(8.0), len(MOMENTUM_LOSSES), dtype, lr=0.01, momentum=0.9)[1])


def check_001_sgd_momentum_on_square(gd, dtype=torch.float32) -> None:
    """001 "Using an optimizer": ``optim.SGD([x], lr=0.01, momentum=0.9)`` on f(x) = x² from x = 8 in float32, 10
    iterations: 64, 61.466, 56.840, 50.662, 43.507, 35.934, 28.444, 21.452, 15.268, 10.096 (3 decimals)."""
    n = len(MOMENTUM_LOSSES)
    _, losses = gd(problems.square(8.0), n, dtype, lr=0.01, momentum=0.9)
    assert_printed("001 SGD lr 0.01, momentum 0.9, on x²", losses, MOMENTUM_LOSSES,
                   golden_tolerance(3, _bound_momentum(torch.float32), _bound_momentum(dtype)), _labels(n))


def _exponential_schedule() -> list[float]:
    """The learning rate of each of 001's 15 steps: 0.5·0.8ᵗ (``scheduler.step()`` follows ``optimizer.step()``)."""
    return [exponential_lr(0.5, t, gamma=0.8) for t in range(len(EXP_LR_LOSSES))]


@functools.cache
def _bound_exp_lr(dtype):
    return _each(bounded_gd(problems.scaled_abs(5.0, 8.0), len(EXP_LR_LOSSES), dtype, lrs=_exponential_schedule(),
                            lr=0.5)[1])


def check_001_sgd_with_exponential_lr(gd, dtype=torch.float32) -> None:
    """001: SGD (lr 0.5) with ``ExponentialLR(optimizer, 0.8)`` on f(x) = 5|x| from x = 8 in float32, 15 iterations:
    40, 27.500, 17.500, 9.500, 3.100, 2.020, 2.076, 1.201, 1.421, 0.677, 1.001, 0.341, 0.733, 0.126, 0.561
    (3 decimals), with the schedule's closed form 0.5·0.8ᵗ written into the param groups before step t."""
    n = len(EXP_LR_LOSSES)
    _, losses = gd(problems.scaled_abs(5.0, 8.0), n, dtype, lrs=_exponential_schedule(), lr=0.5)
    assert_printed("001 SGD lr 0.5 + ExponentialLR(0.8) on 5|x|", losses, EXP_LR_LOSSES,
                   golden_tolerance(3, _bound_exp_lr(torch.float32), _bound_exp_lr(dtype)), _labels(n))


def check_001_exponential_lr_rates(scheduler_class=torch.optim.lr_scheduler.ExponentialLR) -> None:
    """001: ``ExponentialLR(optimizer, 0.8)`` on SGD with lr 0.5 prints, after each of its 15 ``step()`` calls,
    lr = 0.4, 0.32000000000000006, …, 0.017592186044416015: full float64 reprs of the running product 0.5·0.8·0.8·…,
    each factor a correctly rounded IEEE multiplication — platform-independent, so the recursive scheduler must
    reproduce them bit for bit."""
    x = torch.nn.Parameter(torch.tensor([8.0]))
    opt = torch.optim.SGD([x], lr=0.5)
    scheduler = scheduler_class(opt, 0.8)
    got = []
    for _ in EXP_LR_LRS:
        opt.step()
        scheduler.step()
        got.append(opt.param_groups[0]["lr"])
    assert_printed(f"001 {scheduler_class.__name__}(0.8) from lr 0.5", got, EXP_LR_LRS, np.zeros(len(EXP_LR_LRS)),
                   [f"lr after scheduler step {t}" for t in range(1, len(EXP_LR_LRS) + 1)])


# ---- 003: "Visualizing Gradient Descent Parameters in Torch" ---------------------------------------------------------
#: epoch → printed MSE loss (the article elides epochs 10–96)
REGRESSION_LOSSES = {0: 53.078269958496094, 1: 34.7295036315918, 2: 22.891206741333008, 3: 15.226042747497559,
                     4: 10.242652893066406, 5: 6.987757682800293, 6: 4.85075569152832, 7: 3.4395809173583984,
                     8: 2.501774787902832, 9: 1.8742430210113525, 97: 0.4994412660598755, 98: 0.4994412362575531,
                     99: 0.4994412660598755}
EPOCHS = 100
PRINTED_EPOCHS = sorted(REGRESSION_LOSSES)


@functools.cache
def _bound_regression(dtype):
    return _each(bounded_gd(problems.regression("mse"), EPOCHS, dtype, lr=0.1)[1])[PRINTED_EPOCHS]


def _assert_regression_losses(what, losses, dtype) -> None:
    __tracebackhide__ = True
    printed = [REGRESSION_LOSSES[e] for e in PRINTED_EPOCHS]
    assert_printed(what, [losses[e] for e in PRINTED_EPOCHS], printed,
                   golden_tolerance(None, _bound_regression(torch.float32), _bound_regression(dtype)),
                   [f"epoch {e}" for e in PRINTED_EPOCHS])


def check_003_mse_regression(gd, dtype=torch.float64) -> None:
    """003: the single-neuron linear regression (``problems.regression('mse')``: 50 float32 points drawn after
    ``np.random.seed(20240215)``, weight 6, bias −3), SGD lr 0.1, 100 epochs: "epoch 0, loss 53.078269958496094" …
    "epoch 99, loss 0.4994412660598755". Full float32 reprs (no printing error): the tolerance is the bound of
    float32 arithmetic on the run, 7e-6 relative at epoch 0 (a mean of 50 squares) to 3e-5 at epoch 99; epochs
    97–99 differ by one float32 ulp (3e-8), the float32 loss dithering at convergence."""
    _, losses = gd(problems.regression("mse"), EPOCHS, dtype, lr=0.1)
    _assert_regression_losses("003 MSE regression, SGD lr 0.1", losses, dtype)


def check_003_article_loop(subject) -> None:
    """003's training loop as the article writes it — float32 ``torch.from_numpy`` inputs (``requires_grad_()``), a
    Linear(1, 1) neuron with weight 6 and bias −3 (its forward ``F.linear``; the article's random initialisation is
    overwritten by ``fill_``, so the torch RNG plays no part), ``MSELoss``, ``zero_grad``/``backward``/``step`` —
    with the implementation under test in place of ``torch.optim.SGD(lr=0.1)``: the 13 printed losses."""
    kwargs = _need(subject, {"lr": 0.1})
    x, y = problems.regression_data()
    weight = torch.nn.Parameter(torch.full((1, 1), 6.0, device=subject.device))
    bias = torch.nn.Parameter(torch.full((1,), -3.0, device=subject.device))
    opt = adapters.call(subject, f"the constructor, given {kwargs}", subject.factory, [weight, bias], **kwargs)
    losses = []
    for epoch in range(EPOCHS):
        inputs = torch.from_numpy(x).to(subject.device).requires_grad_().reshape(-1, 1)
        labels = torch.from_numpy(y).to(subject.device).reshape(-1, 1)
        if subject.caps.zero_grad:
            opt.zero_grad()
        else:
            weight.grad = bias.grad = None
        loss = torch.nn.functional.mse_loss(torch.nn.functional.linear(inputs, weight, bias), labels)
        loss.backward()
        adapters.step(subject, opt, epoch)
        losses.append(loss.item())
    _assert_regression_losses(f"003 MSE regression, {subject.id} in the article's loop", losses, torch.float32)


#: the goldens of a GD-type run, checked on the reference rule and on the SGD implementation under test:
#: (check, the document's dtype)
GD_GOLDENS = [(check_004_gd_on_square, torch.float64), (check_004_gd_on_x_cos, torch.float32),
              (check_004_gd_on_ellipse, torch.float64), (check_002_one_step_on_isotropic_paraboloid, torch.float64),
              (check_001_gd_by_hand_on_square, torch.float32), (check_001_sgd_momentum_on_square, torch.float32),
              (check_001_sgd_with_exponential_lr, torch.float32), (check_003_mse_regression, torch.float32)]
NEWTON_GOLDENS = [check_004_newton_on_cosh, check_004_newton_on_x_cos]


def _ids(pairs):
    return [c.__name__.removeprefix("check_") for c, _ in pairs]


# ---- the tests ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check, dtype", GD_GOLDENS, ids=_ids(GD_GOLDENS))
def test_reference_rule_reproduces_printed_values(check, dtype):
    """The reference rule ``sgd``, in float64, reproduces the document's printed numbers (the check's docstring
    quotes them) at their printed precision."""
    check(reference_gd, torch.float64)


@pytest.mark.applies_to("sgd")
@pytest.mark.parametrize("check, dtype", GD_GOLDENS, ids=_ids(GD_GOLDENS))
def test_implementation_reproduces_printed_values(subject, check, dtype):
    """The SGD implementation under test, run in the document's loop and dtype, reproduces the printed numbers at
    their printed precision."""
    check(subject_runner(subject), dtype)


@pytest.mark.applies_to("sgd")
def test_implementation_reproduces_003_losses_in_the_articles_loop(subject):
    """003's losses, with the implementation under test driven by the article's own loop (nn.Linear forward,
    MSELoss, backward) — torch.optim.SGD reproduces all 13 printed floats bit for bit on this machine."""
    check_003_article_loop(subject)


@pytest.mark.parametrize("check", NEWTON_GOLDENS, ids=[c.__name__.removeprefix("check_") for c in NEWTON_GOLDENS])
def test_newton_reproduces_printed_values(check):
    """004's Newton runs end where the document prints, with the reference Newton step (``reference/newton.py``)."""
    check()


def test_torch_exponential_lr_reproduces_printed_learning_rates():
    """001's printed ExponentialLR learning rates, bit for bit, from torch.optim.lr_scheduler.ExponentialLR; and the
    closed form 0.5·0.8ᵗ (``reference.schedulers``) within the model of properties/test_schedulers.py: t products
    rounded by the recursion, ≤ 3 roundings in pow and the product, each ≤ u relative."""
    check_001_exponential_lr_rates()
    closed = [exponential_lr(0.5, t, gamma=0.8) for t in range(1, len(EXP_LR_LRS) + 1)]
    tol = [(t + 4) * U64 * lr for t, lr in enumerate(EXP_LR_LRS, start=1)]
    assert_printed("001 ExponentialLR closed form 0.5·0.8ᵗ", closed, EXP_LR_LRS, tol,
                   [f"lr after scheduler step {t}" for t in range(1, len(EXP_LR_LRS) + 1)])
