"""Isolation: torch's process-wide state is the same after every test as before it, whatever the implementation
under test did to it (``torch.set_default_dtype`` in a constructor, ``torch.manual_seed`` in a step, ...).

``GLOBAL_STATE`` names each piece with how to read and how to restore it; the plugin (properties/plugin.py) wraps every test in
``isolated()``, and ``properties/test_isolation.py`` plants an implementation that changes all of them.
"""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def _deterministic():
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


GLOBAL_STATE = {
    "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "intra-op threads": (torch.get_num_threads, torch.set_num_threads),
    "deterministic algorithms": (_deterministic, lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1])),
    "grad mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "torch RNG state": (torch.random.get_rng_state, torch.random.set_rng_state),
    "NumPy RNG state": (np.random.get_state, np.random.set_state),
    "Python RNG state": (random.getstate, random.setstate),
}


def snapshot() -> dict:
    return {name: get() for name, (get, _) in GLOBAL_STATE.items()}


def same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, tuple) and a and isinstance(a[0], str):   # NumPy's RNG state tuple holds an array
        return all(np.array_equal(x, y) for x, y in zip(a, b))
    return a == b


@contextlib.contextmanager
def isolated():
    """Restore every piece of ``GLOBAL_STATE`` on exit; yields the names of those that had changed (filled in on
    exit)."""
    before = snapshot()
    changed: list[str] = []
    try:
        yield changed
    finally:
        for name, (get, set_) in GLOBAL_STATE.items():
            if not same(get(), before[name]):
                changed.append(name)
                set_(before[name])
