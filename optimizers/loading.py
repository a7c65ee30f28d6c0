"""Resolving ``--optimizer SPEC`` to a callable, with one-line errors that say what was wrong and what is accepted.

SPEC is ``package.module:Name``, ``package.module.Name`` or ``path/to/file.py:Name``; Name may be dotted
(``module:Outer.Inner``). Name is a class or factory called like a torch.optim class: ``(params, **hyperparameters)``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any, Callable

SPEC_FORMS = "package.module:Name, package.module.Name or path/to/file.py:Name"


class SpecError(ValueError):
    """A SPEC that cannot be resolved; its message is the one line shown to the user."""


def _import_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise SpecError(f"--optimizer: file {path!r} does not exist (SPEC forms: {SPEC_FORMS})")
    name = "_optimizer_under_test_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"--optimizer: {path!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise SpecError(f"--optimizer: importing {path!r} raised {type(e).__name__}: {e}") from None
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        missing = f" (module {e.name!r} not found)" if e.name and e.name != name else ""
        raise SpecError(f"--optimizer: cannot import module {name!r}{missing}; SPEC forms: {SPEC_FORMS}") from None
    except Exception as e:
        raise SpecError(f"--optimizer: importing module {name!r} raised {type(e).__name__}: {e}") from None


def _attribute(module: Any, dotted: str, where: str) -> Any:
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:12]
            raise SpecError(f"--optimizer: {where} has no attribute {part!r}"
                            + (f"; it has {', '.join(public)}{', ...' if len(public) == 12 else ''}" if public else ""))
        obj = getattr(obj, part)
    return obj


def resolve(spec: str) -> Callable:
    """The class or factory named by ``spec``; SpecError (one line) when it cannot be resolved."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"--optimizer is empty; give {SPEC_FORMS}")
    if ":" in spec:
        where, _, name = spec.rpartition(":")
        if not name or not where:
            raise SpecError(f"--optimizer {spec!r}: expected {SPEC_FORMS}")
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _import_file(where)
        else:
            module = _import_module(where)
    else:
        where, _, name = spec.rpartition(".")
        if not where:
            raise SpecError(f"--optimizer {spec!r}: expected {SPEC_FORMS}")
        module = _import_module(where)
    obj = _attribute(module, name, where)
    if not callable(obj):
        raise SpecError(f"--optimizer {spec!r} names a {type(obj).__name__}, not a class or factory called as "
                        "(params, **hyperparameters)")
    return obj


def reproducer_import(spec: str) -> str:
    """Python lines that bind the implementation named by ``spec`` to ``Impl``, without the suite."""
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
