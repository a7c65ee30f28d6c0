"""The documents' template optimizers, as a reader of them would write them.

``OptimizerBase`` and ``GD`` are the "Gradient Optimization" chapter's (000) code, verbatim but for formatting;
``Momentum``, ``Adagrad``, ``RMSProp`` and ``Adam`` fill in its ``update_param`` with the formulas of the torch-for-R
book's "Optimizers" chapter (002, eqs. 8.1–8.9). They have no param_groups, state_dict or closure: the suite tests
them as the documents' rules (``sgd`` for GD, ``book_*`` for the others) and skips what they cannot take.
"""
import torch


class OptimizerBase:
    def __init__(self, params: list, lr: float):
        self.params = params
        self.lr = lr

    def zero_grad(self):
        for p in self.params:
            if p.grad is None:
                continue
            p.grad.detach_()
            p.grad.zero_()

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            self.update_param(p)

    def update_param(self, p):
        raise NotImplementedError


class GD(OptimizerBase):
    def __init__(self, params, lr):
        super().__init__(params, lr)

    def update_param(self, p):
        p += -self.lr * p.grad


class Momentum(OptimizerBase):
    """v = m·v + lr·g;  x = x − v   (002, eqs. 8.1–8.2)"""

    def __init__(self, params, lr, momentum=0.1):
        super().__init__(params, lr)
        self.momentum = momentum
        self.v = {}

    def update_param(self, p):
        v = self.v.get(p, torch.zeros_like(p))
        v = self.momentum * v + self.lr * p.grad
        self.v[p] = v
        p -= v


class Adagrad(OptimizerBase):
    """s = s + g²;  x = x − lr/(ε + √s)·g   (002, eqs. 8.3–8.4)"""

    def __init__(self, params, lr, eps=1e-8):
        super().__init__(params, lr)
        self.eps = eps
        self.s = {}

    def update_param(self, p):
        self.s[p] = self.s.get(p, torch.zeros_like(p)) + p.grad**2
        p -= self.lr / (self.eps + self.s[p].sqrt()) * p.grad


class RMSProp(OptimizerBase):
    """s = γ·s + (1 − γ)·g²;  x = x − lr/(ε + √s)·g   (002, eqs. 8.5–8.6)"""

    def __init__(self, params, lr, gamma=0.9, eps=1e-8):
        super().__init__(params, lr)
        self.gamma, self.eps = gamma, eps
        self.s = {}

    def update_param(self, p):
        self.s[p] = self.gamma * self.s.get(p, torch.zeros_like(p)) + (1 - self.gamma) * p.grad**2
        p -= self.lr / (self.eps + self.s[p].sqrt()) * p.grad


class Adam(OptimizerBase):
    """v = γ_v·v + (1 − γ_v)·g;  s = γ_s·s + (1 − γ_s)·g²;  x = x − lr·v/(ε + √s)   (002, eqs. 8.7–8.9)"""

    def __init__(self, params, lr, gamma_v=0.9, gamma_s=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.gamma_v, self.gamma_s, self.eps = gamma_v, gamma_s, eps
        self.v, self.s = {}, {}

    def update_param(self, p):
        self.v[p] = self.gamma_v * self.v.get(p, torch.zeros_like(p)) + (1 - self.gamma_v) * p.grad
        self.s[p] = self.gamma_s * self.s.get(p, torch.zeros_like(p)) + (1 - self.gamma_s) * p.grad**2
        p -= self.lr * self.v[p] / (self.eps + self.s[p].sqrt())
