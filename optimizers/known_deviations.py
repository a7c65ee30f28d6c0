"""Where torch.optim itself disagrees with its documented rule, found by this suite and verified by hand.

The reference stays right. For the implementations a deviation concerns, the trajectory search either runs the
affected cases under a ``workaround`` that removes the deviation (so the rest of the rule is still checked) or
skips them; and ``properties/test_known_deviations.py`` runs the deviation's own ``example`` as a strict expected
failure, visible in every run's summary — if torch fixes it, that test passes unexpectedly and fails the run.
"""
from __future__ import annotations

import contextlib
import math
import dataclasses
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np
import torch

from reference.registry import RULES
from reference.trajectory import Case, Group

NOT_FILED = "no upstream issue found (searched pytorch/pytorch issues)"


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@dataclass(frozen=True)
class KnownDeviation:
    name: str
    torch_class: str                      # the torch.optim class concerned
    paths: tuple[str, ...]                # its code paths concerned: for-loop, foreach, fused
    when: Callable[[Case], bool]          # the cases on which it deviates
    reason: str
    link: str
    example: Callable[[], Case]           # a small case that shows it
    workaround: Callable[[Case], ContextManager] | None = None
    avoid: Callable[[Case], Case] | None = None   # the nearest case on which it does not show
    check: str = "trajectory"             # the check it fails: "trajectory", "steps" (judged step by step, as
                                          # bfloat16 and float16 are) or "grads" (step writes into .grad)
    raises: type[Exception] | None = None  # a deviation that is a crash: the exception torch's step() raises

    def concerns(self, subject) -> bool:
        cls = getattr(torch.optim, self.torch_class)
        path = "foreach" if subject.fixed.get("foreach") else "fused" if subject.fixed.get("fused") else "for-loop"
        factory = getattr(subject.factory, "wraps", subject.factory)  # test wrappers name what they wrap
        return factory is cls and path in self.paths


def _case(rule: str, hps: list[dict], params, grads, dtype=torch.float64) -> Case:
    r = RULES[rule]
    groups = [Group((i,), {**r.defaults(), **hp}) for i, hp in enumerate(hps)]
    grads = [[np.asarray(g, dtype=np.float64) for g in row] for row in grads]
    lrs = [[g.hp["lr"] for g in groups] for _ in grads]
    return Case(r, groups, [np.asarray(p, dtype=np.float64) for p in params], grads, lrs, dtype)


def _smallest_subnormal(dtype: torch.dtype) -> float:
    info = torch.finfo(dtype)
    return info.smallest_normal * info.eps


def _with_group_hp(case: Case, change: Callable[[int, dict], dict]) -> Case:
    """``case`` with group k's hyperparameters replaced by ``change(k, hp)`` (learning rates unchanged)."""
    groups = [dataclasses.replace(g, hp=change(k, g.hp)) for k, g in enumerate(case.groups)]
    for k, g in enumerate(groups):
        if g.inherits:
            groups[k] = dataclasses.replace(g, hp=dict(groups[0].hp))
    return dataclasses.replace(case, groups=groups)


def _first_gradient_steps(case: Case, group: Group) -> set[int]:
    firsts = set()
    for i in group.indices:
        steps = [t for t, row in enumerate(case.grads) if row[i] is not None]
        if steps:
            firsts.add(steps[0])
    return firsts


def _centered_variance_vanishes(case: Case) -> bool:
    """Whether ṽ = v − ḡ² of the reference comes within rounding of 0 at some step of a centered group: where the
    tolerance model judges the case for finiteness only (``properties.tolerances.undetermined_sign``); or whether a
    centered group takes a step after the bound stopped watching (``watched_steps``), where it may, unseen."""
    from properties.tolerances import undetermined_sign, watched_steps
    centered = [g for g in case.groups if g.hp.get("centered")]
    if not centered:
        return False
    if undetermined_sign(case):
        return True
    watched = watched_steps(case)
    return any(row[i] is not None for row in case.grads[watched:] for g in centered for i in g.indices)


def _square_may_overflow(case: Case) -> bool:
    """Whether some step's gradient, weight decay included (g + λθ), may come within a factor 4 of √max, where its
    square overflows the dtype (θ taken at its initial magnitude: in the unrectified phase it moves by γ·m̂)."""
    limit = np.sqrt(torch.finfo(case.dtype).max) / 4
    for i, p in enumerate(case.params):
        decay = case.hp_at(i, 0).get("weight_decay", 0.0) * np.max(np.abs(p), initial=0.0)
        if any(row[i] is not None and np.max(np.abs(row[i]), initial=0.0) + decay >= limit for row in case.grads):
            return True
    return False


def _adafactor_floor_binds(case: Case) -> bool:
    """Whether, for a parameter of more than one dimension, some step's row-factor total S = Σ R_t (per slice of the
    leading dimensions) is positive and below m·n·ε1: there torch's floor max(mean R_t, ε1) — means where the
    documentation has sums — binds, and V̂ differs from the documented R_t C_t / max(Σ R_t, ε1)."""
    for i, p in enumerate(case.params):
        if np.ndim(p) < 2:
            continue
        m, n = np.shape(p)[-2:]
        total, t = np.zeros(np.shape(p)[:-2]), 0
        for row in case.grads:
            if row[i] is None:
                continue
            t += 1
            hp = case.hp_at(i, 0)
            eps1 = hp["eps"][0] if hp["eps"][0] is not None else torch.finfo(case.dtype).eps
            weight = t ** hp["beta2_decay"]
            total = (1 - weight) * total + weight * np.sum(np.square(row[i]), axis=(-2, -1))
            if np.any((total > 0) & (total / (m * n) < eps1)):
                return True
    return False


def _adafactor_eps1_square_underflows(case: Case) -> bool:
    """Whether some group's ε1² rounds to 0 in the dtype (then a V̂ of 0 — a zero gradient, or one whose square
    underflows — is not floored)."""
    tiny = torch.finfo(case.dtype).smallest_normal * torch.finfo(case.dtype).eps / 2
    return any(g.hp["eps"][0] is not None and g.hp["eps"][0] ** 2 <= tiny for g in case.groups)


def _adafactor_eps1_squared_normal(case: Case) -> Case:
    floor = math.sqrt(torch.finfo(case.dtype).smallest_normal)
    return _with_group_hp(case, lambda k, hp: {**hp, "eps": (max(hp["eps"][0], floor), hp["eps"][1])}
                          if hp["eps"][0] is not None else hp)


@contextlib.contextmanager
def bfloat16_cast_removed():
    """``Tensor.bfloat16()`` returning a copy in the tensor's own dtype, for the duration: torch's Muon then runs its
    Newton–Schulz iteration in the parameters' precision, and the rest of its code is checked as it is."""
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *args, **kwargs: self.clone()
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original


def _muon_average_departs(μ: float, dtype: torch.dtype) -> bool:
    """Whether torch's average μB + (1 − μ)g is not (1 − μ) times the documented μB + g: μ ≥ 1, or 1 − μ rounds
    to 1 in the dtype while μ > 0."""
    return μ >= 1 or (μ > 0 and float(torch.tensor(1 - μ, dtype=torch.float64).to(dtype)) == 1.0)


def _muon_average_underflows(case: Case, group: Group) -> bool:
    """Whether torch's average forms a number below the dtype's smallest normal one from a gradient element the
    documented sum holds: (1 − μ)|g| < tiny for a nonzero g of the group, with μ > 0 (the average's element has
    an absolute error of the dtype's subnormal spacing, 1/(1 − μ) times the documented one's)."""
    μ, tiny = group.hp["momentum"], torch.finfo(case.dtype).tiny
    if not 0 < μ < 1:
        return False
    for row in case.grads:
        for i in group.indices:
            g = None if row[i] is None else np.abs(np.asarray(row[i], dtype=np.float64))
            if g is not None and np.any((g > 0) & ((1 - μ) * g < tiny)):
                return True
    return False


def _muon_departs(case: Case, group: Group) -> bool:
    return _muon_average_departs(group.hp["momentum"], case.dtype) or _muon_average_underflows(case, group)


def _muon_case(hp: dict, params, grads) -> Case:
    return _case("muon", [{"weight_decay": 0.0, **hp}], [np.asarray(params, dtype=np.float64)],
                 [[np.asarray(g, dtype=np.float64)] for g in grads])


def _vanishes(x: float, dtype: torch.dtype) -> bool:
    """Whether x rounds to 0 in ``dtype`` (0 + x is 0 there)."""
    return float(torch.tensor(x, dtype=torch.float64).to(dtype)) == 0.0


def _radam_rectifies(case: Case) -> bool:
    """Whether some group reaches RAdam's rectified phase (ρ_t > 5) within the case's steps."""
    for g in case.groups:
        β2 = g.hp["betas"][1]
        if β2 <= 2 / 3:   # ρ∞ = 2/(1 − β2) − 1 ≤ 5
            continue
        ρ_inf = 2 / (1 - β2) - 1
        if any(ρ_inf - 2 * t * β2**t / (1 - β2**t) > 5 for t in range(1, case.steps + 1)):
            return True
    return False


#: the narrowest SIMD vector of 16-bit lanes torch's CPU kernels are built for (128 bits): a tensor this long has a
#: full block on every machine
NARROWEST_BLOCK = 8


def _low_precision_blocks(case: Case) -> bool:
    """Whether the case is in a 16-bit dtype and has a parameter long enough for a full SIMD block."""
    return torch.finfo(case.dtype).bits == 16 and any(np.size(p) >= NARROWEST_BLOCK for p in case.params)


ALL = ("for-loop", "foreach", "fused")
DEVIATIONS: list[KnownDeviation] = [
    KnownDeviation(
        "adagrad-group-initial-accumulator", "Adagrad", ALL,
        when=lambda c: any(g.hp["initial_accumulator_value"] != c.groups[0].hp["initial_accumulator_value"]
                           for g in c.groups),
        reason="Adagrad fills every group's accumulator with the constructor's initial_accumulator_value "
               "(__init__ reads the argument, _init_group reads self.defaults), ignoring a param group's own value",
        link=NOT_FILED,
        example=lambda: _case("adagrad", [{"lr": 0.01}, {"lr": 0.01, "initial_accumulator_value": 1.0}],
                              [1.0, 1.0], [[1.0, 1.0]]),
        avoid=lambda c: _with_group_hp(c, lambda k, hp: {
            **hp, "initial_accumulator_value": c.groups[0].hp["initial_accumulator_value"]}),
    ),
    KnownDeviation(
        "nadam-float32-mu-product", "NAdam", ALL,
        when=lambda c: c.dtype == torch.float64 and torch.get_default_dtype() != torch.float64,
        reason="NAdam keeps the running product ∏μ_i in a scalar tensor of the default dtype (float32), so "
               "float64 parameters get a bias correction off by ~1e-8 relative; the search runs float64 cases "
               "with torch's default dtype set to float64, which removes it",
        link=NOT_FILED,
        example=lambda: _case("nadam", [{}], [1.0], [[1.0], [1.0], [1.0]]),
        workaround=lambda c: default_dtype(torch.float64),
    ),
    KnownDeviation(
        "asgd-float32-eta", "ASGD", ALL,
        when=lambda c: c.dtype == torch.float64 and torch.get_default_dtype() != torch.float64,
        reason="ASGD keeps η and μ in scalar tensors of the default dtype (float32), so float64 parameters move "
               "by a rounded step size (~1e-8 relative); the search runs float64 cases with torch's default dtype "
               "set to float64, which removes it",
        link=NOT_FILED,
        example=lambda: _case("asgd", [{}], [1.0], [[1.0]]),
        workaround=lambda c: default_dtype(torch.float64),
    ),
    KnownDeviation(
        "rprop-clamps-initial-step", "Rprop", ALL,
        when=lambda c: any(not (g.hp["step_sizes"][0] <= g.hp["lr"] <= g.hp["step_sizes"][1]) for g in c.groups),
        reason="Rprop clamps the step size into [Γ_min, Γ_max] on every step; the documented rule keeps η_{t−1} "
               "when g_prev·g = 0 (always on the first step), so they differ when lr lies outside step_sizes",
        link=NOT_FILED,
        example=lambda: _case("rprop", [{"lr": 0.01, "step_sizes": (1e-6, 1e-3)}], [1.0], [[1.0]]),
        avoid=lambda c: _with_group_hp(c, lambda k, hp: {
            **hp, "step_sizes": (min(hp["step_sizes"][0], hp["lr"]), max(hp["step_sizes"][1], hp["lr"]))}),
    ),
    KnownDeviation(
        "radam-foreach-nan-eps0", "RAdam", ("foreach",),
        when=lambda c: any(_vanishes(g.hp["eps"], c.dtype) for g in c.groups),
        reason="foreach RAdam computes the rectified step √(1−β2^t)/(√v+ε) for every element even in the "
               "unrectified phase (ρ_t ≤ 5) and masks it afterwards; with eps = 0 (or below the dtype's smallest "
               "subnormal: float16 and ε = 1e-8) and a zero gradient element that is 0/0, and the NaN reaches θ, "
               "where the rule takes θ − γ m̂",
        link=NOT_FILED,
        example=lambda: _case("radam", [{"eps": 0.0}], [1.0], [[0.0]]),
    ),
    KnownDeviation(
        "radam-foreach-nan-overflowing-square", "RAdam", ("foreach",),
        when=lambda c: _square_may_overflow(c),
        reason="the same masked computation: with a gradient (weight decay included) whose square overflows the "
               "dtype (|g + λθ| ≥ √max, so "
               "v = inf) the rectified step is computed from inf and the NaN reaches θ in the unrectified phase "
               "(ρ_t ≤ 5), where the rule takes θ − γ m̂ and never uses v; the for-loop path branches and stays "
               "finite (found by the near-overflow gradients of the strategies)",
        link=NOT_FILED,
        example=lambda: _case("radam", [{"lr": 0.0, "betas": (0.0, 0.0)}], [-1.0], [[-1e155], [-1e155]]),
    ),
    KnownDeviation(
        "radam-foreach-float16-step-overflows", "RAdam", ("foreach",),
        when=lambda c: c.dtype == torch.float16 and _radam_rectifies(c),
        reason="foreach RAdam forms its rectified step as 1 / ((√v + ε) / s), s = γ r_t √(1 − β2^t) / (1 − β1^t): "
               "in float16 the quotient (√v + ε) / s overflows to inf as soon as s < (√v + ε) / 65504 (γ = 1e-3, "
               "|g| = 20), its reciprocal is 0, and θ does not move where the rule (and the for-loop path) take the "
               "step m̂ s / (√v + ε)",
        link=NOT_FILED,
        example=lambda: _case("radam", [{"lr": 1e-3, "betas": (0.0, 0.9)}], [np.full(2, 0.01)],
                              [[np.full(2, 20.0 * (-1) ** t)] for t in range(6)], dtype=torch.float16),
        check="steps",
    ),
    KnownDeviation(
        "sgd-fused-late-first-gradient", "SGD", ("fused",),
        when=lambda c: any(g.hp["momentum"] != 0 and len(_first_gradient_steps(c, g)) > 1 for g in c.groups),
        reason="fused SGD with momentum raises TypeError ('expected Tensor ... but got NoneType') when a parameter "
               "gets its first gradient after others in its group have stepped: it creates momentum buffers only "
               "when every buffer of the group is missing",
        link=NOT_FILED,
        example=lambda: Case(RULES["sgd"], [Group((0, 1), {**RULES["sgd"].defaults(), "lr": 0.1, "momentum": 0.9})],
                             [np.ones(2), np.ones(2)], [[np.ones(2), None], [np.ones(2), np.ones(2)]],
                             [[0.1], [0.1]]),
        raises=TypeError,
    ),
    KnownDeviation(
        "sgd-fused-low-precision-blocks", "SGD", ("fused",),
        when=_low_precision_blocks,
        reason="fused SGD on CPU leaves bfloat16 and float16 parameters unchanged in every full SIMD block (16 "
               "elements on AVX2): only each tensor's scalar tail is updated; every other path, and float32, update "
               "every element",
        link="https://github.com/pytorch/pytorch/issues/191763 (fixed by pytorch/pytorch#192545, after 2.13)",
        example=lambda: _case("sgd", [{"lr": 1.0}], [np.ones(64)], [[np.ones(64)]], dtype=torch.bfloat16),
        check="steps",
    ),
    KnownDeviation(
        "rmsprop-centered-negative-variance", "RMSprop", ALL,
        when=_centered_variance_vanishes,
        reason="centered RMSprop takes √(v − ḡ²) without clamping; when the variance estimate is at rounding "
               "size (constant gradients, small α) rounding makes it negative and θ becomes NaN, where the rule's "
               "ṽ — a variance — is ≥ 0 and θ stays finite",
        link=NOT_FILED,
        example=lambda: _case("rmsprop", [{"lr": 0.0, "alpha": 0.0, "centered": True}], [1.0], [[-1.7782794100389228]]),
    ),
    KnownDeviation(
        "sgd-foreach-nesterov-writes-grad", "SGD", ("foreach",),
        when=lambda c: any(g.hp["nesterov"] for g in c.groups),
        reason="foreach SGD with nesterov=True adds μ·b into the gradient tensors in place (torch._foreach_add_ on "
               "the grads it was given when maximize and weight_decay don't copy them), so p.grad holds g + μb "
               "after step(); the for-loop path leaves p.grad alone",
        link=NOT_FILED,
        example=lambda: _case("sgd", [{"lr": 0.0, "momentum": 0.9, "nesterov": True}], [[1.0, 1.0]], [[[3.0, 3.0]]]),
        check="grads",
    ),
    KnownDeviation(
        "adafactor-floor-of-mean", "Adafactor", ALL,
        when=_adafactor_floor_binds,
        reason="Adafactor keeps the factored second moment as row and column means and floors the mean of R at ε1, "
               "where its documentation keeps sums and floors Σ R: equal V̂ unless the floor binds, and then "
               "torch's V̂ is m·n times smaller than the documented one (rows m, columns n), its step larger",
        link=NOT_FILED,
        example=lambda: _case("adafactor", [{"lr": 0.01, "eps": (1e-3, 1e-3)}], [np.ones((3, 4))],
                              [[np.arange(1, 13).reshape(3, 4) / 600]]),
        avoid=lambda c: _with_group_hp(c, lambda k, hp: {**hp, "eps": (1e-30, hp["eps"][1])}),
    ),
    KnownDeviation(
        "adafactor-eps1-squared-underflows", "Adafactor", ALL,
        when=_adafactor_eps1_square_underflows,
        reason="Adafactor floors V̂ at ε1² before rsqrt, where its documentation floors √V̂ at ε1; when ε1² "
               "underflows to 0 in the dtype (float32: ε1 ≲ 3.7e-23) a V̂ of 0 (a gradient element 0 throughout, or "
               "one whose square underflows) gives rsqrt(0) = inf, and θ gets ±inf or NaN (0·inf), where the "
               "documented step is g/ε1",
        link=NOT_FILED,
        example=lambda: _case("adafactor", [{"eps": (1e-30, 1e-3)}], [[1.0, -1.0]], [[[0.0, 0.5]]],
                              dtype=torch.float32),
        avoid=_adafactor_eps1_squared_normal,
    ),
    KnownDeviation(
        "muon-newton-schulz-in-bfloat16", "Muon", ("for-loop",),
        when=lambda c: True,
        reason="Muon casts the update to bfloat16 before the Newton–Schulz iteration, whatever the parameters' "
               "dtype, where its documentation computes O_t = NS(B̃_t) at the parameters' precision: O_t carries "
               "bfloat16's ~0.4% relative rounding, amplified by each iteration (float64 parameters move by a "
               "step off in its third digit). The search runs torch's Muon with the cast removed (Tensor.bfloat16 "
               "returning a copy in the tensor's own dtype), which checks the rest of its code",
        link=NOT_FILED,
        example=lambda: _muon_case({"lr": 0.01, "nesterov": False}, np.ones((2, 3)),
                                   [[[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]]]),
        workaround=lambda c: bfloat16_cast_removed(),
    ),
    KnownDeviation(
        "muon-norm-clamped-at-eps", "Muon", ("for-loop",),
        when=lambda c: any(g.hp["eps"] > _smallest_subnormal(c.dtype) for g in c.groups),
        reason="Muon divides by max(‖X‖_F, ε) where the Muon paper's code (and the documentation's 'numerical "
               "stabilization ε') divides by ‖X‖_F + ε: every O_t differs by a relative ε/‖X‖_F before the "
               "iterations amplify it, all of it when ‖X‖_F is near ε. With ε the dtype's smallest subnormal "
               "number the two agree within one rounding of ‖X‖_F, and both take a zero B̃_t to 0 (with ε = 0, 0/0)",
        link=NOT_FILED,
        example=lambda: _muon_case({"lr": 0.01, "momentum": 0.0, "nesterov": False, "ns_steps": 0, "eps": 1e-7},
                                   np.ones((1, 2)), [[[1e-6, 0.0]]]),
        avoid=lambda c: _with_group_hp(c, lambda k, hp: {**hp, "eps": min(hp["eps"], _smallest_subnormal(c.dtype))}),
    ),
    KnownDeviation(
        "muon-momentum-average", "Muon", ("for-loop",),
        when=lambda c: any(_muon_departs(c, g) for g in c.groups),
        reason="Muon keeps the momentum buffer as the average μB + (1 − μ)g (lerp) where its documentation sums "
               "B_t = μB_{t−1} + g_t: (1 − μ) times the documented B, which the normalization ‖X‖_F removes for "
               "μ < 1, but the constructor accepts any μ ≥ 0: μ = 1 keeps B at 0 (no update ever), μ > 1 flips "
               "the update's sign; and a μ > 0 so small that 1 − μ rounds to 1 drops μB_{t−1}, so a zero gradient "
               "gives B = 0 (no update, or NaN with ε = 0) where the documented B = μB_{t−1} is normalized to a "
               "full step; and where (1 − μ)g is below the dtype's smallest normal number (a float16 gradient of "
               "4.8e-7 with μ = 0.95), the average keeps it to the subnormal spacing or loses it, which the "
               "normalization then scales up by 1/(1 − μ)",
        link=NOT_FILED,
        example=lambda: _muon_case({"lr": 0.01, "nesterov": False, "momentum": 1.0, "eps": 0.0},
                                   np.ones((1, 2)), [[[1.0, 0.0]]]),
        avoid=lambda c: _with_group_hp(c, lambda k, hp: {
            **hp, "momentum": 0.99 if hp["momentum"] >= 1 else 0.0 if _muon_departs(c, c.groups[k])
            else hp["momentum"]}),
    ),
]


def avoiding(subject, case: Case) -> Case:
    """``case`` moved off the known deviations of ``subject`` that say how (``avoid``), so that the search checks
    the rest of the rule instead of discarding the case."""
    for d in DEVIATIONS:
        if d.avoid is not None and d.concerns(subject) and d.when(case):
            case = d.avoid(case)
    return case


def shared_with_torch(case: Case, checks: tuple[str, ...] = ("trajectory", "steps")) -> list[KnownDeviation]:
    """torch's known deviations of the rule ``case``'s rule writes another way (itself, or its ``base``) that
    ``case`` runs into: where another implementation deviates on such a case, it deviates as torch does."""
    names = {case.rule.name, case.rule.base}
    return [d for d in DEVIATIONS if d.check in checks and d.torch_class.lower() in names and d.when(case)]


def applicable(subject, case: Case, checks: str | tuple[str, ...] = "trajectory") -> list[KnownDeviation]:
    """torch's deviations, and those declared with ``--known-deviations FILE``, that ``case`` runs into in one of
    ``checks`` (a case judged step by step runs into the trajectory's deviations and those of its own check)."""
    from optimizers.declared_deviations import DECLARED
    checks = (checks,) if isinstance(checks, str) else checks
    return [d for d in (*DEVIATIONS, *DECLARED) if d.check in checks and d.concerns(subject) and d.when(case)]
