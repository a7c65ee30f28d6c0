"""Rule variants: a rule of ``reference/rules.py`` with one of its conventions changed, as other libraries write it.

Where a library consistently differs from torch's rule by a convention — where ε goes, whether weight decay is
coupled to the gradient, where an accumulator starts — the conformance matrix (``optimizers/matrix.py``) checks it
against the variant that changes exactly that, so that the table can say "differs by convention X; conforms to
rule V". Each variant is a short pure function with its formula in its docstring, the change from the base rule
stated first; it takes the base rule's hyperparameters (torch's names) and its declaration derives from the base
rule's. Like every reference rule, a variant never calls the library it describes.
"""
from __future__ import annotations

import dataclasses

import torch

from reference.cancellation import cancelling
from reference.declarations import Rule
from reference.modern_rules import ADAN, ADEMAMIX, LAMB
from reference.rules import ADAMAX, ADAMW, RADAM, RMSPROP, SGD, radam
from reference.schedulefree_rules import SCHEDULEFREE_ADAMW, SCHEDULEFREE_SGD, average_weight, warmed_up


def _variant(base: Rule, update, name: str, source: str, **changes) -> Rule:
    """``base``'s declaration for ``update``: same hyperparameters and constraints; no torch class claims it."""
    return dataclasses.replace(base, name=name, update=update, source=source, torch_class=None,
                               base=base.base or base.name, **changes)


# ---- SGD with decoupled weight decay -------------------------------------------------------------------------------
def sgdw(θ, g, state, *, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """SGDW (Loshchilov & Hutter 2019, Algorithm 1 with the schedule multiplier folded into γ): sgd with the
    weight decay decoupled from the gradient — applied to θ, scaled by the learning rate, not fed to the momentum.

    g ← −g if maximize;  θ ← θ − γλθ
    if μ ≠ 0:  b_1 = g,  b_t = μ b_{t−1} + (1 − τ) g  (t > 1);   g ← g + μ b_t if nesterov else b_t
    θ ← θ − γ g
    """
    g = -g if maximize else g
    if weight_decay != 0:
        θ = θ - lr * weight_decay * θ
    if momentum != 0:
        b = g if "b" not in state else momentum * state["b"] + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        state = {"b": b}
    return θ - lr * g, state


SGDW = _variant(SGD, sgdw, "sgdw", "Loshchilov & Hutter 2019 (SGDW); sgd with decoupled weight decay",
                decoupled_decay=True)


# ---- RMSprop as TensorFlow writes it -------------------------------------------------------------------------------
def rmsprop_tf(θ, g, state, *, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    """RMSprop as TensorFlow (tf.compat.v1.train.RMSPropOptimizer) writes it: rmsprop with ε inside the square root,
    the square average starting at 1 instead of 0, and the learning rate applied inside the momentum buffer — the
    three always go together in TensorFlow-style implementations, so this variant changes them together.

    g ← −g if maximize;  g ← g + λθ;   v_0 = 1;   v_t = v_{t−1} + (1 − α)(g² − v_{t−1});   ṽ = v_t
    if centered:  ḡ_t = ḡ_{t−1} + (1 − α)(g − ḡ_{t−1});   ṽ = v_t − ḡ_t²
    if μ > 0:  b_t = μ b_{t−1} + γ g / √(ṽ + ε);  θ ← θ − b_t     else  θ ← θ − γ g / √(ṽ + ε)

    The averages are written in TensorFlow's order of operations (``ms += (g² − ms)(1 − ρ)``): the same values as
    α v + (1 − α) g², but with v₀ = 1 ≫ g² the subtraction cancels, and the tolerance model measures the rounding
    of this form, not of the other.
    """
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    v = state.get("v", torch.ones_like(θ))
    v = v + (1 - alpha) * (g * g - v)
    new_state = {"v": v}
    v_tilde = v
    if centered:
        g_ave = state.get("g_ave", torch.zeros_like(θ))
        g_ave = g_ave + (1 - alpha) * (g - g_ave)
        v_tilde = cancelling(v, g_ave * g_ave)
        new_state["g_ave"] = g_ave
    direction = g / torch.sqrt(v_tilde + eps)
    if momentum > 0:
        b = momentum * state.get("b", torch.zeros_like(θ)) + lr * direction
        new_state["b"] = b
        return θ - b, new_state
    return θ - lr * direction, new_state


RMSPROP_TF = _variant(RMSPROP, rmsprop_tf, "rmsprop_tf",
                      "TensorFlow's RMSPropOptimizer; rmsprop with ε inside √, v₀ = 1, lr inside the momentum buffer")

# ---- RAdam with decoupled weight decay, always -----------------------------------------------------------------------
def radam_decoupled(θ, g, state, *, lr, betas, eps, weight_decay, maximize):
    """RAdam as its authors' code (LiyuanLucasLiu/RAdam) applies weight decay: radam with the decay always decoupled,
    θ ← θ − γλθ, where torch's RAdam couples it (g ← g + λθ) unless decoupled_weight_decay=True.

    g ← −g if maximize;  θ ← θ − γλθ;  then radam's moments, rectification and step (reference/rules.py)
    """
    return radam(θ, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=True,
                 maximize=maximize)


RADAM_DECOUPLED = _variant(RADAM, radam_decoupled, "radam_decoupled",
                           "Liu et al. 2020, the authors' code; radam with decoupled weight decay",
                           hypers=tuple(h for h in RADAM.hypers if h.name != "decoupled_weight_decay"),
                           decoupled_decay=True)

# ---- AdamW with ε as a floor of the denominator ---------------------------------------------------------------------
def adamw_eps_floor(θ, g, state, *, lr, betas, eps, weight_decay, amsgrad, maximize):
    """AdamW with ε as a lower bound of √v̂ instead of a term added to it (heavyball's ``eps_sqrt``: the square root
    clamped at ε): adamw with the denominator max(√v̂, ε).

    g ← −g if maximize;  θ ← θ − γλθ;   m_t = β1 m_{t−1} + (1 − β1) g;   v_t = β2 v_{t−1} + (1 − β2) g²
    m̂ = m_t / (1 − β1^t);   v̂ = max(v^max_{t−1}, v_t) / (1 − β2^t) if amsgrad else v_t / (1 − β2^t)
    θ ← θ − γ m̂ / max(√v̂, ε)
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    θ = θ - lr * weight_decay * θ
    m = β1 * state.get("m", torch.zeros_like(θ)) + (1 - β1) * g
    v = β2 * state.get("v", torch.zeros_like(θ)) + (1 - β2) * g * g
    new_state = {"t": t, "m": m, "v": v}
    if amsgrad:
        new_state["v_max"] = v = torch.maximum(state.get("v_max", torch.zeros_like(θ)), v)
    denominator = torch.clamp(torch.sqrt(v / (1 - β2**t)), min=eps)
    return θ - lr * (m / (1 - β1**t)) / denominator, new_state


ADAMW_EPS_FLOOR = _variant(ADAMW, adamw_eps_floor, "adamw_eps_floor",
                           "heavyball's AdamW; adamw with ε as a floor of √v̂ (max(√v̂, ε)) instead of √v̂ + ε")


# ---- t counted per parameter group ---------------------------------------------------------------------------------
def count_step(state, **hp):
    """A step() without this parameter's gradient: its group's step count t advances; nothing else changes."""
    return {**state, "t": state.get("t", 0) + 1}


def count_schedulefree_step(state, *, lr, warmup_steps, r, weight_lr_power, **hp):
    """A step() without this parameter's gradient, in Schedule-Free: the group's t, lr_max and Σw advance as at any
    step (γ_t warmed up, lr_max_t = max(lr_max_{t−1}, γ_t), Σw += t^r lr_max_t^p); z, x and θ are untouched."""
    t = state.get("t", 0) + 1
    lr_max, weight_sum, _ = average_weight(state, t, warmed_up(lr, t, warmup_steps), r, weight_lr_power)
    return {**state, "t": t, "lr_max": lr_max, "weight_sum": weight_sum}


def _group_step(base: Rule, libraries: str, idle=count_step) -> Rule:
    """``base`` with its step count t kept per parameter group, as ``libraries`` keep it (``group['step'] += 1``
    once per step(), before the parameter loop): t advances at every step(), also at one where the parameter has
    no gradient (``idle``), so its bias corrections and schedules count steps it did not take. The update of a
    step with a gradient is ``base``'s, formula for formula."""
    def update(θ, g, state, **hp):
        return base.update(θ, g, state, **hp)

    update.__doc__ = (f"{base.name} with t the parameter group's step() count, advancing also at a step where this "
                      f"parameter has no gradient (θ and the rest of its state then unchanged).\n\n" + base.formula)
    return _variant(base, update, f"{base.name}_group_step", f"{libraries}; {base.name} with t counted per group",
                    idle=idle)


ADAMAX_GROUP_STEP = _group_step(ADAMAX, "pytorch-optimizer's AdaMax")
ADEMAMIX_GROUP_STEP = _group_step(ADEMAMIX, "pytorch-optimizer's AdEMAMix")
ADAN_GROUP_STEP = _group_step(ADAN, "the official Adan (sail-sg/Adan), timm's and pytorch-optimizer's Adan")
LAMB_GROUP_STEP = _group_step(LAMB, "timm's Lamb")
SCHEDULEFREE_SGD_GROUP_STEP = _group_step(SCHEDULEFREE_SGD, "the official schedulefree package",
                                          count_schedulefree_step)
SCHEDULEFREE_ADAMW_GROUP_STEP = _group_step(SCHEDULEFREE_ADAMW, "the official schedulefree package",
                                            count_schedulefree_step)

VARIANT_RULES = (SGDW, RMSPROP_TF, RADAM_DECOUPLED, ADAMW_EPS_FLOOR, ADAMAX_GROUP_STEP, ADEMAMIX_GROUP_STEP,
                 ADAN_GROUP_STEP, LAMB_GROUP_STEP, SCHEDULEFREE_SGD_GROUP_STEP, SCHEDULEFREE_ADAMW_GROUP_STEP)
