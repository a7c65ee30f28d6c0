"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2) as a rule of the suite:
the update function, its formula in the docstring, and its declaration — all the suite needs to judge a Lion. It is
named ``my_lion``: the suite ships the same rule as the built-in ``lion`` (``reference/modern_rules.py``), and a rule
of one's own may not take a built-in's name.

    python -m pytest --optimizer docs/examples/lion.py:Lion --rule docs/examples/lion_rule.py:LION
"""
import torch

from reference.declarations import Hyper, Pair, Real, Rule


def lion(θ, g, state, *, lr, betas, weight_decay):
    """Lion (Chen et al. 2023, Algorithm 2), decoupled weight decay λ.

    c = β1 m_{t−1} + (1 − β1) g;   θ ← θ − γ (sign(c) + λθ);   m_t = β2 m_{t−1} + (1 − β2) g
    """
    β1, β2 = betas
    m = state.get("m", torch.zeros_like(θ))
    c = β1 * m + (1 - β1) * g
    θ = θ - lr * (torch.sign(c) + weight_decay * θ)
    return θ, {"m": β2 * m + (1 - β2) * g}


BETA = Real(0.0, 1.0, search=(0.0, 0.999), edges=(0.0, 0.9, 0.99), enforced=("lo", "hi"))
LION = Rule(
    "my_lion", lion, source="Chen et al. 2023, Algorithm 2",
    hypers=(
        Hyper("lr", 1e-4, Real(0.0, search=(1e-6, 1.0), log=True, edges=(0.0, 1e-4)), "learning rate γ",
              scheduled=True),
        Hyper("betas", (0.9, 0.99), Pair(BETA, BETA), "(β1, β2): the interpolation for the step, the EMA's decay"),
        Hyper("weight_decay", 0.0, Real(0.0, search=(1e-4, 10.0), log=True, edges=(0.0, 1.0)), "weight decay λ"),
    ),
    buffers=lambda hp: ("exp_avg",),
    decoupled_decay=True,   # λ scales θ; it is not added to the gradient
)
