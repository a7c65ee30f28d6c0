"""Compensated 16-bit parameters (Kahan summation; ``optimizers/planted_precision.py``), judged with the compensated
layout (``Subject.compensation``): θ + compensation after every step within one step's bound of the rule's step, at
the compensated precision, and the compensation below θ's spacing. Correct implementations conform — the suite's
own two (Kahan's and TwoSum's forms) and torch-optimi's (its ``kahan_sum`` path; skipped where torch-optimi is not
installed); each planted bug fails; and plain 16-bit rounding, which the uncompensated judgement accepts, fails the
compensated one: what compensation promises is measurably more than what rounding gives.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings

from optimizers import planted_precision
from optimizers.adapters import Subject
from properties.assertions import NonConformance
from properties.strategies import cases
from properties.test_trajectory import LOW_PRECISION, check_steps
from reference.registry import RULES

pytestmark = pytest.mark.seeded

MAX_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "300"))
CORRECT_EXAMPLES = int(os.environ.get("PLANTED_CORRECT_EXAMPLES", "40"))
HAVE_OPTIMI = importlib.util.find_spec("optimi") is not None
IDS = [str(d).replace("torch.", "") for d in LOW_PRECISION]


def optimi_sgd(params, lr=1e-3, weight_decay=0.0):
    """torch-optimi's SGD with Kahan summation, for-loop path, as rule sgd without momentum (optimi's momentum and
    dampening follow other conventions; its decoupled decay is off)."""
    import optimi
    return optimi.SGD(params, lr=lr, weight_decay=weight_decay, kahan_sum=True, foreach=False)


def subject(name: str, compensated: bool = True) -> Subject:
    factory = optimi_sgd if name == "optimi" else getattr(planted_precision, name)
    spec = "properties.test_compensated:optimi_sgd" if name == "optimi" else f"optimizers.planted_precision:{name}"
    return Subject(name, factory, RULES["sgd"], spec,
                   compensation=planted_precision.COMPENSATION if compensated else None)


def search(s: Subject, dtype: torch.dtype, max_examples: int) -> None:
    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(s, dtype))
    def run(case):
        check_steps(s, case)
    run()


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
@pytest.mark.parametrize("name", [*planted_precision.CORRECT, pytest.param("optimi", marks=pytest.mark.skipif(
    not HAVE_OPTIMI, reason="torch-optimi is not installed (pip install -r requirements.txt)"))])
def test_correct_compensated_implementation_conforms(name, dtype):
    search(subject(name), dtype, CORRECT_EXAMPLES)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
@pytest.mark.parametrize("name, what", planted_precision.PLANTED, ids=[n for n, _ in planted_precision.PLANTED])
def test_planted_compensation_bug_is_caught(name, what, dtype):
    with pytest.raises(NonConformance):
        search(subject(name), dtype, MAX_EXAMPLES)


def test_plain_rounding_passes_plain_judgement_and_fails_compensated():
    """The same plain bfloat16 SGD (compensation always 0): judged as an uncompensated implementation it conforms;
    judged as a compensated one it does not — θ = 1, γ = 1e-3, g = 1: the step 0.999 rounds back to 1 in bfloat16,
    within one step's bound of plain rounding (2⁻⁸ relative) and far outside the compensated one."""
    plain = "KahanSGDWithoutCompensation"
    search(subject(plain, compensated=False), torch.bfloat16, CORRECT_EXAMPLES)
    from optimizers.known_deviations import _case
    case = _case("sgd", [{"lr": 1e-3}], [[1.0]], [[[1.0]]], torch.bfloat16)
    check_steps(subject(plain, compensated=False), case, known_deviations=False)
    with pytest.raises(NonConformance, match="expected 0.999"):
        check_steps(subject(plain), case, known_deviations=False)
