"""A NumPy step function as an implementation under test, and the torch.optim shell both adapters share.

A NumPy step function is ``fn(params, grads, state, hyperparameters) -> (params, state)``, called **once per
parameter** per step (as the reference rules are): ``params`` and ``grads`` are NumPy arrays of the parameter's
dtype and shape (copies: writing into them changes nothing), ``state`` is what the function returned for that
parameter last time (an empty dict on its first step), and ``hyperparameters`` is a dict of the rule's
hyperparameters in the rule's own names (torch's: ``lr``, ``betas``, ``weight_decay``, ...), those of the
parameter's group at this step (``lr`` as scheduled). It returns the new parameter values (cast to the
parameter's dtype; a different shape is an error) and the new state. ``optimizers/numpy_examples.py`` has adam and
sgd to copy.

The suite drives torch.optim-like objects, so ``numpy_optimizer(fn, rule)`` returns a factory whose objects *are*
``torch.optim.Optimizer`` s (param_groups, state_dict/load_state_dict, zero_grad, add_param_group, step(closure),
usable with torch's LR schedulers) and delegate the arithmetic to ``fn``:

* a parameter whose ``.grad`` is None at a step is not updated and its state is held, as torch.optim does;
* the constructor calls ``fn`` once per param group on a dummy parameter (zeros, float64), so that a function
  which rejects a hyperparameter (``raise ValueError``), or cannot run with this rule's hyperparameters, does so
  at construction, where torch.optim raises;
* the state lives in ``optimizer.state[p]["held"]`` inside an opaque ``Held`` box, so that torch's
  ``load_state_dict`` (which re-creates containers it recognises) hands it back unchanged.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import torch
from torch.optim import Optimizer

from reference.declarations import Rule


class Held:
    """The delegate's state for one parameter, boxed: torch's state_dict machinery passes it through untouched,
    and ``copy.deepcopy`` copies what it holds."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"Held({self.value!r})"


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``t`` in its own dtype (bfloat16 through ml_dtypes, which JAX installs)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("a bfloat16 parameter needs ml_dtypes (installed with jax) to become a NumPy array") from None
        return t.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)
    return t.numpy().copy()


def from_numpy(a: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    """``a`` as a tensor of ``like``'s dtype and device; a shape other than ``like``'s is an error (no broadcasting,
    which would hide a wrong result)."""
    a = np.asarray(a)
    if tuple(a.shape) != tuple(like.shape):
        raise ValueError(f"{what} returned an array of shape {tuple(a.shape)} for a parameter of shape "
                         f"{tuple(like.shape)}")
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).to(like.device)
    return torch.from_numpy(np.array(a, copy=True)).to(dtype=like.dtype, device=like.device)


class PerParameterOptimizer(Optimizer):
    """A torch.optim.Optimizer whose arithmetic is delegated, parameter by parameter, to ``_update``.

    ``_update(p, group, state) -> (new values as a tensor of p's dtype, new state)``, ``state`` None before the
    parameter's first step. Parameters without a gradient are skipped and keep their state.
    """

    def _update(self, p: torch.Tensor, group: dict, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                held = self.state[p].get("held")
                new, state = self._update(p, group, None if held is None else held.value)
                p.copy_(new)
                self.state[p]["held"] = Held(state)
        return loss


def signature(names_defaults: dict) -> inspect.Signature:
    """``(params, <name>=<default>, ...)``: what the suite's probe reads to learn which hyperparameters are
    accepted (``optimizers/adapters.py:accepted_hyperparameters``)."""
    params = [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in names_defaults.items()]
    return inspect.Signature(params)


def is_numpy_step_function(obj: Any) -> bool:
    """A plain function (not a class) of exactly four positional parameters without defaults, as
    ``fn(params, grads, state, hyperparameters)``; a torch.optim-style class or factory takes
    ``(params, **hyperparameters)`` or gives its hyperparameters defaults."""
    if isinstance(obj, type) or not callable(obj):
        return False
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return len(params) == 4 and all(p.kind in positional and p.default is inspect.Parameter.empty for p in params)


class NumPyStepOptimizer(PerParameterOptimizer):
    """``fn`` driven as a torch.optim.Optimizer; see the module docstring."""

    def __init__(self, params, fn: Callable, rule: Rule, defaults: dict):
        self.fn, self.rule = fn, rule
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        # the function sees the group's hyperparameters first here, at construction, as torch.optim checks them
        dummy = np.zeros(2)
        with np.errstate(all="ignore"):
            self.fn(dummy, dummy.copy(), {}, self._hyperparameters(self.param_groups[-1]))

    def _hyperparameters(self, group: dict) -> dict:
        return {n: group[n] for n in self.rule.names}

    def _update(self, p, group, state):
        new, state = self.fn(to_numpy(p), to_numpy(p.grad), {} if state is None else state,
                             self._hyperparameters(group))
        return from_numpy(new, p, f"{getattr(self.fn, '__name__', 'the step function')}()"), state


def numpy_optimizer(fn: Callable, rule: Rule) -> Callable:
    """A torch.optim-style factory ``(params, **hyperparameters)`` running the NumPy step function ``fn`` as
    ``rule``: it takes every hyperparameter of the rule, under the rule's names and with its defaults (the NumPy
    convention of ``optimizers/conventions.py`` is the identity)."""
    defaults = rule.defaults()

    def factory(params, **hyperparameters):
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise TypeError(f"{factory.__name__}() got unexpected hyperparameters {unknown}; rule {rule.name!r} has "
                            f"{', '.join(defaults)}")
        return NumPyStepOptimizer(params, fn, rule, {**defaults, **hyperparameters})

    factory.__name__ = factory.__qualname__ = getattr(fn, "__name__", "numpy_step")
    factory.__doc__ = f"{factory.__name__} (a NumPy step function) as a torch.optim optimizer for rule {rule.name!r}"
    factory.__signature__ = signature(defaults)
    factory.wraps = fn
    return factory
