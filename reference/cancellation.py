"""Differences whose sign a rule depends on but that can cancel: ṽ = v − ḡ² in centered RMSprop is a variance,
never negative in exact arithmetic, yet equal to 0 whenever the gradient has been constant (α = 0: v = g², ḡ = g),
where rounding at the implementation's precision decides its sign — and √ṽ is then 0 or √(a rounding residue),
each as right as the other; NaN, the root of a negative residue, is not: ṽ is a variance, and the tolerance model
judges such a case for finiteness only (torch's RMSprop takes it: a named known deviation).

A rule writes such a difference as ``cancelling(a, b)`` (= a − b, read as the formula reads). Whoever needs to know
how close to cancellation it came — the tolerance model, deciding whether the rule determines the result at a
precision — watches it with ``watching(observer)``; otherwise it is plain subtraction.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

_OBSERVERS: list[Callable] = []


def cancelling(a, b):
    """a − b, a difference that may cancel; observers see (a, b, a − b)."""
    difference = a - b
    for observe in _OBSERVERS:
        observe(a, b, difference)
    return difference


@contextlib.contextmanager
def watching(observer: Callable) -> Iterator[None]:
    """Call ``observer(a, b, a − b)`` for every ``cancelling`` difference computed inside the block."""
    _OBSERVERS.append(observer)
    try:
        yield
    finally:
        _OBSERVERS.remove(observer)
