"""Learning-rate schedulers (001: "optim.lr_scheduler.LambdaLR, ExponentialLR, MultiStepLR, StepLR"): stepped one
``step()`` at a time, as a training loop does, torch.optim.lr_scheduler's classes give every param group the learning
rate of their closed form (``reference/schedulers.py``), for drawn base learning rates, decay factors, periods,
milestones, multiplier functions and step counts.

Tolerance model. StepLR, MultiStepLR and ExponentialLR compute η_t recursively, multiplying the previous learning
rate by γ (MultiStepLR by γ^k at a milestone listed k times) each time the exponent e_t of the closed form grows: by
step t they have rounded at most e_t products (plus one pow per milestone step), each off by ≤ u relative
(u = 2⁻⁵³), so their relative error is ≤ γ_{2e_t} ≈ 2e_t·u (the float64 product of n factors: relative error
≤ n·u/(1 − n·u)). The closed form η_0·γ^e rounds once in pow (≤ 1 ulp = 2u, the C library's bound) and once in the
product. So |recursive − closed| ≤ (2e_t + 3)·u·η_t to first order; ``OPS_SLACK`` = 1 more u absorbs the
second-order terms (e_t ≤ 200 keeps (2e_t·u)² below 1e-25).
LambdaLR is not recursive: it sets η_t = η_0·λ(t), one IEEE product of the same two doubles as the closed form —
equal bit for bit (tolerance 0).

The property is a plain function, ``check_scheduler_follows_closed_form``, run here on torch's classes and in
``properties/test_problem_self_checks.py`` on broken schedulers (an off-by-one, a missed decay).
"""
from __future__ import annotations

from typing import Callable

import torch
from hypothesis import given
from hypothesis import strategies as st

from properties.tolerances import unit_roundoff
from reference import schedulers as closed

U = unit_roundoff(torch.float64)
OPS_SLACK = 1
MAX_STEPS = 200


def recursive_tolerance(exponent: int, lr: float) -> float:
    """(2e + 3 + OPS_SLACK)·u·|η|: the recursion's e products (MultiStepLR: e products and e pows at most) against
    the closed form's pow and product (module docstring)."""
    return (2 * exponent + 3 + OPS_SLACK) * U * abs(lr)


def check_scheduler_follows_closed_form(make_scheduler: Callable, closed_form: Callable[[float, int], float],
                                        tolerance: Callable[[int, float], float], base_lrs: list[float],
                                        steps: int, what: str) -> None:
    """Construct SGD with one param group per base learning rate and ``make_scheduler(optimizer)``; then, right after
    construction (t = 0: η_0 exactly) and after each of ``steps`` pairs ``optimizer.step(); scheduler.step()``,
    every group's learning rate is ``closed_form(η_0, t)`` within ``tolerance(t, closed)``, and ``get_last_lr()``
    reports the groups' learning rates."""
    __tracebackhide__ = True
    params = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in base_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=1.0)
    scheduler = make_scheduler(opt)
    for t in range(steps + 1):
        if t > 0:
            opt.step()
            scheduler.step()
        got = [g["lr"] for g in opt.param_groups]
        for k, (lr, base) in enumerate(zip(got, base_lrs)):
            want = closed_form(base, t)
            tol = 0.0 if t == 0 else tolerance(t, want)
            assert abs(lr - want) <= tol, (
                f"{what}: after {t} scheduler steps param group {k} (initial lr {base!r}) has lr {lr!r}, but the "
                f"closed form gives {want!r} (error {abs(lr - want):.3g} > tolerance {tol:.3g})")
        assert list(scheduler.get_last_lr()) == got, (
            f"{what}: after {t} steps get_last_lr() = {scheduler.get_last_lr()}, but the groups have {got}")


# ---- strategies -----------------------------------------------------------------------------------------------------
base_lrs = st.lists(st.floats(-5.0, 1.0).map(lambda e: float(10.0**e)), min_size=1, max_size=3)
#: γ in (0, 2]: decays, 1, and growth; with ≤ 200 factors, η_0·γ^e stays within 1e-266..1e61, far from under/overflow.
gammas = st.one_of(st.sampled_from([0.1, 0.5, 0.8, 1.0, 0.99]), st.floats(0.05, 2.0))
step_counts = st.integers(0, MAX_STEPS)


@given(lrs=base_lrs, step_size=st.integers(1, 30), gamma=gammas, steps=step_counts)
def test_step_lr_follows_its_closed_form(lrs, step_size, gamma, steps):
    """StepLR(step_size, γ): η_t = η_0 · γ^⌊t/step_size⌋ after every step, within the recursion's rounding."""
    check_scheduler_follows_closed_form(
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma),
        lambda base, t: closed.step_lr(base, t, step_size=step_size, gamma=gamma),
        lambda t, lr: recursive_tolerance(closed.step_exponent(t, step_size=step_size), lr),
        lrs, steps, f"StepLR(step_size={step_size}, gamma={gamma!r})")


@st.composite
def milestone_lists(draw):
    """Milestones in 1..200: increasing, as the documentation asks, or with repeats (the documentation's get_lr
    note: a milestone listed n times decays by γⁿ)."""
    ms = sorted(draw(st.lists(st.integers(1, MAX_STEPS), min_size=0, max_size=8)))
    return ms if draw(st.booleans()) else sorted(set(ms))


@given(lrs=base_lrs, milestones=milestone_lists(), gamma=gammas, steps=step_counts)
def test_multistep_lr_follows_its_closed_form(lrs, milestones, gamma, steps):
    """MultiStepLR(milestones, γ): η_t = η_0 · γ^#{m ≤ t}, a repeated milestone counting each time it is listed."""
    check_scheduler_follows_closed_form(
        lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma),
        lambda base, t: closed.multistep_lr(base, t, milestones=milestones, gamma=gamma),
        lambda t, lr: recursive_tolerance(closed.multistep_exponent(t, milestones=milestones), lr),
        lrs, steps, f"MultiStepLR(milestones={milestones}, gamma={gamma!r})")


@given(lrs=base_lrs, gamma=gammas, steps=step_counts)
def test_exponential_lr_follows_its_closed_form(lrs, gamma, steps):
    """ExponentialLR(γ): η_t = η_0 · γ^t (001's example: γ = 0.8 from 0.5), within t products' rounding."""
    check_scheduler_follows_closed_form(
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma),
        lambda base, t: closed.exponential_lr(base, t, gamma=gamma),
        lambda t, lr: recursive_tolerance(t, lr),
        lrs, steps, f"ExponentialLR(gamma={gamma!r})")


@st.composite
def lr_lambdas(draw):
    """λ(t) from four families: γ^t, 1/(1 + kt), linear warm-up to 1 over w steps, max(0, 1 − t/T) decay."""
    kind = draw(st.sampled_from(["power", "inverse", "warmup", "linear_decay"]))
    if kind == "power":
        g = draw(gammas)
        return f"{g!r}**t", lambda t: g**t
    if kind == "inverse":
        k = draw(st.floats(0.0, 10.0))
        return f"1/(1 + {k!r}t)", lambda t: 1.0 / (1.0 + k * t)
    if kind == "warmup":
        w = draw(st.integers(1, 50))
        return f"min(1, (t + 1)/{w})", lambda t: min(1.0, (t + 1) / w)
    T = draw(st.integers(1, MAX_STEPS))
    return f"max(0, 1 − t/{T})", lambda t: max(0.0, 1.0 - t / T)


@given(lrs=base_lrs, lr_lambda=lr_lambdas(), steps=step_counts)
def test_lambda_lr_follows_its_closed_form(lrs, lr_lambda, steps):
    """LambdaLR(λ): η_t = η_0 · λ(t), bit for bit (one product of the same two doubles)."""
    name, fn = lr_lambda
    check_scheduler_follows_closed_form(
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=fn),
        lambda base, t: closed.lambda_lr(base, t, lr_lambda=fn),
        lambda t, lr: 0.0,
        lrs, steps, f"LambdaLR(λ(t) = {name})")

