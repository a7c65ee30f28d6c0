"""The rules of ``reference/modern_rules.py`` against steps worked by hand from their papers' formulas: each
expected number is derived in the comment beside it from the formula (numbers chosen so that the arithmetic is
exact or nearly so), not taken from running code. A rule that drifted from its paper fails here, whatever an
implementation does."""
from __future__ import annotations

import math

import pytest
import torch

from reference.registry import RULES


def run(rule: str, θ, grads, **hp):
    """θ and the state after feeding ``grads`` in turn to the rule, its other hyperparameters at their defaults."""
    r = RULES[rule]
    θ = torch.tensor(θ, dtype=torch.float64)
    state: dict = {}
    for g in grads:
        θ, state = r.update(θ, torch.tensor(g, dtype=torch.float64), state, **{**r.defaults(), **hp})
    return θ, state


def close(actual, expected):
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual, expected, rtol=1e-13, atol=1e-15), f"got {actual.tolist()}, should be " \
                                                                      f"{expected.tolist()}"


def test_the_modern_rules_are_built_in():
    for name in ("lion", "adopt", "ademamix", "adan", "lamb"):
        assert name in RULES and RULES[name].torch_class is None
    assert not RULES["lamb"].elementwise and all(RULES[n].elementwise for n in ("lion", "adopt", "ademamix", "adan"))


# ---- Lion (Chen et al. 2023, Algorithm 2) ----------------------------------------------------------------------------
def test_lion_two_steps():
    # γ = 0.1, β = (0.9, 0.99), λ = 0.5, θ = [1, 2], m_0 = 0.
    # step 1, g = [0.5, 0]: c = 0.1 g = [0.05, 0], sign(c) = [1, 0];
    #   θ = θ − 0.1 (sign(c) + 0.5 θ) = [1 − 0.1·1.5, 2 − 0.1·1] = [0.85, 1.9];  m_1 = 0.01 g = [0.005, 0]
    θ, state = run("lion", [1.0, 2.0], [[0.5, 0.0]], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    close(θ, [0.85, 1.9])
    close(state["m"], [0.005, 0.0])
    # step 2, g = [−0.1, 0]: c = 0.9·0.005 + 0.1·(−0.1) = −0.0055 → sign −1;  θ_0 = 0.85 − 0.1 (−1 + 0.425) = 0.9075;
    #   θ_1 = 1.9 − 0.1 (0 + 0.95) = 1.805;   m_2 = 0.99·0.005 + 0.01·(−0.1) = 0.00395
    θ, state = run("lion", [1.0, 2.0], [[0.5, 0.0], [-0.1, 0.0]], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    close(θ, [0.9075, 1.805])
    close(state["m"], [0.00395, 0.0])


# ---- ADOPT (Taniguchi et al. 2024, Algorithm 1, clipped) --------------------------------------------------------------
def test_adopt_first_step_only_sets_v_then_normalises_before_the_momentum():
    hp = dict(lr=0.1, betas=(0.5, 0.75), eps=1e-6, clip_exp=0.25, weight_decay=0.0)
    # step 1, g = 2: v = g² = 4; θ and m unchanged
    θ, state = run("adopt", [1.0], [[2.0]], **hp)
    close(θ, [1.0])
    close(state["v"], [4.0])
    close(state["m"], [0.0])
    # step 2 (s = 1), g = 1: n = 1 / max(√4, ε) = 0.5, clip at 1^0.25 = 1 leaves it;  m = 0.5·0 + 0.5·0.5 = 0.25;
    #   θ = 1 − 0.1·0.25 = 0.975;   v = 0.75·4 + 0.25·1 = 3.25 (after the step)
    θ, state = run("adopt", [1.0], [[2.0], [1.0]], **hp)
    close(θ, [0.975])
    close(state["m"], [0.25])
    close(state["v"], [3.25])
    # step 3 (s = 2), g = 16: n = 16 / √3.25 ≈ 8.9 is clipped to 2^0.25;  m = 0.5·0.25 + 0.5·2^0.25;
    #   θ = 0.975 − 0.1 (0.125 + 0.5·2^0.25);   v = 0.75·3.25 + 0.25·256 = 66.4375
    θ, state = run("adopt", [1.0], [[2.0], [1.0], [16.0]], **hp)
    close(θ, [0.975 - 0.1 * (0.125 + 0.5 * 2**0.25)])
    close(state["v"], [66.4375])
    # without clipping (clip_exp None): n = 16 / √3.25 stays;  θ = 0.975 − 0.1 (0.125 + 0.5·16/√3.25)
    θ, _ = run("adopt", [1.0], [[2.0], [1.0], [16.0]], **{**hp, "clip_exp": None})
    close(θ, [0.975 - 0.1 * (0.125 + 8 / math.sqrt(3.25))])


def test_adopt_weight_decay_coupled_and_decoupled():
    hp = dict(lr=0.1, betas=(0.5, 0.75), eps=1e-6, clip_exp=None, weight_decay=0.5)
    # coupled: g ← g + 0.5 θ; step 1, θ = 2, g = 1: v = (1 + 1)² = 4, θ unchanged;
    #   step 2, θ = 2, g = 1: g = 2, n = 2/2 = 1, m = 0.5, θ = 2 − 0.05 = 1.95
    θ, state = run("adopt", [2.0], [[1.0], [1.0]], **hp, decoupled_weight_decay=False)
    close(θ, [1.95])
    close(state["v"], [0.75 * 4 + 0.25 * 4])
    # decoupled: step 1 leaves θ = 2 (no decay on the first step), v = 1;  step 2: θ ← 2 − 0.1·0.5·2 = 1.9, then
    #   n = 1/1 = 1, m = 0.5, θ = 1.9 − 0.05 = 1.85
    θ, _ = run("adopt", [2.0], [[1.0], [1.0]], **hp, decoupled_weight_decay=True)
    close(θ, [1.85])


# ---- AdEMAMix (Pagliardini et al. 2024, Algorithm 1) ------------------------------------------------------------------
def test_ademamix_two_steps_without_schedulers():
    hp = dict(lr=0.1, betas=(0.5, 0.75, 0.875), alpha=2.0, t_alpha_beta3=None, eps=0.0, weight_decay=0.0)
    # step 1, g = 1: m1 = 0.5, m2 = 0.125, v = 0.25;  m1/(1 − 0.5) = 1, √v/√(1 − 0.75) = 1;
    #   θ = 1 − 0.1 (1 + 2·0.125) / 1 = 0.875
    θ, _ = run("ademamix", [1.0], [[1.0]], **hp)
    close(θ, [0.875])
    # step 2, g = 1: m1 = 0.75, m2 = 0.875·0.125 + 0.125 = 0.234375, v = 0.4375;  m1/(1 − 0.25) = 1,
    #   √(0.4375)/√(1 − 0.5625) = 1;  θ = 0.875 − 0.1 (1 + 2·0.234375) = 0.728125
    θ, state = run("ademamix", [1.0], [[1.0], [1.0]], **hp)
    close(θ, [0.728125])
    close(state["m2"], [0.234375])
    # weight decay λ = 1 (decoupled, scaled by γ): step 1 from θ = 1 adds −0.1·1·1: θ = 0.775
    θ, _ = run("ademamix", [1.0], [[1.0]], **{**hp, "weight_decay": 1.0})
    close(θ, [0.775])


def test_ademamix_schedulers_warm_up_alpha_and_beta3():
    # β1 = 1/4, β3 = 1/2: ln β1 = −2 ln 2, ln β3 = −ln 2; T = 4.
    # t = 1, a = 1/4: β3_1 = exp(2 ln²2 / (−(3/4) ln 2 − (1/4)·2 ln 2)) = exp(−1.6 ln 2) = 2^−1.6 (≤ β3);
    #   α_1 = α/4;  m2_1 = (1 − 2^−1.6) g
    hp = dict(lr=0.1, betas=(0.25, 0.75, 0.5), alpha=4.0, t_alpha_beta3=4, eps=0.0, weight_decay=0.0)
    θ, state = run("ademamix", [1.0], [[1.0]], **hp)
    m2 = 1 - 2**-1.6
    close(state["m2"], [m2])
    # θ = 1 − 0.1 (m1/(1 − β1) + α_1 m2) / (√v/√(1 − β2)) = 1 − 0.1 (1 + 1·m2)   (m1 = 0.75 g, v = 0.25 g²)
    close(θ, [1 - 0.1 * (1 + m2)])
    # t = 2, a = 1/2: β3_2 = exp(2 ln²2 / (−(1/2) ln 2 − ln 2)) = 2^−4/3;  m2_2 = β3_2 m2_1 + (1 − β3_2) g
    _, state = run("ademamix", [1.0], [[1.0], [1.0]], **hp)
    close(state["m2"], [2 ** (-4 / 3) * m2 + 1 - 2 ** (-4 / 3)])
    # from t = T on: β3_t = β3 = 1/2 and α_t = α (t = 4: m2_4 = 0.5 m2_3 + 0.5 g)
    _, s3 = run("ademamix", [1.0], [[1.0]] * 3, **hp)
    _, s4 = run("ademamix", [1.0], [[1.0]] * 4, **hp)
    close(s4["m2"], 0.5 * s3["m2"] + 0.5)


# ---- Adan (Xie et al. 2022, Algorithm 1; the official code's β) --------------------------------------------------------
def test_adan_two_steps():
    hp = dict(lr=0.1, betas=(0.5, 0.5, 0.5), eps=0.0, weight_decay=0.0, no_prox=False)
    # step 1, g = 2 (g_0 = g_1, Δ = 0): m = 1, v = 0, n = 0.5·2² = 2;  d = √2/√0.5 = 2;
    #   u = (1/0.5 + 0.5·0/0.5) / 2 = 1;  θ = 1 − 0.1 = 0.9
    θ, _ = run("adan", [1.0], [[2.0]], **hp)
    close(θ, [0.9])
    # step 2, g = 4, Δ = 2: m = 0.5 + 2 = 2.5, v = 0.5·2 = 1, n = 0.5·2 + 0.5 (4 + 0.5·2)² = 13.5;
    #   d = √13.5/√0.75 = √18;  u = (2.5/0.75 + 0.5·1/0.75) / √18 = 4/√18;  θ = 0.9 − 0.4/√18
    θ, state = run("adan", [1.0], [[2.0], [4.0]], **hp)
    close(θ, [0.9 - 0.4 / math.sqrt(18)])
    close(state["n"], [13.5])
    close(state["v"], [1.0])


def test_adan_proximal_and_plain_decay():
    hp = dict(lr=0.1, betas=(0.5, 0.5, 0.5), eps=0.0, weight_decay=1.0)
    # step 1 as above (u = 1): proximal θ = (1 − 0.1)/(1 + 0.1·1) = 0.9/1.1;  no_prox θ = 1 − 0.1·1·1 − 0.1 = 0.8
    θ, _ = run("adan", [1.0], [[2.0]], **hp, no_prox=False)
    close(θ, [0.9 / 1.1])
    θ, _ = run("adan", [1.0], [[2.0]], **hp, no_prox=True)
    close(θ, [0.8])


# ---- LAMB (You et al. 2019, Algorithm 2) ------------------------------------------------------------------------------
@pytest.mark.parametrize("hp, expected", [
    # θ = [3, 4] (‖θ‖ = 5), g = [1, −1], ε = 0: m̂ = g, v̂ = g², r = [1, −1], ‖r‖ = √2;
    # λ = 0: u = r, ratio = 5/√2, θ − 0.1·(5/√2)·u
    ({}, [3 - 0.5 / math.sqrt(2), 4 + 0.5 / math.sqrt(2)]),
    # λ = 0.5: u = r + 0.5 θ = [2.5, 1], ‖u‖ = √7.25, θ − 0.1·(5/√7.25)·u
    ({"weight_decay": 0.5}, [3 - 0.5 * 2.5 / math.sqrt(7.25), 4 - 0.5 / math.sqrt(7.25)]),
    # φ(z) = min(z, 2): ratio = 2/√2 = √2
    ({"clamp_value": 2.0}, [3 - 0.1 * math.sqrt(2), 4 + 0.1 * math.sqrt(2)]),
    # adam: ratio 1
    ({"adam": True}, [2.9, 4.1]),
    # no bias correction, λ = 0.5: r = 0.1 g / √(0.001 g²) = √10·[1, −1]; u = [√10 + 1.5, −√10 + 2]
    ({"bias_correction": False, "weight_decay": 0.5},
     [3 - 0.5 * (math.sqrt(10) + 1.5) / math.hypot(math.sqrt(10) + 1.5, 2 - math.sqrt(10)),
      4 - 0.5 * (2 - math.sqrt(10)) / math.hypot(math.sqrt(10) + 1.5, 2 - math.sqrt(10))]),
])
def test_lamb_one_step(hp, expected):
    θ, _ = run("lamb", [3.0, 4.0], [[1.0, -1.0]], **{"lr": 0.1, "betas": (0.9, 0.999), "eps": 0.0,
                                                      "weight_decay": 0.0, **hp})
    close(θ, expected)


def test_lamb_trust_ratio_is_one_for_a_zero_parameter():
    # ‖θ‖ = 0: ratio 1, θ = −0.1·[1, −1]
    θ, _ = run("lamb", [0.0, 0.0], [[1.0, -1.0]], lr=0.1, eps=0.0, weight_decay=0.0)
    close(θ, [-0.1, 0.1])


# ---- Schedule-Free SGD and AdamW (Defazio et al. 2024; reference/schedulefree_rules.py) --------------------------------
def test_schedulefree_rules_are_built_in():
    for name in ("schedulefree_sgd", "schedulefree_adamw"):
        assert name in RULES and RULES[name].torch_class is None and RULES[name].elementwise
    assert RULES["schedulefree_adamw"].decoupled_decay and not RULES["schedulefree_sgd"].decoupled_decay


SF_SGD = dict(lr=0.5, momentum=0.5, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0)


def test_schedulefree_sgd_two_steps():
    # θ_0 = z_0 = x_0 = 1, γ = 0.5, β = 0.5, p = 2.  step 1, g = 1: lr_max = 0.5, w = 0.25, Σw = 0.25, c = 1;
    #   z = 1 − 0.5 = 0.5, x = z = 0.5, y = 0.5
    θ, state = run("schedulefree_sgd", [1.0], [[1.0]], **SF_SGD)
    close(θ, [0.5])
    close(state["x"], [0.5])
    # step 2, g = 1: w = 0.25, Σw = 0.5, c = 0.5;  z = 0.5 − 0.5 = 0, x = 0.5·0.5 + 0.5·0 = 0.25,
    #   y = 0.5·0 + 0.5·0.25 = 0.125
    θ, state = run("schedulefree_sgd", [1.0], [[1.0], [1.0]], **SF_SGD)
    close(θ, [0.125])
    close(state["z"], [0.0])
    close(state["x"], [0.25])


def test_schedulefree_sgd_decay_at_y_and_warmup():
    # λ = 1, step 1 from θ = 1, g = 1: g + λy = 2, z = 1 − 0.5·2 = 0 = x = y
    θ, _ = run("schedulefree_sgd", [1.0], [[1.0]], **{**SF_SGD, "weight_decay": 1.0})
    close(θ, [0.0])
    # W = 2, γ = 1: t = 1, γ_1 = 0.5, lr_max = 0.5, w = 0.25, c = 1: z = x = y = 0.5;
    #   t = 2, γ_2 = 1, lr_max = 1, w = 1, Σw = 1.25, c = 0.8: z = −0.5, x = 0.2·0.5 + 0.8·(−0.5) = −0.3,
    #   y = 0.5·(−0.5) + 0.5·(−0.3) = −0.4
    θ, state = run("schedulefree_sgd", [1.0], [[1.0], [1.0]], **{**SF_SGD, "lr": 1.0, "warmup_steps": 2})
    close(θ, [-0.4])
    close(state["x"], [-0.3])
    # r = 1, p = 0 (w_t = t): step 2's c = 2/3;  γ = 0.5: z = 0, x = (1/3)·0.5 = 1/6, y = 1/12
    θ, _ = run("schedulefree_sgd", [1.0], [[1.0], [1.0]], **{**SF_SGD, "r": 1.0, "weight_lr_power": 0.0})
    close(θ, [1 / 12])


SF_ADAMW = dict(lr=0.5, betas=(0.5, 0.75), eps=0.0, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0)


def test_schedulefree_adamw_two_steps():
    # θ_0 = 1.  step 1, g = 2: v = 0.25·4 = 1, d = √(1/0.25) = 2;  z = 1 − 0.5·2/2 = 0.5;  c = 1: x = y = 0.5
    θ, state = run("schedulefree_adamw", [1.0], [[2.0]], **SF_ADAMW)
    close(θ, [0.5])
    close(state["v"], [1.0])
    # step 2, g = 1: v = 0.75 + 0.25 = 1, 1 − β2² = 0.4375, d = 1/√0.4375;  z = 0.5 − 0.5·√0.4375;  c = 0.5:
    #   x = 0.25 + 0.5 z,  y = 0.5 z + 0.5 x
    z = 0.5 - 0.5 * math.sqrt(0.4375)
    x = 0.25 + 0.5 * z
    θ, state = run("schedulefree_adamw", [1.0], [[2.0], [1.0]], **SF_ADAMW)
    close(state["z"], [z])
    close(state["x"], [x])
    close(θ, [0.5 * z + 0.5 * x])
    # λ = 1 (decoupled, at y): step 1, z = 1 − 0.5·1·1 − 0.5·2/2 = 0 = x = y
    θ, _ = run("schedulefree_adamw", [1.0], [[2.0]], **{**SF_ADAMW, "weight_decay": 1.0})
    close(θ, [0.0])


@pytest.mark.parametrize("name, rule, hp", [
    ("ScheduleFreeSGD", "schedulefree_sgd", dict(SF_SGD, momentum=0.9, weight_decay=0.1, warmup_steps=2, r=0.5)),
    ("ScheduleFreeAdamW", "schedulefree_adamw", dict(SF_ADAMW, lr=0.1, weight_decay=0.1, warmup_steps=3, r=1.0)),
])
def test_schedulefree_eval_mode_holds_the_average_x(name, rule, hp):
    """optimizers/modern.py's implementation: after ``eval()`` the parameters are the rule's x, after ``train()``
    again its y (θ)."""
    from optimizers import modern
    grads = [[0.5, -2.0], [1.0, 0.25], [-3.0, 1.0], [0.125, 0.5]]
    θ, state = run(rule, [1.0, -1.0], grads, **hp)
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = getattr(modern, name)([p], **hp)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    assert torch.allclose(p.detach(), θ, rtol=1e-12, atol=1e-14)
    opt.eval()
    assert torch.allclose(p.detach(), state["x"], rtol=1e-12, atol=1e-14)
    opt.train()
    assert torch.allclose(p.detach(), θ, rtol=1e-12, atol=1e-14)


def test_ademamix_repair_keeps_beta1_positive_for_the_smallest_subnormal_beta3():
    # β3 = 5e-324 (the smallest subnormal), β1 = 0 with the schedulers on: β3 / 2 rounds to 0, so β1 = β3
    r = RULES["ademamix"]
    hp = r.repair({**r.defaults(), "betas": (0.0, 0.999, 5e-324), "t_alpha_beta3": 2})
    assert r.valid(hp) and hp["betas"][0] > 0
