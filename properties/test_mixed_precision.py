"""16-bit parameters with float32 state and arithmetic (``--precision float32-state``): judged at float32 precision,
step by step from the implementation's own parameters and float32 state, θ allowed one rounding to its dtype a step,
and the state read back held to one step's float32 bound. The suite's mixed-precision Adam conforms; the same Adam
keeping its moments in the parameters' dtype (as torch.optim.Adam does) fails, and so does torch.optim.Adam itself —
under the default layout (computing in the parameters' dtype) both conform.
"""
from __future__ import annotations

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
IDS = [str(d).replace("torch.", "") for d in LOW_PRECISION]


def subject(name: str, precision: str | None = "float32-state") -> Subject:
    if name == "torch":
        return Subject("torch.optim.Adam", torch.optim.Adam, RULES["adam"], "torch.optim:Adam", {"foreach": False},
                       precision=precision)
    return Subject(name, getattr(planted_precision, name), RULES["adam"], f"optimizers.planted_precision:{name}",
                   precision=precision)


def search(s: Subject, dtype: torch.dtype, max_examples: int) -> None:
    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(s, dtype, max_steps=8))
    def run(case):
        check_steps(s, case)
    run()


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
def test_float32_state_implementation_conforms_to_its_layout_and_to_the_default(dtype):
    search(subject("AdamFloat32State"), dtype, CORRECT_EXAMPLES)
    search(subject("AdamFloat32State", precision=None), dtype, CORRECT_EXAMPLES)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
@pytest.mark.parametrize("name", ["AdamStateInParameterDtype", "torch"])
def test_state_in_the_parameters_dtype_fails_the_float32_state_layout(name, dtype):
    search(subject(name, precision=None), dtype, CORRECT_EXAMPLES)
    with pytest.raises(NonConformance):
        search(subject(name), dtype, MAX_EXAMPLES)


def master(name: str) -> Subject:
    return Subject(name, getattr(planted_precision, name), RULES["adam"], f"optimizers.planted_precision:{name}",
                   master="master")


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
def test_float32_master_weights_conform_to_their_layout(dtype):
    search(master("AdamFloat32Master"), dtype, CORRECT_EXAMPLES)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=IDS)
@pytest.mark.parametrize("name", ["AdamMasterFromCopy", "AdamMasterNotCopied"])
def test_planted_master_weight_bug_is_caught(name, dtype):
    with pytest.raises(NonConformance):
        search(master(name), dtype, MAX_EXAMPLES)
