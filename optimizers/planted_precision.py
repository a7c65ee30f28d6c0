"""Compensated updates of 16-bit parameters (Kahan summation), as implementations keep them: each parameter's
compensation in ``state["kahan_comp"]`` (torch-optimi's name), so that θ + compensation follows the rule at about
twice the dtype's precision. Judged with ``--compensation kahan_comp`` (``Subject.compensation``): a correct one
conforms to rule ``sgd`` at that precision; each planted bug is a correct one but for the one method it rewrites.
float32 and float64 parameters are updated as ``planted._SGD`` updates them.
"""
from __future__ import annotations

import torch

from optimizers.planted import _SGD, _loss

COMPENSATION = "kahan_comp"
LOW_PRECISION = (torch.bfloat16, torch.float16)


class KahanSGD(_SGD):
    """SGD whose update of a bfloat16/float16 parameter is Kahan-summed: c ← c + Δ; θ ← fl(θ + c);
    c ← c − (θ_new − θ_old), what the rounding of θ left out."""

    def _update(self, p, d, group):
        if p.dtype not in LOW_PRECISION:
            return super()._update(p, d, group)
        state = self.state[p]
        if COMPENSATION not in state:
            state[COMPENSATION] = torch.zeros_like(p)
        self._compensated_add(p, d.mul(-self._lr(group)), state[COMPENSATION])

    def _compensated_add(self, p, update, comp):
        self._carry(comp, update)
        before = p.clone()
        p.add_(comp)
        self._keep_error(comp, before, p)

    def _carry(self, comp, update):
        comp.add_(update)

    def _keep_error(self, comp, before, after):
        comp.add_(before - after)


class KahanSGDTwoSum(KahanSGD):
    """A correct variant in another form: the error of θ + y taken by TwoSum (no assumption on which is larger)."""

    def _compensated_add(self, p, update, comp):
        y = comp + update
        s = p + y
        virtual = s - p
        comp.copy_((p - (s - virtual)) + (y - virtual))
        p.copy_(s)


class KahanSGDWithoutCompensation(KahanSGD):
    """The update rounded into θ as plain 16-bit arithmetic does; the compensation kept but always 0."""

    def _compensated_add(self, p, update, comp):
        p.add_(update)


class KahanSGDCompensationSignFlipped(KahanSGD):
    """The rounding error saved with the wrong sign: c ← c + (θ_new − θ_old)."""

    def _keep_error(self, comp, before, after):
        comp.add_(after - before)


class KahanSGDCompensationForgotten(KahanSGD):
    """Each step's compensation starts from 0: c ← Δ instead of c + Δ, so what earlier roundings left out is lost."""

    def _carry(self, comp, update):
        comp.copy_(update)


class KahanSGDCompensationNeverApplied(KahanSGD):
    """The rounding error accumulated in c but never added back: θ ← fl(θ + Δ); c ← c + Δ − (θ_new − θ_old). θ + c
    follows the rule, but θ drifts from it without bound: the compensation is no longer below θ's spacing."""

    def _compensated_add(self, p, update, comp):
        before = p.clone()
        p.add_(update)
        comp.add_(update).add_(before - p)


CORRECT = ["KahanSGD", "KahanSGDTwoSum"]
PLANTED = [
    ("KahanSGDWithoutCompensation", "the update rounded into θ without compensation"),
    ("KahanSGDCompensationSignFlipped", "the rounding error saved with the wrong sign"),
    ("KahanSGDCompensationForgotten", "each step's compensation starts from 0"),
    ("KahanSGDCompensationNeverApplied", "the compensation accumulated but never added back to θ"),
]


class AdamFloat32State(torch.optim.Optimizer):
    """Adam (coupled L2 decay) for 16-bit parameters as mixed-precision training keeps it: the moments in float32, the
    step computed in float32 from the parameter's value, the parameter rounded once when stored. Judged with
    ``--precision float32-state``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _buffer(self, p):
        return torch.zeros_like(p, dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            β1, β2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=self._buffer(p), exp_avg_sq=self._buffer(p))
                    self._start(p, state)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                θ = self._theta(p, state)
                g = p.grad.float() + group["weight_decay"] * θ
                m.lerp_(g.to(m.dtype), 1 - β1)
                v.mul_(β2).addcmul_(g.to(v.dtype), g.to(v.dtype), value=1 - β2)
                denom = (v.float() / (1 - β2**t)).sqrt() + group["eps"]
                self._store(p, state, θ - group["lr"] / (1 - β1**t) * m.float() / denom)
        return loss

    def _start(self, p, state):
        pass

    def _theta(self, p, state):
        return p.float()

    def _store(self, p, state, θ):
        p.copy_(θ)


class AdamStateInParameterDtype(AdamFloat32State):
    """The moments kept in the parameter's dtype (what torch.optim does), though float32 state is declared."""

    def _buffer(self, p):
        return torch.zeros_like(p)


class AdamFloat32Master(AdamFloat32State):
    """Mixed-precision Adam with float32 master weights: the master in ``state["master"]`` takes the float32 step,
    the 16-bit parameter is its rounded copy. Judged with ``--master-weights master``."""

    def _start(self, p, state):
        state["master"] = p.float()

    def _theta(self, p, state):
        return state["master"]

    def _store(self, p, state, θ):
        state["master"] = θ
        p.copy_(θ)


class AdamMasterFromCopy(AdamFloat32Master):
    """The master re-read from the 16-bit parameter every step, so it keeps only the parameter's precision."""

    def _theta(self, p, state):
        return p.float()


class AdamMasterNotCopied(AdamFloat32Master):
    """The master updated, the parameter never written back: the model trains on stale weights."""

    def _store(self, p, state, θ):
        state["master"] = θ
