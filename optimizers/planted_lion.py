"""Planted bugs of a rule the user brings: Lion, declared in ``docs/examples/lion_rule.py``
(``properties/test_user_rules.py``). Each class is a correct Lion but for ONE realistic mistake, named in its
docstring; ``CORRECT`` holds Lion written another way (foreach ops, the decay folded into the step), which must pass.

Do not use these classes for training.
"""
from __future__ import annotations

import torch
from torch.optim import Optimizer


class _Lion(Optimizer):
    """Lion, one parameter at a time through ``_update`` (which each bug below rewrites in one line)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        for name, v in (("lr", lr), ("weight_decay", weight_decay)):
            if not v >= 0.0:
                raise ValueError(f"Invalid {name}: {v}")
        if not (0.0 <= betas[0] <= 1.0 and 0.0 <= betas[1] <= 1.0):
            raise ValueError(f"Invalid betas: {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                self._update(p, p.grad, state["exp_avg"], group["lr"], group["weight_decay"], *group["betas"])
        return loss

    def _update(self, p, g, m, lr, wd, β1, β2):
        p.mul_(1 - lr * wd)
        p.add_(m.mul(β1).add_(g, alpha=1 - β1).sign_(), alpha=-lr)
        m.mul_(β2).add_(g, alpha=1 - β2)


class LionMomentumFirst(_Lion):
    """Updates m with β2 before the step and takes the sign of the new m's interpolation."""

    def _update(self, p, g, m, lr, wd, β1, β2):
        p.mul_(1 - lr * wd)
        m.mul_(β2).add_(g, alpha=1 - β2)
        p.add_(m.mul(β1).add_(g, alpha=1 - β1).sign_(), alpha=-lr)


class LionSignOfMomentum(_Lion):
    """Steps along sign(m): the interpolation with the current gradient forgotten."""

    def _update(self, p, g, m, lr, wd, β1, β2):
        p.mul_(1 - lr * wd)
        p.add_(m.sign(), alpha=-lr)
        m.mul_(β2).add_(g, alpha=1 - β2)


class LionBetasSwapped(_Lion):
    """β1 and β2 swapped: the EMA decays with β1, the step interpolates with β2."""

    def _update(self, p, g, m, lr, wd, β1, β2):
        p.mul_(1 - lr * wd)
        p.add_(m.mul(β2).add_(g, alpha=1 - β2).sign_(), alpha=-lr)
        m.mul_(β1).add_(g, alpha=1 - β1)


class LionDecayWithoutLr(_Lion):
    """Decoupled weight decay not scaled by the learning rate: θ ← (1 − λ)θ."""

    def _update(self, p, g, m, lr, wd, β1, β2):
        p.mul_(1 - wd)
        p.add_(m.mul(β1).add_(g, alpha=1 - β1).sign_(), alpha=-lr)
        m.mul_(β2).add_(g, alpha=1 - β2)


class LionCoupledDecay(_Lion):
    """Weight decay added to the gradient (L2), as Adam's is, rather than scaling θ."""

    def _update(self, p, g, m, lr, wd, β1, β2):
        g = g.add(p, alpha=wd)
        p.add_(m.mul(β1).add_(g, alpha=1 - β1).sign_(), alpha=-lr)
        m.mul_(β2).add_(g, alpha=1 - β2)


class LionForeach(_Lion):
    """Correct: every parameter of a group at once with torch._foreach ops, the decay folded into one addition."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            ms = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in params]
            (β1, β2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
            c = torch._foreach_lerp(ms, grads, 1 - β1) if β1 < 1 else [m.clone() for m in ms]
            steps = torch._foreach_sign(c)
            torch._foreach_add_(steps, params, alpha=wd)
            torch._foreach_add_(params, steps, alpha=-lr)
            torch._foreach_mul_(ms, β2)
            torch._foreach_add_(ms, grads, alpha=1 - β2)
        return loss


PLANTED = [
    ("LionMomentumFirst", "m updated before the step"),
    ("LionSignOfMomentum", "sign(m) instead of sign(β1 m + (1 − β1) g)"),
    ("LionBetasSwapped", "β1 and β2 swapped"),
    ("LionDecayWithoutLr", "decoupled decay not scaled by γ"),
    ("LionCoupledDecay", "weight decay added to the gradient"),
]
CORRECT = [("LionForeach", "foreach ops, lerp for the interpolation, decay folded into the step"), ("_Lion", "one parameter at a time")]
