"""Planted bugs of the rules of ``reference/modern_rules.py`` (``properties/test_planted_bugs.py``): each class is
the correct implementation of ``optimizers/modern.py`` but for ONE realistic mistake, made by overriding one of its
methods (the mistake is the diff); ``CORRECT`` lists the correct implementations, which must pass.

    python -m pytest --optimizer optimizers.planted_modern:AdanNesterovTermSign --rule adan    # does not conform

Do not use these classes for training.
"""
from __future__ import annotations

from optimizers import modern


class LionEmaWithBeta1(modern.Lion):
    """The EMA decays with β1, the step's interpolation weight, instead of β2."""

    def _remember(self, m, g, group):
        m.lerp_(g, 1 - group["betas"][0])


class AdoptNormalisesWithCurrentV(modern.Adopt):
    """v updated before the normalisation, as Adam orders it: g / max(√v_t, ε) instead of g / max(√v_{t−1}, ε) —
    the one change ADOPT makes to Adam undone."""

    def _normalized(self, gs, vs, eps, β2):
        super()._second_moment(vs, gs, β2)
        return super()._normalized(gs, vs, eps, β2)

    def _second_moment(self, vs, gs, β2):
        pass   # done above, before the step


class AdEMAMixSlowEmaBiasCorrected(modern.AdEMAMix):
    """The slow EMA divided by 1 − β3^t as the fast one is by 1 − β1^t (the paper corrects m1 and v only)."""

    def _slow_ema(self, slow, g, β3_t, t):
        return super()._slow_ema(slow, g, β3_t, t) / (1 - β3_t**t)


class AdanNesterovTermSign(modern.Adan):
    """n averages (g_t − β2 (g_t − g_{t−1}))²: the sign of the Nesterov term flipped."""

    def _nesterov(self, g, diff, β2):
        return g - β2 * diff


class LambTrustRatioInverted(modern.Lamb):
    """The trust ratio inverted: ‖u‖ / φ(‖θ‖) instead of φ(‖θ‖) / ‖u‖."""

    def _trust_ratio(self, p, update, group):
        ratio = super()._trust_ratio(p, update, group)
        return 1 / ratio


Lion, Adopt, AdEMAMix, Adan, Lamb = modern.Lion, modern.Adopt, modern.AdEMAMix, modern.Adan, modern.Lamb
AdanGroupStep = modern.AdanGroupStep
ScheduleFreeSGD, ScheduleFreeAdamW = modern.ScheduleFreeSGD, modern.ScheduleFreeAdamW


class AdanGroupStepCountsParameterSteps(modern.AdanGroupStep):
    """t counts this parameter's own steps, as torch's rules do, where the variant counts the group's step() calls."""

    def _advance(self, group, state):
        return modern.Adan._advance(self, group, state)


PLANTED = [
    ("LionEmaWithBeta1", "lion", "the EMA m decays with β1 instead of β2"),
    ("AdoptNormalisesWithCurrentV", "adopt", "g normalised by max(√v_t, ε), v updated first, instead of v_{t−1}"),
    ("AdEMAMixSlowEmaBiasCorrected", "ademamix", "the slow EMA m2 divided by 1 − β3^t"),
    ("AdanNesterovTermSign", "adan", "n averages (g − β2 Δ)² instead of (g + β2 Δ)²"),
    ("LambTrustRatioInverted", "lamb", "trust ratio ‖u‖ / φ(‖θ‖) instead of φ(‖θ‖) / ‖u‖"),
]
CORRECT = [
    ("Lion", "lion", "lerp for the step's interpolation and the EMA, decay as a multiplication of θ"),
    ("Adopt", "adopt", "_foreach ops over a group, first-step parameters set apart, lerp for m"),
    ("AdEMAMix", "ademamix", "β3 scheduler through half-lives in Python floats, lerp EMAs, two addcdiv steps"),
    ("Adan", "adan", "previous gradient kept as is, lerp EMAs, two addcdiv steps, proximal decay by division"),
    ("Lamb", "lamb", "torch.linalg.vector_norm, the trust ratio chosen with torch.where"),
]


class ScheduleFreeSGDBetaSwapped(modern.ScheduleFreeSGD):
    """y formed with β and 1 − β swapped: y = β z + (1 − β) x instead of (1 − β) z + β x."""

    def _interpolate(self, params, zs, xs, β):
        super()._interpolate(params, zs, xs, 1 - β)


class ScheduleFreeAdamWWeightSumOffByOne(modern.ScheduleFreeAdamW):
    """The average's weight c off by one step: c = w_t / Σ_{s<t} w_s, the sum read before this step's weight is
    added (0 while it is 0), instead of w_t / Σ_{s≤t} w_s."""

    def _advance(self, state, group):
        before = state["weight_sum"]
        lr, _ = super()._advance(state, group)
        weight = self._weight(state["step"], state["lr_max"], group)
        return lr, (weight / before if before else 0.0)


PLANTED += [
    ("ScheduleFreeSGDBetaSwapped", "schedulefree_sgd", "y = β z + (1 − β) x instead of (1 − β) z + β x"),
    ("ScheduleFreeAdamWWeightSumOffByOne", "schedulefree_adamw", "c = w_t / Σ_{s<t} w_s instead of w_t / Σ_{s≤t} w_s"),
]
PLANTED += [
    ("AdanGroupStepCountsParameterSteps", "adan_group_step",
     "t counts the parameter's own steps instead of its group's step() calls"),
]
CORRECT += [
    ("AdanGroupStep", "adan_group_step", "Adan with t kept in the param group, advanced once per step()"),
    ("ScheduleFreeSGD", "schedulefree_sgd", "_foreach ops over a group, z and x kept, y = lerp(z, x, β)"),
    ("ScheduleFreeAdamW", "schedulefree_adamw", "y advanced in place (lerp to z, then the update), x kept for eval"),
]
