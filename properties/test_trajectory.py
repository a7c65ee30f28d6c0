"""Trajectory conformance: driven by the same gradients, the implementation's parameters equal the reference rule's
after every step, within the tolerance model of ``properties/tolerances.py``."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from optimizers.adapters import implementation_trajectory
from optimizers.known_deviations import applicable, avoiding
from properties import report
from properties.assertions import assert_compensation_bounded, assert_state_conforms, assert_trajectory_conforms
from properties.strategies import cases, hyperparameters, magnitude_range, representable
from properties.tolerances import judgeable, step_tolerances, tolerances
from reference.trajectory import Case, Group, reference_trajectory

#: judged over the whole trajectory
DTYPES = (torch.float64, torch.float32)
#: judged step by step: a whole trajectory at u = 2⁻⁸ or 2⁻¹¹ is rarely determined (rounding compounds)
LOW_PRECISION = (torch.bfloat16, torch.float16)


@contextlib.contextmanager
def under_known_deviations(subject, case, checks=("trajectory",)):
    """Skip ``case`` if ``subject`` has a known deviation on it without a workaround; else enter the workarounds."""
    deviations = applicable(subject, case, checks)
    assume(all(d.workaround for d in deviations))
    with contextlib.ExitStack() as stack:
        for d in deviations:
            stack.enter_context(d.workaround(case))
        yield


def check_trajectory(subject, case, known_deviations: bool = True) -> None:
    """One example of the property: judge ``case`` unless the rule is undefined for it at its precision.
    Cases on which ``subject`` has a known deviation run under its workaround, or are skipped without one;
    ``known_deviations=False`` judges every case as it is (a non-finite θ fails even where ill-conditioned). A
    quantized-state or float32-state implementation is judged step by step (``check_steps``), its state read back."""
    if subject.quantization is not None or subject.precision is not None or subject.master is not None:
        return check_steps(subject, case, known_deviations)
    expected = reference_trajectory(case)
    if known_deviations:   # the cheap checks first: the reference finite and in range, no deviation without a way round
        assume(judgeable(case, expected))
        assume(all(d.workaround for d in applicable(subject, case)))
    tol = tolerances(case, expected)
    if known_deviations:
        assume(judgeable(case, expected, tol))
    report.exercised(subject, case)
    with under_known_deviations(subject, case) if known_deviations else contextlib.nullcontext():
        actual = implementation_trajectory(subject, case)
    assert_trajectory_conforms(subject, case, actual, expected, tol)


def check_steps(subject, case, known_deviations: bool = True) -> None:
    """One example judged step by step: after every step, the implementation's θ_t within one step's bound of the
    reference's step from the implementation's own θ_{t−1} (``step_tolerances``); for a compensated implementation,
    θ_t plus its compensation (with master weights, the master: its compensation is master − θ_t, at float32
    precision); for a quantized-state or float32-state one, each step from its own (dequantized) state
    too, and its state within one step's bound of the rule's (plus the layout's quantization bound). Known deviations as in ``check_trajectory``."""
    checks = ("trajectory", "steps")
    if known_deviations:
        assume(all(d.workaround for d in applicable(subject, case, checks)))
    compensations = [] if subject.compensation is not None or subject.master is not None else None
    states = [] if subject.quantization is not None or subject.precision is not None else None
    with under_known_deviations(subject, case, checks) if known_deviations else contextlib.nullcontext():
        actual = implementation_trajectory(subject, case, compensations=compensations, states=states)
    expected, tol = step_tolerances(case, actual, compensations if subject.compensation is not None else None, states)
    if known_deviations:   # the deviations again, now that the bound has seen the implementation's parameters
        assume(expected and judgeable(case, expected)
               and all(d.workaround for d in applicable(subject, case, checks)))
    case.notes["judged"] = "step by step"
    report.exercised(subject, case)
    assert_trajectory_conforms(subject, case, actual[:len(expected)], expected, tol)
    if compensations is not None:   # over the steps judged: after them the rule may leave θ undetermined (0/0)
        n = len(expected)
        assert_compensation_bounded(subject, case, actual[:n], compensations[:n])
    if states is not None:
        assert_state_conforms(subject, case, states, len(expected))


@pytest.mark.judged("over the trajectory")
@pytest.mark.parametrize("dtype", DTYPES, ids=[str(d).replace("torch.", "") for d in DTYPES])
@given(data=st.data())
def test_trajectory_matches_reference_rule(subject, dtype, data):
    """For hyperparameters drawn over their whole valid domain, 1–4 parameters of varied shapes, 1–20 steps of
    gradients spanning 1e-8..1e4 (with zeros and missing gradients), per-group hyperparameters and scheduled
    learning rates: every parameter after every step equals the reference rule's within tolerance."""
    check_trajectory(subject, data.draw(cases(subject, dtype), label="case"))


@pytest.mark.judged("step by step")
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=[str(d).replace("torch.", "") for d in LOW_PRECISION])
@given(data=st.data())
def test_steps_match_reference_rule(subject, dtype, data):
    """In bfloat16 and float16, for cases drawn as above: every parameter after every step equals
    the reference rule's step from the implementation's own previous parameters, within one step's bound."""
    check_steps(subject, data.draw(cases(subject, dtype), label="case"))


LONG_STEPS = 10_000
#: read at import, after conftest loaded the profile (inside a test, settings.default is the test's own)
THOROUGH = settings.default.max_examples >= 1000


@st.composite
def long_cases(draw, subject, dtype):
    """10⁴ steps on one small parameter (0-d or 2 elements), hyperparameters drawn as for any case, gradients of a
    drawn magnitude that are random, constant, or alternating in sign: where Adam's bias corrections reach 1 and
    Adagrad's accumulator grows without bound, and any error that compounds per step has 10⁴ steps to show."""
    rule = subject.rule
    hp = draw(hyperparameters(rule, subject.caps.accepted))
    shape = draw(st.sampled_from([(), (2,)]))
    lo, hi = magnitude_range(dtype)
    scale = 10.0 ** draw(st.floats(math.log10(lo) + 2, math.log10(hi) - 2))
    kind = draw(st.sampled_from(["random", "constant", "alternating"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.normal(size=shape) * scale
    grads = []
    for t in range(LONG_STEPS):
        g = rng.normal(size=shape) * scale if kind == "random" else base * (-1) ** t if kind == "alternating" else base
        grads.append([representable(np.asarray(g), dtype)])
    params = [representable(rng.normal(size=shape), dtype)]
    lrs = [[hp["lr"]] if "lr" in hp else [None]] * LONG_STEPS
    return avoiding(subject, Case(rule, [Group((0,), hp)], params, grads, lrs, dtype))


@pytest.mark.skipif(not THOROUGH, reason="long runs (10⁴ steps, ~10 s an example) run in the thorough profile")
@pytest.mark.parametrize("dtype", DTYPES, ids=[str(d).replace("torch.", "") for d in DTYPES])
@settings(max_examples=3)
@given(data=st.data())
def test_long_trajectory_matches_reference_rule(subject, dtype, data):
    """Over 10⁴ steps, every parameter after every step still equals the reference rule's within tolerance (the
    error bound holds at the asymptotes). About 10 s an example on
    two cores, so it runs in the thorough profile (``HYPOTHESIS_PROFILE=thorough``) and is skipped otherwise."""
    check_trajectory(subject, data.draw(long_cases(subject, dtype), label="case"))
