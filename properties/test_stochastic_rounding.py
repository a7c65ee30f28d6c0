"""Stochastic rounding of bfloat16 parameters is unbiased: the rounded parameter equals the step computed at float32
precision in expectation. A statistical property, judged at a stated false-alarm rate.

Each example gives ``GROUPS`` groups of ``COPIES`` identical elements (the same θ and gradient), takes one step, and
compares each group's mean with the float64 reference's step y (its float32 computation bound e: ``error_bounds``
with float32 arithmetic). Every element is one of the two bfloat16 numbers around the float32 step, so it lies within
e + w of y (w: bfloat16's spacing there) — checked for each element, deterministically; and independent roundings
of a variable confined to an interval of width w have a mean within t of their expectation except with probability
2·exp(−2·COPIES·t²/w²) (Hoeffding): the group mean must be within e + t of y, t chosen so that a correct
implementation fails an example with probability at most ``FALSE_ALARM`` (all groups together). A rounding that is
deterministic (to nearest, towards zero) or biased misses by a fraction of w that COPIES = 4096 resolves to ~5%.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from optimizers import planted_rounding
from optimizers.adapters import Subject, implementation_trajectory
from properties.strategies import hyperparameters, representable
from properties.tolerances import error_bounds
from reference.registry import RULES
from reference.trajectory import Case, Group, reference_trajectory

pytestmark = pytest.mark.seeded

MAX_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "300"))
CORRECT_EXAMPLES = int(os.environ.get("PLANTED_CORRECT_EXAMPLES", "40"))
HAVE_TORCHAO = importlib.util.find_spec("torchao") is not None
GROUPS, COPIES = 4, 4096
#: the chance that one example fails a correct implementation
FALSE_ALARM = 1e-9
BF16 = torch.finfo(torch.bfloat16)


def torchao_adamw_sr(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """torchao's AdamW with bfloat16 stochastic rounding (float32 state), run eagerly."""
    from properties.test_quantized import _torchao
    return _torchao("_AdamW")(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                              bf16_stochastic_round=True)


def subject(name: str) -> Subject:
    if name == "torchao_adamw_sr":
        return Subject(name, torchao_adamw_sr, RULES["adamw"], f"properties.test_stochastic_rounding:{name}")
    return Subject(name, getattr(planted_rounding, name), RULES["sgd"], f"optimizers.planted_rounding:{name}")


def spacing(x: np.ndarray) -> np.ndarray:
    """bfloat16's spacing at |x| (its normal range)."""
    return BF16.eps * 2.0 ** np.floor(np.log2(np.maximum(np.abs(x), BF16.tiny)))


@st.composite
def one_step(draw, s: Subject) -> Case:
    hp = draw(hyperparameters(s.rule, s.caps.accepted))
    values = st.floats(1e-2, 1e2).flatmap(lambda m: st.sampled_from([m, -m]))
    theta = [draw(values) for _ in range(GROUPS)]
    grad = [draw(values) for _ in range(GROUPS)]
    params = representable(np.repeat(theta, COPIES), torch.bfloat16)
    grads = representable(np.repeat(grad, COPIES), torch.bfloat16)
    return Case(s.rule, [Group((0,), hp)], [params], [[grads]], [[hp.get("lr")]], torch.float32)


def check_unbiased(s: Subject, case: Case) -> None:
    y = reference_trajectory(case)[0][0]
    e = error_bounds(case)["bounds"][0][0]
    if not (np.all(np.isfinite(e)) and np.all(np.abs(y) > BF16.tiny) and np.all(np.abs(y) < BF16.max / 2)):
        return   # outside bfloat16's normal range, or the rule undetermined: nothing to judge
    actual = implementation_trajectory(s, dataclasses.replace(case, dtype=torch.bfloat16))[0][0]
    w = spacing(np.abs(y) + e)
    off = np.abs(actual - y) > e + w
    assert not off.any(), (f"{s.id}: element {int(np.argmax(off))} is {actual[np.argmax(off)]!r}, not one of the two "
                           f"bfloat16 numbers around the step {y[np.argmax(off)]!r} (± {e[np.argmax(off)]:.3g})")
    t = math.sqrt(math.log(2 * GROUPS / FALSE_ALARM) / (2 * COPIES))
    for k in range(GROUPS):
        part = slice(k * COPIES, (k + 1) * COPIES)
        bias, allowed = abs(actual[part].mean() - y[part][0]), e[part][0] + t * w[part][0]
        assert bias <= allowed, (
            f"{s.id} does not round stochastically without bias: {COPIES} copies of θ = {case.params[0][part][0]!r}, "
            f"g = {case.grads[0][0][part][0]!r}, hyperparameters {case.groups[0].hp}: the rule's step is "
            f"{y[part][0]!r} (float32 computation bound {e[part][0]:.3g}), bfloat16's spacing there {w[part][0]:.3g}; "
            f"the mean of the rounded parameters is {actual[part].mean()!r}, {bias / w[part][0]:.3f} spacings away, "
            f"more than the {allowed / w[part][0]:.3f} a correct stochastic rounding exceeds with probability "
            f"{FALSE_ALARM:g} (Hoeffding); values taken: {sorted(set(actual[part].tolist()))[:4]}")


def search(s: Subject, max_examples: int) -> None:
    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=one_step(s))
    def run(case):
        check_unbiased(s, case)
    run()


@pytest.mark.parametrize("name", [*planted_rounding.CORRECT, pytest.param("torchao_adamw_sr", marks=pytest.mark.skipif(
    not HAVE_TORCHAO, reason="torchao is not installed (pip install -r requirements.txt)"))])
def test_stochastic_rounding_is_unbiased(name):
    search(subject(name), CORRECT_EXAMPLES)


@pytest.mark.parametrize("name, what", planted_rounding.PLANTED, ids=[n for n, _ in planted_rounding.PLANTED])
def test_planted_biased_rounding_is_caught(name, what):
    with pytest.raises(AssertionError, match="without bias"):
        search(subject(name), MAX_EXAMPLES)
