"""The suite tests its problem-based properties: each property fails on a deliberately broken variant (defined
below: each correct but for one realistic mistake), and the test problems themselves are what they say they are
(``reference/problems.py``: gradients and Hessians agree with autograd, L and μ bound the Hessian).

For a Hypothesis property, a search (``BROKEN_EXAMPLES`` examples at most, generation only) over the property's own
strategy must find an example on which its ``check_*`` function raises AssertionError for the broken variant; the
golden values and single examples are called directly. These judge the suite, not the implementation under test:
they belong in properties/plugin.py's SELF_TESTS (not collected under ``--optimizer``).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from optimizers.adapters import Subject
from properties import test_golden as golden
from properties import test_lbfgs as lbfgs
from properties import test_newton as newton
from properties import test_schedulers as sched
from properties import test_zero_grad as zg
from reference import problems
from reference import schedulers as closed
from reference.registry import RULES

#: Hypothesis searches run inside these tests: the false-alarm run selects them (conftest's marker)
pytestmark = pytest.mark.seeded

BROKEN_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "200"))
SEARCH = settings(max_examples=BROKEN_EXAMPLES, phases=[Phase.generate], database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))


# ---- broken variants -------------------------------------------------------------------------------------------------
# Each is correct but for ONE realistic mistake, named in its docstring; each property must fail on the variants listed
# for it. Do not use these for training.

class SGDIgnoresLrOnFirstStep(torch.optim.SGD):
    """SGD whose first step moves by the raw gradient, θ ← θ − g, as if lr were 1 (a warm-up written backwards)."""

    def __init__(self, params, lr=1e-3, **kwargs):
        super().__init__(params, lr=lr, **kwargs)
        self._first = True

    @torch.no_grad()
    def step(self, closure=None):
        if not self._first:
            return super().step(closure)
        self._first = False
        saved = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = 1.0
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, saved):
                g["lr"] = lr


def sgd_rule_with_stale_gradient(θ, g, state, **hp):
    """The reference rule ``sgd``, but each step uses the previous step's gradient (zero on the first): an update
    applied before the gradient it should use is stored."""
    prev = state.get("g_prev", torch.zeros_like(g))
    inner = {k: v for k, v in state.items() if k != "g_prev"}
    θ, inner = RULES["sgd"].update(θ, prev, inner, **hp)
    return θ, {**inner, "g_prev": g}


def _newton_direction(x, grad, hessian):
    return torch.linalg.solve(hessian(x), grad(x).unsqueeze(-1)).squeeze(-1)


def newton_step_wrong_sign(x, grad, hessian, eta=1.0):
    """x⁺ = x + η H⁻¹∇f: the step added instead of subtracted."""
    return x + eta * _newton_direction(x, grad, hessian)


def newton_step_hessian_doubled(x, grad, hessian, eta=1.0):
    """x⁺ = x − η (2H)⁻¹∇f: the Hessian of ½xᵀAx taken as 2A (the ½ forgotten)."""
    return x - eta * 0.5 * _newton_direction(x, grad, hessian)


def newton_step_hessian_halved(x, grad, hessian, eta=1.0):
    """x⁺ = x − η (H/2)⁻¹∇f: the Hessian taken as half its value."""
    return x - eta * 2.0 * _newton_direction(x, grad, hessian)


def newton_step_absolute_hessian(x, grad, hessian, eta=1.0):
    """x⁺ = x − η |H|⁻¹∇f with |H| = V|Λ|Vᵀ: a "saddle-free" Newton passed off as Newton's method."""
    lam, vec = torch.linalg.eigh(hessian(x))
    abs_h = vec @ torch.diag(torch.abs(lam)) @ vec.T
    return x - eta * torch.linalg.solve(abs_h, grad(x).unsqueeze(-1)).squeeze(-1)


class StepLROffByOne(torch.optim.lr_scheduler.StepLR):
    """StepLR that decays one step early: when (t + 1) is a multiple of step_size instead of t."""

    def get_lr(self):
        if (self.last_epoch + 1) % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class MultiStepLRLate(torch.optim.lr_scheduler.MultiStepLR):
    """MultiStepLR that decays one step after each milestone (t − 1 compared with the milestones)."""

    def get_lr(self):
        if self.last_epoch - 1 not in self.milestones:
            return [group["lr"] for group in self.optimizer.param_groups]
        factor = self.gamma ** self.milestones[self.last_epoch - 1]
        return [group["lr"] * factor for group in self.optimizer.param_groups]


class ExponentialLRSkipsFirstDecay(torch.optim.lr_scheduler.ExponentialLR):
    """ExponentialLR that leaves the learning rate unchanged on its first step() (η_t = η_0·γ^(t−1) after that)."""

    def get_lr(self):
        if self.last_epoch <= 1:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class LambdaLRCompounding(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR that multiplies the current learning rate by λ(t) instead of the initial one (η_t = η_{t−1}·λ(t))."""

    def get_lr(self):
        if self.last_epoch == 0:
            return list(self.base_lrs)
        return [group["lr"] * lmbda(self.last_epoch)
                for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class LBFGSIgnoresHistorySize(torch.optim.LBFGS):
    """L-BFGS keeping one pair more than history_size (an off-by-one in the memory's length)."""

    def __init__(self, params, history_size=100, **kwargs):
        super().__init__(params, history_size=history_size + 1, **kwargs)


class LBFGSReversedHistory(torch.optim.LBFGS):
    """L-BFGS whose stored pairs come back newest-first after each step() (a memory kept as a stack), so the
    two-loop recursion runs its loops in the wrong order from the second step on."""

    @torch.no_grad()
    def step(self, closure):
        loss = super().step(closure)
        state = self.state[self._params[0]]
        for key in ("old_dirs", "old_stps", "ro"):
            if key in state:
                state[key].reverse()
        return loss


class LBFGSIgnoresMaxEval(torch.optim.LBFGS):
    """L-BFGS that drops max_eval (a wrapper that does not pass it on): the budget is always 1.25·max_iter."""

    def __init__(self, params, max_eval=None, **kwargs):
        super().__init__(params, **kwargs)


class LBFGSIgnoresToleranceGrad(torch.optim.LBFGS):
    """L-BFGS that drops tolerance_grad (a wrapper that does not pass it on): it stops at max|∇f| ≤ 1e-7 always."""

    def __init__(self, params, tolerance_grad=1e-7, **kwargs):
        super().__init__(params, **kwargs)


class LBFGSGradientSignBug(torch.optim.LBFGS):
    """L-BFGS that gathers −∇f (a sign flipped when flattening the gradients): its direction goes uphill."""

    def _gather_flat_grad(self):
        return -super()._gather_flat_grad()


class SGDZeroGradNoop(torch.optim.SGD):
    """SGD whose zero_grad() does nothing (overridden with a stub)."""

    def zero_grad(self, set_to_none: bool = True):
        return None


class SGDZeroGradFirstParamOnly(torch.optim.SGD):
    """SGD whose zero_grad() clears the first parameter of each group only (a `break` in the wrong loop)."""

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
                break


class SGDStepClearsGrad(torch.optim.SGD):
    """SGD whose step() sets every .grad to None after using it (consuming the gradient), so gradients can no
    longer accumulate across backward() calls."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return loss



def fails_on_some_example(strategy, check) -> object:
    """The first drawn example on which ``check(example)`` raises AssertionError (NonConformance included); fails
    the self-test if none of BROKEN_EXAMPLES does. Examples the property does not judge count as passing."""
    def fails(example):
        try:
            check(example)
        except AssertionError:
            return True
        except lbfgs.NotJudged:
            return False
        return False
    try:
        return find(strategy, fails, settings=SEARCH)
    except NoSuchExample:
        pytest.fail(f"no example in {BROKEN_EXAMPLES} makes the property fail on the broken variant", pytrace=False)


def _subject(cls, rule="sgd") -> Subject:
    name = cls.__name__
    return Subject(f"self_checks.{name}", cls, RULES[rule], f"properties/test_problem_self_checks.py:{name}")


# ---- golden values ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check, dtype", golden.GD_GOLDENS, ids=golden._ids(golden.GD_GOLDENS))
def test_golden_catches_sgd_ignoring_lr_on_first_step(check, dtype):
    """An SGD whose first step ignores lr does not reproduce the document's printed numbers."""
    with pytest.raises(AssertionError):
        check(golden.subject_runner(_subject(SGDIgnoresLrOnFirstStep)), dtype)


def test_golden_catches_sgd_ignoring_lr_in_the_articles_loop():
    """003's printed losses are not reproduced by the broken SGD in the article's own loop."""
    with pytest.raises(AssertionError):
        golden.check_003_article_loop(_subject(SGDIgnoresLrOnFirstStep))


@pytest.mark.parametrize("check, dtype", golden.GD_GOLDENS, ids=golden._ids(golden.GD_GOLDENS))
def test_golden_catches_a_reference_rule_with_stale_gradients(check, dtype):
    """A reference rule that steps with the previous gradient does not reproduce the printed numbers."""
    with pytest.raises(AssertionError):
        check(golden.reference_runner(sgd_rule_with_stale_gradient), torch.float64)


@pytest.mark.parametrize("step", [newton_step_wrong_sign, newton_step_hessian_doubled,
                                  newton_step_absolute_hessian], ids=lambda s: s.__name__)
@pytest.mark.parametrize("check", golden.NEWTON_GOLDENS, ids=lambda c: c.__name__)
def test_newton_goldens_catch_broken_steps(check, step):
    """004's Newton end points are not reproduced by a Newton step with the wrong sign, a doubled Hessian, or |H|
    (on cosh, f'' > 0, |H| = H: that variant is Newton's method there and must pass)."""
    if step is newton_step_absolute_hessian and check is golden.check_004_newton_on_cosh:
        check(step)
        return
    with pytest.raises(AssertionError):
        check(step)


def test_golden_catches_exponential_lr_skipping_its_first_decay():
    """001's printed learning rates are not those of an ExponentialLR that skips its first decay."""
    with pytest.raises(AssertionError):
        golden.check_001_exponential_lr_rates(ExponentialLRSkipsFirstDecay)


# ---- Newton ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [newton_step_hessian_doubled, newton_step_wrong_sign,
                                  newton_step_hessian_halved], ids=lambda s: s.__name__)
def test_newton_exactness_on_quadratics_fails_for_broken_steps(step):
    fails_on_some_example(newton.pd_quadratics(), lambda d: newton.check_newton_exact_on_quadratic(step, *d))


@pytest.mark.parametrize("step", [newton_step_hessian_halved, newton_step_wrong_sign],
                         ids=lambda s: s.__name__)
def test_newton_no_overshoot_on_cosh_fails_for_broken_steps(step):
    fails_on_some_example(newton.cosh_points(), lambda d: newton.check_newton_on_cosh_never_overshoots(step, *d))


def test_newton_cubic_convergence_on_cosh_fails_for_a_doubled_hessian():
    fails_on_some_example(newton.cosh_points(), lambda d: newton.check_newton_on_cosh_converges_cubically(
        newton_step_hessian_doubled, *d))


def test_newton_step_length_on_cosh_fails_for_a_doubled_hessian():
    fails_on_some_example(newton.cosh_points(), lambda d: newton.check_newton_on_cosh_moves_about_one_over_c(
        newton_step_hessian_doubled, *d))


@pytest.mark.parametrize("step", [newton_step_absolute_hessian, newton_step_wrong_sign],
                         ids=lambda s: s.__name__)
def test_newton_direction_sign_fails_for_broken_steps(step):
    """A saddle-free Newton (|H|) always descends, so it fails "ascends where f'' < 0"; the wrong sign fails where
    f'' > 0."""
    fails_on_some_example(newton.x_cos_points(),
                          lambda d: newton.check_newton_direction_sign_follows_curvature(step, *d))


def test_newton_climb_to_a_maximum_fails_for_saddle_free_newton():
    with pytest.raises(AssertionError):
        newton.check_newton_on_x_cos_climbs_to_a_maximum(newton_step_absolute_hessian)


# ---- schedulers -----------------------------------------------------------------------------------------------------
def test_step_lr_property_fails_for_an_off_by_one():
    def check(ex):
        lrs, step_size, gamma, steps = ex
        sched.check_scheduler_follows_closed_form(
            lambda opt: StepLROffByOne(opt, step_size=step_size, gamma=gamma),
            lambda base, t: closed.step_lr(base, t, step_size=step_size, gamma=gamma),
            lambda t, lr: sched.recursive_tolerance(closed.step_exponent(t, step_size=step_size), lr),
            lrs, steps, "StepLROffByOne")
    fails_on_some_example(st.tuples(sched.base_lrs, st.integers(1, 30), sched.gammas, sched.step_counts), check)


def test_multistep_lr_property_fails_for_a_late_decay():
    def check(ex):
        lrs, milestones, gamma, steps = ex
        sched.check_scheduler_follows_closed_form(
            lambda opt: MultiStepLRLate(opt, milestones=milestones, gamma=gamma),
            lambda base, t: closed.multistep_lr(base, t, milestones=milestones, gamma=gamma),
            lambda t, lr: sched.recursive_tolerance(closed.multistep_exponent(t, milestones=milestones), lr),
            lrs, steps, "MultiStepLRLate")
    fails_on_some_example(st.tuples(sched.base_lrs, sched.milestone_lists(), sched.gammas, sched.step_counts), check)


def test_exponential_lr_property_fails_when_the_first_decay_is_skipped():
    def check(ex):
        lrs, gamma, steps = ex
        sched.check_scheduler_follows_closed_form(
            lambda opt: ExponentialLRSkipsFirstDecay(opt, gamma=gamma),
            lambda base, t: closed.exponential_lr(base, t, gamma=gamma),
            lambda t, lr: sched.recursive_tolerance(t, lr), lrs, steps, "ExponentialLRSkipsFirstDecay")
    fails_on_some_example(st.tuples(sched.base_lrs, sched.gammas, sched.step_counts), check)


def test_lambda_lr_property_fails_when_lambda_compounds():
    def check(ex):
        lrs, (name, fn), steps = ex
        sched.check_scheduler_follows_closed_form(
            lambda opt: LambdaLRCompounding(opt, lr_lambda=fn),
            lambda base, t: closed.lambda_lr(base, t, lr_lambda=fn), lambda t, lr: 0.0, lrs, steps,
            f"LambdaLRCompounding(λ(t) = {name})")
    fails_on_some_example(st.tuples(sched.base_lrs, sched.lr_lambdas(), sched.step_counts), check)


# ---- L-BFGS ---------------------------------------------------------------------------------------------------------
#: where each bug can show (problem, hyperparameters, step() calls): more pairs than history_size for the one that
#: ignores it; a second step() starting from two pairs or more, on a problem of three dimensions or more (the first
#: step() has not converged, and the pairs' order matters), for the one that reverses them; a budget below
#: 1.25·max_iter, or a gradient tolerance other than the default, for the ones that drop those arguments
def _every_iteration(hp) -> bool:
    """No max_eval below max_iter: each step() makes all its iterations, and the history they build is used."""
    return hp.get("max_eval", hp["max_iter"]) >= hp["max_iter"]


SHOWS = {
    LBFGSIgnoresHistorySize: lambda problem, hp, steps: (hp["history_size"] <= 3 and _every_iteration(hp)
                                                         and hp["max_iter"] * steps >= hp["history_size"] + 3),
    LBFGSReversedHistory: lambda problem, hp, steps: (steps >= 2 and hp["history_size"] >= 2 and hp["max_iter"] >= 3
                                                      and problem.dim >= 3 and _every_iteration(hp)),
    LBFGSIgnoresMaxEval: lambda problem, hp, steps: hp.get("max_eval", 99) < hp["max_iter"] and hp["max_iter"] >= 3,
    LBFGSIgnoresToleranceGrad: lambda problem, hp, steps: hp["tolerance_grad"] >= 1e-3,
}


@pytest.mark.parametrize("cls", list(SHOWS), ids=lambda c: c.__name__)
def test_lbfgs_conformance_fails_for_a_planted_bug(cls):
    """Each bug shows only where what it breaks is used: cases drawn as the conformance test draws them, kept where
    it is (``SHOWS``)."""
    where = st.tuples(lbfgs.quadratic_cases(), lbfgs.lbfgs_hyperparameters(), st.integers(1, 3)).filter(
        lambda ex: SHOWS[cls](*ex))
    fails_on_some_example(where, lambda ex: lbfgs.check_lbfgs_conforms(cls, ex[0], ex[0].x0, ex[1], ex[2]))


def test_lbfgs_strong_wolfe_convergence_fails_for_a_gradient_sign_bug():
    fails_on_some_example(lbfgs.quadratic_cases(max_dim=6, max_log_cond=2.0, log_lam_max=(0.0, 1.0),
                                                log_distance=(0.0, 1.0)),
                          lambda problem: lbfgs.check_lbfgs_strong_wolfe_converges(LBFGSGradientSignBug,
                                                                                   problem))


# ---- zero_grad -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SGDZeroGradNoop, SGDZeroGradFirstParamOnly], ids=lambda c: c.__name__)
def test_zero_grad_property_fails_when_zero_grad_does_not_clear(cls):
    subject = _subject(cls)
    fails_on_some_example(st.tuples(zg.training_problems(), st.integers(1, 4)),
                          lambda ex: zg.check_zero_grad_and_accumulation(subject, *ex[0], ex[1], zero_grad=True))


def test_accumulation_property_fails_when_step_clears_grad():
    subject = _subject(SGDStepClearsGrad)
    fails_on_some_example(st.tuples(zg.training_problems(), st.integers(2, 4)),
                          lambda ex: zg.check_zero_grad_and_accumulation(subject, *ex[0], ex[1], zero_grad=False))


# ---- the problems themselves -----------------------------------------------------------------------------------------
#: where each document problem is sampled: a box inside its ``region`` (and away from its kinks)
BOXES = {
    "pathological_loss": [(-4.0, 4.0), (0.1, 10.0)], "function_2d": [(-30.0, 30.0)], "saddle": [(-10, 10)] * 2,
    "cubic_difference": [(-10.0, 15.0), (-15.0, 10.0)], "paraboloid_nonisotropic": [(-10, 10)] * 2,
    "paraboloid_isotropic": [(-10, 10)] * 2, "regression_mse": [(-10, 10)] * 2, "regression_huber": [(-10, 10)] * 2,
    "regression_smooth_l1": [(-10, 10)] * 2, "square": [(-10, 10)], "ellipse": [(-10, 10)] * 2,
    "cosh": [(-10.0, 10.0)], "x_cos": [(-30.0, 30.0)], "rosenbrock": [(-2.0, 2.0)] * 2,
    "ripple": [(0.5, 8.0), (-8.0, -0.5)], "valley": [(0.5, 10.0), (-20.0, -0.5)], "scaled_abs": [(0.5, 10.0)],
    "regression_l1": [(-10, 10)] * 2,
}
U64, U32 = 2.0**-53, 2.0**-24


def _points(name, k=6, seed=0):
    rng = np.random.default_rng(seed)
    box = np.array(BOXES[name], dtype=np.float64)
    return [torch.from_numpy(rng.uniform(box[:, 0], box[:, 1])) for _ in range(k)]


def _float32_spread(fn, x):
    """|fn(x) in float64 − fn(x) in float32|·u64/u32: the float32 sample of the suite's tolerance model, scaled to
    float64 — how far rounding moves this computation."""
    a = fn(x).double()
    b = fn(x.float()).double()
    return a, torch.abs(a - b) * (U64 / U32)


def check_gradient_matches_autograd(problem, x) -> None:
    """The problem's ∇f equals autograd's gradient of its f, within 8·(float32 spreads of both, scaled to float64)
    + 8u|∇f| (the suite's model: two float64 evaluations of the same function differ by no more than that)."""
    __tracebackhide__ = True
    g, spread_g = _float32_spread(problem.grad, x)

    def auto(v):
        v = v.clone().requires_grad_(True)
        return torch.autograd.grad(problem.f(v), v)[0].detach()
    a, spread_a = _float32_spread(auto, x)
    tol = 8 * (spread_g + spread_a) + 8 * U64 * torch.abs(a)
    assert torch.all(torch.abs(g - a) <= tol), (
        f"{problem.name}: at x = {x.tolist()} grad gives {g.tolist()}, autograd {a.tolist()} "
        f"(tolerance {tol.tolist()})")


def check_hessian_matches_autograd(problem, x) -> None:
    """The problem's ∇²f equals autograd's Hessian of f, within the same model as the gradient."""
    __tracebackhide__ = True
    h, spread_h = _float32_spread(problem.hessian, x)

    def auto(v):
        return torch.autograd.functional.hessian(lambda w: problem.f(w), v).detach()
    a, spread_a = _float32_spread(auto, x)
    tol = 8 * (spread_h + spread_a) + 8 * U64 * torch.abs(a)
    assert torch.all(torch.abs(h - a) <= tol), (
        f"{problem.name}: at x = {x.tolist()} hessian gives {h.tolist()}, autograd {a.tolist()}")


def check_smoothness_constants(problem, x) -> None:
    """‖∇²f(x)‖₂ ≤ L and λ_min(∇²f(x)) ≥ μ where stated (L, μ are claimed on the region x is drawn from), up to the
    eigenvalue solver's backward error n·u·‖∇²f‖."""
    __tracebackhide__ = True
    lam = torch.linalg.eigvalsh(problem.hessian(x))
    slack = problem.dim * 8 * U64 * float(torch.max(torch.abs(lam)))
    if problem.L is not None:
        assert float(torch.max(torch.abs(lam))) <= problem.L + slack, f"{problem.name}: ‖∇²f({x.tolist()})‖ = " \
            f"{float(torch.max(torch.abs(lam)))} exceeds L = {problem.L}"
    if problem.mu is not None:
        assert float(torch.min(lam)) >= problem.mu - slack, f"{problem.name}: λ_min(∇²f({x.tolist()})) = " \
            f"{float(torch.min(lam))} is below mu = {problem.mu}"


@pytest.mark.parametrize("name", sorted(problems.DOCUMENT_PROBLEMS))
def test_problem_gradient_hessian_and_constants(name):
    """Every document problem's gradient (and Hessian, where it has one) agrees with autograd at sampled points of
    its region, and its Hessian there is within L and above μ."""
    problem = problems.DOCUMENT_PROBLEMS[name]()
    for x in [problem.x0] + _points(name):
        check_gradient_matches_autograd(problem, x)
        if problem.hessian is not None:
            check_hessian_matches_autograd(problem, x)
            check_smoothness_constants(problem, x)
    if problem.minimizer is not None:
        assert torch.equal(problem.grad(problem.minimizer), torch.zeros(problem.dim, dtype=torch.float64)), (
            f"{name}: ∇f at the stated minimiser {problem.minimizer.tolist()} is {problem.grad(problem.minimizer)}")


def test_pd_quadratic_has_its_spectrum():
    """random_pd_quadratic's Hessian has the requested eigenvalues (to n·u·λ_max) and L, μ are its extremes."""
    lam = problems.spectrum(5, 1e3, 2.0)
    q = problems.random_pd_quadratic(lam, seed=3, center=torch.arange(5.0, dtype=torch.float64))
    got = torch.linalg.eigvalsh(q.hessian(q.x0)).numpy()
    assert np.allclose(np.sort(got), np.sort(lam), rtol=0, atol=5 * 16 * U64 * lam.max())
    assert math.isclose(q.L, lam.max(), rel_tol=1e-12) and math.isclose(q.mu, lam.min(), rel_tol=1e-9)
    x = torch.ones(5, dtype=torch.float64)
    check_gradient_matches_autograd(q, x)
    check_hessian_matches_autograd(q, x)


def test_gradient_check_fails_for_a_wrong_gradient():
    """The gradient self-check fails on x·cos(cx) with f' = cos(cx) + cx sin(cx) (a sign error)."""
    p = problems.x_cos()
    wrong = problems.Problem("x_cos (wrong sign)", p.f, lambda x: torch.cos(p.x0.new_tensor(problems.C_X_COS) * x)
                             + problems.C_X_COS * x * torch.sin(problems.C_X_COS * x), p.hessian, p.x0)
    with pytest.raises(AssertionError):
        check_gradient_matches_autograd(wrong, torch.tensor([3.0], dtype=torch.float64))


def test_smoothness_check_fails_for_an_understated_L():
    """The smoothness self-check fails when L is understated (cosh with L = c²)."""
    p = problems.cosh(0.5)
    wrong = problems.Problem("cosh (L too small)", p.f, p.grad, p.hessian, p.x0, L=0.25)
    with pytest.raises(AssertionError):
        check_smoothness_constants(wrong, torch.tensor([5.0], dtype=torch.float64))
