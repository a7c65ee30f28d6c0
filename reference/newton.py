"""Newton's method, as 004 ("gradient descent" section, "Newton's method") writes it:

    x ← x − η [∇²f(x)]⁻¹ ∇f(x)          (η = 1 in the document)

A pure float64 function of the problem's gradient and Hessian (``reference/problems.py``); the linear system is
solved by LU with partial pivoting (``torch.linalg.solve``), not by forming the inverse. Nothing here checks that
the Hessian is positive definite: where it is not, the step is still taken, and may go uphill (004's x·cos(cx)).
"""
from __future__ import annotations

from typing import Callable

import torch

Tensor = torch.Tensor


def newton_step(x: Tensor, grad: Callable[[Tensor], Tensor], hessian: Callable[[Tensor], Tensor],
                eta: float = 1.0) -> Tensor:
    """One Newton step: x⁺ = x − η d, where ∇²f(x) d = ∇f(x).

    For a 1-D problem this is 004's ``x -= eta * f_grad(x) / f_hess(x)``.
    """
    g = grad(x)
    H = hessian(x)
    d = torch.linalg.solve(H, g.unsqueeze(-1)).squeeze(-1)
    return x - eta * d


def newton(problem, steps: int, x0: Tensor | None = None, eta: float = 1.0,
           step: Callable = newton_step) -> list[Tensor]:
    """The iterates x_0, x_1, …, x_steps of Newton's method on ``problem`` (004's ``newton(eta)`` loop)."""
    x = problem.x0 if x0 is None else x0
    out = [x]
    for _ in range(steps):
        x = step(x, problem.grad, problem.hessian, eta)
        out.append(x)
    return out
