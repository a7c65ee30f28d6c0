"""An open-loop trajectory problem and the reference's run of it.

Gradients are data, not functions of the parameters: the implementation and the reference see the same gradients
at every step, so a deviation at step t is the rule's, not a loss surface amplifying an earlier one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from reference.declarations import Rule
from reference.sparse import SparseGrad, as_sparse, masked


@dataclass
class Group:
    """A parameter group: which parameters (indices into ``Case.params``) and its hyperparameters.

    ``inherits``: the group is given to the implementation without hyperparameters, so it must take the
    constructor's (``Case.groups[0]``'s) values — ``hp`` then equals group 0's.
    """

    indices: tuple[int, ...]
    hp: dict
    inherits: bool = False


@dataclass
class Case:
    """Initial parameters, per-step gradients (None: that parameter has no gradient at that step; a ``SparseGrad``
    for a rule with sparse gradients) and per-step, per-group learning rates; values are float64 arrays already
    representable in ``dtype``."""

    rule: Rule
    groups: list[Group]
    params: list[np.ndarray]
    grads: list[list[np.ndarray | SparseGrad | None]]
    lrs: list[list[float]]
    dtype: torch.dtype = torch.float64
    notes: dict = field(default_factory=dict)
    #: group index -> the step before which it is added with ``add_param_group`` (absent: there from the start); a
    #: group's parameters have no gradient before then, and no step() of the optimizer counts for them either
    joins: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        groups = "; ".join(f"{list(g.indices)}{' (inherits)' if g.inherits else ''}: {g.hp}" for g in self.groups)
        return (f"Case({self.rule.name}, {str(self.dtype).replace('torch.', '')}, {self.steps} steps, shapes "
                f"{[tuple(p.shape) for p in self.params]}, groups {groups})")

    def _repr_pretty_(self, printer, cycle) -> None:   # Hypothesis prints falsifying examples with this
        printer.text(repr(self))

    @property
    def steps(self) -> int:
        return len(self.grads)

    def group_of(self, i: int) -> int:
        return next(k for k, g in enumerate(self.groups) if i in g.indices)

    def present(self, i: int, step: int) -> bool:
        """Whether parameter ``i`` is in the optimizer at ``step`` (its group has joined)."""
        return step >= self.joins.get(self.group_of(i), 0)

    def hp_at(self, i: int, step: int) -> dict:
        """The hyperparameters parameter ``i`` is updated with at ``step`` (lr as scheduled)."""
        k = self.group_of(i)
        hp = dict(self.groups[k].hp)
        if "lr" in hp and self.rule.hyper("lr").scheduled:
            hp["lr"] = self.lrs[step][k]
        return hp


def gradient(case: Case, g, dtype: torch.dtype = torch.float64):
    """What the rule's update receives for gradient ``g``: a tensor, or for a sparse rule its ``Masked`` view."""
    if case.rule.sparse_gradients:
        g = as_sparse(g)
        return masked(g, torch.tensor(g.dense(), dtype=torch.float64).to(dtype))
    return torch.tensor(g, dtype=torch.float64).to(dtype)


def reference_trajectory(case: Case, dtype: torch.dtype = torch.float64,
                         feedback: Callable[[list[np.ndarray], int], list] | None = None) -> list[list[np.ndarray]]:
    """Run the reference rule on ``case`` with its arithmetic in ``dtype`` (float64 for the reference itself).
    Returns the parameters after every step. Open loop, each step takes the case's gradients; closed loop,
    ``feedback(parameters, t)``'s, as ``optimizers.adapters.implementation_trajectory`` feeds an implementation."""
    params = [torch.tensor(p, dtype=torch.float64).to(dtype) for p in case.params]
    states: list[dict] = [{} for _ in params]
    out = []
    for step, row in enumerate(case.grads):
        grads = row if feedback is None else feedback([p.to(torch.float64).numpy().copy() for p in params], step)
        for i, g in enumerate(grads):
            if g is None:
                if case.rule.idle is not None and case.present(i, step):
                    states[i] = case.rule.idle(states[i], **case.hp_at(i, step))
                continue
            params[i], states[i] = case.rule.update(params[i], gradient(case, g, dtype), states[i], **case.hp_at(i, step))
        out.append([p.to(torch.float64).numpy().copy() for p in params])
    return out
