"""An optax optimizer as an implementation under test: ``--optimizer optax:adam --rule adam``.

What is adapted: an optax alias (``optax.adam``, ``optax.sgd``, ...), a ``functools.partial`` of one (its keywords
are fixed options, e.g. ``rmsprop_eps_outside_sqrt`` below), or any factory whose first parameter is
``learning_rate`` and which returns a ``GradientTransformation``. ``optax_optimizer(alias, rule)`` returns a
torch.optim-style factory whose objects *are* ``torch.optim.Optimizer`` s (``numpy_adapter.PerParameterOptimizer``)
and delegate the arithmetic to optax:

* hyperparameters are translated by the rule's convention (``optimizers/conventions.py``); the factory's signature
  lists exactly the accepted ones, so the suite's probe holds the others at the rule's defaults;
* the transformation is ``optax.inject_hyperparams(alias, static_args=<all but learning_rate>)(**translated)``: the
  learning rate, changed in ``param_groups`` between steps (as the suite's schedules and torch's LR schedulers do),
  reaches optax through ``opt_state.hyperparams`` (cast by optax to the parameters' dtype, as a schedule's value
  is); every other hyperparameter is a Python number, as in ``optax.adam(lr, b1=0.9)``, so optax's own scalar
  arithmetic on it is what its users get, and a callable one (given, or an alias's default such as
  ``optax.contrib.adopt``'s ``clip_value_fn``) is static too, which ``inject_hyperparams`` would otherwise take for a
  schedule and replace by its value (``static_args``); only the alias's numeric defaults that the suite does not
  pass stay injected, as inject_hyperparams does;
* each parameter is its own pytree with its own optax state: ``updates, state = tx.update(g, state, θ)``,
  ``θ ← optax.apply_updates(θ, sign·updates)``, under ``jax.jit`` as training code runs it, then written back into
  the torch parameter in place (identity, dtype, shape and device kept);
* float64 parameters run with ``jax_enable_x64`` (without it JAX silently computes, and returns, float32); every
  other dtype runs in JAX's default 32-bit mode, the one optax's users run in. The mode matters beyond float64:
  with x64 on, Python-number hyperparameters enter float32 arithmetic through float64 scalars (``b2 ** count``),
  so float32 results would be more accurate than what optax's users get;
* a parameter without a gradient at a step is not updated and its optax state is held, as torch.optim does. optax
  has no notion of a missing gradient (its user would pass zeros, which advances the step count and the moments),
  so keeping a state per parameter is what makes torch's semantics expressible.

JAX is an optional extra (``pip install -r requirements.txt`` or ``pip install '.[optax]'``); this module is
imported only once an optax object has been resolved.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from optimizers.conventions import Convention, optax_convention
from optimizers.numpy_adapter import PerParameterOptimizer, from_numpy, signature, to_numpy
from reference.declarations import Rule

#: optax.rmsprop with torch's placement of ε (outside the square root): the variant the findings use to show the
#: differences left once ε is placed as torch places it.
rmsprop_eps_outside_sqrt = functools.partial(optax.rmsprop, eps_in_sqrt=False)


def alias_of(obj: Callable) -> tuple[Callable, dict]:
    """(the optax factory, the keyword arguments a functools.partial fixes)."""
    fixed: dict = {}
    while isinstance(obj, functools.partial):
        if obj.args:
            raise TypeError(f"a functools.partial of {obj.func!r} with positional arguments; fix optax options by "
                            "keyword (functools.partial(optax.rmsprop, eps_in_sqrt=False))")
        fixed = {**obj.keywords, **fixed}
        obj = obj.func
    return obj, fixed


def _keywords(names) -> tuple[str, ...]:
    return names if isinstance(names, tuple) else (names,)


_COMPILED: dict = {}


def is_number(value: Any) -> bool:
    """Whether ``optax.inject_hyperparams`` would inject ``value`` as a number (a traced array in the state)."""
    return isinstance(value, (int, float, np.ndarray, jax.Array)) and not isinstance(value, bool)


def static_args(fn: Callable, kwargs: dict) -> tuple[str, ...]:
    """The ``static_args`` of ``optax.inject_hyperparams(fn)`` for the keyword arguments ``kwargs``: every one given
    but the learning rate (a Python constant, as its users pass it), and every parameter of ``fn`` left at a default
    that is not a number. ``inject_hyperparams`` binds the defaults too and takes any callable among them for a
    schedule, which it calls with the step count and passes on *as its value*: a callable hyperparameter such as
    ``optax.contrib.adopt``'s ``clip_value_fn`` (default ``lambda x: x**0.25``) would reach the alias as a traced
    number and fail when called ("'DynamicJaxprTracer' object is not callable"). Numeric defaults stay injected, as
    the learning rate is."""
    given = [k for k in kwargs if k != "learning_rate"]
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    defaults = [n for n, p in inspect.signature(fn).parameters.items()
                if n not in kwargs and p.kind not in kinds and p.default is not inspect.Parameter.empty
                and not is_number(p.default)]
    return tuple(given + defaults)


def _transformation_and_update(fn: Callable, kwargs: dict, sign: int, x64: bool) -> tuple[Any, Callable]:
    """(the transformation, ``(g, state, θ) -> (θ', state')`` under jax.jit) for these keyword arguments: only the
    learning rate is injected (it changes between steps); every other hyperparameter is a Python constant, as in
    ``optax.adam(lr, b1=0.9)``, so that optax's scalar arithmetic on it (``1 - b1`` in Python, ``b2 ** count`` in
    JAX) is its users', and a callable one (a clip function) reaches the alias as the callable (``static_args``).
    Compiled once per distinct set of them (and shape, dtype): a converted callable compares by value
    (``conventions.Power``) so that it does not recompile every step."""
    fixed = tuple(sorted((k, v) for k, v in kwargs.items() if k != "learning_rate"))
    key = (fn, fixed, sign, x64)
    try:
        return _COMPILED[key]
    except TypeError:           # an unhashable option (a mask pytree): compile for this call only
        key = None
    except KeyError:
        pass
    tx = optax.inject_hyperparams(fn, static_args=static_args(fn, kwargs))(**kwargs)

    @jax.jit
    def update(g, state, theta):
        updates, state = tx.update(g, state, theta)
        if sign != 1:
            updates = jax.tree.map(lambda u: sign * u, updates)
        return optax.apply_updates(theta, updates), state

    if key is not None:
        _COMPILED[key] = tx, update
    return tx, update


class OptaxOptimizer(PerParameterOptimizer):
    """An optax alias driven as a torch.optim.Optimizer; see the module docstring."""

    def __init__(self, params, fn: Callable, fixed: dict, convention: Convention, accepted: tuple, defaults: dict):
        self.fn, self.fixed, self.convention, self.accepted = fn, fixed, convention, accepted
        super().__init__(params, defaults)

    def kwargs(self, group: dict) -> dict:
        """The alias's keyword arguments for ``group``'s hyperparameters now."""
        return {**self.convention.translate({n: group[n] for n in self.accepted}), **self.fixed}

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        # build it now: a keyword optax does not take fails at construction, as torch.optim's constructors do
        tx = self.fn(**self.kwargs(self.param_groups[-1]))
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(f"{getattr(self.fn, '__name__', self.fn)!r} returned a {type(tx).__name__}, not an optax "
                            "GradientTransformation (with init and update)")

    def _update(self, p, group, state):
        kwargs = self.kwargs(group)
        x64 = p.dtype == torch.float64
        with jax.enable_x64(x64):
            tx, update = _transformation_and_update(self.fn, kwargs, self.convention.sign, x64)
            theta, g = jnp.asarray(to_numpy(p)), jnp.asarray(to_numpy(p.grad))
            if state is None:
                state = tx.init(theta)
            # this step's learning rate, in the dtype optax gave it at init (the parameters')
            lr = state.hyperparams["learning_rate"]
            state = state._replace(hyperparams={**state.hyperparams,
                                                "learning_rate": jnp.asarray(kwargs["learning_rate"], lr.dtype)})
            theta, state = update(g, state, theta)
            return from_numpy(np.asarray(theta), p, f"optax.{getattr(self.fn, '__name__', 'update')}"), state


def optax_optimizer(obj: Callable, rule: Rule, convention: Convention | None = None) -> Callable:
    """A torch.optim-style factory ``(params, **hyperparameters)`` running the optax alias ``obj`` as ``rule``,
    under ``convention`` (default: the one declared for the pair in ``optimizers/conventions.py``)."""
    fn, fixed = alias_of(obj)
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise TypeError(f"cannot read the signature of {fn!r}; expected an optax alias such as optax.adam") from None
    if "learning_rate" not in params:
        raise TypeError(f"optax.{name} takes no learning_rate: it is a gradient transformation, not an optimizer; "
                        "name an optax alias such as optax:adam, optax:sgd or optax:rmsprop")
    if convention is None:
        convention = optax_convention(rule.name, rule.names, name, params)
    # a hyperparameter whose keyword the partial fixes is no longer the suite's to vary
    accepted = tuple(n for n in convention.accepted if not set(_keywords(convention.names[n])) & fixed.keys())
    target_defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    from_target = convention.back({**target_defaults, **fixed})
    defaults = {n: from_target.get(n, rule.hyper(n).default) for n in accepted}

    def factory(params, **hyperparameters):
        unknown = sorted(set(hyperparameters) - set(accepted))
        if unknown:
            raise TypeError(f"optax.{name} as rule {rule.name!r} takes {', '.join(accepted)}; not {', '.join(unknown)}"
                            + "".join(f" ({n}: {convention.inexpressible[n]})" for n in unknown
                                      if n in convention.inexpressible))
        return OptaxOptimizer(params, fn, fixed, convention, accepted, {**defaults, **hyperparameters})

    factory.__name__ = factory.__qualname__ = f"optax_{name}"
    factory.subnormals = "flush"   # XLA on CPU flushes subnormal inputs and results to zero, as JAX documents
    factory.__doc__ = (f"optax.{name}{' with ' + repr(fixed) if fixed else ''} as a torch.optim optimizer for rule "
                       f"{rule.name!r}; defaults are optax's")
    factory.__signature__ = signature(defaults)
    factory.wraps = obj
    factory.convention = convention
    return factory


def default_differences(obj: Callable, rule: Rule) -> dict[str, tuple[Any, Any]]:
    """name -> (the rule's default, optax's default) for each accepted hyperparameter whose defaults differ: a
    user who leaves it unset gets another optimizer than the rule's default one (the suite always passes every
    accepted hyperparameter, so only this comparison shows it). optax has no default learning rate."""
    params = inspect.signature(optax_optimizer(obj, rule)).parameters
    return {n: (rule.hyper(n).default, params[n].default) for n in list(params)[1:]
            if params[n].default != rule.hyper(n).default}
