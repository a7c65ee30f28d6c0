"""Implementations of the rules of ``reference/modern_rules.py`` written as one writes a torch optimizer — in place,
with ``lerp``, ``addcmul``/``addcdiv`` and ``_foreach`` ops, the schedulers in Python floats — and in another order of
the same algebra than the reference: the suite's correct subjects for lion, adopt, ademamix, adan and lamb
(``properties/test_planted_bugs.py``), and for schedulefree_sgd and schedulefree_adamw
(``reference/schedulefree_rules.py``). ``optimizers/planted_modern.py`` plants one bug in each by overriding one
method.

    python -m pytest --optimizer optimizers/modern.py:Adan --rule adan

Do not use these classes for training.
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from optimizers.planted import _loss


def _check(lr, betas, closed=False, **nonnegative):
    for name, v in {"lr": lr, **nonnegative}.items():
        if not v >= 0.0:
            raise ValueError(f"Invalid {name}: {v}")
    for i, b in enumerate(betas):
        if not (0.0 <= b <= 1.0 if closed else 0.0 <= b < 1.0):
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


class Lion(Optimizer):
    """Lion: the step's sign from ``torch.lerp(g, m, β1)``, the decay a multiplication of θ, the EMA by lerp_."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        _check(lr, betas, closed=True, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            (β1, β2), lr = group["betas"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                direction = self._direction(p.grad, m, β1)
                p.mul_(1 - lr * group["weight_decay"]).add_(direction, alpha=-lr)
                self._remember(m, p.grad, group)
        return loss

    def _direction(self, g, m, β1):
        return torch.lerp(g, m, β1).sign_()

    def _remember(self, m, g, group):
        m.lerp_(g, 1 - group["betas"][1])


class Adopt(Optimizer):
    """ADOPT, a group's parameters at once with ``_foreach`` ops; the step index s and the clip s^p per parameter."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.9999), eps=1e-6, clip_exp=0.25, weight_decay=0.0,
                 decoupled_weight_decay=False, *, maximize=False):
        _check(lr, betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, clip_exp=clip_exp, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = torch._foreach_neg([p.grad for p in params]) if group["maximize"] else [p.grad for p in params]
            λ, lr = group["weight_decay"], group["lr"]
            if λ != 0 and not group["decoupled_weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=λ)
            first = [not self.state[p] for p in params]
            for p, g, new in zip(params, grads, first):
                if new:   # the first gradient only sets v
                    self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=g * g)
            rest = [(p, g) for p, g, new in zip(params, grads, first) if not new]
            if not rest:
                continue
            ps, gs = [p for p, _ in rest], [g for _, g in rest]
            states = [self.state[p] for p in ps]
            if λ != 0 and group["decoupled_weight_decay"]:
                torch._foreach_mul_(ps, 1 - lr * λ)
            β1, β2 = group["betas"]
            vs = [s["exp_avg_sq"] for s in states]
            normed = self._normalized(gs, vs, group["eps"], β2)
            for s, n in zip(states, normed):
                s["step"] += 1
                self._clip(n, s["step"], group["clip_exp"])
            ms = [s["exp_avg"] for s in states]
            self._momentum(ms, normed, β1)
            torch._foreach_add_(ps, ms, alpha=-lr)
            self._second_moment(vs, gs, β2)
        return loss

    def _normalized(self, gs, vs, eps, β2):
        """g / max(√v, ε) with v_{t−1}: v is updated after the step (``_second_moment``)."""
        return torch._foreach_div(gs, torch._foreach_maximum(torch._foreach_sqrt(vs), eps))

    def _second_moment(self, vs, gs, β2):
        torch._foreach_mul_(vs, β2)
        torch._foreach_addcmul_(vs, gs, gs, value=1 - β2)

    def _clip(self, n, s, p):
        if p is not None:
            c = s**p
            n.clamp_(-c, c)

    def _momentum(self, ms, normed, β1):
        torch._foreach_lerp_(ms, normed, 1 - β1)


class AdEMAMix(Optimizer):
    """AdEMAMix, one parameter at a time: α_t and β3_t in Python floats (the β3 scheduler through half-lives,
    0.5^(1/(h+1))), the EMAs by lerp_, the update by two addcdiv_."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=2.0, t_alpha_beta3=None, eps=1e-8,
                 weight_decay=0.0):
        _check(lr, betas, alpha=alpha, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            β1, β2, β3 = group["betas"]
            lr, T = group["lr"], group["t_alpha_beta3"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state.update(step=0, exp_avg_fast=torch.zeros_like(p), exp_avg_slow=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                α_t, β3_t = self._schedules(t, T, group["alpha"], β1, β3)
                fast, slow, sq = state["exp_avg_fast"], state["exp_avg_slow"], state["exp_avg_sq"]
                fast.lerp_(g, 1 - β1)
                slow = self._slow_ema(slow, g, β3_t, t)
                sq.mul_(β2).addcmul_(g, g, value=1 - β2)
                denom = sq.div(1 - β2**t).sqrt_().add_(group["eps"])
                p.mul_(1 - lr * group["weight_decay"])
                p.addcdiv_(fast, denom, value=-lr / (1 - β1**t))
                p.addcdiv_(slow, denom, value=-lr * α_t)
        return loss

    def _slow_ema(self, slow, g, β3_t, t):
        return slow.lerp_(g, 1 - β3_t)

    def _schedules(self, t, T, alpha, β1, β3):
        if not T or t >= T:
            return alpha, β3
        a = t / T
        half_life = (1 - a) * (math.log(0.5) / math.log(β1) - 1) + a * (math.log(0.5) / math.log(β3) - 1)
        return alpha * a, min(0.5 ** (1 / (half_life + 1)), β3)


class Adan(Optimizer):
    """Adan with the paper's β (decay weights as the official code writes them), one parameter at a time: the
    previous gradient kept as it is, the EMAs by lerp_, the two terms of the update by addcdiv_."""

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.0, no_prox=False):
        _check(lr, betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, no_prox=no_prox))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            β1, β2, β3 = group["betas"]
            lr, λ = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_diff=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p), pre_grad=g.clone())
                t = self._advance(group, state)
                diff = self._difference(g, state["pre_grad"])
                state["exp_avg"].lerp_(g, 1 - β1)
                state["exp_avg_diff"].lerp_(diff, 1 - β2)
                w = self._nesterov(g, diff, β2)
                state["exp_avg_sq"].mul_(β3).addcmul_(w, w, value=1 - β3)
                denom = state["exp_avg_sq"].sqrt().div_(math.sqrt(1 - β3**t)).add_(group["eps"])
                if group["no_prox"]:
                    p.mul_(1 - lr * λ)
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - β1**t))
                p.addcdiv_(state["exp_avg_diff"], denom, value=-lr * β2 / (1 - β2**t))
                if not group["no_prox"]:
                    p.div_(1 + lr * λ)
                state["pre_grad"].copy_(g)
        return loss

    def _advance(self, group, state):
        """t: this parameter's steps."""
        state["step"] += 1
        return state["step"]

    def _difference(self, g, previous):
        return g - previous

    def _nesterov(self, g, diff, β2):
        """g_t + β2 (g_t − g_{t−1}), whose square n averages."""
        return diff.mul(β2).add_(g)


class AdanGroupStep(Adan):
    """Adan with t its group's step() count, advancing also for a parameter without a gradient (rule
    ``adan_group_step``), as the official code (sail-sg/Adan) and timm count it: one counter in the param group."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
        return super().step(closure)

    def _advance(self, group, state):
        state["step"] += 1      # kept, unused: the state a per-parameter Adan has
        return group["step"]


class Lamb(Optimizer):
    """LAMB, one tensor at a time: Adam's ratio by addcdiv, the decay added to it, torch.linalg.vector_norm for the
    trust ratio, chosen with torch.where."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, bias_correction=True,
                 clamp_value=None, adam=False):
        _check(lr, betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction, clamp_value=clamp_value, adam=adam))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            β1, β2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(β1).add_(g, alpha=1 - β1)
                v.mul_(β2).addcmul_(g, g, value=1 - β2)
                bc1, bc2 = (1 - β1**t, 1 - β2**t) if group["bias_correction"] else (1.0, 1.0)
                denom = (v / bc2).sqrt_().add_(group["eps"])
                update = (m / bc1).div_(denom)
                update.add_(p, alpha=group["weight_decay"])
                p.sub_(update * (group["lr"] * self._trust_ratio(p, update, group)))
        return loss

    def _trust_ratio(self, p, update, group):
        if group["adam"]:
            return 1.0
        w, u = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
        φ = w if group["clamp_value"] is None else w.clamp(max=group["clamp_value"])
        return torch.where((w > 0) & (u > 0), φ / u, torch.ones_like(w))


# ---- Schedule-Free (reference/schedulefree_rules.py) -----------------------------------------------------------------
class _ScheduleFree(Optimizer):
    """What Schedule-Free SGD and AdamW share: each parameter's own step count, lr_max and weight sum (Python floats),
    the average's weight c, and the train/eval swap — in train mode the parameters hold y, in eval mode x (kept in
    the state, so ``eval`` is a copy, not a division by β)."""

    def _interpolation(self, group):
        raise NotImplementedError

    @torch.no_grad()
    def eval(self):
        """Put x, the average, into the parameters (as the official code's ``eval``)."""
        for group in self.param_groups:
            if group["train_mode"]:
                for p in group["params"]:
                    if "x" in self.state[p]:
                        p.copy_(self.state[p]["x"])
                group["train_mode"] = False

    @torch.no_grad()
    def train(self):
        """Put y = (1 − β) z + β x back into the parameters."""
        for group in self.param_groups:
            if not group["train_mode"]:
                for p in group["params"]:
                    state = self.state[p]
                    if "x" in state:
                        torch.lerp(state["z"], state["x"], self._interpolation(group), out=p)
                group["train_mode"] = True

    def _advance(self, state, group):
        """Step count t, warmed-up rate γ_t and the average's weight c for this parameter's step."""
        state["step"] += 1
        t, W = state["step"], group["warmup_steps"]
        lr = group["lr"] * min(1.0, t / W) if W else group["lr"]
        state["lr_max"] = max(state["lr_max"], lr)
        weight = self._weight(t, state["lr_max"], group)
        state["weight_sum"] += weight
        return lr, (weight / state["weight_sum"] if state["weight_sum"] else 0.0)

    def _weight(self, t, lr_max, group):
        return t ** group["r"] * lr_max ** group["weight_lr_power"]


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD, a group's parameters at once with ``_foreach`` ops: z and x kept, y written into the
    parameters as ``torch.lerp(z, x, β)``; the decay λy added to a copy of the gradient (p.grad is left alone).
    The constructor leaves it in train mode (as the official SGDScheduleFreeReference; SGDScheduleFree needs
    ``train()`` first)."""

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0):
        _check(lr, (), weight_decay=weight_decay)
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"Invalid momentum: {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
                                      r=r, weight_lr_power=weight_lr_power, train_mode=True))

    def _interpolation(self, group):
        return group["momentum"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            if not group["train_mode"]:
                raise RuntimeError("call train() before step()")
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=0, lr_max=-1.0, weight_sum=0.0, z=p.clone(), x=p.clone())
            states = [self.state[p] for p in params]
            steps = [self._advance(s, group) for s in states]
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            zs, xs = [s["z"] for s in states], [s["x"] for s in states]
            torch._foreach_add_(zs, torch._foreach_mul(grads, [-lr for lr, _ in steps]))
            for x, z, (_, c) in zip(xs, zs, steps):
                self._average(x, z, c)
            self._interpolate(params, zs, xs, group["momentum"])
        return loss

    def _average(self, x, z, c):
        x.lerp_(z, c)

    def _interpolate(self, params, zs, xs, β):
        for p, z, x in zip(params, zs, xs):
            torch.lerp(z, x, β, out=p)


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW, one parameter at a time, y advanced in place without forming it from x and z:
    y ← (1 − c) y + c z_{t−1} + γ (β1 (1 − c) − 1) u with u = g/d + λy, then z ← z − γ u (the same algebra as
    (1 − β1) z_t + β1 x_t); x is kept as well, for ``eval``. The constructor leaves it in train mode (the official
    AdamWScheduleFree starts in eval mode and needs ``train()`` first)."""

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0):
        _check(lr, betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                                      train_mode=True))

    def _interpolation(self, group):
        return group["betas"][0]

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            if not group["train_mode"]:
                raise RuntimeError("call train() before step()")
            β1, β2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, lr_max=-1.0, weight_sum=0.0, z=p.clone(), exp_avg_sq=torch.zeros_like(p),
                                 x=p.clone())
                lr, c = self._advance(state, group)
                g, z, x, v = p.grad, state["z"], state["x"], state["exp_avg_sq"]
                v.mul_(β2).addcmul_(g, g, value=1 - β2)
                u = g / (v / (1 - β2 ** state["step"])).sqrt_().add_(group["eps"])
                if group["weight_decay"] != 0:
                    u.add_(p, alpha=group["weight_decay"])
                self._move_y(p, z, u, lr, c, β1)
                z.sub_(u, alpha=lr)
                x.lerp_(z, c)
        return loss

    def _move_y(self, y, z, u, lr, c, β1):
        y.lerp_(z, c).add_(u, alpha=lr * (β1 * (1 - c) - 1))
