"""Reference update rules, one per torch.optim class, written from the pseudo-code in torch.optim's documentation
and the papers it cites — never by calling torch.optim.

Each rule is a pure function ``rule(θ, g, state, **hyperparameters) -> (θ, state)`` on float64 tensors, with its
formula in its docstring in the notation of the documentation (γ lr, λ weight decay, t the step count, starting
at 1). ``maximize`` negates the gradient before anything else, as the documented SGD, Adam and AdamW algorithms
write it; torch's other classes, whose pseudo-code omits ``maximize``, take the same convention.
Each function is followed by its declaration: hyperparameters (valid domain, searched range, edges) and the
combinations the rule does not define.
"""
from __future__ import annotations

import math

import torch

from reference.cancellation import cancelling
from reference.declarations import Choice, Constraint, Flag, Hyper, Pair, Real, Rule


# ---- shared hyperparameter declarations --------------------------------------------------------------------------
def LR(default: float) -> Hyper:
    return Hyper("lr", default, Real(0.0, search=(1e-5, 10.0), log=True, edges=(0.0, default)),
                 "learning rate γ; changed between steps as a scheduler does", scheduled=True)


def EPS(default: float) -> Hyper:
    return Hyper("eps", default, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(default, 0.0, 1e-12, 1e-1)),
                 "ε, added to the denominator")


def WD(default: float = 0.0) -> Hyper:
    return Hyper("weight_decay", default, Real(0.0, search=(1e-4, 10.0), log=True, edges=(0.0, default, 1.0)),
                 "weight decay λ")


MAXIMIZE = Hyper("maximize", False, Flag(), "ascend instead of descend: g ← −∇f")
BETA = Real(0.0, 1.0, hi_open=True, search=(0.0, 0.999), edges=(0.0, 0.9, 0.5), enforced=("lo", "hi"))
BETA2 = Real(0.0, 1.0, hi_open=True, search=(0.0, 0.9999), edges=(0.999, 0.0, 0.9999), enforced=("lo", "hi"))


def BETAS(default=(0.9, 0.999)) -> Hyper:
    return Hyper("betas", default, Pair(BETA, BETA2), "(β1, β2): decay of the first and second moment averages")


def _zeros(θ):
    return torch.zeros_like(θ)


# ---- SGD -----------------------------------------------------------------------------------------------------------
def sgd(θ, g, state, *, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """SGD with momentum μ, dampening τ, Nesterov (torch.optim.SGD documentation).

    g ← −g if maximize;  g ← g + λθ;
    if μ ≠ 0:  b_1 = g,  b_t = μ b_{t−1} + (1 − τ) g  (t > 1);   g ← g + μ b_t if nesterov else b_t
    θ ← θ − γ g
    """
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    if momentum != 0:
        b = g if "b" not in state else momentum * state["b"] + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        state = {"b": b}
    return θ - lr * g, state


def _nesterov_repair(hp):
    if hp["nesterov"]:
        return {**hp, "dampening": 0.0, "momentum": hp["momentum"] if hp["momentum"] > 0 else 0.9}
    return hp


SGD = Rule(
    "sgd", sgd, source="torch.optim.SGD documentation; Sutskever et al. 2013 for Nesterov", torch_class="SGD",
    hypers=(
        LR(1e-3),
        Hyper("momentum", 0.0, Real(0.0, search=(0.0, 0.999), edges=(0.0, 0.9, 1.0)), "momentum factor μ"),
        Hyper("dampening", 0.0, Real(0.0, 1.0, search=(0.0, 1.0), edges=(0.0, 0.5, 1.0), enforced=()),
              "dampening τ of the momentum buffer (not applied on its first step)"),
        WD(),
        Hyper("nesterov", False, Flag(), "Nesterov momentum"),
        MAXIMIZE,
    ),
    constraints=(
        Constraint("nesterov needs momentum > 0 and dampening = 0",
                   holds=lambda hp: not hp["nesterov"] or (hp["momentum"] > 0 and hp["dampening"] == 0),
                   repair=_nesterov_repair,
                   violations=lambda hp: [{**hp, "nesterov": True, "momentum": 0.0, "dampening": 0.0},
                                          {**hp, "nesterov": True, "momentum": 0.9, "dampening": 0.5}]),
    ),
    buffers=lambda hp: ("momentum_buffer",) if hp["momentum"] != 0 else (),
)


# ---- Adam / AdamW --------------------------------------------------------------------------------------------------
def adam(θ, g, state, *, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=False):
    """Adam (Kingma & Ba 2015; torch.optim.Adam documentation), AMSGrad (Reddi et al. 2018).

    g ← −g if maximize;  g ← g + λθ (coupled L2)  or  θ ← θ − γλθ (decoupled, as AdamW)
    m_t = β1 m_{t−1} + (1 − β1) g;   v_t = β2 v_{t−1} + (1 − β2) g²;   m̂ = m_t / (1 − β1^t)
    v̂ = max(v^max_{t−1}, v_t) / (1 − β2^t) if amsgrad else v_t / (1 − β2^t)
    θ ← θ − γ m̂ / (√v̂ + ε)
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled_weight_decay:
            θ = θ - lr * weight_decay * θ
        else:
            g = g + weight_decay * θ
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * g * g
    m_hat = m / (1 - β1**t)
    new_state = {"t": t, "m": m, "v": v}
    if amsgrad:
        v_max = torch.maximum(state.get("v_max", _zeros(θ)), v)
        v_hat = v_max / (1 - β2**t)
        new_state["v_max"] = v_max
    else:
        v_hat = v / (1 - β2**t)
    return θ - lr * m_hat / (torch.sqrt(v_hat) + eps), new_state


def adamw(θ, g, state, *, lr, betas, eps, weight_decay, amsgrad, maximize):
    """AdamW (Loshchilov & Hutter 2019; torch.optim.AdamW documentation): Adam with decoupled weight decay.

    θ ← θ − γλθ;  then Adam's moment updates and θ ← θ − γ m̂ / (√v̂ + ε), with g ← −g if maximize
    """
    return adam(θ, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                maximize=maximize, decoupled_weight_decay=True)


def _adam_buffers(hp):
    return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if hp["amsgrad"] else ())


_ADAM_COMMON = (EPS(1e-8), Hyper("amsgrad", False, Flag(), "AMSGrad: use the running maximum of v"), MAXIMIZE)
ADAM = Rule(
    "adam", adam, source="torch.optim.Adam documentation; Kingma & Ba 2015; Reddi et al. 2018",
    torch_class="Adam",
    hypers=(LR(1e-3), BETAS(), WD(), *_ADAM_COMMON,
            Hyper("decoupled_weight_decay", False, Flag(), "apply weight decay to θ as AdamW does")),
    buffers=_adam_buffers,
)
ADAMW = Rule(
    "adamw", adamw, source="torch.optim.AdamW documentation; Loshchilov & Hutter 2019", torch_class="AdamW",
    hypers=(LR(1e-3), BETAS(), WD(1e-2), *_ADAM_COMMON),
    buffers=_adam_buffers,
    decoupled_decay=True,
)


# ---- RMSprop -------------------------------------------------------------------------------------------------------
def rmsprop(θ, g, state, *, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    """RMSprop (Hinton's lecture 6; centered form from Graves 2013; torch.optim.RMSprop documentation).

    g ← −g if maximize;  g ← g + λθ;   v_t = α v_{t−1} + (1 − α) g²;   ṽ = v_t
    if centered:  ḡ_t = α ḡ_{t−1} + (1 − α) g;   ṽ = v_t − ḡ_t²
    if μ > 0:  b_t = μ b_{t−1} + g / (√ṽ + ε);  θ ← θ − γ b_t     else  θ ← θ − γ g / (√ṽ + ε)
    """
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    v = alpha * state.get("v", _zeros(θ)) + (1 - alpha) * g * g
    new_state = {"v": v}
    v_tilde = v
    if centered:
        g_ave = alpha * state.get("g_ave", _zeros(θ)) + (1 - alpha) * g
        v_tilde = cancelling(v, g_ave * g_ave)
        new_state["g_ave"] = g_ave
    direction = g / (torch.sqrt(v_tilde) + eps)
    if momentum > 0:
        b = momentum * state.get("b", _zeros(θ)) + direction
        new_state["b"] = b
        return θ - lr * b, new_state
    return θ - lr * direction, new_state


RMSPROP = Rule(
    "rmsprop", rmsprop, source="torch.optim.RMSprop documentation; Hinton, lecture 6; Graves 2013",
    torch_class="RMSprop",
    hypers=(
        LR(1e-2),
        Hyper("alpha", 0.99, Real(0.0, 1.0, search=(0.0, 0.9999), edges=(0.99, 0.0, 0.9)), "smoothing constant α"),
        EPS(1e-8), WD(),
        Hyper("momentum", 0.0, Real(0.0, search=(0.0, 0.999), edges=(0.0, 0.9)), "momentum factor μ"),
        Hyper("centered", False, Flag(), "normalise by the estimated variance instead of the second moment"),
        MAXIMIZE,
    ),
    buffers=lambda hp: ("square_avg",) + (("momentum_buffer",) if hp["momentum"] > 0 else ())
    + (("grad_avg",) if hp["centered"] else ()),
)


# ---- Adagrad -------------------------------------------------------------------------------------------------------
def adagrad(θ, g, state, *, lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize):
    """Adagrad (Duchi et al. 2011; torch.optim.Adagrad documentation).

    g ← −g if maximize;  γ̃ = γ / (1 + (t − 1) η);   g ← g + λθ
    s_0 = τ (initial accumulator value);   s_t = s_{t−1} + g²;   θ ← θ − γ̃ g / (√s_t + ε)
    """
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    lr_t = lr / (1 + (t - 1) * lr_decay)
    if weight_decay != 0:
        g = g + weight_decay * θ
    s = state.get("sum", torch.full_like(θ, initial_accumulator_value)) + g * g
    return θ - lr_t * g / (torch.sqrt(s) + eps), {"t": t, "sum": s}


ADAGRAD = Rule(
    "adagrad", adagrad, source="torch.optim.Adagrad documentation; Duchi et al. 2011", torch_class="Adagrad",
    hypers=(
        LR(1e-2),
        Hyper("lr_decay", 0.0, Real(0.0, search=(1e-4, 1.0), log=True, edges=(0.0,)), "learning-rate decay η"),
        WD(),
        Hyper("initial_accumulator_value", 0.0, Real(0.0, search=(1e-3, 10.0), log=True, edges=(0.0, 0.1)),
              "τ, the accumulator's starting value"),
        EPS(1e-10), MAXIMIZE,
    ),
    buffers=lambda hp: ("sum",),
)


# ---- Adadelta ------------------------------------------------------------------------------------------------------
def adadelta(θ, g, state, *, lr, rho, eps, weight_decay, maximize):
    """Adadelta (Zeiler 2012; torch.optim.Adadelta documentation).

    g ← −g if maximize;  g ← g + λθ;   v_t = ρ v_{t−1} + (1 − ρ) g²
    Δx = √(u_{t−1} + ε) / √(v_t + ε) · g;   u_t = ρ u_{t−1} + (1 − ρ) Δx²;   θ ← θ − γ Δx
    """
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    v = rho * state.get("v", _zeros(θ)) + (1 - rho) * g * g
    u = state.get("u", _zeros(θ))
    dx = torch.sqrt(u + eps) / torch.sqrt(v + eps) * g
    u = rho * u + (1 - rho) * dx * dx
    return θ - lr * dx, {"v": v, "u": u}


ADADELTA = Rule(
    "adadelta", adadelta, source="torch.optim.Adadelta documentation; Zeiler 2012", torch_class="Adadelta",
    hypers=(
        LR(1.0),
        Hyper("rho", 0.9, Real(0.0, 1.0, search=(0.0, 1.0), edges=(0.9, 0.0, 1.0), enforced=("lo", "hi")),
              "decay ρ of the running averages"),
        Hyper("eps", 1e-6, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(1e-6, 1e-12, 1e-1)),
              "ε inside both square roots (ε = 0 leaves 0/0 on the first step)"),
        WD(), MAXIMIZE,
    ),
    buffers=lambda hp: ("square_avg", "acc_delta"),
)


# ---- Adamax --------------------------------------------------------------------------------------------------------
def adamax(θ, g, state, *, lr, betas, eps, weight_decay, maximize):
    """Adamax (Kingma & Ba 2015, §7.1; torch.optim.Adamax documentation).

    g ← −g if maximize;  g ← g + λθ;   m_t = β1 m_{t−1} + (1 − β1) g;   u_t = max(β2 u_{t−1}, |g| + ε)
    θ ← θ − γ m_t / ((1 − β1^t) u_t)
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    u = torch.maximum(β2 * state.get("u", _zeros(θ)), torch.abs(g) + eps)
    return θ - lr * m / ((1 - β1**t) * u), {"t": t, "m": m, "u": u}


ADAMAX = Rule(
    "adamax", adamax, source="torch.optim.Adamax documentation; Kingma & Ba 2015 §7.1", torch_class="Adamax",
    hypers=(LR(2e-3), BETAS(), EPS(1e-8), WD(), MAXIMIZE),
    buffers=lambda hp: ("exp_avg", "exp_inf"),
)


# ---- NAdam ---------------------------------------------------------------------------------------------------------
def nadam(θ, g, state, *, lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize):
    """NAdam (Dozat 2016; torch.optim.NAdam documentation), momentum decay ψ.

    g ← −g if maximize;  θ ← θ − γλθ (decoupled)  or  g ← g + λθ
    μ_t = β1 (1 − ½ 0.96^{tψ});   μ_{t+1} = β1 (1 − ½ 0.96^{(t+1)ψ})
    m_t = β1 m_{t−1} + (1 − β1) g;   v_t = β2 v_{t−1} + (1 − β2) g²
    m̂ = μ_{t+1} m_t / (1 − ∏_{i≤t+1} μ_i) + (1 − μ_t) g / (1 − ∏_{i≤t} μ_i);   v̂ = v_t / (1 − β2^t)
    θ ← θ − γ m̂ / (√v̂ + ε)
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled_weight_decay:
            θ = θ - lr * weight_decay * θ
        else:
            g = g + weight_decay * θ
    μ_t = β1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    μ_next = β1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    μ_product = state.get("mu_product", 1.0) * μ_t
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * g * g
    m_hat = μ_next * m / (1 - μ_product * μ_next) + (1 - μ_t) * g / (1 - μ_product)
    v_hat = v / (1 - β2**t)
    return θ - lr * m_hat / (torch.sqrt(v_hat) + eps), {"t": t, "mu_product": μ_product, "m": m, "v": v}


NADAM = Rule(
    "nadam", nadam, source="torch.optim.NAdam documentation; Dozat 2016", torch_class="NAdam",
    hypers=(
        LR(2e-3), BETAS(), EPS(1e-8), WD(),
        Hyper("momentum_decay", 4e-3, Real(0.0, search=(1e-4, 1e-1), log=True, edges=(4e-3, 0.0)),
              "momentum decay ψ"),
        Hyper("decoupled_weight_decay", False, Flag(), "apply weight decay to θ as AdamW does"),
        MAXIMIZE,
    ),
    buffers=lambda hp: ("exp_avg", "exp_avg_sq"),
)


# ---- RAdam ---------------------------------------------------------------------------------------------------------
def radam(θ, g, state, *, lr, betas, eps, weight_decay, decoupled_weight_decay, maximize):
    """RAdam (Liu et al. 2020; torch.optim.RAdam documentation).

    g ← −g if maximize;  θ ← θ − γλθ (decoupled)  or  g ← g + λθ
    m_t, v_t as Adam;  m̂ = m_t / (1 − β1^t);   ρ_∞ = 2 / (1 − β2) − 1;   ρ_t = ρ_∞ − 2t β2^t / (1 − β2^t)
    if ρ_t > 5:  l_t = √(1 − β2^t) / (√v_t + ε);  r_t = √((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t));
                 θ ← θ − γ m̂ r_t l_t
    else:        θ ← θ − γ m̂
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled_weight_decay:
            θ = θ - lr * weight_decay * θ
        else:
            g = g + weight_decay * θ
    m = β1 * state.get("m", _zeros(θ)) + (1 - β1) * g
    v = β2 * state.get("v", _zeros(θ)) + (1 - β2) * g * g
    m_hat = m / (1 - β1**t)
    ρ_inf = 2 / (1 - β2) - 1
    ρ_t = ρ_inf - 2 * t * β2**t / (1 - β2**t)
    new_state = {"t": t, "m": m, "v": v}
    if ρ_t > 5:
        l_t = (1 - β2**t) ** 0.5 / (torch.sqrt(v) + eps)
        r_t = ((ρ_t - 4) * (ρ_t - 2) * ρ_inf / ((ρ_inf - 4) * (ρ_inf - 2) * ρ_t)) ** 0.5
        return θ - lr * m_hat * r_t * l_t, new_state
    return θ - lr * m_hat, new_state


RADAM = Rule(
    "radam", radam, source="torch.optim.RAdam documentation; Liu et al. 2020", torch_class="RAdam",
    hypers=(LR(1e-3), BETAS(), EPS(1e-8), WD(),
            Hyper("decoupled_weight_decay", False, Flag(), "apply weight decay to θ as AdamW does"), MAXIMIZE),
    buffers=lambda hp: ("exp_avg", "exp_avg_sq"),
)


# ---- ASGD ----------------------------------------------------------------------------------------------------------
def asgd(θ, g, state, *, lr, lambd, alpha, t0, weight_decay, maximize):
    """Averaged SGD (Polyak & Juditsky 1992) with the step-size schedule of Bottou's "Stochastic Gradient Descent
    Tricks" (2012), as torch.optim.ASGD applies it (its documentation gives no pseudo-code).

    g ← −g if maximize;  g ← g + λ_wd θ;   η_1 = γ,  μ_1 = 1 (set when the state is created)
    θ ← (1 − λ η_t) θ − η_t g;   ā ← ā + μ_t (θ − ā)  (ā ← θ while μ_t = 1)
    η_{t+1} = γ / (1 + λ γ t)^α;   μ_{t+1} = 1 / max(1, t − t0)
    """
    t = state.get("t", 0) + 1
    η, μ = state.get("eta", lr), state.get("mu", 1.0)
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * θ
    θ = (1 - lambd * η) * θ - η * g
    ax = θ.clone() if μ == 1 else state["ax"] + μ * (θ - state["ax"])
    return θ, {"t": t, "eta": lr / (1 + lambd * lr * t) ** alpha, "mu": 1 / max(1, t - t0), "ax": ax}


ASGD = Rule(
    "asgd", asgd, source="torch.optim.ASGD source and docstring; Polyak & Juditsky 1992; Bottou 2012",
    torch_class="ASGD",
    hypers=(
        LR(1e-2),
        Hyper("lambd", 1e-4, Real(0.0, search=(1e-6, 1.0), log=True, edges=(1e-4, 0.0), enforced=()),
              "decay term λ"),
        Hyper("alpha", 0.75, Real(0.0, search=(0.0, 2.0), edges=(0.75, 0.0, 1.0), enforced=()),
              "power α of the step-size schedule"),
        Hyper("t0", 1e6, Real(0.0, search=(0.0, 30.0), edges=(1e6, 0.0, 3.0), enforced=()),
              "step at which averaging starts"),
        WD(), MAXIMIZE,
    ),
    buffers=lambda hp: ("ax",),
)


# ---- Rprop ---------------------------------------------------------------------------------------------------------
def rprop(θ, g, state, *, lr, etas, step_sizes, maximize):
    """Rprop (Riedmiller & Braun 1993; torch.optim.Rprop documentation), per element i:

    g ← −g if maximize;  η_0 = γ,  g_prev = 0 (set when the state is created)
    g_prev g > 0:  η_t = min(η_{t−1} η₊, Γ_max)
    g_prev g < 0:  η_t = max(η_{t−1} η₋, Γ_min),  g ← 0
    otherwise:     η_t = η_{t−1}
    θ ← θ − η_t sign(g);   g_prev ← g
    """
    (eta_minus, eta_plus), (step_min, step_max) = etas, step_sizes
    g = -g if maximize else g
    prev, η = state.get("prev", _zeros(θ)), state.get("step_size", torch.full_like(θ, lr))
    agree = prev * g
    η = torch.where(agree > 0, torch.clamp(η * eta_plus, max=step_max),
                    torch.where(agree < 0, torch.clamp(η * eta_minus, min=step_min), η))
    g = torch.where(agree < 0, torch.zeros_like(g), g)
    return θ - η * torch.sign(g), {"prev": g, "step_size": η}


RPROP = Rule(
    "rprop", rprop, source="torch.optim.Rprop documentation; Riedmiller & Braun 1993", torch_class="Rprop",
    hypers=(
        Hyper("lr", 1e-2, Real(0.0, search=(1e-5, 1.0), log=True, edges=(1e-2,)),
              "initial step size η_0 (read once, when the state is created)"),
        Hyper("etas", (0.5, 1.2),
              Pair(Real(0.0, 1.0, lo_open=True, hi_open=True, search=(0.05, 0.95), edges=(0.5,), enforced=("lo", "hi")),
                   Real(1.0, lo_open=True, search=(1.01, 3.0), edges=(1.2,), enforced=("lo",))),
              "(η₋, η₊): step-size factors on a sign change and on agreement"),
        Hyper("step_sizes", (1e-6, 50.0),
              Pair(Real(0.0, search=(1e-8, 1e-3), log=True, edges=(1e-6,), enforced=()),
                   Real(0.0, search=(1e-3, 100.0), log=True, edges=(50.0,), enforced=())),
              "(Γ_min, Γ_max): bounds of the step size"),
        MAXIMIZE,
    ),
    constraints=(
        Constraint("step_sizes needs Γ_min ≤ Γ_max",
                   holds=lambda hp: hp["step_sizes"][0] <= hp["step_sizes"][1],
                   repair=lambda hp: {**hp, "step_sizes": tuple(sorted(hp["step_sizes"]))}, enforced=False),
    ),
    buffers=lambda hp: ("prev", "step_size"),
)

# ---- Adafactor -----------------------------------------------------------------------------------------------------
def adafactor(θ, g, state, *, lr, beta2_decay, eps, d, weight_decay, maximize):
    """Adafactor (Shazeer & Stern 2018; torch.optim.Adafactor documentation), the second moment factored over the
    last two dimensions of a parameter with more than one (R per row, C per column), kept whole otherwise.

    g ← −g if maximize;  β̂2_t = 1 − t^τ;  ρ_t = min(γ, 1/√t);  α_t = max(ε2, RMS(θ_{t−1})) ρ_t;  θ ← θ − γλθ
    dim θ > 1:  R_t = β̂2_t R_{t−1} + (1 − β̂2_t) Σ_cols g²;   C_t = β̂2_t C_{t−1} + (1 − β̂2_t) Σ_rows g²
                V̂_t = R_t C_t / max(Σ_rows R_t, ε1)
    otherwise:  V̂_t = β̂2_t V̂_{t−1} + (1 − β̂2_t) g²
    U_t = g / max(√V̂_t, ε1);   Û_t = U_t / max(1, RMS(U_t) / d);   θ ← θ − α_t Û_t
    (ε1 = None: the machine epsilon of θ's dtype)
    """
    eps1, eps2 = eps
    eps1 = torch.finfo(θ.dtype).eps if eps1 is None else eps1
    t = state.get("t", 0) + 1
    g = -g if maximize else g
    beta2_t = 1 - t**beta2_decay
    rho = min(lr, 1 / t**0.5)
    alpha = max(eps2, _rms(θ)) * rho
    if weight_decay != 0:
        θ = θ - lr * weight_decay * θ
    if θ.ndim > 1:
        R = beta2_t * state.get("R", _zeros(θ[..., :1])) + (1 - beta2_t) * (g * g).sum(dim=-1, keepdim=True)
        C = beta2_t * state.get("C", _zeros(θ[..., :1, :])) + (1 - beta2_t) * (g * g).sum(dim=-2, keepdim=True)
        v_hat = R * C / torch.clamp(R.sum(dim=-2, keepdim=True), min=eps1)
        new_state = {"t": t, "R": R, "C": C}
    else:
        v_hat = beta2_t * state.get("v", _zeros(θ)) + (1 - beta2_t) * g * g
        new_state = {"t": t, "v": v_hat}
    U = g / torch.clamp(torch.sqrt(v_hat), min=eps1)
    U_hat = U / max(1.0, _rms(U) / d)
    return θ - alpha * U_hat, new_state


def _rms(x):
    """RMS(x) = √(Σ x² / n) over every element."""
    return torch.sqrt((x * x).sum() / x.numel())


ADAFACTOR = Rule(
    "adafactor", adafactor, source="torch.optim.Adafactor documentation; Shazeer & Stern 2018",
    torch_class="Adafactor",
    hypers=(
        LR(1e-2),
        Hyper("beta2_decay", -0.8, Real(-math.inf, 0.0, search=(-2.0, 0.0), edges=(-0.8, 0.0, -1.0),
                                        enforced=("hi",)),
              "τ: β̂2_t = 1 − t^τ"),
        Hyper("eps", (None, 1e-3),
              Pair(Real(0.0, search=(1e-30, 1e-2), log=True, edges=(1e-30, 1.1920928955078125e-07, 1e-3),
                        optional=True),
                   Real(0.0, search=(1e-8, 1.0), log=True, edges=(1e-3, 0.0))),
              "(ε1, ε2): the floor of √V̂ and of Σ R (None: the dtype's machine epsilon), the floor of RMS(θ)"),
        Hyper("d", 1.0, Real(1.0, search=(1.0, 10.0), edges=(1.0,)), "clipping threshold d of RMS(U)"),
        WD(),
        MAXIMIZE,
    ),
    buffers=lambda hp: ("row_var", "col_var", "variance"),
    elementwise=False,
    decoupled_decay=True,
)

# ---- SparseAdam ----------------------------------------------------------------------------------------------------
def sparse_adam(θ, g, state, *, lr, betas, eps, maximize):
    """SparseAdam (torch.optim.SparseAdam documentation: Adam masked to the elements a sparse gradient holds; the
    step size of Kingma & Ba 2015 §2, α_t = γ √(1 − β2^t) / (1 − β1^t), with ε added to √v_t).

    P = the elements g holds (repeated indices add up; a held 0 counts);  t ← t + 1 at every step θ has a gradient
    on P:   g ← −g if maximize;  m ← m + (1 − β1)(g − m);  v ← v + (1 − β2)(g² − v);
            θ ← θ − γ √(1 − β2^t) / (1 − β1^t) · m / (√v + ε)
    off P:  θ, m and v unchanged
    (m + (1 − β1)(g − m) is β1 m + (1 − β1) g written in torch's form, whose rounding bound covers both forms)
    """
    β1, β2 = betas
    t = state.get("t", 0) + 1
    P, g = g.present, -g.values if maximize else g.values
    m, v = state.get("m", _zeros(θ)), state.get("v", _zeros(θ))
    m = torch.where(P, m + (1 - β1) * (g - m), m)
    v = torch.where(P, v + (1 - β2) * (g * g - v), v)
    α_t = lr * (1 - β2**t) ** 0.5 / (1 - β1**t)
    θ = torch.where(P, θ - α_t * m / (torch.sqrt(v) + eps), θ)
    return θ, {"t": t, "m": m, "v": v}


SPARSE_ADAM = Rule(
    "sparse_adam", sparse_adam,
    source="torch.optim.SparseAdam documentation; Kingma & Ba 2015, Algorithm 1 and §2", torch_class="SparseAdam",
    hypers=(
        Hyper("lr", 1e-3, Real(0.0, lo_open=True, search=(1e-5, 10.0), log=True, edges=(1e-3,)),
              "learning rate γ; changed between steps as a scheduler does", scheduled=True),
        BETAS(),
        Hyper("eps", 1e-8, Real(0.0, lo_open=True, search=(1e-12, 1e-1), log=True, edges=(1e-8, 1e-12, 1e-1)),
              "ε, added to √v"),
        MAXIMIZE,
    ),
    buffers=lambda hp: ("exp_avg", "exp_avg_sq"),
    sparse_gradients=True,
)

# ---- Muon ----------------------------------------------------------------------------------------------------------
def muon(θ, g, state, *, lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn):
    """Muon (Jordan et al. 2024; torch.optim.Muon documentation), for a matrix θ of A rows and B columns.

    B_t = μ B_{t−1} + g;   B̃_t = g + μ B_t if nesterov else B_t
    O_t = NS^{(a,b,c)}_k(B̃_t; ε):  X ← B̃_tᵀ if A > B else B̃_t;   X ← X / (‖X‖_F + ε);
          k times  X ← a X + (b X Xᵀ + c (X Xᵀ)²) X;   O_t = X, transposed back
    θ ← θ − γλθ;   θ ← θ − γ' O_t,   γ' = γ √max(1, A/B) (adjust_lr_fn None, "original")
                                     or 0.2 γ √max(A, B) ("match_rms_adamw")
    """
    a, b, c = ns_coefficients
    rows, cols = θ.shape
    B = momentum * state.get("B", _zeros(θ)) + g
    X = g + momentum * B if nesterov else B
    X = X.T if rows > cols else X
    X = X / (torch.sqrt((X * X).sum()) + eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    O = X.T if rows > cols else X
    ratio = 0.2 * max(rows, cols) ** 0.5 if adjust_lr_fn == "match_rms_adamw" else max(1.0, rows / cols) ** 0.5
    θ = θ - lr * weight_decay * θ
    return θ - lr * ratio * O, {"B": B}


#: Newton–Schulz coefficients (a, b, c): Jordan et al.'s quintic (torch's default), the cubic iteration
#: X ← (3X − X Xᵀ X)/2, and the quintic Taylor iteration (15X − 10 X Xᵀ X + 3 (X Xᵀ)² X)/8
NS_COEFFICIENTS = ((3.4445, -4.7750, 2.0315), (1.5, -0.5, 0.0), (1.875, -1.25, 0.375))
#: the searched span of a, b and c: the published sets (Jordan et al.'s quintic, the cubic and quintic Newton–Schulz
#: polynomials) and beyond, to where the iteration diverges within 10 steps (such cases leave the dtype's range and
#: are not judged)
NS_SEARCH = ((0.0, 5.0), (-8.0, 1.0), (-1.0, 4.0))
MUON = Rule(
    "muon", muon, source="torch.optim.Muon documentation; Jordan et al. 2024 (Muon); Liu et al. 2025 (Moonlight)",
    torch_class="Muon",
    hypers=(
        LR(1e-3),
        WD(0.1),
        Hyper("momentum", 0.95, Real(0.0, search=(0.0, 1.2), edges=(0.95, 0.0, 0.9, 1.0)),
              "momentum μ (B_t = μ B_{t−1} + g_t)"),
        Hyper("nesterov", True, Flag(), "B̃_t = g_t + μ B_t instead of B_t"),
        Hyper("ns_coefficients", NS_COEFFICIENTS[0], Pair(*(
                  Real(-math.inf, lo_open=True, search=span, edges=tuple(sorted({c[i] for c in NS_COEFFICIENTS})),
                       enforced=())
                  for i, span in enumerate(NS_SEARCH)), edges=NS_COEFFICIENTS),
              "(a, b, c) of the Newton–Schulz iteration: any reals, searched around the published sets (edges)"),
        Hyper("eps", 1e-7, Real(0.0, search=(1e-12, 1e-1), log=True, edges=(1e-7, 0.0), enforced=()),
              "ε added to ‖X‖_F before the division"),
        Hyper("ns_steps", 5, Choice((5, 0, 1, 2, 3, 10)), "k, the Newton–Schulz iterations"),
        Hyper("adjust_lr_fn", None, Choice((None, "original", "match_rms_adamw"), invalid=("rms",)),
              "the learning-rate adjustment γ' by the matrix's shape"),
    ),
    buffers=lambda hp: ("momentum_buffer",),
    elementwise=False,
    decoupled_decay=True,
    ndims=(2,),
)


TORCH_RULES = (SGD, ADAM, ADAMW, RMSPROP, ADAGRAD, ADADELTA, ADAMAX, NADAM, RADAM, ASGD, RPROP, ADAFACTOR,
               SPARSE_ADAM, MUON)
