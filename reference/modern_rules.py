"""Reference rules of optimizers that torch.optim does not ship — Lion, ADOPT, AdEMAMix, Adan, LAMB — written from
their papers and, where the paper leaves a choice open, from the authors' official code (named in each docstring),
never by calling or copying an implementation the suite judges.

Each rule is a pure function ``rule(θ, g, state, **hyperparameters) -> (θ, state)`` on float64 tensors with its
formula in its docstring (γ lr, λ weight decay, t the step count of the parameter, starting at 1), followed by its
declaration, as in ``reference/rules.py``. Hyperparameters take the official code's names where it has them and
torch's where it follows torch (``decoupled_weight_decay``, ``maximize``). No torch.optim class claims these rules.
"""
from __future__ import annotations

import torch

from reference.declarations import Choice, Constraint, Flag, Hyper, Pair, Real, Rule
from reference.rules import BETA, BETA2, EPS, LR, MAXIMIZE, WD


def _zeros(θ):
    return torch.zeros_like(θ)


def _norm(x):
    """‖x‖₂ over every element of the tensor (the Frobenius norm of a matrix)."""
    return torch.sqrt((x * x).sum())


#: β of a slow EMA (AdEMAMix's β3): searched closer to 1 than β2
BETA3 = Real(0.0, 1.0, hi_open=True, search=(0.0, 0.99999), edges=(0.9999, 0.0, 0.999, 0.99999),
             enforced=("lo", "hi"))


# ---- Lion ----------------------------------------------------------------------------------------------------------
def lion(θ, g, state, *, lr, betas, weight_decay):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), decoupled weight
    decay λ.

    c = β1 m_{t−1} + (1 − β1) g;   θ ← θ − γ (sign(c) + λθ);   m_t = β2 m_{t−1} + (1 − β2) g   (m_0 = 0)
    """
    β1, β2 = betas
    m = state.get("m", _zeros(θ))
    c = β1 * m + (1 - β1) * g
    θ = θ - lr * (torch.sign(c) + weight_decay * θ)
    return θ, {"m": β2 * m + (1 - β2) * g}


_LION_BETA = Real(0.0, 1.0, search=(0.0, 0.999), edges=(0.0, 0.9, 0.99), enforced=("lo", "hi"))
LION = Rule(
    "lion", lion, source="Chen et al. 2023 (Symbolic Discovery of Optimization Algorithms), Algorithm 2",
    hypers=(
        Hyper("lr", 1e-4, Real(0.0, search=(1e-6, 1.0), log=True, edges=(0.0, 1e-4)),
              "learning rate γ; changed between steps as a scheduler does", scheduled=True),
        Hyper("betas", (0.9, 0.99), Pair(_LION_BETA, _LION_BETA),
              "(β1, β2): the interpolation for the step, the EMA's decay"),
        WD(),
    ),
    buffers=lambda hp: ("exp_avg",),
    decoupled_decay=True,   # λ scales θ; it is not added to the gradient
)


# ---- ADOPT ---------------------------------------------------------------------------------------------------------
def adopt(θ, g, state, *, lr, betas, eps, clip_exp, weight_decay, decoupled_weight_decay, maximize):
    """ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate",
    Algorithm 1 with the clipped momentum of its revised version; the official code iShohei220/adopt, where
    ``clip_lambda(s) = s^p`` is ``clip_exp = p`` here and ``decouple`` is ``decoupled_weight_decay``).

    g ← −g if maximize;  g ← g + λθ (coupled)
    first step (t = 1):  v ← g²;  θ and m unchanged (m_0 = 0)
    t > 1:  θ ← θ − γλθ (decoupled);   s = t − 1 (the paper's step index);   n = g / max(√v_{t−1}, ε)
            n ← clip(n, −s^p, s^p) (p = clip_exp; no clipping when it is None)
            m_t = β1 m_{t−1} + (1 − β1) n;   θ ← θ − γ m_t;   v_t = β2 v_{t−1} + (1 − β2) g²
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    if weight_decay != 0 and not decoupled_weight_decay:
        g = g + weight_decay * θ
    if t == 1:
        return θ, {"t": t, "m": _zeros(θ), "v": g * g}
    if weight_decay != 0 and decoupled_weight_decay:
        θ = θ - lr * weight_decay * θ
    n = g / torch.clamp(torch.sqrt(state["v"]), min=eps)
    if clip_exp is not None:
        c = (t - 1) ** clip_exp
        n = torch.clamp(n, min=-c, max=c)
    m = β1 * state["m"] + (1 - β1) * n
    v = β2 * state["v"] + (1 - β2) * g * g
    return θ - lr * m, {"t": t, "m": m, "v": v}


ADOPT = Rule(
    "adopt", adopt,
    source="Taniguchi et al. 2024 (ADOPT), Algorithm 1 with clipping; official code iShohei220/adopt",
    hypers=(
        LR(1e-3),
        Hyper("betas", (0.9, 0.9999), Pair(BETA, BETA2), "(β1, β2): decay of the momentum and of v"),
        Hyper("eps", 1e-6, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(1e-6, 0.0, 1e-12, 1e-1)),
              "ε, the floor of √v"),
        Hyper("clip_exp", 0.25, Real(0.0, search=(0.0, 1.0), edges=(0.25, None, 0.0, 0.333), enforced=(),
                                     optional=True),
              "p: the normalised gradient clipped to [−s^p, s^p] at step index s (None: not clipped, ADOPT's "
              "first version)"),
        WD(),
        Hyper("decoupled_weight_decay", False, Flag(), "θ ← θ − γλθ (the official code's decouple) instead of "
                                                        "g + λθ"),
        MAXIMIZE,
    ),
    buffers=lambda hp: ("exp_avg", "exp_avg_sq"),
)


# ---- AdEMAMix -------------------------------------------------------------------------------------------------------
def _ln(x, like):
    """ln x of a scalar hyperparameter, as a tensor of ``like``'s shape (torch.log takes tensors, and the error bound
    runs the rule on its own values)."""
    return torch.log(torch.zeros_like(like) + x)


def ademamix(θ, g, state, *, lr, betas, alpha, t_alpha_beta3, eps, weight_decay):
    """AdEMAMix (Pagliardini et al. 2024, "The AdEMAMix Optimizer", Algorithm 1 with the schedulers f_α and f_β3 of
    its §3, β_start = β1): a fast EMA m1 (β1) and a slow one m2 (β3) mixed by α, decoupled weight decay λ.

    T = t_alpha_beta3 (None: no schedulers);  for t < T, a = t/T:
        α_t = a α;   β3_t = min(exp(ln β1 ln β3 / ((1 − a) ln β3 + a ln β1)), β3);   else α_t = α, β3_t = β3
    m1_t = β1 m1_{t−1} + (1 − β1) g;   m2_t = β3_t m2_{t−1} + (1 − β3_t) g;   v_t = β2 v_{t−1} + (1 − β2) g²
    θ ← θ − γ ((m1_t / (1 − β1^t) + α_t m2_t) / (√v_t / √(1 − β2^t) + ε) + λθ)
    """
    β1, β2, β3 = betas
    t = state.get("t", 0) + 1
    if t_alpha_beta3 and t < t_alpha_beta3:
        a = t / t_alpha_beta3
        α_t = a * alpha
        l1, l3 = _ln(β1, θ), _ln(β3, θ)
        β3_t = torch.clamp(torch.exp(l1 * l3 / ((1 - a) * l3 + a * l1)), max=β3)
    else:
        α_t, β3_t = alpha, β3
    m1 = β1 * state.get("m1", _zeros(θ)) + (1 - β1) * g
    m2 = β3_t * state.get("m2", _zeros(θ)) + (1 - β3_t) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * g * g
    denominator = torch.sqrt(v) / (1 - β2**t) ** 0.5 + eps
    update = (m1 / (1 - β1**t) + α_t * m2) / denominator
    return θ - lr * (update + weight_decay * θ), {"t": t, "m1": m1, "m2": m2, "v": v}


def _schedulers_repair(hp):
    β1, β2, β3 = hp["betas"]
    β1, β3 = sorted((β1, β3))
    β3 = β3 or 0.9999
    return {**hp, "betas": (β1 or β3 / 2 or β3, β2, β3)}   # β3 / 2 is 0 for the smallest subnormal β3


ADEMAMIX = Rule(
    "ademamix", ademamix,
    source="Pagliardini et al. 2024 (The AdEMAMix Optimizer), Algorithm 1 and §3's schedulers",
    hypers=(
        LR(1e-3),
        Hyper("betas", (0.9, 0.999, 0.9999), Pair(BETA, BETA2, BETA3),
              "(β1, β2, β3): decay of the fast EMA, of v, of the slow EMA"),
        Hyper("alpha", 2.0, Real(0.0, search=(0.0, 20.0), edges=(2.0, 0.0, 5.0, 8.0)),
              "α, the weight of the slow EMA"),
        Hyper("t_alpha_beta3", None, Choice((None, 2, 5, 10, 100)),
              "T_α,β3: steps of the α and β3 warm-up schedulers (None: none)"),
        EPS(1e-8), WD(),
    ),
    constraints=(
        # β1 > β3 would make the warm-up a cool-down, where the paper's formula (min(…, β3) at every t) and the
        # official code's (β3 from t = T on) part ways after T: the paper defines the schedule from β_start = β1 < β3
        Constraint("the β3 scheduler warms β3 up from β1 (ln β1, ln β3): 0 < β1 ≤ β3 when t_alpha_beta3 is set",
                   holds=lambda hp: not hp["t_alpha_beta3"] or 0 < hp["betas"][0] <= hp["betas"][2],
                   repair=_schedulers_repair, enforced=False),
    ),
    buffers=lambda hp: ("exp_avg_fast", "exp_avg_slow", "exp_avg_sq"),
    decoupled_decay=True,
)


# ---- Adan ----------------------------------------------------------------------------------------------------------
def adan(θ, g, state, *, lr, betas, eps, weight_decay, no_prox):
    """Adan (Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm", Algorithm 1 without restart), as the
    official code sail-sg/Adan writes it: β's are the EMAs' decay weights (β = 1 − the paper's β: the paper's
    (0.02, 0.08, 0.01) are (0.98, 0.92, 0.99) here), the EMAs start at 0 with bias corrections, g_0 = g_1; t counts
    this parameter's steps (the official code counts its group's: the two differ for a parameter that missed one).

    Δ_t = g_t − g_{t−1};   m_t = β1 m_{t−1} + (1 − β1) g_t;   v_t = β2 v_{t−1} + (1 − β2) Δ_t
    n_t = β3 n_{t−1} + (1 − β3) (g_t + β2 Δ_t)²;   d = √n_t / √(1 − β3^t) + ε
    u = (m_t / (1 − β1^t) + β2 v_t / (1 − β2^t)) / d
    θ ← (θ − γ u) / (1 + γλ)  (the paper's proximal decay)   or   θ ← θ − γλθ − γ u  (no_prox)
    """
    β1, β2, β3 = betas
    t = state.get("t", 0) + 1
    Δ = g - state.get("g", g)
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * Δ
    n = β3 * state.get("n", _zeros(θ)) + (1 - β3) * (g + β2 * Δ) ** 2
    d = torch.sqrt(n) / (1 - β3**t) ** 0.5 + eps
    u = (m / (1 - β1**t) + β2 * v / (1 - β2**t)) / d
    if no_prox:
        θ = θ - lr * weight_decay * θ - lr * u
    else:
        θ = (θ - lr * u) / (1 + lr * weight_decay)
    return θ, {"t": t, "g": g, "m": m, "v": v, "n": n}


ADAN = Rule(
    "adan", adan,
    source="Xie et al. 2022 (Adan), Algorithm 1 without restart; official code sail-sg/Adan (β convention, bias "
           "corrections)",
    hypers=(
        LR(1e-3),
        Hyper("betas", (0.98, 0.92, 0.99), Pair(BETA, BETA, BETA2),
              "(β1, β2, β3): decay of the gradient's EMA, of the difference's EMA, of n (the official code's "
              "convention, 1 − the paper's)"),
        EPS(1e-8), WD(),
        Hyper("no_prox", False, Flag(), "decay θ ← θ − γλθ before the step instead of the proximal θ / (1 + γλ)"),
    ),
    buffers=lambda hp: ("exp_avg", "exp_avg_diff", "exp_avg_sq", "neg_pre_grad"),
    decoupled_decay=True,
)


# ---- LAMB ----------------------------------------------------------------------------------------------------------
def lamb(θ, g, state, *, lr, betas, eps, weight_decay, bias_correction, clamp_value, adam):
    """LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
    Algorithm 2), the trust ratio over the whole parameter tensor.

    m_t = β1 m_{t−1} + (1 − β1) g;   v_t = β2 v_{t−1} + (1 − β2) g²
    m̂, v̂ = m_t / (1 − β1^t), v_t / (1 − β2^t)  (m_t, v_t without bias_correction)
    r = m̂ / (√v̂ + ε);   u = r + λθ;   φ(z) = min(z, clamp_value) (φ(z) = z when clamp_value is None)
    ratio = φ(‖θ‖) / ‖u‖ if ‖θ‖ > 0 and ‖u‖ > 0, else 1;  ratio = 1 always if adam
    θ ← θ − γ ratio u
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * g * g
    m_hat, v_hat = (m / (1 - β1**t), v / (1 - β2**t)) if bias_correction else (m, v)
    u = m_hat / (torch.sqrt(v_hat) + eps) + weight_decay * θ
    ratio = 1.0
    if not adam:
        θ_norm, u_norm = _norm(θ), _norm(u)
        if θ_norm > 0 and u_norm > 0:
            φ = θ_norm if clamp_value is None else torch.clamp(θ_norm, max=clamp_value)
            ratio = φ / u_norm
    return θ - lr * ratio * u, {"t": t, "m": m, "v": v}


LAMB = Rule(
    "lamb", lamb, source="You et al. 2019 (LAMB), Algorithm 2",
    hypers=(
        LR(1e-3),
        Hyper("betas", (0.9, 0.999), Pair(BETA, BETA2), "(β1, β2): decay of the moment averages"),
        EPS(1e-6),
        WD(0.01),
        Hyper("bias_correction", True, Flag(), "divide m and v by 1 − β^t (Algorithm 2) or not"),
        Hyper("clamp_value", None, Real(0.0, lo_open=True, search=(1e-2, 100.0), log=True, edges=(None, 10.0, 1.0),
                                        enforced=(), optional=True),
              "γ_u of the scaling φ(z) = min(z, γ_u) of ‖θ‖ (None: φ(z) = z)"),
        Hyper("adam", False, Flag(), "no layer adaptation: the trust ratio is always 1"),
    ),
    buffers=lambda hp: ("exp_avg", "exp_avg_sq"),
    elementwise=False,
    decoupled_decay=True,   # λθ joins the update u, scaled by the trust ratio; it never enters the moments
)


MODERN_RULES = (LION, ADOPT, ADEMAMIX, ADAN, LAMB)
