"""The oracle's own cost: the tolerance of one trajectory example, per rule and dtype.

Each case is the shape of a typical drawn example — 20 steps, four parameters of shapes (3,), (2, 2), (5,) and (),
one group at the rule's defaults, gradients drawn from a seeded normal — and the time is that of
``properties.tolerances.tolerances`` on a fresh copy of it (the error bound's one pass beside the reference, and
the judgement of each element), the work the conformance search adds to every judged example. The reference run
itself is timed beside it (``reference_s`` in the results), so the report reads the oracle against it.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from properties.tolerances import judgeable, tolerances
from reference.registry import RULES
from reference.trajectory import Case, Group, reference_trajectory

STEPS = 20
SHAPES = ((3,), (2, 2), (5,), ())
DTYPES = (torch.float32, torch.float64)


def oracle_case(rule, dtype: torch.dtype) -> Case:
    """The benchmark's example for ``rule`` in ``dtype``: values representable in the dtype, seeded (each tensor a
    row matrix of the same size for a rule of matrices)."""
    rng = np.random.default_rng(0)

    def drawn(shape):
        return torch.tensor(rng.normal(size=shape)).to(dtype).double().numpy()

    shapes = [s if rule.ndims is None or len(s) in rule.ndims else (1, max(1, int(np.prod(s)))) for s in SHAPES]
    params = [drawn(s) for s in shapes]
    grads = [[drawn(s) for s in shapes] for _ in range(STEPS)]
    hp = rule.defaults()
    return Case(rule, [Group(tuple(range(len(SHAPES))), hp)], params, grads, [[hp.get("lr")]] * STEPS, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=[str(d).replace("torch.", "") for d in DTYPES])
@pytest.mark.parametrize("rule", sorted(name for name, r in RULES.items() if not r.closure))
def test_oracle(benchmark, rule, dtype):
    """Time the tolerance of the example; record whether the oracle judges it (a tolerance that gives up is fast, so
    the report shows the cases it does not judge beside their times)."""
    case = oracle_case(RULES[rule], dtype)
    expected = reference_trajectory(case)
    start = time.perf_counter()
    for _ in range(5):
        reference_trajectory(case)
    reference_s = (time.perf_counter() - start) / 5

    def fresh():
        return (dataclasses.replace(case, notes={}), expected), {}

    benchmark.group = f"oracle {str(dtype).replace('torch.', '')}"
    benchmark.pedantic(tolerances, setup=fresh, rounds=10, warmup_rounds=1)
    benchmark.extra_info.update(kind="oracle", rule=rule, dtype=str(dtype).replace("torch.", ""), steps=STEPS,
                                params=len(SHAPES), reference_s=reference_s)
    if benchmark.stats is not None:
        benchmark.extra_info["median_s"] = benchmark.stats.stats.median
    judged = dataclasses.replace(case, notes={})
    benchmark.extra_info["judged"] = judgeable(judged, expected, tolerances(judged, expected))
