"""Broken variants for the rule properties' self-tests (``properties/test_property_self_checks.py``).

Each base class below (``_SGD``, ``_Adam``, ``_AdamW``, ``_Adagrad``, ``_RMSprop``) implements its rule correctly,
with torch.optim's signature and defaults, and splits its step into a few small methods; each broken variant
overrides ONE of them with ONE realistic mistake, marked ``BUG``. The other broken variants the self-tests use are
``optimizers/planted.py``'s planted bugs. Do not use these classes for training.
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from optimizers.planted import _loss


# ---- SGD -----------------------------------------------------------------------------------------------------------
class _SGD(Optimizer):
    """SGD as torch.optim.SGD documents it: g ← −g (maximize), g ← g + λθ, momentum buffer b_1 = g,
    b_t = μ b_{t−1} + (1 − τ) g, Nesterov g + μ b, θ ← θ − γ d."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def momentum(self, group) -> float:
        return group["momentum"]

    def displacement(self, d, group, state):
        """What the step subtracts from θ, given the (decayed) gradient d."""
        mu = self.momentum(group)
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = d.clone()
            else:
                state["momentum_buffer"].mul_(mu).add_(d, alpha=1 - group["dampening"])
            buf = state["momentum_buffer"]
            d = d.add(buf, alpha=mu) if group["nesterov"] else buf
        return d.mul(group["lr"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    d = d.add(p, alpha=group["weight_decay"])
                p.sub_(self.displacement(d, group, self.state[p]))
        return loss


class GDMomentumZeroIsDefault(_SGD):
    """Bug: reads ``group["momentum"] or 0.9`` — a momentum of 0 is falsy, so plain GD gets momentum 0.9."""

    def momentum(self, group) -> float:
        return group["momentum"] or 0.9                                # BUG: 0 is a valid momentum


class GDClippedUpdate(_SGD):
    """Bug: clips every element of the step γd to [−1, 1] (a robustness tweak that changes the rule)."""

    def displacement(self, d, group, state):
        return super().displacement(d, group, state).clamp_(-1.0, 1.0)  # BUG: the rule has no clipping


class SGDBookFormBuffer(_SGD):
    """Bug: keeps the book's buffer v = μ v + γ g and steps θ ← θ − v: torch's b = μ b + g, θ ← θ − γ b gives the
    same trajectory only while γ stays constant."""

    def displacement(self, d, group, state):
        mu, lr = self.momentum(group), group["lr"]
        if mu == 0:
            return d.mul(lr)
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = d.mul(lr)                        # BUG: lr belongs outside the buffer
        else:
            state["momentum_buffer"].mul_(mu).add_(d, alpha=lr * (1 - group["dampening"]))
        buf = state["momentum_buffer"]
        return d.mul(lr).add(buf, alpha=mu) if group["nesterov"] else buf.clone()


# ---- Adam / AdamW --------------------------------------------------------------------------------------------------
class _Adam(Optimizer):
    """Adam as torch.optim.Adam documents it (coupled or decoupled weight decay, AMSGrad, maximize)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def gradient(self, p, i: int, group):
        """The gradient of parameter ``p``, the i-th with a gradient in its group, negated under maximize."""
        return -p.grad if group["maximize"] else p.grad

    def decoupled(self, group) -> bool:
        return group["decoupled_weight_decay"]

    def decay(self, p, group) -> None:
        p.mul_(1 - group["lr"] * group["weight_decay"])

    def eps(self, group) -> float:
        return group["eps"]

    def denominator(self, v, bc2: float, group):
        return (v.sqrt() / math.sqrt(bc2)).add_(self.eps(group))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for i, p in enumerate(q for q in group["params"] if q.grad is not None):
                g = self.gradient(p, i, group)
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"] != 0:
                    if self.decoupled(group):
                        self.decay(p, group)
                    else:
                        g = g.add(p, alpha=group["weight_decay"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                p.addcdiv_(m, self.denominator(v, 1 - beta2**t, group), value=-group["lr"] / (1 - beta1**t))
        return loss


class _AdamW(_Adam):
    """AdamW as torch.optim.AdamW documents it: Adam with decoupled weight decay, λ = 1e-2 by default."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        Optimizer.__init__(self, params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                              amsgrad=amsgrad, maximize=maximize))

    def decoupled(self, group) -> bool:
        return True


class AdamEpsZeroIgnored(_Adam):
    """Bug: reads ``group["eps"] or 1e-8`` — ε = 0 is falsy and replaced by the default."""

    def eps(self, group) -> float:
        return group["eps"] or 1e-8                                    # BUG: 0 is a valid ε


class AdamMaximizeFirstParamOnly(_Adam):
    """Bug: negates the gradient under maximize for the first parameter of each group only."""

    def gradient(self, p, i: int, group):
        return -p.grad if group["maximize"] and i == 0 else p.grad     # BUG: every parameter, not just the first


class AdamPerTensorDenominator(_Adam):
    """Bug: normalises by the root of the tensor's mean second moment (a per-tensor, LAMB-like denominator),
    which mixes the elements of a tensor."""

    def denominator(self, v, bc2: float, group):
        return torch.full_like(v, math.sqrt(v.mean().item() / bc2) + self.eps(group))   # BUG: per element


class AdamWDecayLrSquared(_AdamW):
    """Bug: decays θ by (1 − γ²λ): the learning rate applied twice (once folded into λ, once by the step)."""

    def decay(self, p, group) -> None:
        p.mul_(1 - group["lr"] ** 2 * group["weight_decay"])           # BUG: should be 1 − γλ


class AdamWBiasCorrectionNotRooted(_AdamW):
    """Bug: divides √v by 1 − β2^t instead of √(1 − β2^t)."""

    def denominator(self, v, bc2: float, group):
        return (v.sqrt() / bc2).add_(self.eps(group))                  # BUG: should be / √bc2


# ---- Adagrad -------------------------------------------------------------------------------------------------------
class _Adagrad(Optimizer):
    """Adagrad as torch.optim.Adagrad documents it."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def accumulate(self, total, raw, g) -> None:
        """Add the squared gradient to the accumulator (``raw``: before weight decay, ``g``: after)."""
        total.addcmul_(g, g, value=1)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                raw = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state.update(step=0, sum=torch.full_like(p, group["initial_accumulator_value"]))
                state["step"] += 1
                g = raw.add(p, alpha=group["weight_decay"]) if group["weight_decay"] != 0 else raw
                clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                self.accumulate(state["sum"], raw, g)
                p.addcdiv_(g, state["sum"].sqrt().add_(group["eps"]), value=-clr)
        return loss


class AdagradForgetfulAccumulator(_Adagrad):
    """Bug: decays the accumulator (s ← 0.9 s + g², as RMSprop would) instead of summing."""

    def accumulate(self, total, raw, g) -> None:
        total.mul_(0.9).addcmul_(g, g, value=1)                        # BUG: Adagrad's sum never forgets


class AdagradDecayOutsideAccumulator(_Adagrad):
    """Bug: accumulates the squared gradient before weight decay is added (the step still uses g + λθ)."""

    def accumulate(self, total, raw, g) -> None:
        total.addcmul_(raw, raw, value=1)                              # BUG: should accumulate (g + λθ)²


# ---- RMSprop -------------------------------------------------------------------------------------------------------
class _RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop documents it (centered, momentum, weight decay, maximize)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def average(self, v, g, alpha: float) -> None:
        v.mul_(alpha).addcmul_(g, g, value=1 - alpha)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state.update(square_avg=torch.zeros_like(p), grad_avg=torch.zeros_like(p),
                                 momentum_buffer=torch.zeros_like(p))
                v = state["square_avg"]
                self.average(v, g, alpha)
                if group["centered"]:
                    state["grad_avg"].mul_(alpha).add_(g, alpha=1 - alpha)
                    # ṽ = v − ḡ² is a variance: clamp the rounding residue at 0, as the rule requires (torch does
                    # not, a known deviation); unclamped, √ṽ is NaN where the gradient has been constant
                    v = v.addcmul(state["grad_avg"], state["grad_avg"], value=-1).clamp_(min=0.0)
                denom = v.sqrt().add_(group["eps"])
                if group["momentum"] > 0:
                    state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(g, denom)
                    p.add_(state["momentum_buffer"], alpha=-group["lr"])
                else:
                    p.addcdiv_(g, denom, value=-group["lr"])
        return loss


class RMSpropSumsSquares(_RMSprop):
    """Bug: v ← α v + g², without the (1 − α) weight: a discounted sum, not a moving average."""

    def average(self, v, g, alpha: float) -> None:
        v.mul_(alpha).addcmul_(g, g, value=1)                          # BUG: value should be 1 − α


#: (class, rule, what is wrong)
BROKEN = [
    ("GDMomentumZeroIsDefault", "sgd", "momentum 0 read as 0.9 (`or` default)"),
    ("GDClippedUpdate", "sgd", "each element of the step clipped to [−1, 1]"),
    ("SGDBookFormBuffer", "sgd", "the book's buffer v = μv + γg under torch's name"),
    ("AdamEpsZeroIgnored", "adam", "ε = 0 read as 1e-8 (`or` default)"),
    ("AdamMaximizeFirstParamOnly", "adam", "maximize honoured for the first parameter of each group only"),
    ("AdamPerTensorDenominator", "adam", "one denominator per tensor: mixes its elements"),
    ("AdamWDecayLrSquared", "adamw", "decoupled decay by (1 − γ²λ)"),
    ("AdamWBiasCorrectionNotRooted", "adamw", "√v divided by 1 − β2^t instead of its root"),
    ("AdagradForgetfulAccumulator", "adagrad", "the accumulator decays: s ← 0.9 s + g²"),
    ("AdagradDecayOutsideAccumulator", "adagrad", "accumulates g² before weight decay is added"),
    ("RMSpropSumsSquares", "rmsprop", "v ← αv + g², without 1 − α"),
]

#: (class, rule, how) — the base classes, correct: the self-tests check that they satisfy the properties
CORRECT = [
    ("_SGD", "sgd", "torch's SGD in small methods"),
    ("_Adam", "adam", "torch's Adam in small methods"),
    ("_AdamW", "adamw", "torch's AdamW in small methods"),
    ("_Adagrad", "adagrad", "torch's Adagrad in small methods"),
    ("_RMSprop", "rmsprop", "torch's RMSprop in small methods"),
]
