"""Driving an implementation under test: what its API supports, and running a trajectory case through it.

An implementation is a class or factory called like a torch.optim class, ``(params, **hyperparameters)``, whose
object has ``step()``. Everything else is optional and probed: which of the rule's hyperparameters the constructor
accepts (read from its signature; ``**kwargs`` accepts all), ``param_groups`` (per-group hyperparameters, learning
rates changed by a scheduler, ``add_param_group``), ``state_dict``/``load_state_dict``, ``step(closure)``.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from reference.declarations import Rule
from reference.trajectory import Case


@dataclass(frozen=True)
class Capabilities:
    accepted: frozenset[str]          # the rule's hyperparameters the constructor accepts
    param_groups: bool
    add_param_group: bool
    state_dict: bool
    closure: bool
    zero_grad: bool

    def missing(self, feature: str) -> str | None:
        """Why a test needing ``feature`` cannot run, or None."""
        if not getattr(self, feature):
            return f"the implementation has no {feature.replace('_', ' ')} support"
        return None


@dataclass(frozen=True)
class Subject:
    """An implementation under test, the rule it claims, and how to name and rebuild it outside the suite."""

    id: str
    factory: Callable
    rule: Rule
    spec: str                                   # for the reproducer: module:Name or path.py:Name
    fixed: dict = field(default_factory=dict)   # constructor arguments always passed (foreach=True, ...)
    device: str = "cpu"

    @functools.cached_property
    def caps(self) -> Capabilities:
        return probe(self)

    def varied(self) -> tuple[str, ...]:
        return tuple(n for n in self.rule.names if n in self.caps.accepted)

    def held(self) -> dict:
        return {n: v for n, v in self.rule.defaults().items() if n not in self.caps.accepted}


class NotAnOptimizer(TypeError):
    """The SPEC resolved, but what it names cannot be used as an optimizer; the message is one line."""


def accepted_hyperparameters(factory: Callable, rule: Rule) -> frozenset[str]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return frozenset(rule.names)
    params = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(rule.names)
    names = {p.name for p in params[1:]} if params else set()
    return frozenset(n for n in rule.names if n in names)


def probe(subject: Subject) -> Capabilities:
    accepted = accepted_hyperparameters(subject.factory, subject.rule)
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64, device=subject.device))
    kwargs = {**{n: v for n, v in subject.rule.defaults().items() if n in accepted}, **subject.fixed}
    try:
        opt = subject.factory([p], **kwargs)
    except Exception as e:
        raise NotAnOptimizer(f"{subject.id}: constructing it as {subject.id}([param], **{kwargs!r}) raised "
                             f"{type(e).__name__}: {e}") from None
    if not callable(getattr(opt, "step", None)):
        raise NotAnOptimizer(f"{subject.id}: {subject.id}(params, ...) returned a {type(opt).__name__} with no "
                             "step() method; expected an object used like a torch.optim optimizer")
    groups = getattr(opt, "param_groups", None)
    has_groups = isinstance(groups, list) and all(isinstance(g, dict) and "params" in g for g in groups)
    try:
        step_params = list(inspect.signature(opt.step).parameters)
    except (TypeError, ValueError):
        step_params = ["closure"]
    return Capabilities(
        accepted=accepted,
        param_groups=has_groups,
        add_param_group=has_groups and callable(getattr(opt, "add_param_group", None)),
        state_dict=callable(getattr(opt, "state_dict", None)) and callable(getattr(opt, "load_state_dict", None)),
        closure=len(step_params) >= 1,
        zero_grad=callable(getattr(opt, "zero_grad", None)),
    )


def make_params(case: Case, device: str) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(p, dtype=case.dtype, device=device)) for p in case.params]


def construct(subject: Subject, case: Case, params: list[torch.Tensor]) -> Any:
    """Build the optimizer for ``case``: the constructor takes group 0's hyperparameters; every other group is
    passed as a param-group dict, with its own hyperparameters unless it inherits the constructor's."""
    accepted = subject.caps.accepted

    def own(hp: dict) -> dict:
        return {k: v for k, v in hp.items() if k in accepted}

    kwargs = {**own(case.groups[0].hp), **subject.fixed}
    if not subject.caps.param_groups:
        return subject.factory(list(params), **kwargs)
    groups = [{"params": [params[i] for i in g.indices], **({} if g.inherits else own(g.hp))} for g in case.groups]
    return subject.factory(groups, **kwargs)


def set_grads(case: Case, params: list[torch.Tensor], step: int) -> None:
    for p, g in zip(params, case.grads[step]):
        p.grad = None if g is None else torch.tensor(g, dtype=case.dtype, device=p.device)


def set_lrs(subject: Subject, case: Case, opt: Any, step: int) -> None:
    if subject.caps.param_groups and "lr" in subject.caps.accepted and case.rule.hyper("lr").scheduled:
        for group, lr in zip(opt.param_groups, case.lrs[step]):
            group["lr"] = lr


def snapshot(params: list[torch.Tensor]) -> list[np.ndarray]:
    return [p.detach().to("cpu", torch.float64).numpy().copy() for p in params]


def implementation_trajectory(subject: Subject, case: Case) -> list[list[np.ndarray]]:
    """Run ``case`` through the implementation; the parameters after every step."""
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    out = []
    for step in range(case.steps):
        set_lrs(subject, case, opt, step)
        set_grads(case, params, step)
        opt.step()
        out.append(snapshot(params))
    return out
