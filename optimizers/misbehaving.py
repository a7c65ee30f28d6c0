"""Implementations that misbehave in the ways a user's might — the cases of the suite's bad-input table
(``properties/test_bad_input.py``) and of its isolation test (``properties/test_isolation.py``). Each is torch's
SGD (a correct ``sgd``) but for the one thing its docstring says. Do not use them for training.
"""
import time

import numpy as np
import torch


class RaisesInStep(torch.optim.SGD):
    """step() raises on its second call."""

    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            raise RuntimeError("kernel launch failed")
        return super().step(closure)


class NaNInStep(torch.optim.SGD):
    """step() leaves NaN in the parameters where the rule's result is finite."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.fill_(float("nan"))
        return loss


class HangsInStep(torch.optim.SGD):
    """step() never returns (sleeps in short slices, as a deadlocked kernel would spin)."""

    def step(self, closure=None):
        while True:
            time.sleep(0.05)


class ChangesDtype(torch.optim.SGD):
    """step() replaces each parameter's data with a float32 copy."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.data = p.data.float()
        return loss


class ReplacesParameter(torch.optim.SGD):
    """step() gives each parameter new storage (p.data = p.data.clone()) instead of updating it in place."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.data = p.data.clone()
        return loss


class WritesGrad(torch.optim.SGD):
    """step() adds weight decay into p.grad in place."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.add_(p, alpha=1e-3)
        return super().step(closure)


class RefusesNesterov(torch.optim.SGD):
    """Takes **kwargs but refuses nesterov (TypeError), as a port that has not implemented it yet might."""

    def __init__(self, params, **kwargs):
        if "nesterov" in kwargs:
            raise TypeError("nesterov is not supported")
        super().__init__(params, **kwargs)


class NoStep:
    """Constructs like an optimizer but has no step()."""

    def __init__(self, params, lr=0.1):
        self.params = list(params)


class ChangesGlobalState(torch.optim.SGD):
    """A correct SGD that changes torch's process-wide state: default dtype and grad mode in its constructor;
    threads, deterministic algorithms and every RNG in its step()."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)

    def step(self, closure=None):
        loss = super().step(closure)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(1234)
        np.random.seed(1234)
        return loss


class ConstructorMaximize(torch.optim.SGD):
    """maximize read from the constructor for every param group, as some libraries keep it (``self.maximize``)."""

    def __init__(self, params, *args, maximize=False, **kwargs):
        super().__init__(params, *args, maximize=maximize, **kwargs)
        self.constructor_maximize = maximize

    @torch.no_grad()
    def step(self, closure=None):
        own = [g["maximize"] for g in self.param_groups]
        for g in self.param_groups:
            g["maximize"] = self.constructor_maximize
        try:
            return super().step(closure)
        finally:
            for g, m in zip(self.param_groups, own):
                g["maximize"] = m


class ConstructorMaximizeDeclared(ConstructorMaximize):
    """ConstructorMaximize, declaring it to the suite: every param group is then given the constructor's value."""

    constructor_only = ("maximize",)


class RefusesZeroLr(torch.optim.SGD):
    """The constructor refuses lr = 0 (inside the rule's domain) with a failed assert, as lion-pytorch does."""

    def __init__(self, params, lr=1e-3, *args, **kwargs):
        assert lr > 0
        super().__init__(params, lr, *args, **kwargs)


class ConstructorOnlyTypo(ConstructorMaximize):
    """Declares a name that is not one of the rule's hyperparameters (a typo of maximize)."""

    constructor_only = ("maximise",)
