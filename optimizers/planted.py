"""Planted bugs and correct variants: the suite's own test subjects (``properties/test_planted_bugs.py``).

Every class here is written the way a user writes a torch.optim-style optimizer: it subclasses
``torch.optim.Optimizer``, takes ``(params, lr=..., <the rule's hyperparameters, with torch's names and defaults>)``,
keeps per-parameter state in ``self.state[p]`` and reads its hyperparameters from each param group.

* ``PLANTED``: each class is a correct implementation of its rule but for ONE small, realistic mistake (named in the
  class docstring and in the list). The suite must catch every one of them.
* ``CORRECT``: implementations of a rule in another form than torch's (foreach ops, out-of-place formulas, float64
  internals, addcmul/addcdiv, ...). The suite must accept every one of them.

Do not use these classes for training.
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


# ---- helpers shared by all classes (argument checks as torch.optim's constructors make them) ------------------------
def _loss(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _nonnegative(**values):
    for name, v in values.items():
        if not v >= 0.0:
            raise ValueError(f"Invalid {name} value: {v}")


def _check_betas(betas):
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")


class _AdamFamily(Optimizer):
    """Constructor shared by the Adam-rule classes below (rule ``adam``: torch.optim.Adam's signature)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))


class _AdamWFamily(Optimizer):
    """Constructor shared by the AdamW-rule classes below (torch.optim.AdamW's signature)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))


class _SGDFamily(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        _nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))


class _RMSpropFamily(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        _nonnegative(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))


class _AdagradFamily(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        _nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                     initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))


class _NAdamFamily(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))


class _RAdamFamily(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))


# =====================================================================================================================
# Planted bugs
# =====================================================================================================================

# ---- Adam ----------------------------------------------------------------------------------------------------------
class _Adam(_AdamFamily):
    """Adam as torch.optim.Adam documents it, one parameter at a time; each piece of the step is a method that one
    bug below rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if not self._has_gradient(p):
                    continue
                state = self._state(p, group)
                state["step"] += 1
                g = self._decayed(p, -p.grad if self._maximize(group) else p.grad, group)
                self._update(p, g, state, group, *self._betas(group))
        return loss

    def _has_gradient(self, p):
        return p.grad is not None

    def _maximize(self, group):
        return group["maximize"]

    def _betas(self, group):
        return group["betas"]

    def _buffers(self, p):
        return self.state[p]

    def _zeros(self, p):
        return torch.zeros_like(p)

    def _state(self, p, group):
        state = self._buffers(p)
        if not state:
            state.update(step=0, exp_avg=self._zeros(p), exp_avg_sq=self._zeros(p))
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = self._zeros(p)
        return state

    def _decoupled(self, group):
        return group["decoupled_weight_decay"]

    def _decayed(self, p, g, group):
        if group["weight_decay"] != 0:
            if self._decoupled(group):
                p.mul_(1 - group["lr"] * group["weight_decay"])
            else:
                g = g.add(p, alpha=group["weight_decay"])
        return g

    def _bias_corrections(self, t, beta1, beta2):
        return 1 - beta1**t, 1 - beta2**t

    def _second_moment(self, state, v, bc2, group):
        if not group["amsgrad"]:
            return v
        torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        return state["max_exp_avg_sq"]

    def _denominator(self, v, bc2, eps):
        return (v.sqrt() / math.sqrt(bc2)).add_(eps)

    def _update(self, p, g, state, group, beta1, beta2):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        g = g.to(m.dtype)
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bc1, bc2 = self._bias_corrections(state["step"], beta1, beta2)
        v = self._second_moment(state, v, bc2, group)
        p.add_((m / self._denominator(v, bc2, group["eps"])).mul_(-group["lr"] / bc1).to(p.dtype))


class AdamEpsInsideSqrt(_Adam):
    """Denominator √(v̂ + ε) instead of √v̂ + ε."""

    def _denominator(self, v, bc2, eps):
        return (v / bc2).add_(eps).sqrt_()


class AdamBiasCorrectionOffByOne(_Adam):
    """The step counter starts at 1 and is incremented before use: bias corrections use t + 1."""

    def _bias_corrections(self, t, beta1, beta2):
        return super()._bias_corrections(t + 1, beta1, beta2)


class AdamNoBiasCorrectionV(_Adam):
    """v is not bias-corrected: v̂ = v_t."""

    def _bias_corrections(self, t, beta1, beta2):
        return 1 - beta1**t, 1.0


class AdamIgnoresMaximize(_Adam):
    """maximize accepted but ignored: always descends."""

    def _maximize(self, group):
        return False


class AdamIgnoresAmsgrad(_Adam):
    """amsgrad accepted (its buffer even allocated) but ignored: v̂ from v_t, not the running maximum."""

    def _second_moment(self, state, v, bc2, group):
        return v


class AmsgradMaxOfCorrected(_Adam):
    """AMSGrad keeps the running maximum of the bias-corrected v̂ instead of the raw v."""

    def _second_moment(self, state, v, bc2, group):
        if not group["amsgrad"]:
            return v
        torch.maximum(state["max_exp_avg_sq"], v / bc2, out=state["max_exp_avg_sq"])
        return state["max_exp_avg_sq"] * bc2


class AdamIgnoresDecoupledWeightDecay(_Adam):
    """decoupled_weight_decay accepted but ignored: coupled L2 (g + λθ) always."""

    def _decoupled(self, group):
        return False


class AdamBetasFromDefaults(_Adam):
    """betas read from self.defaults instead of the param group: a group's own betas are ignored."""

    def _betas(self, group):
        return self.defaults["betas"]


class AdamSharedStateByShape(_Adam):
    """Buffers cached by shape to save allocations: parameters of the same shape share m, v and t."""

    def _buffers(self, p):
        shared = self.__dict__.setdefault("_by_shape", {})
        self.state[p] = shared.setdefault((tuple(p.shape), p.dtype, p.device), {})
        return self.state[p]


class AdamStateOutsideStateDict(_Adam):
    """Moments kept in a dict attribute of its own rather than in ``self.state``: ``state_dict()`` holds no state and
    an optimizer restored with ``load_state_dict`` starts m, v and t from scratch. Its trajectory is right; only the
    state_dict round trip shows the bug."""

    def _buffers(self, p):
        return self.__dict__.setdefault("moments", {}).setdefault(p, {})


class AdamFloat32Internals(_Adam):
    """m and v kept in float32 (to save memory), the update computed in float32 and added back in the parameter's
    dtype: float64 parameters get updates rounded to ~1e-7 relative."""

    def _zeros(self, p):
        return torch.zeros_like(p, dtype=torch.float32)


class AdamSkipsZeroGrad(_Adam):
    """A parameter whose gradient is all zeros is skipped as if it had none: its moments do not decay, t does not
    advance, weight decay is not applied and momentum does not move it."""

    def _has_gradient(self, p):
        return p.grad is not None and bool(torch.any(p.grad))


class _AdamW(_Adam):
    """AdamW as torch.optim.AdamW documents it: Adam with the decay always decoupled (its signature)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        Optimizer.__init__(self, params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                              amsgrad=amsgrad, maximize=maximize))

    def _decoupled(self, group):
        return True


class AdamWCoupledWeightDecay(_AdamW):
    """AdamW that adds λθ to the gradient (Adam's coupled L2) instead of decaying θ by γλθ."""

    def _decoupled(self, group):
        return False


class AdamWDecayWithoutLr(_AdamW):
    """AdamW that decays θ ← θ − λθ (weight decay alone) instead of θ ← θ − γλθ."""

    def _decayed(self, p, g, group):
        p.mul_(1 - group["weight_decay"])
        return g


# ---- SGD -----------------------------------------------------------------------------------------------------------
class _SGD(_SGDFamily):
    """SGD as torch.optim.SGD documents it, one parameter at a time; each piece of the step is a method that one bug
    below rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = self._direction(p, -p.grad if group["maximize"] else p.grad, group)
                self._update(p, d, group)
        return loss

    def _update(self, p, d, group):
        p.add_(d, alpha=-self._lr(group))

    def _direction(self, p, d, group):
        d = self._decayed(p, d, group["weight_decay"])
        return self._momentum(self.state[p], d, group) if group["momentum"] != 0 else d

    def _decayed(self, p, d, weight_decay):
        return d.add(p, alpha=weight_decay) if weight_decay != 0 else d

    def _first_buffer(self, d, dampening):
        return d.clone()

    def _momentum(self, state, d, group):
        mu, tau = group["momentum"], group["dampening"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = self._first_buffer(d, tau)
        else:
            state["momentum_buffer"].mul_(mu).add_(d, alpha=1 - tau)
        buf = state["momentum_buffer"]
        return self._nesterov(d, buf, mu) if group["nesterov"] else buf

    def _nesterov(self, d, buf, mu):
        return d.add(buf, alpha=mu)

    def _lr(self, group):
        return group["lr"]


class SGDDampeningOnFirstStep(_SGD):
    """The momentum buffer dampened on its first step too: b_1 = (1 − τ) g instead of g."""

    def _first_buffer(self, d, dampening):
        return d.mul(1 - dampening)


class SGDNesterovUsesBuffer(_SGD):
    """Nesterov steps along b_t + μ b_t instead of g + μ b_t (the buffer where the gradient belongs; the same on a
    parameter's first step, where b_1 = g)."""

    def _nesterov(self, d, buf, mu):
        return buf.add(buf, alpha=mu)


class SGDWeightDecayAfterMomentum(_SGD):
    """λθ added to the step after the momentum buffer: the buffer never accumulates the decay term."""

    def _direction(self, p, d, group):
        d = self._momentum(self.state[p], d, group) if group["momentum"] != 0 else d
        return self._decayed(p, d, group["weight_decay"])


class SGDLrFromDefaults(_SGD):
    """Steps with ``self.defaults["lr"]``: a group's own lr and any scheduler's change to it are ignored."""

    def _lr(self, group):
        return self.defaults["lr"]


# ---- RMSprop -------------------------------------------------------------------------------------------------------
class _RMSprop(_RMSpropFamily):
    """RMSprop as torch.optim.RMSprop documents it, one parameter at a time; each piece of the step is a method that
    one bug below rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                sq = state["square_avg"]
                sq.mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
                avg = self._denominator(self._variance(state, sq, g, group), group["eps"])
                self._apply(p, g, avg, state, group)
        return loss

    def _variance(self, state, sq, g, group):
        if not group["centered"]:
            return sq
        ga = state["grad_avg"]
        ga.mul_(group["alpha"]).add_(g, alpha=1 - group["alpha"])
        return sq.addcmul(ga, ga, value=-1).clamp_(min=0)   # v − ḡ² ≥ 0: a negative rounding residue is 0

    def _denominator(self, v, eps):
        return v.sqrt().add_(eps)

    def _apply(self, p, g, avg, state, group):
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf.mul_(group["momentum"]).addcdiv_(g, avg)
            p.add_(buf, alpha=-group["lr"])
        else:
            p.addcdiv_(g, avg, value=-group["lr"])


class RMSpropEpsInsideSqrt(_RMSprop):
    """Denominator √(ṽ + ε) instead of √ṽ + ε."""

    def _denominator(self, v, eps):
        return v.add(eps).sqrt_()


class RMSpropCenteredIgnoresMean(_RMSprop):
    """Centered RMSprop keeps the average gradient ḡ but does not subtract ḡ² from v."""

    def _variance(self, state, sq, g, group):
        super()._variance(state, sq, g, group)
        return sq


class RMSpropMomentumLrInBuffer(_RMSprop):
    """The learning rate folded into the momentum buffer, b_t = μ b_{t−1} + γ_t g/(√ṽ + ε), θ ← θ − b_t: equal to
    the rule while γ is constant, wrong as soon as a scheduler changes it."""

    def _apply(self, p, g, avg, state, group):
        if group["momentum"] <= 0:
            return super()._apply(p, g, avg, state, group)
        state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(g, avg, value=group["lr"])
        p.sub_(state["momentum_buffer"])


# ---- Adagrad -------------------------------------------------------------------------------------------------------
class _Adagrad(_AdagradFamily):
    """Adagrad as torch.optim.Adagrad documents it, one parameter at a time; the accumulator's start and the decayed
    learning rate are methods that one bug below rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["sum"] = self._initial_sum(p, group)
                state["step"] += 1
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                clr = self._decayed_lr(group, state["step"])
                state["sum"].addcmul_(g, g, value=1)
                std = state["sum"].sqrt().add_(group["eps"])
                p.addcdiv_(g, std, value=-clr)
        return loss

    def _initial_sum(self, p, group):
        return torch.full_like(p, group["initial_accumulator_value"])

    def _decayed_lr(self, group, t):
        return group["lr"] / (1 + (t - 1) * group["lr_decay"])


class AdagradLrDecayUsesT(_Adagrad):
    """Decays the learning rate as γ / (1 + t η) instead of γ / (1 + (t − 1) η)."""

    def _decayed_lr(self, group, t):
        return group["lr"] / (1 + t * group["lr_decay"])


class AdagradIgnoresInitialAccumulator(_Adagrad):
    """Starts the accumulator at zero whatever ``initial_accumulator_value`` says."""

    def _initial_sum(self, p, group):
        return torch.zeros_like(p)


# ---- Adadelta ------------------------------------------------------------------------------------------------------
class _Adadelta(Optimizer):
    """Adadelta as torch.optim.Adadelta documents it, one parameter at a time; Δx is a method a bug rewrites."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            rho, eps = group["rho"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    state["acc_delta"] = torch.zeros_like(p)
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                sq, acc = state["square_avg"], state["acc_delta"]
                delta = self._delta(sq, acc, g, rho, eps)
                acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                p.add_(delta, alpha=-group["lr"])
        return loss

    def _delta(self, sq, acc, g, rho, eps):
        """v_t = ρ v_{t−1} + (1 − ρ) g² (in place), then Δx = √(u_{t−1} + ε) / √(v_t + ε) · g."""
        sq.mul_(rho).addcmul_(g, g, value=1 - rho)
        return acc.add(eps).sqrt_().div_(sq.add(eps).sqrt_()).mul_(g)


class AdadeltaStaleSquareAvg(_Adadelta):
    """Computes Δx before updating the squared-gradient average, i.e. with v_{t−1} instead of v_t."""

    def _delta(self, sq, acc, g, rho, eps):
        delta = acc.add(eps).sqrt_().div_(sq.add(eps).sqrt_()).mul_(g)
        sq.mul_(rho).addcmul_(g, g, value=1 - rho)
        return delta


# ---- Adamax --------------------------------------------------------------------------------------------------------
class _Adamax(Optimizer):
    """Adamax as torch.optim.Adamax documents it, one parameter at a time; the infinity norm is a method a bug
    rewrites."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False):
        _nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_inf"] = torch.zeros_like(p)
                state["step"] += 1
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                m, u = state["exp_avg"], state["exp_inf"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                self._infinity_norm(u, g, beta2, group["eps"])
                clr = group["lr"] / (1 - beta1 ** state["step"])
                p.addcdiv_(m, u, value=-clr)
        return loss

    def _infinity_norm(self, u, g, beta2, eps):
        """u_t = max(β2 u_{t−1}, |g| + ε), in place."""
        torch.maximum(u.mul_(beta2), g.abs().add_(eps), out=u)


class AdamaxNoEps(_Adamax):
    """u_t = max(β2 u_{t−1}, |g|) without ε (0/0 where a gradient element is zero from the start)."""

    def _infinity_norm(self, u, g, beta2, eps):
        torch.maximum(u.mul_(beta2), g.abs(), out=u)


# ---- NAdam ---------------------------------------------------------------------------------------------------------
class _NAdam(_NAdamFamily):
    """NAdam as torch.optim.NAdam documents it, one parameter at a time; the momentum coefficients μ_t, μ_{t+1}
    are a method a bug rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["mu_product"] = 1.0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"] != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
                    else:
                        g = g.add(p, alpha=group["weight_decay"])
                mu, mu_next = self._momentum_coefficients(beta1, group["momentum_decay"], t)
                state["mu_product"] *= mu
                mu_product = state["mu_product"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = v.div(1 - beta2 ** t).sqrt_().add_(group["eps"])
                p.addcdiv_(g, denom, value=-group["lr"] * (1 - mu) / (1 - mu_product))
                p.addcdiv_(m, denom, value=-group["lr"] * mu_next / (1 - mu_product * mu_next))
        return loss

    def _momentum_coefficients(self, beta1, psi, t):
        """μ_t = β1 (1 − ½ 0.96^{tψ}) and μ_{t+1}."""
        return beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)), beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))


class NAdamUsesMuT(_NAdam):
    """Computes the next momentum coefficient with t instead of t + 1 (μ_{t+1} := μ_t, a copy-paste slip)."""

    def _momentum_coefficients(self, beta1, psi, t):
        return beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)), beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))


# ---- RAdam ---------------------------------------------------------------------------------------------------------
class _RAdam(_RAdamFamily):
    """RAdam as torch.optim.RAdam documents it, one parameter at a time; when to rectify is a method a bug
    rewrites."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"] != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
                    else:
                        g = g.add(p, alpha=group["weight_decay"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
                m_hat = m / bc1
                rho_inf = 2 / (1 - beta2) - 1
                rho_t = rho_inf - 2 * t * beta2 ** t / bc2
                if self._rectified(rho_t):
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    adaptive = math.sqrt(bc2) / v.sqrt().add_(group["eps"])
                    p.add_(m_hat * adaptive * rect, alpha=-group["lr"])
                else:
                    p.add_(m_hat, alpha=-group["lr"])
        return loss

    def _rectified(self, rho_t):
        return rho_t > 5


class RAdamThreshold4(_RAdam):
    """Rectifies once ρ_t > 4 instead of ρ_t > 5 (with β2 = 0.999, ρ_5 ≈ 4.99: step 5 is rectified)."""

    def _rectified(self, rho_t):
        return rho_t > 4


# ---- Rprop ---------------------------------------------------------------------------------------------------------
class _Rprop(Optimizer):
    """Rprop as torch.optim.Rprop documents it, one parameter at a time; the gradient a step moves along on a sign
    change, and the one it remembers, are methods that one bug below rewrites."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), *, maximize=False):
        _nonnegative(lr=lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            eta_minus, eta_plus = group["etas"]
            step_min, step_max = group["step_sizes"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["prev"] = torch.zeros_like(p)
                    state["step_size"] = torch.full_like(p, group["lr"])
                agree = g * state["prev"]
                size = state["step_size"]
                size.copy_(torch.where(agree > 0, (size * eta_plus).clamp(max=step_max),
                                       torch.where(agree < 0, (size * eta_minus).clamp(min=step_min), size)))
                step_g = self._stepped(g, agree)
                p.addcmul_(step_g.sign(), size, value=-1)
                state["prev"].copy_(self._remembered(g, step_g))
        return loss

    def _stepped(self, g, agree):
        """g ← 0 where the sign changed: no step there."""
        return torch.where(agree < 0, torch.zeros_like(g), g)

    def _remembered(self, g, step_g):
        return step_g


class RpropKeepsGradOnSignChange(_Rprop):
    """On a sign change it shrinks the step size but still steps, and remembers g (should set g ← 0)."""

    def _stepped(self, g, agree):
        return g


class RpropRemembersUnzeroedGrad(_Rprop):
    """On a sign change it skips the step (g ← 0) but remembers the un-zeroed g as g_prev, so the NEXT step compares
    against it (g_prev·g ≠ 0) and grows or shrinks η where the rule, with g_prev = 0, keeps it. Differs only on the
    step after a sign change."""

    def _remembered(self, g, step_g):
        return g


# ---- ASGD ----------------------------------------------------------------------------------------------------------
class _ASGD(Optimizer):
    """ASGD as torch.optim.ASGD documents it, one parameter at a time; the step size a step uses is a method a bug
    rewrites."""

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, *, maximize=False):
        _nonnegative(lr=lr, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            lambd = group["lambd"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["eta"] = group["lr"]
                    state["mu"] = 1.0
                    state["ax"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                eta, mu = self._step_size(state, group, t), state["mu"]
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                p.mul_(1 - lambd * eta).add_(g, alpha=-eta)
                if mu == 1:
                    state["ax"].copy_(p)
                else:
                    state["ax"].add_(p.sub(state["ax"]).mul_(mu))
                state["eta"] = self._next_step_size(group, t)
                state["mu"] = 1 / max(1, t - group["t0"])
        return loss

    def _step_size(self, state, group, t):
        """η_t: the step size the previous step left."""
        return state["eta"]

    def _next_step_size(self, group, t):
        """η_{t+1} = γ / (1 + λ γ t)^α."""
        return group["lr"] / (1 + group["lambd"] * group["lr"] * t) ** group["alpha"]


class ASGDEtaOneStepEarly(_ASGD):
    """Updates the step size η before the step that should use the old one, so step t uses η_{t+1}."""

    def _step_size(self, state, group, t):
        return self._next_step_size(group, t)


# ---- the textbook's momentum -----------------------------------------------------------------------------------------
class BookMomentum(Optimizer):
    """The book's momentum as written: v = m v + γ g, x ← x − v (state per parameter, γ read each step)."""

    def __init__(self, params, lr=0.5, momentum=0.1):
        _nonnegative(lr=lr, momentum=momentum)
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["v"] = self._move(p, self.state[p].get("v"), group)
        return loss

    def _move(self, p, v, group):
        """v ← m v + γ g (γ g at first), x ← x − v; the new v."""
        v = group["lr"] * p.grad if v is None else group["momentum"] * v + group["lr"] * p.grad
        p.sub_(v)
        return v


class BookMomentumTorchForm(BookMomentum):
    """The book's momentum written in torch's form v = m v + g, x ← x − γ v: the same as v = m v + γ g, x ← x − v
    only while γ stays constant."""

    def _move(self, p, v, group):
        v = p.grad.clone() if v is None else group["momentum"] * v + p.grad
        p.sub_(group["lr"] * v)
        return v


# =====================================================================================================================
# Correct variants, in other forms than torch's
# =====================================================================================================================
class ForeachAdamW(_AdamWFamily):
    """AdamW over each group's parameters at once with torch._foreach_* ops, per-parameter step counts."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["maximize"]:
                grads = torch._foreach_neg(grads)
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                    if group["amsgrad"]:
                        self.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)
                self.state[p]["step"] += 1
            states = [self.state[p] for p in params]
            ms = [s["exp_avg"] for s in states]
            vs = [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            if group["weight_decay"] != 0:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, 1 - beta2)
            if group["amsgrad"]:
                maxes = [s["max_exp_avg_sq"] for s in states]
                torch._foreach_maximum_(maxes, vs)
                vs = maxes
            denoms = torch._foreach_sqrt(vs)
            torch._foreach_div_(denoms, [math.sqrt(1 - beta2 ** t) for t in steps])
            torch._foreach_add_(denoms, group["eps"])
            torch._foreach_addcdiv_(params, ms, denoms, [-group["lr"] / (1 - beta1 ** t) for t in steps])
        return loss


class AdamFloat64Internals(_AdamFamily):
    """Adam keeping its moments in float64 whatever the parameter's dtype, computing θ_new in float64 and copying it
    back (float64 parameters: the same precision as the reference; others: rounded once, when written)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.double()
                if group["maximize"]:
                    g = -g
                theta = p.double()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float64)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float64)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float64)
                state["step"] += 1
                t = state["step"]
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        theta = theta - lr * wd * theta
                    else:
                        g = g + wd * theta
                state["exp_avg"] = m = beta1 * state["exp_avg"] + (1 - beta1) * g
                state["exp_avg_sq"] = v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = v = torch.maximum(state["max_exp_avg_sq"], v)
                theta = theta - lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)
                p.copy_(theta)
        return loss


class AdamOutOfPlace(_AdamFamily):
    """Adam with out-of-place tensor ops in the documentation's order: m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t),
    θ ← θ − γ m̂ / (√v̂ + ε); the moving averages via lerp as torch writes them."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = torch.neg(p.grad) if group["maximize"] else p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0, dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = int(state["step"].item())
                if group["weight_decay"] != 0:
                    if group["decoupled_weight_decay"]:
                        p.sub_(group["lr"] * group["weight_decay"] * p)
                    else:
                        g = torch.add(g, p, alpha=group["weight_decay"])
                state["exp_avg"].lerp_(g, 1 - beta1)
                state["exp_avg_sq"].copy_(torch.add(torch.mul(state["exp_avg_sq"], beta2),
                                                    torch.mul(torch.square(g), 1 - beta2)))
                v = state["exp_avg_sq"]
                if group["amsgrad"]:
                    state["max_exp_avg_sq"].copy_(torch.maximum(state["max_exp_avg_sq"], v))
                    v = state["max_exp_avg_sq"]
                m_hat = torch.div(state["exp_avg"], 1 - beta1 ** t)
                v_hat = torch.div(v, 1 - beta2 ** t)
                p.sub_(torch.div(torch.mul(m_hat, group["lr"]), torch.add(torch.sqrt(v_hat), group["eps"])))
        return loss


class SGDExplicit(_SGDFamily):
    """SGD with momentum in explicit out-of-place formulas: b = μ b + (1 − τ) g, d = g + μ b or b, θ = θ − γ d."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * (-1.0 if group["maximize"] else 1.0)
                if wd != 0:
                    g = g + wd * p
                if mu != 0:
                    state = self.state[p]
                    b = g.clone() if "momentum_buffer" not in state else mu * state["momentum_buffer"] + (1 - tau) * g
                    state["momentum_buffer"] = b
                    g = g + mu * b if group["nesterov"] else b
                p.copy_(p - lr * g)
        return loss


class RMSpropAddcmul(_RMSpropFamily):
    """RMSprop with torch.addcmul/addcdiv/lerp, out of place, the momentum buffer written back through state; the
    centered variance clamped at 0."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            alpha, eps, mu = group["alpha"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.neg() if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = torch.add(g, p, alpha=group["weight_decay"])
                state = self.state[p]
                v = torch.addcmul(alpha * state.get("square_avg", torch.zeros_like(p)), g, g, value=1 - alpha)
                state["square_avg"] = v
                if group["centered"]:
                    ga = torch.lerp(state.get("grad_avg", torch.zeros_like(p)), g, 1 - alpha)
                    state["grad_avg"] = ga
                    # ṽ = v − ḡ² is a variance (≥ 0 in exact arithmetic); clamp the rounding residue, as the rule's
                    # ṽ requires and torch does not (see optimizers/known_deviations.py)
                    v = torch.addcmul(v, ga, ga, value=-1.0).clamp(min=0.0)
                denom = torch.sqrt(v) + eps
                if mu > 0:
                    buf = torch.addcdiv(mu * state.get("momentum_buffer", torch.zeros_like(p)), g, denom)
                    state["momentum_buffer"] = buf
                    p.add_(buf, alpha=-group["lr"])
                else:
                    p.copy_(torch.addcdiv(p, g, denom, value=-group["lr"]))
        return loss


class RAdamStacked(_RAdamFamily):
    """RAdam on the flattened concatenation of each group's parameters (one kernel per op for the group),
    with per-parameter step counts expanded to per-element tensors and torch.where instead of the branch."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                self.state[p]["step"] += 1
            flat = lambda ts: torch.cat([x.reshape(-1) for x in ts])  # noqa: E731
            theta = flat(params)
            g = flat([p.grad for p in params])
            if group["maximize"]:
                g = -g
            t = flat([torch.full_like(p, self.state[p]["step"]) for p in params])
            if group["weight_decay"] != 0:
                if group["decoupled_weight_decay"]:
                    theta = theta * (1 - group["lr"] * group["weight_decay"])
                else:
                    g = g + group["weight_decay"] * theta
            m = beta1 * flat([self.state[p]["exp_avg"] for p in params]) + (1 - beta1) * g
            v = beta2 * flat([self.state[p]["exp_avg_sq"] for p in params]) + (1 - beta2) * g * g
            bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2 ** t / bc2
            rectified = rho_t > 5
            r2 = torch.where(rectified, (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t),
                             torch.ones_like(t))
            scale = torch.where(rectified, torch.sqrt(r2) * torch.sqrt(bc2) / (torch.sqrt(v) + group["eps"]),
                                torch.ones_like(t))
            theta = theta - group["lr"] * (m / bc1) * scale
            offset = 0
            for p in params:
                n = p.numel()
                p.copy_(theta[offset:offset + n].view_as(p))
                self.state[p]["exp_avg"].copy_(m[offset:offset + n].view_as(p))
                self.state[p]["exp_avg_sq"].copy_(v[offset:offset + n].view_as(p))
                offset += n
        return loss


# ---- Adafactor (the documented rule: row and column sums, Σ R floored at ε1, √V̂ floored at ε1) ----------------------
class _Adafactor(Optimizer):
    """Adafactor as documented, one parameter at a time; each step's pieces are methods the bugs below rewrite."""

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 maximize=False):
        _nonnegative(lr=lr, weight_decay=weight_decay, eps2=eps[1])
        if not beta2_decay <= 0.0:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not eps[0] >= 0.0:
            raise ValueError(f"Invalid eps1: {eps[0]}")
        if not d >= 1.0:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                state["step"] = t = state.get("step", 0) + 1
                eps1 = group["eps"][0] if group["eps"][0] is not None else torch.finfo(p.dtype).eps
                alpha = self._scale_then_decay(p, t, group)
                v_hat = self._second_moment(p, g, state, 1 - t ** group["beta2_decay"], eps1)
                u = g / torch.clamp(torch.sqrt(v_hat), min=eps1)
                p.sub_(self._clipped(u, group["d"]), alpha=alpha)
        return loss

    def _scale_then_decay(self, p, t, group):
        """α_t from θ_{t−1}, then θ ← θ − γλθ."""
        alpha = self._alpha(p, t, group["lr"], group["eps"][1])
        p.mul_(1 - group["lr"] * group["weight_decay"])
        return alpha

    def _alpha(self, p, t, lr, eps2):
        return max(eps2, self._rms(p)) * min(lr, 1 / math.sqrt(t))

    @staticmethod
    def _rms(x):
        return x.norm().item() / math.sqrt(x.numel())

    def _second_moment(self, p, g, state, beta2_t, eps1):
        if p.dim() < 2:
            state["variance"] = v = beta2_t * state.get("variance", torch.zeros_like(p)) + (1 - beta2_t) * g * g
            return v
        rows = (g * g).sum(dim=-1, keepdim=True)
        cols = (g * g).sum(dim=-2, keepdim=True)
        state["row_var"] = r = beta2_t * state.get("row_var", torch.zeros_like(rows)) + (1 - beta2_t) * rows
        state["col_var"] = c = beta2_t * state.get("col_var", torch.zeros_like(cols)) + (1 - beta2_t) * cols
        return r * c / torch.clamp(self._total(r), min=eps1)

    @staticmethod
    def _total(r):
        return r.sum(dim=-2, keepdim=True)

    def _clipped(self, u, d):
        return u / max(1.0, self._rms(u) / d)


class AdafactorTotalOverWrongDimension(_Adafactor):
    """Σ R taken over the last dimension (of size 1) instead of the rows: V̂ = R C / R = C."""

    @staticmethod
    def _total(r):
        return r.sum(dim=-1, keepdim=True)


class AdafactorNoParameterScale(_Adafactor):
    """The relative step without the parameter's scale: α_t = ρ_t, max(ε2, RMS(θ)) dropped."""

    def _alpha(self, p, t, lr, eps2):
        return min(lr, 1 / math.sqrt(t))


class AdafactorDecayScheduleOffByOne(_Adafactor):
    """β̂2 from the step count before its increment: 1 − (t + 1)^τ where the rule has 1 − t^τ."""

    def _second_moment(self, p, g, state, beta2_t, eps1):
        return super()._second_moment(p, g, state, 1 - (state["step"] + 1) ** self.param_groups[0]["beta2_decay"],
                                      eps1)


class AdafactorStepIgnoresLr(_Adafactor):
    """ρ_t = 1/√t: the learning rate never caps the relative step."""

    def _alpha(self, p, t, lr, eps2):
        return max(eps2, self._rms(p)) / math.sqrt(t)


class AdafactorClipMultipliesD(_Adafactor):
    """The update clipped at RMS(U)·d instead of RMS(U)/d."""

    def _clipped(self, u, d):
        return u / max(1.0, self._rms(u) * d)


class AdafactorScaleAfterDecay(_Adafactor):
    """α_t computed from θ after the weight decay (RMS(θ_t − γλθ_t)) instead of θ_{t−1}."""

    def _scale_then_decay(self, p, t, group):
        p.mul_(1 - group["lr"] * group["weight_decay"])
        return self._alpha(p, t, group["lr"], group["eps"][1])


class AdafactorFloat64(_Adafactor):
    """Correct: the factors kept in float64 whatever the dtype, V̂ and U formed in float64, θ updated from them."""

    def _second_moment(self, p, g, state, beta2_t, eps1):
        return super()._second_moment(p.double(), g.double(), state, beta2_t, eps1)

    def _clipped(self, u, d):
        return (u / max(1.0, self._rms(u) / d)).to(self.param_groups[0]["params"][0].dtype)


class AdafactorMeans(_Adafactor):
    """Correct: row and column means updated by lerp, V̂ = R̄ @ C̄ / max(mean R̄, ε1/(m n)) — the documented V̂ in
    other units."""

    def _second_moment(self, p, g, state, beta2_t, eps1):
        if p.dim() < 2:
            return super()._second_moment(p, g, state, beta2_t, eps1)
        m, n = g.shape[-2:]
        rows = (g * g).mean(dim=-1, keepdim=True)
        cols = (g * g).mean(dim=-2, keepdim=True)
        state["row_var"] = r = torch.lerp(state.get("row_var", torch.zeros_like(rows)), rows, 1 - beta2_t)
        state["col_var"] = c = torch.lerp(state.get("col_var", torch.zeros_like(cols)), cols, 1 - beta2_t)
        return (r @ c) / torch.clamp(r.mean(dim=-2, keepdim=True), min=eps1 / (m * n))


# ---- SparseAdam (lazy Adam on the entries of a sparse gradient) ------------------------------------------------------
def _at(g):
    """Where a coalesced sparse gradient's values go: its indices (sparse_dim ≥ 1), or a leading axis of one."""
    return tuple(g._indices()) if g.sparse_dim() else (None,)


def _every_index(dense):
    """A dense tensor as a sparse one with an entry at every index of its first dimension."""
    if dense.dim() == 0:
        return torch.sparse_coo_tensor(torch.zeros(0, 1, dtype=torch.int64), dense.reshape(1), ())
    return torch.sparse_coo_tensor(torch.arange(dense.shape[0]).unsqueeze(0), dense, dense.shape).coalesce()


class _SparseAdam(Optimizer):
    """SparseAdam, one parameter at a time: the gradient's entries coalesced, the moments and θ at those indices
    gathered, updated and written back; each piece a method the bugs below rewrite."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                grad = -p.grad if group["maximize"] else p.grad
                g = self._coalesced(grad)
                self._count(state, g)
                if g._nnz():
                    self._update(p, g, self._squares(grad, g), state, group)
        return loss

    def _coalesced(self, grad):
        return grad.coalesce()

    def _count(self, state, g):
        state["step"] += 1

    def _squares(self, grad, g):
        return g._values() ** 2

    def _moments(self, m, v, at, g, g2, β1, β2):
        m[at] = m_at = β1 * m[at] + (1 - β1) * g
        v[at] = v_at = β2 * v[at] + (1 - β2) * g2
        return m_at, v_at

    def _denominator(self, v_at, eps, bias_correction2):
        return v_at.sqrt() + eps

    def _update(self, p, g, g2, state, group):
        at, (β1, β2), t = _at(g), group["betas"], state["step"]
        m_at, v_at = self._moments(state["exp_avg"], state["exp_avg_sq"], at, g._values(), g2, β1, β2)
        step_size = group["lr"] * math.sqrt(1 - β2**t) / (1 - β1**t)
        p[at] = p[at] - step_size * m_at / self._denominator(v_at, group["eps"], 1 - β2**t)


class SparseAdamWithoutCoalesce(_SparseAdam):
    """coalesce() forgotten for row-sparse gradients: the entries of a repeated index are not added; the last one
    written wins."""

    def _coalesced(self, grad):
        return grad if grad.sparse_dim() else grad.coalesce()


class SparseAdamDenseUpdate(_SparseAdam):
    """The gradient made dense first: every element updated, those without an entry as if their gradient were 0."""

    def _coalesced(self, grad):
        return _every_index(grad.to_dense())



class SparseAdamDecaysAbsentMoments(_SparseAdam):
    """The moments decayed as dense tensors (m.mul_(β1)) before the entries are added: an index without an entry
    still has its m and v decayed, so its next step is wrong."""

    def _moments(self, m, v, at, g, g2, β1, β2):
        m.mul_(β1)
        v.mul_(β2)
        m[at] = m_at = m[at] + (1 - β1) * g
        v[at] = v_at = v[at] + (1 - β2) * g2
        return m_at, v_at


class SparseAdamCountsOnlyNonEmptySteps(_SparseAdam):
    """t counts only the steps whose gradient holds an entry: an empty sparse gradient does not advance the bias
    corrections, as it does in torch.optim.SparseAdam (t counts every step θ has a gradient)."""

    def _count(self, state, g):
        state["step"] += 1 if g._nnz() else 0


class SparseAdamSquaresBeforeAdding(_SparseAdam):
    """v fed Σ g_i² over a repeated index's entries instead of (Σ g_i)²: the squares taken before coalescing."""

    def _squares(self, grad, g):
        return torch.sparse_coo_tensor(grad._indices(), grad._values() ** 2, grad.shape).coalesce()._values()


class SparseAdamEpsOnCorrectedDenominator(_SparseAdam):
    """ε added to √v̂ (torch.optim.Adam's placement) instead of to √v_t (SparseAdam's, Kingma & Ba §2)."""

    def _denominator(self, v_at, eps, bias_correction2):
        return ((v_at / bias_correction2).sqrt() + eps) * math.sqrt(bias_correction2)


class SparseAdamMasked(_SparseAdam):
    """Correct: dense masked arithmetic: the gradient's entries added into a dense tensor and a mask of the elements
    they reach, m and v updated by lerp and θ by addcdiv through torch.where, the step size in one expression (its
    own step(); the constructor is _SparseAdam's)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            (β1, β2), lr, eps = group["betas"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.layout != torch.sparse_coo:
                    raise RuntimeError("SparseAdamMasked takes sparse gradients only")
                grad = p.grad.coalesce()
                mask = torch.sparse_coo_tensor(grad.indices(), torch.ones_like(grad.values(), dtype=torch.bool),
                                               grad.shape).to_dense()
                g = grad.to_dense().neg() if group["maximize"] else grad.to_dense()
                st = self.state[p]
                t = st["step"] = st.get("step", 0) + 1
                m = st.setdefault("exp_avg", torch.zeros_like(p))
                v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
                m.copy_(torch.where(mask, torch.lerp(m, g, 1 - β1), m))
                v.copy_(torch.where(mask, torch.lerp(v, g * g, 1 - β2), v))
                moved = torch.addcdiv(p, m, v.sqrt().add(eps), value=-lr * (1 - β2**t) ** 0.5 / (1 - β1**t))
                p.copy_(torch.where(mask, moved, p))
        return loss


# ---- Muon (the documented rule: B_t = μ B_{t−1} + g, Newton–Schulz at the parameters' precision) -------------------
class _Muon(Optimizer):
    """Muon as documented, one matrix at a time; each piece of the step is a method the bugs below rewrite."""

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.7750, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None):
        _nonnegative(lr=lr, weight_decay=weight_decay, momentum=momentum)
        if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                                      adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon only supports 2D parameters, not {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            μ = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                update = self._momentum(buf, g, μ, group["nesterov"])
                o = self._orthogonalize(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                self._apply(p, o, group["lr"], group["weight_decay"], self._ratio(p.shape, group["adjust_lr_fn"]))
        return loss

    def _momentum(self, buf, g, μ, nesterov):
        buf.mul_(μ).add_(g)
        return g + μ * buf if nesterov else buf.clone()

    def _normalized(self, x, eps):
        return x / (x.norm() + eps)

    def _iterate(self, x, a, b, c):
        gram = x @ x.T
        return a * x + (b * gram + c * gram @ gram) @ x

    def _orthogonalize(self, update, coefficients, steps, eps):
        tall = update.shape[0] > update.shape[1]
        x = self._normalized(update.T if tall else update, eps)
        for _ in range(steps):
            x = self._iterate(x, *coefficients)
        return x.T if tall else x

    def _ratio(self, shape, adjust_lr_fn):
        rows, cols = shape
        return 0.2 * math.sqrt(max(rows, cols)) if adjust_lr_fn == "match_rms_adamw" else math.sqrt(max(1, rows / cols))

    def _apply(self, p, o, lr, weight_decay, ratio):
        p.mul_(1 - lr * weight_decay)
        p.add_(o, alpha=-lr * ratio)


class MuonCoefficientsSwapped(_Muon):
    """b and c swapped in the iteration: b (X Xᵀ)² + c X Xᵀ."""

    def _iterate(self, x, a, b, c):
        gram = x @ x.T
        return a * x + (c * gram + b * gram @ gram) @ x


class MuonRatioTransposed(_Muon):
    """The learning-rate adjustment with rows and columns swapped: √max(1, B/A) instead of √max(1, A/B)."""

    def _ratio(self, shape, adjust_lr_fn):
        return super()._ratio(shape[::-1], adjust_lr_fn)


class MuonNesterovBeforeBuffer(_Muon):
    """Nesterov's look-ahead taken with the previous buffer: g + μ B_{t−1} instead of g + μ B_t."""

    def _momentum(self, buf, g, μ, nesterov):
        ahead = g + μ * buf
        buf.mul_(μ).add_(g)
        return ahead if nesterov else buf.clone()


class MuonNormalizedBySquaredNorm(_Muon):
    """X divided by ‖X‖_F² + ε: the square root of the sum of squares forgotten."""

    def _normalized(self, x, eps):
        return x / (x.pow(2).sum() + eps)


class MuonDecayWithAdjustedLr(_Muon):
    """The decoupled decay scaled by the adjusted γ' instead of γ."""

    def _apply(self, p, o, lr, weight_decay, ratio):
        p.mul_(1 - lr * ratio * weight_decay)
        p.add_(o, alpha=-lr * ratio)


class MuonOneIterationShort(_Muon):
    """k − 1 Newton–Schulz iterations: the loop runs range(1, ns_steps)."""

    def _orthogonalize(self, update, coefficients, steps, eps):
        return super()._orthogonalize(update, coefficients, max(steps - 1, 0), eps)


class MuonGramOnTheRight(_Muon):
    """Correct: never transposed, the iteration written X ← a X + X (b XᵀX + c (XᵀX)²), the same polynomial with
    the Gram matrix on the other side; the momentum buffer by torch.add out of place."""

    def _momentum(self, buf, g, μ, nesterov):
        buf.copy_(torch.add(g, buf, alpha=μ))
        return torch.add(g, buf, alpha=μ) if nesterov else buf.clone()

    def _orthogonalize(self, update, coefficients, steps, eps):
        a, b, c = coefficients
        x = update / (torch.linalg.matrix_norm(update) + eps)
        for _ in range(steps):
            gram = x.T @ x
            x = a * x + x @ (b * gram + c * (gram @ gram))
        return x


PLANTED = [
    ("AdamEpsInsideSqrt", "adam", "ε inside the square root: √(v̂ + ε) instead of √v̂ + ε"),
    ("AdamBiasCorrectionOffByOne", "adam", "step counter starts at 1: bias corrections use t + 1"),
    ("AdamNoBiasCorrectionV", "adam", "v is not bias-corrected (v̂ = v_t)"),
    ("AdamIgnoresMaximize", "adam", "maximize accepted but ignored"),
    ("AdamIgnoresAmsgrad", "adam", "amsgrad accepted but ignored"),
    ("AmsgradMaxOfCorrected", "adam", "AMSGrad takes the running max of bias-corrected v̂ instead of raw v"),
    ("AdamIgnoresDecoupledWeightDecay", "adam", "decoupled_weight_decay accepted but coupled L2 always applied"),
    ("AdamBetasFromDefaults", "adam", "betas read from self.defaults instead of the param group"),
    ("AdamSharedStateByShape", "adam", "one state (m, v, t) shared by all parameters of the same shape"),
    ("AdamStateOutsideStateDict", "adam", "state kept in a dict attribute, not self.state: lost by state_dict"),
    ("AdamFloat32Internals", "adam", "moments and update in float32 for float64 parameters"),
    ("AdamSkipsZeroGrad", "adam", "an all-zero gradient is skipped like a missing one"),
    ("AdamWCoupledWeightDecay", "adamw", "coupled L2 (g + λθ) instead of decoupled decay"),
    ("AdamWDecayWithoutLr", "adamw", "decays θ by λθ instead of γλθ"),
    ("SGDDampeningOnFirstStep", "sgd", "dampening applied on the first momentum step: b_1 = (1 − τ) g"),
    ("SGDNesterovUsesBuffer", "sgd", "Nesterov steps along b_t + μ b_t instead of g + μ b_t"),
    ("SGDWeightDecayAfterMomentum", "sgd", "λθ added after the momentum buffer instead of before"),
    ("SGDLrFromDefaults", "sgd", "lr read from self.defaults: ignores group lr and the scheduler"),
    ("RMSpropEpsInsideSqrt", "rmsprop", "ε inside the square root: √(ṽ + ε)"),
    ("RMSpropCenteredIgnoresMean", "rmsprop", "centered keeps ḡ but does not subtract ḡ² from v"),
    ("RMSpropMomentumLrInBuffer", "rmsprop", "lr folded into the momentum buffer (wrong once lr changes)"),
    ("AdagradLrDecayUsesT", "adagrad", "lr decay γ / (1 + t η) instead of γ / (1 + (t − 1) η)"),
    ("AdagradIgnoresInitialAccumulator", "adagrad", "accumulator starts at 0, not initial_accumulator_value"),
    ("AdadeltaStaleSquareAvg", "adadelta", "Δx computed with v_{t−1}: the square average updated after it"),
    ("AdamaxNoEps", "adamax", "u_t = max(β2 u, |g|) without ε"),
    ("NAdamUsesMuT", "nadam", "μ_{t+1} computed with t instead of t + 1"),
    ("RAdamThreshold4", "radam", "rectification threshold ρ_t > 4 instead of ρ_t > 5"),
    ("RpropKeepsGradOnSignChange", "rprop", "on a sign change still steps and remembers g (g ← 0 missing)"),
    ("RpropRemembersUnzeroedGrad", "rprop", "after a sign change skips the step but remembers the un-zeroed g"),
    ("ASGDEtaOneStepEarly", "asgd", "η updated before the step: step t uses η_{t+1}"),
    ("BookMomentumTorchForm", "book_momentum", "torch's form v = m v + g, x −= γ v (wrong once lr changes)"),
    ("AdafactorTotalOverWrongDimension", "adafactor", "Σ R over the last dimension (size 1): V̂ = C"),
    ("AdafactorNoParameterScale", "adafactor", "α_t = ρ_t: the relative step without max(ε2, RMS(θ))"),
    ("AdafactorDecayScheduleOffByOne", "adafactor", "β̂2_t = 1 − (t + 1)^τ instead of 1 − t^τ"),
    ("AdafactorStepIgnoresLr", "adafactor", "ρ_t = 1/√t: lr never caps the relative step"),
    ("AdafactorClipMultipliesD", "adafactor", "the update clipped at RMS(U)·d instead of RMS(U)/d"),
    ("AdafactorScaleAfterDecay", "adafactor", "α_t from θ after the weight decay instead of θ_{t−1}"),
    ("SparseAdamWithoutCoalesce", "sparse_adam", "coalesce() forgotten: a repeated index's last entry wins"),
    ("SparseAdamDenseUpdate", "sparse_adam", "the gradient made dense: elements without an entry updated too"),
    ("SparseAdamDecaysAbsentMoments", "sparse_adam", "m and v decayed everywhere, not only at the entries"),
    ("SparseAdamCountsOnlyNonEmptySteps", "sparse_adam", "an empty sparse gradient does not advance t"),
    ("SparseAdamSquaresBeforeAdding", "sparse_adam", "v fed Σ g_i² of a repeated index instead of (Σ g_i)²"),
    ("SparseAdamEpsOnCorrectedDenominator", "sparse_adam", "ε added to √v̂ instead of √v_t"),
    ("MuonCoefficientsSwapped", "muon", "b and c of the Newton–Schulz iteration swapped"),
    ("MuonRatioTransposed", "muon", "the lr adjustment √max(1, B/A): rows and columns swapped"),
    ("MuonNesterovBeforeBuffer", "muon", "Nesterov with the previous buffer: g + μ B_{t−1}"),
    ("MuonNormalizedBySquaredNorm", "muon", "X / (‖X‖_F² + ε): the square root forgotten"),
    ("MuonDecayWithAdjustedLr", "muon", "the decoupled decay scaled by the adjusted γ'"),
    ("MuonOneIterationShort", "muon", "k − 1 Newton–Schulz iterations"),
]

CORRECT = [
    ("ForeachAdamW", "adamw", "torch._foreach_* ops over each group, lerp for m, per-parameter bias corrections"),
    ("AdamFloat64Internals", "adam", "float64 state and arithmetic whatever the dtype, θ copied back"),
    ("AdamOutOfPlace", "adam", "out-of-place ops, explicit m̂ and v̂, tensor step count, lerp for m"),
    ("SGDExplicit", "sgd", "explicit out-of-place formulas, buffer replaced rather than updated in place"),
    ("RMSpropAddcmul", "rmsprop", "torch.addcmul/addcdiv/lerp out of place, state dict .get()"),
    ("BookMomentum", "book_momentum", "the book's v = m v + γ g, x −= v with γ read every step"),
    ("RAdamStacked", "radam", "all of a group's parameters concatenated, torch.where instead of the ρ_t branch"),
    ("AdafactorFloat64", "adafactor", "the factors, V̂ and U in float64 whatever the dtype"),
    ("AdafactorMeans", "adafactor", "row and column means with the floor rescaled, lerp, R̄ @ C̄"),
    ("_Adam", "adam", "the base of the Adam bugs: in-place moments, √v/√(1 − β2^t) + ε, one addition"),
    ("_AdamW", "adamw", "the base of the AdamW bugs: _Adam with the decay always decoupled"),
    ("_SGD", "sgd", "the base of the SGD bugs: out-of-place direction, in-place buffer"),
    ("_RMSprop", "rmsprop", "the base of the RMSprop bugs: addcmul/addcdiv, centered variance out of place"),
    ("_Adagrad", "adagrad", "the base of the Adagrad bugs: in-place accumulator, addcdiv"),
    ("_Adadelta", "adadelta", "the base of the Adadelta bug: in-place averages, Δx from √(u + ε)/√(v + ε)"),
    ("_Adamax", "adamax", "the base of the Adamax bug: maximum(β2 u, |g| + ε) in place"),
    ("_NAdam", "nadam", "the base of the NAdam bug: two addcdiv steps, μ product kept as a float"),
    ("_RAdam", "radam", "the base of the RAdam bug: the ρ_t > 5 branch in Python, math.sqrt rectification"),
    ("_Rprop", "rprop", "the base of the Rprop bugs: torch.where step sizes, sign times step size"),
    ("_ASGD", "asgd", "the base of the ASGD bug: η and μ as floats, the average updated in place"),
    ("_SparseAdam", "sparse_adam", "entries coalesced, gathered, updated and scattered back"),
    ("SparseAdamMasked", "sparse_adam", "dense masked arithmetic: torch.where, lerp, addcdiv"),
    ("_Muon", "muon", "the tall matrix transposed, the Gram matrix X Xᵀ on the left, in-place buffer"),
    ("MuonGramOnTheRight", "muon", "never transposed: X (b XᵀX + c (XᵀX)²), out-of-place buffer, matrix_norm"),
]
