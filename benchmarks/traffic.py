"""The bytes an optimizer step must move, derived from the rule's declaration (``rule.buffers(hp)``).

A step is element-wise and memory-bound: per element it must read the parameter θ, its gradient g and every
per-element state buffer the configuration keeps, and write θ and every buffer back. With b the element size and
k = len(rule.buffers(hp)):

    bytes per element = b · (2 + k)  read   +  b · (1 + k)  written  =  b · (3 + 2k)

Adam in float32 keeps exp_avg and exp_avg_sq (k = 2): 4 · 7 = 28 B; AMSGrad adds max_exp_avg_sq (36 B); plain SGD
keeps nothing (12 B). This is the least traffic any implementation of the rule can have (state kept in the
parameter's dtype, as torch.optim does); what an implementation moves beyond it (several passes, temporaries)
shows as a lower fraction of the roofline. Scalar state (the step count t) is not counted.
"""
from __future__ import annotations

import torch

from reference.declarations import Rule


def buffers(rule: Rule, hp: dict) -> tuple[str, ...]:
    return tuple(rule.buffers({**rule.defaults(), **hp}))


def streams(rule: Rule, hp: dict) -> int:
    """How many element-sized values a step reads and writes per parameter element: 3 + 2k."""
    return 3 + 2 * len(buffers(rule, hp))


def bytes_per_element(rule: Rule, hp: dict, dtype: torch.dtype) -> int:
    return streams(rule, hp) * dtype.itemsize


def bytes_per_step(rule: Rule, hp: dict, dtype: torch.dtype, elements: int) -> int:
    return bytes_per_element(rule, hp, dtype) * elements


def footprint(rule: Rule, hp: dict, dtype: torch.dtype, elements: int) -> int:
    """The distinct bytes a step touches (θ, g and the buffers, each once): what must not sit in a cache between
    timed rounds."""
    return (2 + len(buffers(rule, hp))) * dtype.itemsize * elements
