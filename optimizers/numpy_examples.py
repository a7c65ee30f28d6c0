"""NumPy step functions for the suite to check, to copy and adapt: ``adam`` and ``sgd``, torch's rules written in NumPy.

A step function is ``fn(params, grads, state, hyperparameters) -> (params, state)``, called once per parameter per
step (``optimizers/numpy_adapter.py``): ``params`` and ``grads`` are arrays of the parameter's dtype, ``state`` what
it returned last time for that parameter (``{}`` at first), ``hyperparameters`` the rule's, in the rule's names.
Check one with::

    python -m pytest --optimizer optimizers.numpy_examples:adam --rule adam

The arithmetic stays in the parameter's dtype (NumPy keeps float32 arrays float32 against Python numbers), with
the step-dependent scalars (1 − β^t) computed in Python floats, as torch does. Invalid hyperparameters raise
ValueError, as torch.optim's constructors do (the adapter calls the function once at construction).
"""
from __future__ import annotations

import math

import numpy as np


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def adam(params, grads, state, hyperparameters):
    """Adam (torch.optim.Adam; rule ``adam``), with AMSGrad, maximize and coupled or decoupled weight decay.

    m_t = β1 m + (1 − β1) g;  v_t = β2 v + (1 − β2) g²;  θ ← θ − γ/(1 − β1^t) · m_t / (√v̂_t/√(1 − β2^t) + ε)
    """
    lr, (beta1, beta2), eps = hyperparameters["lr"], hyperparameters["betas"], hyperparameters["eps"]
    weight_decay = hyperparameters["weight_decay"]
    _check(lr >= 0, f"Invalid learning rate: {lr}")
    _check(eps >= 0, f"Invalid epsilon value: {eps}")
    _check(0 <= beta1 < 1 and 0 <= beta2 < 1, f"Invalid beta parameters: {(beta1, beta2)}")
    _check(weight_decay >= 0, f"Invalid weight_decay value: {weight_decay}")

    g = -grads if hyperparameters["maximize"] else grads
    theta = params
    if weight_decay != 0:
        if hyperparameters.get("decoupled_weight_decay", False):
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
    t = state.get("step", 0) + 1
    m = beta1 * state.get("exp_avg", np.zeros_like(theta)) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", np.zeros_like(theta)) + (1 - beta2) * g * g
    new_state = {"step": t, "exp_avg": m, "exp_avg_sq": v}
    if hyperparameters["amsgrad"]:
        v = np.maximum(state.get("max_exp_avg_sq", np.zeros_like(theta)), v)
        new_state["max_exp_avg_sq"] = v
    step_size = lr / (1 - beta1**t)
    denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
    return theta - step_size * (m / denom), new_state


def sgd(params, grads, state, hyperparameters):
    """SGD (torch.optim.SGD; rule ``sgd``) with momentum, dampening, Nesterov, weight decay and maximize.

    g ← g + λθ;  b_1 = g, b_t = μ b + (1 − τ) g;  g ← g + μ b_t (Nesterov) or b_t;  θ ← θ − γ g
    """
    lr, momentum, dampening = hyperparameters["lr"], hyperparameters["momentum"], hyperparameters["dampening"]
    weight_decay, nesterov = hyperparameters["weight_decay"], hyperparameters["nesterov"]
    _check(lr >= 0, f"Invalid learning rate: {lr}")
    _check(momentum >= 0, f"Invalid momentum value: {momentum}")
    _check(weight_decay >= 0, f"Invalid weight_decay value: {weight_decay}")
    _check(not nesterov or (momentum > 0 and dampening == 0), "Nesterov momentum requires a momentum and zero dampening")

    g = -grads if hyperparameters["maximize"] else grads
    if weight_decay != 0:
        g = g + weight_decay * params
    if momentum != 0:
        b = g.copy() if "momentum_buffer" not in state else momentum * state["momentum_buffer"] + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        state = {"momentum_buffer": b}
    return params - lr * g, state
