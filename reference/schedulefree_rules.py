"""Reference rules of Schedule-Free SGD and Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled",
Algorithm 1), with every detail the paper leaves open taken from the authors' official code, facebookresearch/
schedule_free (the ``schedulefree`` package, version 1.4.1), in its plain "reference" versions
``schedulefree/sgd_schedulefree_reference.py`` (``SGDScheduleFreeReference``) and
``schedulefree/adamw_schedulefree_reference.py`` (``AdamWScheduleFreeReference``) — read, never called.

Schedule-Free keeps three sequences: z (the base optimizer's iterate), x (a weighted average of z, the point to
evaluate) and y = (1 − β) z + β x (where the gradient is taken). In train mode — the mode ``step()`` requires —
the parameters hold y; ``optimizer.eval()`` swaps x in. So the rule's θ is y: the rule is fed g = ∇f(y_t) and
returns y_{t+1}; its state keeps z and x (x is what ``.eval()`` puts into the parameters).

Conventions, as the official code has them (line numbers of the 1.4.1 files):

* t counts steps from 1 (the code's k + 1, ``k = group['k']`` from 0, ``group['k'] = k+1`` after the step:
  sgd ref. :124, :177; adamw ref. :137, :198). The code counts the *group's* steps; here t counts this parameter's (as the other rules of the suite do): the two
  differ only for a parameter that missed a gradient while its group stepped.
* warm-up: γ_t = γ·t/W for t ≤ W (``k < warmup_steps``: sched = (k+1)/warmup_steps), else γ (sgd ref. :127-131;
  adamw ref. :143-149). γ is the group's lr at this step (a scheduler may change it).
* lr_max_t = max(γ_1, …, γ_t) of the warmed-up rates (the code's ``lr_max``, from −1: sgd ref. :137; adamw ref.
  :152). The average's weight is w_t = t^r · lr_max_t^p (p = weight_lr_power; sgd ref. :139, adamw ref. :154) —
  lr_max, not γ_t, and 0^0 = 1 as Python has it; c_{t+1} = w_t / Σ_{s≤t} w_s, and c = 0 while that sum is 0
  (``except ZeroDivisionError``: sgd ref. :142-145; adamw ref. :157-160).
* z_0 = x_0 = y_0 = θ_0 (all three cloned from p at the first step: sgd ref. :155-157; adamw ref. :170-173).
* SGD's weight decay λ is added to the gradient, evaluated at y (``grad.add_(y, alpha=weight_decay)``, sgd ref.
  :165): coupled, the gradient of λ/2‖y‖².
* AdamW's weight decay is decoupled and evaluated at y (``z.sub_(y, alpha=lr*decay)`` before the base step, with
  decay_at_z=False, the default: adamw ref. :182-183); v_t = β2 v_{t−1} + (1 − β2) g² with v_0 = 0, the bias
  correction 1 − β2^t inside the root and ε outside it (adamw ref. :148, :187); no first moment (β1 is only
  the interpolation β of y). The code's ``lr = max(group['lr'], eps)`` (adamw ref. :134) is dead: it is
  overwritten at :149 before any use.
* order: z steps, then x ← (1 − c) x + c z with the new z, then y from the new x and z (sgd ref. :168-174; adamw
  ref. :189-195).
"""
from __future__ import annotations

import torch

from reference.declarations import Choice, Hyper, Pair, Real, Rule
from reference.rules import BETA, BETA2, EPS, LR, WD


def average_weight(state, t, γ, r, weight_lr_power):
    """(lr_max_t, Σ_{s≤t} w_s, c_{t+1}) from the state before step t and the warmed-up rate γ_t."""
    lr_max = γ if t == 1 or γ > state["lr_max"] else state["lr_max"]
    if weight_lr_power == 0:
        lr_weight = 1.0                      # 0^0 = 1, as Python's ** has it
    elif lr_max == 0:
        lr_weight = 0.0
    else:
        lr_weight = lr_max**weight_lr_power
    weight = (t**r) * lr_weight if r != 0 else lr_weight
    weight_sum = state.get("weight_sum", 0.0) + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    return lr_max, weight_sum, c


def warmed_up(lr, t, warmup_steps):
    """γ_t = γ·t/W during the first W steps, γ after."""
    return lr * (t / warmup_steps) if t <= warmup_steps else lr


# ---- Schedule-Free SGD ------------------------------------------------------------------------------------------------
def schedulefree_sgd(θ, g, state, *, lr, momentum, weight_decay, warmup_steps, r, weight_lr_power):
    """Schedule-Free SGD (Defazio et al. 2024, "The Road Less Scheduled", Algorithm 1 with SGD as the base step;
    official code facebookresearch/schedule_free, schedulefree/sgd_schedulefree_reference.py). θ is y, the point
    the parameters hold in train mode; β = momentum.

    t = this parameter's step, from 1;  γ_t = γ t/W if t ≤ W (W = warmup_steps) else γ
    lr_max_t = max_{s≤t} γ_s;   w_t = t^r · lr_max_t^p (p = weight_lr_power);   c = w_t / Σ_{s≤t} w_s (0 if Σ = 0)
    z_0 = x_0 = θ_0
    z_t = z_{t−1} − γ_t (g + λθ)                    (decay at y = θ, added to the gradient)
    x_t = (1 − c) x_{t−1} + c z_t
    θ ← y_t = (1 − β) z_t + β x_t
    """
    t = state.get("t", 0) + 1
    γ = warmed_up(lr, t, warmup_steps)
    lr_max, weight_sum, c = average_weight(state, t, γ, r, weight_lr_power)
    z, x = state.get("z", θ), state.get("x", θ)
    if weight_decay != 0:
        g = g + weight_decay * θ
    z = z - γ * g
    x = (1 - c) * x + c * z
    y = (1 - momentum) * z + momentum * x
    return y, {"t": t, "lr_max": lr_max, "weight_sum": weight_sum, "z": z, "x": x}


#: β of y's interpolation: the official code requires 0 < momentum < 1 (ValueError otherwise)
MOMENTUM = Real(0.0, 1.0, lo_open=True, hi_open=True, search=(1e-3, 0.999), edges=(0.9, 0.5, 0.99),
                enforced=("lo", "hi"))
#: the schedule-free hyperparameters both rules share, as the official code names them
WARMUP = Hyper("warmup_steps", 0, Choice((0, 1, 2, 3, 5)), "W: γ_t = γ t/W for the first W steps (linear warm-up)")
POWER_R = Hyper("r", 0.0, Real(0.0, search=(0.0, 2.0), edges=(0.0, 1.0, 2.0), enforced=()),
                "r: the average's weights grow as t^r (polynomial weighting)")
WEIGHT_LR_POWER = Hyper("weight_lr_power", 2.0, Real(0.0, search=(0.0, 4.0), edges=(2.0, 0.0, 1.0), enforced=()),
                        "p: the average's weights are lr_max_t^p")

SCHEDULEFREE_SGD = Rule(
    "schedulefree_sgd", schedulefree_sgd,
    source="Defazio et al. 2024 (The Road Less Scheduled), Algorithm 1; official code facebookresearch/"
           "schedule_free, sgd_schedulefree_reference.py (schedulefree 1.4.1)",
    hypers=(
        LR(1.0),
        Hyper("momentum", 0.9, MOMENTUM, "β: y = (1 − β) z + β x"),
        WD(),
        WARMUP, POWER_R, WEIGHT_LR_POWER,
    ),
    buffers=lambda hp: ("z", "x"),
)


# ---- Schedule-Free AdamW ----------------------------------------------------------------------------------------------
def schedulefree_adamw(θ, g, state, *, lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power):
    """Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled", Algorithm 1 with Adam's normalisation as
    the base step; official code facebookresearch/schedule_free, schedulefree/adamw_schedulefree_reference.py). θ is
    y, the point the parameters hold in train mode; β1 is the interpolation β of y (there is no first moment).

    t = this parameter's step, from 1;  γ_t = γ t/W if t ≤ W (W = warmup_steps) else γ
    lr_max_t = max_{s≤t} γ_s;   w_t = t^r · lr_max_t^p (p = weight_lr_power);   c = w_t / Σ_{s≤t} w_s (0 if Σ = 0)
    z_0 = x_0 = θ_0;   v_0 = 0
    v_t = β2 v_{t−1} + (1 − β2) g²;   d = √(v_t / (1 − β2^t)) + ε
    z_t = z_{t−1} − γ_t λ θ − γ_t g / d            (decoupled decay, at y = θ)
    x_t = (1 − c) x_{t−1} + c z_t
    θ ← y_t = (1 − β1) z_t + β1 x_t
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    γ = warmed_up(lr, t, warmup_steps)
    lr_max, weight_sum, c = average_weight(state, t, γ, r, weight_lr_power)
    z, x = state.get("z", θ), state.get("x", θ)
    v = β2 * state.get("v", torch.zeros_like(θ)) + (1 - β2) * g * g
    d = torch.sqrt(v / (1 - β2**t)) + eps
    if weight_decay != 0:
        z = z - γ * weight_decay * θ
    z = z - γ * g / d
    x = (1 - c) * x + c * z
    y = (1 - β1) * z + β1 * x
    return y, {"t": t, "lr_max": lr_max, "weight_sum": weight_sum, "z": z, "v": v, "x": x}


SCHEDULEFREE_ADAMW = Rule(
    "schedulefree_adamw", schedulefree_adamw,
    source="Defazio et al. 2024 (The Road Less Scheduled), Algorithm 1; official code facebookresearch/"
           "schedule_free, adamw_schedulefree_reference.py (schedulefree 1.4.1)",
    hypers=(
        LR(0.0025),
        Hyper("betas", (0.9, 0.999), Pair(BETA, BETA2), "(β1, β2): the interpolation β of y, the decay of v"),
        EPS(1e-8), WD(),
        WARMUP, POWER_R, WEIGHT_LR_POWER,
    ),
    buffers=lambda hp: ("z", "exp_avg_sq", "x"),
    decoupled_decay=True,   # λ y is subtracted from z scaled by γ only, never normalised by √v
)


SCHEDULEFREE_RULES = (SCHEDULEFREE_SGD, SCHEDULEFREE_ADAMW)
