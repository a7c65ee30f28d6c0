"""Golden values: the numbers the documents print, reproduced by the reference rules (float64) and, for the SGD
runs, by the implementation under test in the document's loop and dtype.

Each printed number p is matched at the precision it is printed with, d decimals, allowing for the rounding the
document's own arithmetic made and for ours:

    |value − p| ≤ ½·10⁻ᵈ  +  SENSITIVITY_FACTOR · spread  +  floor

* ½·10⁻ᵈ: printing to d decimals moved the document's value by at most half a unit of its last digit. This is
  "compared at the printed precision" (rounding to d decimals), without the flip rounding would make for a value
  within rounding error of a half-way point. Full float reprs (003's losses) carry no printing error.
* spread: how far rounding at the document's precision u_doc can carry the printed quantity, measured as the suite's
  tolerance model measures it (``properties/tolerances.py``): the float64 reference is re-run ``MCA_SAMPLES`` times
  with every operation's result multiplied by (1 ± u_doc) (Monte Carlo arithmetic) and, for a document computing in
  float32, once with the reference really in float32. The largest deviation from the exact run is the spread;
  ``SENSITIVITY_FACTOR`` = 8 covers the difference between two such runs (the document's and ours), as it does there.
* floor: each step rounds each value at most ``ROUNDINGS_PER_STEP`` = 4 times: u_doc · 4 · steps · |p|.

The documents' arithmetic: 001 and 003 run torch in float32 (``torch.Tensor([x0])``, ``np.float32`` data); 004 runs
Python floats (float64) for x² and x1² + 2x2², and JAX float32 where c is a ``d2l.tensor`` (x·cos(cx), cosh(cx));
002's is exact on paper (checked in float64).

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
from properties.tolerances import MCA_SAMPLES, SENSITIVITY_FACTOR, RoundingNoise, unit_roundoff
from reference import problems
from reference.newton import newton, newton_step
from reference.registry import RULES
from reference.schedulers import exponential_lr

ROUNDINGS_PER_STEP = 4
U64, U32 = unit_roundoff(torch.float64), unit_roundoff(torch.float32)
SGD = RULES["sgd"]


# ---- the model ------------------------------------------------------------------------------------------------------
def rounding_spread(run: Callable[[torch.dtype], np.ndarray], u: float, float32: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the float64 run, its spread at unit roundoff u): the largest deviation of MCA_SAMPLES runs under
    ``RoundingNoise(u)`` and, if ``float32``, of the run in real float32 arithmetic."""
    exact = np.asarray(run(torch.float64), dtype=np.float64)
    spread = np.zeros_like(exact)
    for seed in range(MCA_SAMPLES):
        with RoundingNoise(u, seed):
            sample = np.asarray(run(torch.float64), dtype=np.float64)
        spread = np.maximum(spread, np.abs(sample - exact))
    if float32:
        spread = np.maximum(spread, np.abs(np.asarray(run(torch.float32), dtype=np.float64) - exact))
    return exact, spread


def golden_tolerance(printed, decimals: int | None, spread, u_doc: float, steps, scale=None) -> np.ndarray:
    """½·10⁻ᵈ (none for ``decimals=None``) + 8·spread + u_doc·4·steps·scale, elementwise: ``steps`` per printed value
    (the steps that produced it, a loss evaluation counted as one), scale = |printed| unless given (the magnitude
    the computation went through, for a printed 0)."""
    half = 0.0 if decimals is None else 0.5 * 10.0**-decimals
    scale = np.abs(printed) if scale is None else np.asarray(scale)
    return half + SENSITIVITY_FACTOR * np.asarray(spread) + u_doc * ROUNDINGS_PER_STEP * np.asarray(steps) * scale


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


def _evaluations(n: int) -> np.ndarray:
    """The loss printed at iteration i is f after i steps: i + 1 in the floor's count."""
    return np.arange(1, n + 1)


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
    is written into every param group before step t, as a scheduler does."""
    def gd(problem, steps, dtype=torch.float64, lrs=None, **hp):
        kwargs = _need(subject, hp, param_groups=lrs is not None)
        p = torch.nn.Parameter(problem.x0.to(dtype).clone().to(subject.device))
        opt = adapters.call(subject, f"the constructor, given {kwargs}", subject.factory, [p], **kwargs)
        xs, losses = [p.detach().cpu().double().numpy().copy()], []
        for t in range(steps):
            if lrs is not None:
                for group in opt.param_groups:
                    group["lr"] = lrs[t]
            with torch.no_grad():
                losses.append(float(problem.f(p.detach().cpu())))
                p.grad = problem.grad(p.detach().cpu()).to(subject.device)
            adapters.step(subject, opt, t)
            xs.append(p.detach().cpu().double().numpy().copy())
        return xs, np.array(losses)
    return gd


# ---- 004: gradient descent section of an open textbook (JAX) ---------------------------------------------------------
GD_SQUARE = ((0.2, 0.060466), (0.05, 3.486784), (1.1, 61.917364))  # (η, printed "epoch 10, x: …")
X_COS_GD_PRINTED = -1.528165
ELLIPSE_PRINTED = (-0.057646, -0.000073)
NEWTON_COSH_PRINTED = 0.000000
NEWTON_X_COS_PRINTED = 26.834133


@functools.cache
def _spread_gd_square(eta):
    return rounding_spread(lambda dt: reference_gd(problems.square(), 10, dt, lr=eta)[0][-1], U64, float32=False)


def check_004_gd_on_square(gd, dtype=torch.float64) -> None:
    """004: GD on f(x) = x² from x = 10, 10 steps: "epoch 10, x: 0.060466" (η = 0.2, converges), 3.486784
    (η = 0.05, "takes forever"), 61.917364 (η = 1.1, diverges) — x_10 = 10(1 − 2η)¹⁰. Python floats; 6 decimals."""
    for eta, printed in GD_SQUARE:
        xs, _ = gd(problems.square(), 10, dtype, lr=eta)
        _, spread = _spread_gd_square(eta)
        assert_printed(f"004 GD on x², η = {eta}", xs[-1], [printed], golden_tolerance([printed], 6, spread, U64, 10),
                       ["x_10"])


@functools.cache
def _spread_gd_x_cos():
    return rounding_spread(lambda dt: reference_gd(problems.x_cos(), 10, dt, lr=2.0)[0][-1], U32, float32=True)


def check_004_gd_on_x_cos(gd, dtype=torch.float64) -> None:
    """004: GD on f(x) = x·cos(cx), c = 0.15π (a float32 ``d2l.tensor``), η = 2, from x = 10, 10 steps, "ends up in
    whichever basin it falls into": "epoch 10, x: −1.528165". JAX computes in float32 and the iterates oscillate
    around the local minimum, amplifying that rounding: the float64 run gives −1.52816596, 9.6e-7 from the printed
    digits — within the float32 spread (1.3e-6) the model measures."""
    xs, _ = gd(problems.x_cos(), 10, dtype, lr=2.0)
    _, spread = _spread_gd_x_cos()
    assert_printed("004 GD on x·cos(cx), η = 2", xs[-1], [X_COS_GD_PRINTED],
                   golden_tolerance([X_COS_GD_PRINTED], 6, spread, U32, 10), ["x_10"])


@functools.cache
def _spread_gd_ellipse():
    return rounding_spread(lambda dt: reference_gd(problems.ellipse(), 20, dt, lr=0.1)[0][-1], U64, float32=False)


def check_004_gd_on_ellipse(gd, dtype=torch.float64) -> None:
    """004: GD on f(x1, x2) = x1² + 2x2² from (−5, −2), η = 0.1, 20 steps: "epoch 20, x1: −0.057646, x2: −0.000073"
    (= (−5·0.8²⁰, −2·0.6²⁰)). Python floats; 6 decimals."""
    xs, _ = gd(problems.ellipse(), 20, dtype, lr=0.1)
    _, spread = _spread_gd_ellipse()
    assert_printed("004 GD on x1² + 2x2², η = 0.1", xs[-1], ELLIPSE_PRINTED,
                   golden_tolerance(ELLIPSE_PRINTED, 6, spread, U64, 20), ["x1_20", "x2_20"])


def _newton_x10(problem, dtype, step=newton_step):
    p = problems.Problem(problem.name, problem.f, problem.grad, problem.hessian, problem.x0.to(dtype))
    return newton(p, 10, step=step)[-1].to(torch.float64).numpy()


@functools.cache
def _spread_newton(name):
    problem = {"cosh": problems.cosh(0.5), "x_cos": problems.x_cos()}[name]
    return rounding_spread(lambda dt: _newton_x10(problem, dt), U32, float32=True)


def check_004_newton_on_cosh(step=newton_step) -> None:
    """004: Newton's method (η = 1) on f(x) = cosh(cx), c = 0.5 (a float32 ``d2l.tensor``; 0.5 is exact), from
    x = 10, 10 steps: "epoch 10, x: 0.000000". (The text says "one Newton step finds the minimum"; it does not —
    the first step goes to 10 − tanh(5)/0.5 = 8.00018, see properties/test_newton.py — but the 10th is 0 to 6
    decimals.)"""
    _, spread = _spread_newton("cosh")
    assert_printed("004 Newton on cosh(0.5x)", _newton_x10(problems.cosh(0.5), torch.float64, step),
                   [NEWTON_COSH_PRINTED], golden_tolerance([NEWTON_COSH_PRINTED], 6, spread, U32, 10), ["x_10"])


def check_004_newton_on_x_cos(step=newton_step) -> None:
    """004: Newton's method (η = 1) on f(x) = x·cos(cx), c = 0.15π, from x = 10, 10 steps: "epoch 10,
    x: 26.834133", a local maximum. The document's c is float32 (``d2l.tensor(0.15 * np.pi)``) and so is its
    arithmetic: in float64 with that c Newton converges to 26.8341321665, and a float32 iterate can get no closer
    than the float32 spacing there (1.9e-6); float32 runs end on 26.83413315, printed 26.834133. The float32 run in
    the spread accounts for it. (With c = 0.15π in float64 the fixed point, 26.8341329, would also print 26.834133;
    but that is not the document's c.)"""
    _, spread = _spread_newton("x_cos")
    assert_printed("004 Newton on x·cos(cx)", _newton_x10(problems.x_cos(), torch.float64, step),
                   [NEWTON_X_COS_PRINTED], golden_tolerance([NEWTON_X_COS_PRINTED], 6, spread, U32, 10), ["x_10"])


# ---- 002: "Optimizers" chapter of a book on torch for R -----------------------------------------------------------
@functools.cache
def _spread_one_step():
    return rounding_spread(lambda dt: reference_gd(problems.paraboloid_isotropic(), 1, dt, lr=2.5)[0][-1], U64,
                           float32=False)


def check_002_one_step_on_isotropic_paraboloid(gd, dtype=torch.float64) -> None:
    """002 §8.3.1: on f = 0.2x1² + 0.2x2² − 5 from (6, 6), steepest descent with learning rate 2.5 arrives "at the
    minimum in a single step: (6 − 2.5·0.4·6, 6 − 2.5·0.4·6) = (0, 0)". Exact on paper; float64 rounding of
    quantities of size 6 only."""
    xs, _ = gd(problems.paraboloid_isotropic(), 1, dtype, lr=2.5)
    _, spread = _spread_one_step()
    assert_printed("002 one GD step, lr 2.5", xs[-1], (0.0, 0.0),
                   golden_tolerance((0.0, 0.0), None, spread, U64, 1, scale=6.0), ["x1_1", "x2_1"])


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
def _spread_by_hand():
    return rounding_spread(lambda dt: reference_gd(problems.square(8.0), len(BY_HAND_LOSSES), dt, lr=0.1)[1], U32,
                           float32=True)


def check_001_gd_by_hand_on_square(gd, dtype=torch.float32) -> None:
    """001 "Optimizing by hand": x.data = x − 0.1·x.grad on f(x) = x² from x = 8 in float32, printing y = x² before
    each update: 64, 40.960, 26.214, …, 0.013 (= 64·0.64ⁱ). The notebook sets ``iterations = 30`` but its output
    shows 20 lines; those 20 are checked, at the 3 decimals of ``torch.set_printoptions(precision=3)``."""
    n = len(BY_HAND_LOSSES)
    _, losses = gd(problems.square(8.0), n, dtype, lr=0.1)
    _, spread = _spread_by_hand()
    assert_printed("001 GD by hand on x², lr 0.1", losses, BY_HAND_LOSSES,
                   golden_tolerance(BY_HAND_LOSSES, 3, spread, U32, _evaluations(n)), _labels(n))


@functools.cache
def _spread_momentum():
    return rounding_spread(lambda dt: reference_gd(problems.square(8.0), len(MOMENTUM_LOSSES), dt, lr=0.01,
                                                   momentum=0.9)[1], U32, float32=True)


def check_001_sgd_momentum_on_square(gd, dtype=torch.float32) -> None:
    """001 "Using an optimizer": ``optim.SGD([x], lr=0.01, momentum=0.9)`` on f(x) = x² from x = 8 in float32, 10
    iterations: 64, 61.466, 56.840, 50.662, 43.507, 35.934, 28.444, 21.452, 15.268, 10.096 (3 decimals)."""
    n = len(MOMENTUM_LOSSES)
    _, losses = gd(problems.square(8.0), n, dtype, lr=0.01, momentum=0.9)
    _, spread = _spread_momentum()
    assert_printed("001 SGD lr 0.01, momentum 0.9, on x²", losses, MOMENTUM_LOSSES,
                   golden_tolerance(MOMENTUM_LOSSES, 3, spread, U32, _evaluations(n)), _labels(n))


def _exponential_schedule() -> list[float]:
    """The learning rate of each of 001's 15 steps: 0.5·0.8ᵗ (``scheduler.step()`` follows ``optimizer.step()``)."""
    return [exponential_lr(0.5, t, gamma=0.8) for t in range(len(EXP_LR_LOSSES))]


@functools.cache
def _spread_exp_lr():
    return rounding_spread(lambda dt: reference_gd(problems.scaled_abs(5.0, 8.0), len(EXP_LR_LOSSES), dt,
                                                   lrs=_exponential_schedule(), lr=0.5)[1], U32, float32=True)


def check_001_sgd_with_exponential_lr(gd, dtype=torch.float32) -> None:
    """001: SGD (lr 0.5) with ``ExponentialLR(optimizer, 0.8)`` on f(x) = 5|x| from x = 8 in float32, 15 iterations:
    40, 27.500, 17.500, 9.500, 3.100, 2.020, 2.076, 1.201, 1.421, 0.677, 1.001, 0.341, 0.733, 0.126, 0.561
    (3 decimals), with the schedule's closed form 0.5·0.8ᵗ written into the param groups before step t."""
    n = len(EXP_LR_LOSSES)
    _, losses = gd(problems.scaled_abs(5.0, 8.0), n, dtype, lrs=_exponential_schedule(), lr=0.5)
    _, spread = _spread_exp_lr()
    assert_printed("001 SGD lr 0.5 + ExponentialLR(0.8) on 5|x|", losses, EXP_LR_LOSSES,
                   golden_tolerance(EXP_LR_LOSSES, 3, spread, U32, _evaluations(n)), _labels(n))


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
def _spread_regression():
    return rounding_spread(lambda dt: reference_gd(problems.regression("mse"), EPOCHS, dt, lr=0.1)[1][PRINTED_EPOCHS],
                           U32, float32=True)


def _assert_regression_losses(what, losses) -> None:
    __tracebackhide__ = True
    printed = [REGRESSION_LOSSES[e] for e in PRINTED_EPOCHS]
    _, spread = _spread_regression()
    assert_printed(what, [losses[e] for e in PRINTED_EPOCHS], printed,
                   golden_tolerance(printed, None, spread, U32, np.add(PRINTED_EPOCHS, 1)),
                   [f"epoch {e}" for e in PRINTED_EPOCHS])


def check_003_mse_regression(gd, dtype=torch.float64) -> None:
    """003: the single-neuron linear regression (``problems.regression('mse')``: 50 float32 points drawn after
    ``np.random.seed(20240215)``, weight 6, bias −3), SGD lr 0.1, 100 epochs: "epoch 0, loss 53.078269958496094" …
    "epoch 99, loss 0.4994412660598755". Full float32 reprs (no printing error): the tolerance is the float32
    spread, 1e-7..6e-7 relative; epochs 97–99 differ by one float32 ulp (3e-8), the float32 loss dithering at
    convergence."""
    _, losses = gd(problems.regression("mse"), EPOCHS, dtype, lr=0.1)
    _assert_regression_losses("003 MSE regression, SGD lr 0.1", losses)


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
    _assert_regression_losses(f"003 MSE regression, {subject.id} in the article's loop", losses)


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
