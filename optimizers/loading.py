"""Resolving ``--optimizer SPEC`` to a callable, with one-line errors that say what was wrong and what is accepted.

SPEC is ``package.module:Name``, ``package.module.Name`` or ``path/to/file.py:Name``; Name may be dotted
(``module:Outer.Inner``). Name is a class or factory called like a torch.optim class: ``(params, **hyperparameters)``.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from reference.declarations import Rule

SPEC_FORMS = "package.module:Name, package.module.Name or path/to/file.py:Name"


class SpecError(ValueError):
    """A SPEC that cannot be resolved; its message is the one line shown to the user."""


def _import_file(path: str, option: str = "--optimizer") -> Any:
    if not os.path.isfile(path):
        raise SpecError(f"{option}: file {path!r} does not exist (SPEC forms: {SPEC_FORMS})")
    name = f"_{option.strip('-')}_under_test_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"{option}: {path!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        hint = f"; {OPTAX_INSTALL}" if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in (
            "optax", "jax", "jaxlib") else ""
        raise SpecError(f"{option}: importing {path!r} raised {type(e).__name__}: {e}{hint}") from None
    return module


#: what to do when optax or jax is missing (they are an optional extra)
OPTAX_INSTALL = "optax/jax is not installed; install them with `pip install -r requirements.txt` or `pip install '.[optax]'`"


def _import_module(name: str, option: str = "--optimizer") -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in ("optax", "jax", "jaxlib"):
            raise SpecError(f"{option}: cannot import module {name!r}: {OPTAX_INSTALL}") from None
        missing = f" (module {e.name!r} not found)" if e.name and e.name != name else ""
        raise SpecError(f"{option}: cannot import module {name!r}{missing}; SPEC forms: {SPEC_FORMS}") from None
    except Exception as e:
        raise SpecError(f"{option}: importing module {name!r} raised {type(e).__name__}: {e}") from None


def _attribute(module: Any, dotted: str, where: str, option: str = "--optimizer") -> Any:
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:12]
            raise SpecError(f"{option}: {where} has no attribute {part!r}"
                            + (f"; it has {', '.join(public)}{', ...' if len(public) == 12 else ''}" if public else ""))
        obj = getattr(obj, part)
    return obj


def load_object(spec: str, option: str = "--optimizer") -> Any:
    """The object ``spec`` names (SPEC_FORMS); SpecError, one line naming ``option``, when it cannot be loaded."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"{option} is empty; give {SPEC_FORMS}")
    if ":" in spec:
        where, _, name = spec.rpartition(":")
        if not name or not where:
            raise SpecError(f"{option} {spec!r}: expected {SPEC_FORMS}")
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _import_file(where, option)
        else:
            module = _import_module(where, option)
    else:
        where, _, name = spec.rpartition(".")
        if not where:
            raise SpecError(f"{option} {spec!r}: expected {SPEC_FORMS}")
        module = _import_module(where, option)
    return _attribute(module, name, where, option)


def resolve(spec: str, rule: "Rule | None" = None) -> Callable:
    """The class or factory named by ``spec``; SpecError (one line) when it cannot be resolved. Given the ``rule``
    it is checked against, an optax optimizer or a NumPy step function comes back adapted (``adapt``)."""
    spec = spec.strip()
    obj = load_object(spec)
    if not callable(obj):
        raise SpecError(f"--optimizer {spec!r} names a {type(obj).__name__}, not a class or factory called as "
                        "(params, **hyperparameters)")
    return obj if rule is None else adapt(obj, rule, spec)


#: spec -> the rule its optax optimizer or NumPy step function was adapted for, so that the reproducer rebuilds
#: the same adapter (one --optimizer and one --rule per run)
_ADAPTED: dict[str, str] = {}
_FACTORIES: dict[str, Callable] = {}


def _is_optax(obj: Any) -> bool:
    """An optax alias (or a functools.partial of one), or a factory whose first parameter is ``learning_rate``
    (optax's spelling; a torch.optim-style factory takes ``params`` first)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    if (getattr(obj, "__module__", None) or "").split(".")[0] == "optax":
        return True
    try:
        first = next(iter(inspect.signature(obj).parameters), None)
    except (TypeError, ValueError):
        return False
    return first == "learning_rate"


def adapt(obj: Callable, rule: "Rule", spec: str | None = None) -> Callable:
    """``obj`` as a torch.optim-style factory for ``rule``: an optax optimizer (``optimizers/optax_adapter.py``) or a
    NumPy step function ``(params, grads, state, hyperparameters)`` (``optimizers/numpy_adapter.py``) is wrapped;
    anything else comes back as it is."""
    from optimizers.numpy_adapter import is_numpy_step_function, numpy_optimizer
    kind = "an optax optimizer" if _is_optax(obj) else "a NumPy step function" if is_numpy_step_function(obj) else None
    if kind is not None and rule.sparse_gradients:
        raise SpecError(f"--optimizer {spec or obj!r} is {kind}, but rule {rule.name!r} takes gradients in torch's "
                        "sparse COO layout, which only a torch.optim-style class receives; name such a class, or a "
                        "rule with dense gradients")
    if _is_optax(obj):
        try:
            from optimizers.optax_adapter import optax_optimizer
        except ModuleNotFoundError as e:
            raise SpecError(f"--optimizer {spec or obj!r}: {OPTAX_INSTALL} ({e.name!r} not found)") from None
        try:
            factory = optax_optimizer(obj, rule)
        except TypeError as e:
            raise SpecError(f"--optimizer {spec or obj!r}: {e}") from None
    elif is_numpy_step_function(obj):
        factory = numpy_optimizer(obj, rule)
    else:
        return obj
    if spec is not None:
        _ADAPTED[spec] = rule.name
        _FACTORIES[spec] = factory
    return factory


def reproducer_import(spec: str) -> str:
    """Python lines that bind the implementation named by ``spec`` to ``Impl``, without the suite: an adapted optax
    optimizer as the adapter written out in the script (``optimizers/optax_standalone.py``); a NumPy step function
    is wrapped by the suite's adapter (the script then runs from the suite's root)."""
    factory = _FACTORIES.get(spec)
    if factory is not None and getattr(factory, "convention", None) is not None:
        from optimizers.optax_standalone import standalone_optax
        script = standalone_optax(factory)
        if script is not None:
            return script
    lines = _bind_impl(spec)
    if spec in _ADAPTED:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        lines += (f"\nsys.path.insert(0, {root!r})  # the suite's optax/NumPy adapter, and the rule it maps to\n"
                  "from optimizers.loading import adapt\nfrom reference.registry import RULES\n"
                  f"Impl = adapt(Impl, RULES[{_ADAPTED[spec]!r}])")
        lines = "import sys\n" + lines
    return lines


def _bind_impl(spec: str) -> str:
    if ":" in spec:
        where, _, name = spec.rpartition(":")
        if where.endswith(".py") or "/" in where or os.sep in where:
            path = os.path.abspath(where)
            return ("import importlib.util, sys\n"
                    f"_spec = importlib.util.spec_from_file_location('impl_module', {path!r})\n"
                    "_mod = importlib.util.module_from_spec(_spec); sys.modules['impl_module'] = _mod\n"
                    "_spec.loader.exec_module(_mod)\n"
                    f"Impl = _mod.{name}")
        return f"import {where}\nImpl = {where}.{name}"
    where, _, name = spec.rpartition(".")
    return f"import {where}\nImpl = {where}.{name}"
