"""The documents' own textbook forms of the rules, as the "Optimizers" chapter of the torch-for-R book (002) writes
them: momentum on the learning-rate-scaled gradient, and Adagrad, RMSProp and Adam without bias correction.

Symbols as in the chapter: x the parameters, g the gradient, k the iteration, lr the learning rate.
"""
from __future__ import annotations

import torch

from reference.declarations import Hyper, Real, Rule
from reference.rules import LR


def _zeros(x):
    return torch.zeros_like(x)


def book_momentum(x, g, state, *, lr, momentum):
    """Gradient descent with momentum, 002 eqs. 8.1–8.2:

    v^(k+1) = m v^(k) + lr g^(k);   x^(k+1) = x^(k) − v^(k+1)
    With m + lr = 1, v is an exponentially weighted moving average of the gradients.
    """
    v = momentum * state.get("v", _zeros(x)) + lr * g
    return x - v, {"v": v}


def book_adagrad(x, g, state, *, lr, eps):
    """Adagrad, 002 eqs. 8.3–8.4 (the accumulator includes the current gradient):

    s_i^(k) = Σ_{j=1..k} (g_i^(j))²;   x_i^(k+1) = x_i^(k) − lr / (ε + √s_i^(k)) · g_i^(k)
    """
    s = state.get("s", _zeros(x)) + g * g
    return x - lr / (eps + torch.sqrt(s)) * g, {"s": s}


def book_rmsprop(x, g, state, *, lr, gamma, eps):
    """RMSProp, 002 eqs. 8.5–8.6:

    s_i^(k+1) = γ s_i^(k) + (1 − γ) (g_i^(k))²;   x_i^(k+1) = x_i^(k) − lr / (ε + √s_i) · g_i^(k)
    Eq. 8.6 prints s_i^(k) in the denominator; the text says the update "looks as with Adagrad", whose
    accumulator (8.3) already holds the current gradient, so s_i is read as the freshly updated s_i^(k+1).
    """
    s = gamma * state.get("s", _zeros(x)) + (1 - gamma) * g * g
    return x - lr / (eps + torch.sqrt(s)) * g, {"s": s}


def book_adam(x, g, state, *, lr, gamma_v, gamma_s, eps):
    """Adam as 002 writes it, eqs. 8.7–8.9 (no bias correction; the footnote says implementations add a step):

    v_i^(k+1) = γ_v v_i^(k) + (1 − γ_v) g_i^(k);   s_i^(k+1) = γ_s s_i^(k) + (1 − γ_s) (g_i^(k))²
    x_i^(k+1) = x_i^(k) − lr v_i^(k+1) / (ε + √s_i^(k+1))
    """
    v = gamma_v * state.get("v", _zeros(x)) + (1 - gamma_v) * g
    s = gamma_s * state.get("s", _zeros(x)) + (1 - gamma_s) * g * g
    return x - lr * v / (eps + torch.sqrt(s)), {"v": v, "s": s}


_EPS = Hyper("eps", 1e-8, Real(0.0, lo_open=True, search=(1e-12, 1e-1), log=True, edges=(1e-8, 1e-12, 1e-1)),
             "ε, \"a tiny value added to avoid division by zero\" (002, footnote 1)")
_DECAY = Real(0.0, 1.0, search=(0.0, 0.9999), edges=(0.0, 0.9, 0.999))
SOURCE = "002, \"Optimizers\" chapter of a book on torch for R, §8.3"

BOOK_MOMENTUM = Rule(
    "book_momentum", book_momentum, source=SOURCE + ".3, eqs. 8.1–8.2",
    hypers=(LR(0.5), Hyper("momentum", 0.1, Real(0.0, search=(0.0, 0.999), edges=(0.0, 0.1, 0.9, 1.0)),
                           "momentum m (the book's example: lr = 0.5, m = 0.1)")),
    buffers=lambda hp: ("v",),
)
BOOK_ADAGRAD = Rule("book_adagrad", book_adagrad, source=SOURCE + ".4, eqs. 8.3–8.4",
                    hypers=(LR(3.7), _EPS), buffers=lambda hp: ("s",))
BOOK_RMSPROP = Rule("book_rmsprop", book_rmsprop, source=SOURCE + ".5, eqs. 8.5–8.6",
                    hypers=(LR(0.1), Hyper("gamma", 0.9, _DECAY, "weighting coefficient γ"), _EPS),
                    buffers=lambda hp: ("s",))
BOOK_ADAM = Rule(
    "book_adam", book_adam, source=SOURCE + ".6, eqs. 8.7–8.9",
    hypers=(LR(0.1), Hyper("gamma_v", 0.9, _DECAY, "γ_v, \"usually set to 0.9\""),
            Hyper("gamma_s", 0.999, _DECAY, "γ_s, \"usually set to 0.999\""), _EPS),
    buffers=lambda hp: ("v", "s"),
)

TEXTBOOK_RULES = (BOOK_MOMENTUM, BOOK_ADAGRAD, BOOK_RMSPROP, BOOK_ADAM)
