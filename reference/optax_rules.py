"""optax's own update rules, where optax implements a different rule from torch's under the same name, written from
optax's documentation and source (optax 0.2.8: ``optax/_src/alias.py`` ``rmsprop`` and ``adagrad``, and the
transformations they chain in ``optax/_src/transform.py`` and ``optax/transforms/_accumulation.py``) — never by
calling optax.

Names are optax's (``decay``, ``initial_scale``, ``eps_in_sqrt``, ...), but for the learning rate, which is the
suite's ``lr`` (scheduled between steps as everywhere). γ_t is the learning rate at step t, t counts from 1.
Where they differ from torch's rules (``reference/rules.py``), the docstring says how.
"""
from __future__ import annotations

import torch

from reference.cancellation import cancelling
from reference.declarations import Constraint, Flag, Hyper, Real, Rule

SOURCE = "optax 0.2.8 documentation and source, optax/_src/alias.py"


# optax checks no hyperparameter's range (optax.adam(-1.0) ascends), so nothing here is declared ``enforced``.
def LR(default: float) -> Hyper:
    return Hyper("lr", default, Real(0.0, search=(1e-5, 10.0), log=True, edges=(0.0, default), enforced=()),
                 "learning rate γ (optax's learning_rate); changed between steps as a scheduler does", scheduled=True)


def EPS(default: float, where: str) -> Hyper:
    return Hyper("eps", default, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(default, 0.0, 1e-12, 1e-1),
                                      enforced=()), f"ε, {where}")


def optax_rmsprop(θ, g, state, *, lr, decay, eps, initial_scale, eps_in_sqrt, centered, momentum, nesterov,
                  bias_correction):
    """optax.rmsprop: chain(scale_by_rms | scale_by_stddev, scale_by_learning_rate, trace).

    ν_0 = s (initial_scale), μ_0 = 0;   ν_t = ρ ν_{t−1} + (1 − ρ) g²;   μ_t = ρ μ_{t−1} + (1 − ρ) g (centered)
    ν̂, μ̂ = ν_t / (1 − ρ^t), μ_t / (1 − ρ^t) if bias_correction else ν_t, μ_t;   d = ν̂ − μ̂² if centered else ν̂
    u = −γ_t g / √(d + ε) if eps_in_sqrt else −γ_t g / (√d + ε)
    momentum β > 0:  b_t = u + β b_{t−1} (b_0 = 0);   u ← u + β b_t if nesterov else b_t
    θ ← θ + u
    Unlike torch's rmsprop: ε inside the root by default; ρ defaults to 0.9 (torch's α to 0.99); the learning rate
    scales *before* the momentum trace, so b sums γ-scaled steps (torch sums unscaled ones and multiplies by the
    current γ: the two agree only while γ is constant).
    """
    t = state.get("t", 0) + 1
    nu = decay * state.get("nu", torch.full_like(θ, initial_scale)) + (1 - decay) * g * g
    new_state = {"t": t, "nu": nu}
    nu_hat = nu / (1 - decay**t) if bias_correction else nu
    d = nu_hat
    if centered:
        mu = decay * state.get("mu", torch.zeros_like(θ)) + (1 - decay) * g
        new_state["mu"] = mu
        mu_hat = mu / (1 - decay**t) if bias_correction else mu
        d = cancelling(nu_hat, mu_hat * mu_hat)   # a variance that rounding may leave at ±residue
    u = -lr * g * (torch.rsqrt(d + eps) if eps_in_sqrt else 1 / (torch.sqrt(d) + eps))
    if momentum > 0:
        b = u + momentum * state.get("b", torch.zeros_like(θ))
        new_state["b"] = b
        u = u + momentum * b if nesterov else b
    return θ + u, new_state


def _decay_below_one(hp):
    return {**hp, "decay": min(hp["decay"], 0.9999)}


OPTAX_RMSPROP = Rule(
    "optax_rmsprop", optax_rmsprop, source=SOURCE + " rmsprop; Hinton, lecture 6; Graves 2013", base="rmsprop",
    hypers=(
        LR(1e-2),
        Hyper("decay", 0.9, Real(0.0, 1.0, search=(0.0, 0.9999), edges=(0.9, 0.0, 0.99), enforced=()),
              "ρ, decay of the averages of g² (and of g, centered)"),
        EPS(1e-8, "inside the square root unless eps_in_sqrt is False"),
        Hyper("initial_scale", 0.0, Real(0.0, search=(1e-3, 10.0), log=True, edges=(0.0, 1.0), enforced=()),
              "s, the starting value of ν (optax: PyTorch uses 0, TF1 uses 1)"),
        Hyper("eps_in_sqrt", True, Flag(), "ε inside the square root (True, optax's default) or outside (torch's)"),
        Hyper("centered", False, Flag(), "normalise by the estimated variance ν − μ²"),
        Hyper("momentum", 0.0, Real(0.0, search=(0.0, 0.999), edges=(0.0, 0.9), enforced=()),
              "β of the trace of γ-scaled steps (optax: None for none, here 0)"),
        Hyper("nesterov", False, Flag(), "Nesterov form of the trace (no effect without momentum)"),
        Hyper("bias_correction", False, Flag(), "divide ν (and μ) by 1 − ρ^t"),
    ),
    constraints=(
        Constraint("bias_correction needs decay < 1 (1 − ρ^t = 0 otherwise)",
                   holds=lambda hp: not hp["bias_correction"] or hp["decay"] < 1,
                   repair=_decay_below_one, enforced=False),
    ),
    buffers=lambda hp: ("nu",) + (("mu",) if hp["centered"] else ()) + (("trace",) if hp["momentum"] > 0 else ()),
)


def optax_adagrad(θ, g, state, *, lr, initial_accumulator_value, eps):
    """optax.adagrad: chain(scale_by_rss, scale_by_learning_rate).

    s_0 = τ (initial_accumulator_value);   s_t = s_{t−1} + g²
    θ ← θ − γ_t g / √(s_t + ε) where s_t > 0;  θ unchanged where s_t = 0
    Unlike torch's adagrad: ε inside the square root (torch: γ g / (√s_t + ε)), τ defaults to 0.1 (torch: 0),
    ε to 1e-7 (torch: 1e-10); no learning-rate decay nor weight decay.
    """
    s = state.get("sum", torch.full_like(θ, initial_accumulator_value)) + g * g
    # s_t = 0 only where τ = 0 and every gradient so far was 0, so g = 0: optax's where() makes 0/√ε a plain 0
    # also when ε = 0
    scale = torch.where(s > 0, torch.rsqrt(s + eps), torch.zeros_like(s))
    return θ - lr * g * scale, {"sum": s}


OPTAX_ADAGRAD = Rule(
    "optax_adagrad", optax_adagrad, source=SOURCE + " adagrad; Duchi et al. 2011",
    hypers=(
        LR(1e-2),
        Hyper("initial_accumulator_value", 0.1, Real(0.0, search=(1e-3, 10.0), log=True, edges=(0.1, 0.0),
                                                     enforced=()),
              "τ, the accumulator's starting value"),
        EPS(1e-7, "inside the square root"),
    ),
    buffers=lambda hp: ("sum_of_squares",),
)

def optax_radam(θ, g, state, *, lr, b1, b2, eps, eps_root, threshold):
    """optax.radam: chain(scale_by_radam, scale_by_learning_rate).

    m_t = β1 m_{t−1} + (1 − β1) g;   v_t = β2 v_{t−1} + (1 − β2) g²;   m̂ = m_t / (1 − β1^t);   v̂ = v_t / (1 − β2^t)
    ρ_∞ = 2 / (1 − β2) − 1;   ρ_t = ρ_∞ − 2t β2^t / (1 − β2^t)
    if ρ_t ≥ τ (threshold):  r_t = √((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t));   θ ← θ − γ_t r_t m̂ / (√(v̂ + ε_root) + ε)
    else:                    θ ← θ − γ_t m̂
    Unlike torch's radam: ε is added to the bias-corrected √v̂ (torch adds it to √v_t and multiplies by
    √(1 − β2^t)), the rectification threshold is a hyperparameter compared with ≥ (torch: ρ_t > 5), and there is
    no weight decay.
    """
    t = state.get("t", 0) + 1
    m = b1 * state.get("m", torch.zeros_like(θ)) + (1 - b1) * g
    v = b2 * state.get("v", torch.zeros_like(θ)) + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    ρ_inf = 2 / (1 - b2) - 1
    ρ_t = ρ_inf - 2 * t * b2**t / (1 - b2**t)
    new_state = {"t": t, "m": m, "v": v}
    if ρ_t >= threshold:
        r_t = ((ρ_t - 4) * (ρ_t - 2) * ρ_inf / ((ρ_inf - 4) * (ρ_inf - 2) * ρ_t)) ** 0.5
        return θ - lr * r_t * m_hat / (torch.sqrt(v_hat + eps_root) + eps), new_state
    return θ - lr * m_hat, new_state


OPTAX_RADAM = Rule(
    "optax_radam", optax_radam, source=SOURCE + " radam, transform.py scale_by_radam; Liu et al. 2020",
    hypers=(
        LR(1e-3),
        Hyper("b1", 0.9, Real(0.0, 1.0, hi_open=True, search=(0.0, 0.999), edges=(0.9, 0.0), enforced=()),
              "β1, the first moment's decay"),
        Hyper("b2", 0.999, Real(0.0, 1.0, lo_open=True, hi_open=True, search=(0.5, 0.9999), edges=(0.999, 0.9999),
                                enforced=()), "β2, the second moment's decay"),
        EPS(1e-8, "added to √v̂"),
        Hyper("eps_root", 0.0, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(0.0,), enforced=()),
              "ε_root, added to v̂ inside the square root"),
        Hyper("threshold", 5.0, Real(4.0, search=(4.0, 10.0), edges=(5.0, 4.0), enforced=()),
              "τ: the rectified step once ρ_t ≥ τ (the rectification term needs ρ_t ≥ 4)"),
    ),
    buffers=lambda hp: ("mu", "nu"),
)

OPTAX_RULES = (OPTAX_RMSPROP, OPTAX_ADAGRAD, OPTAX_RADAM)
