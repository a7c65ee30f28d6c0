"""L-BFGS with a fixed step, as one ``torch.optim.LBFGS.step(closure)`` call documents it (``line_search_fn=None``);
the direction is Nocedal & Wright's two-loop recursion (Numerical Optimization, 2nd ed., Algorithm 7.4).
Written from those two sources — never by calling torch.optim. Pure float64 functions of a problem's f and ∇f.

Notation (N&W §7.2): x_k the iterate, g_k = ∇f(x_k), s_k = x_{k+1} − x_k, y_k = g_{k+1} − g_k, ρ_k = 1 / y_kᵀs_k.
The m most recent pairs (s_i, y_i) define H_k, the inverse-Hessian approximation, through the two-loop recursion
from H_k⁰ = γ_k I with γ_k = s_{k−1}ᵀy_{k−1} / y_{k−1}ᵀy_{k−1} (N&W eq. 7.20).

One ``step`` (what ``LBFGS.step(closure)`` does, for lr, max_iter, max_eval, tolerance_grad, tolerance_change,
history_size — torch.optim.LBFGS documentation):

  evaluate f, g at x (one function evaluation); if max|g| ≤ tolerance_grad: stop (nothing moves)
  repeat at most max_iter times (iterations are counted over the optimizer's whole life, k = 1, 2, …):
    if a move s was made since the last direction: y = g − g_prev; keep (s, y) if yᵀs > 1e-10, dropping the oldest
      pair beyond history_size, and then γ = sᵀy / yᵀy (γ stays at its last value, 1 at first, otherwise)
    d = −g on the first iteration ever, else d = −H g by the two-loop recursion over the kept pairs
    t = lr · min(1, 1/‖g‖₁) on the first iteration ever, else t = lr
    if gᵀd > −tolerance_change: stop (not a descent direction; nothing moves)
    x ← x + t d;  if this is not the max_iter-th iteration of the step: evaluate f, g at x
    stop if: max_iter iterations are done; another evaluation would exceed max_eval (default 1.25·max_iter);
      max|g| ≤ tolerance_grad; max|t d| ≤ tolerance_change; |f − f_prev| < tolerance_change
  the value returned is f at the start of the step.

The memory (pairs, γ, the last move and the gradient it started from, the iteration count) carries over to the next
step, whose first evaluation supplies the y of the last move.
"""
from __future__ import annotations

from typing import Callable

import torch

from reference.declarations import Choice, Hyper, Real, Rule

Tensor = torch.Tensor
CURVATURE_THRESHOLD = 1e-10   # torch.optim.LBFGS keeps a pair only if yᵀs exceeds this


def two_loop(g: Tensor, pairs: tuple, gamma) -> Tensor:
    """H g by N&W Algorithm 7.4, pairs oldest first, each (s_i, y_i, ρ_i):

    q ← g;  for i = newest … oldest:  α_i ← ρ_i s_iᵀ q;  q ← q − α_i y_i
    r ← γ q;  for i = oldest … newest:  β ← ρ_i y_iᵀ r;  r ← r + s_i (α_i − β)
    return r  (= H g)
    """
    q = g
    alphas = [None] * len(pairs)
    for i in reversed(range(len(pairs))):
        s, y, rho = pairs[i]
        alphas[i] = rho * torch.dot(s, q)
        q = q - alphas[i] * y
    r = gamma * q
    for i, (s, y, rho) in enumerate(pairs):
        beta = rho * torch.dot(y, r)
        r = r + s * (alphas[i] - beta)
    return r


def initial_state() -> dict:
    return {"iterations": 0, "pairs": (), "gamma": 1.0, "move": None, "g_from": None}


def lbfgs_step(x: Tensor, fg: Callable[[Tensor], tuple[float, Tensor]], state: dict, *, lr: float = 1.0,
               max_iter: int = 20, max_eval: float | None = None, tolerance_grad: float = 1e-7,
               tolerance_change: float = 1e-9, history_size: int = 100) -> tuple[Tensor, dict, dict]:
    """One ``LBFGS.step(closure)`` without line search (module docstring). ``fg(x) -> (f, ∇f)``, f a scalar.

    Returns (x, new state, info); info: ``loss`` (f at the start, what step returns), ``evaluations``,
    ``iterations`` (this step), ``kept`` (per iteration: whether a pair was offered and kept, None if none was
    offered) and ``exit`` (why it stopped) — the discrete path of the step.
    """
    max_eval = max_iter * 1.25 if max_eval is None else max_eval
    st = dict(state)
    f, g = fg(x)
    loss, evaluations, kept = f, 1, []
    info = {"loss": loss, "evaluations": 1, "iterations": 0, "kept": kept, "exit": "optimal at start"}
    if torch.abs(g).max() <= tolerance_grad:
        return x, st, info
    exit_reason = "max_iter"
    for k in range(1, max_iter + 1):
        st["iterations"] += 1
        first_ever = st["iterations"] == 1
        if st["move"] is not None:
            s, y = st["move"], g - st["g_from"]
            ys = torch.dot(y, s)
            if ys > CURVATURE_THRESHOLD:
                st["pairs"] = (st["pairs"] + ((s, y, 1.0 / ys),))[-history_size:]
                st["gamma"] = ys / torch.dot(y, y)
                kept.append(True)
            else:
                kept.append(False)
            st["move"] = None
        else:
            kept.append(None)
        d = -g if first_ever else -two_loop(g, st["pairs"], st["gamma"])
        t = lr * min(1.0, 1.0 / torch.sum(torch.abs(g))) if first_ever else lr
        if torch.dot(g, d) > -tolerance_change:
            exit_reason = "not a descent direction"
            break
        step = t * d
        x = x + step
        st["move"], st["g_from"] = step, g
        f_prev = f
        if k < max_iter:
            f, g = fg(x)
            evaluations += 1
        if k == max_iter:
            exit_reason = "max_iter"
            break
        if evaluations + 1 > max_eval:
            exit_reason = "max_eval"
            break
        if torch.abs(g).max() <= tolerance_grad:
            exit_reason = "tolerance_grad"
            break
        if torch.abs(step).max() <= tolerance_change:
            exit_reason = "tolerance_change (step)"
            break
        if abs(f - f_prev) < tolerance_change:
            exit_reason = "tolerance_change (loss)"
            break
    info.update(evaluations=evaluations, iterations=len(kept), exit=exit_reason)
    return x, st, info


LBFGS = Rule(
    "lbfgs", lbfgs_step,
    source="torch.optim.LBFGS documentation; Nocedal & Wright, Numerical Optimization, Algorithm 7.4",
    torch_class="LBFGS",
    hypers=(
        Hyper("lr", 1.0, Real(0.0, search=(0.05, 1.0), edges=(1.0,)), "step length t (the first step ever scaled by "
              "min(1, 1/‖g‖₁))"),
        Hyper("max_iter", 20, Choice((20, 1, 2, 3, 4, 5, 6, 7, 8)), "iterations per step(closure)"),
        Hyper("max_eval", None, Choice((None, *range(1, 13))),
              "closure evaluations per step(closure) (None: 1.25 max_iter)"),
        Hyper("tolerance_grad", 1e-7, Real(0.0, search=(1e-6, 1e-1), log=True, edges=(1e-7, 0.0), enforced=()),
              "stop when max|∇f| ≤ this"),
        Hyper("tolerance_change", 1e-9, Real(0.0, search=(1e-8, 1e-2), log=True, edges=(1e-9, 0.0), enforced=()),
              "stop when max|t d| or |Δf| falls below this"),
        Hyper("history_size", 100, Choice((100, 1, 2, 3, 4, 5, 6)), "pairs (s, y) kept"),
        Hyper("line_search_fn", None, Choice((None, "strong_wolfe")),
              "None: the fixed step above; 'strong_wolfe': a step satisfying the strong Wolfe conditions"),
    ),
    elementwise=False,
    closure=True,
)
