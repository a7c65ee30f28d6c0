"""torch.optim's known deviations from its documented rules (``optimizers/known_deviations.py``), each shown on
its own example as a strict expected failure: listed in every run's summary, and failing the run as XPASS once
torch fixes it. Expected is the deviation's own failure — NonConformance from its check, or for a crash
ImplementationError caused by the exception it names — so that an example that breaks in another way fails."""
from __future__ import annotations

import pytest

from optimizers.adapters import ImplementationError
from optimizers.known_deviations import DEVIATIONS
from properties.assertions import NonConformance
from properties.test_contract import check_step_leaves_grads_and_params_intact
from properties.test_trajectory import check_steps, check_trajectory

CHECKS = {"trajectory": lambda s, c: check_trajectory(s, c, known_deviations=False),
          "steps": lambda s, c: check_steps(s, c, known_deviations=False),
          "grads": check_step_leaves_grads_and_params_intact}


def _pairs(config):
    return [(d, s) for d in DEVIATIONS for s in config.subjects if d.concerns(s)]


def pytest_generate_tests(metafunc):
    if "deviation" in metafunc.fixturenames:
        pairs = _pairs(metafunc.config)
        params = [pytest.param(d, s, marks=pytest.mark.xfail(
                      strict=True, raises=ImplementationError if d.raises else NonConformance,
                      reason=f"{d.name}: {d.reason} [{d.link}]"), id=f"{d.name}-{s.id}") for d, s in pairs]
        metafunc.parametrize("deviation, implementation", params or [pytest.param(None, None, marks=pytest.mark.skip(
            reason="no known deviation concerns the implementation under test"))])


def test_known_deviation_still_deviates(deviation, implementation):
    """The implementation deviates from the reference rule on the deviation's example (expected to fail)."""
    try:
        CHECKS[deviation.check](implementation, deviation.example())
    except ImplementationError as e:
        if deviation.raises is None or not isinstance(e.__cause__, deviation.raises):
            expected = deviation.raises.__name__ if deviation.raises else "NonConformance"
            raise AssertionError(f"{deviation.name}: the example should end in {expected}; it raised "
                                 f"{type(e.__cause__).__name__}: {e}") from e
        raise


def ported_rmsprop(params, **hp):
    """torch's RMSprop behind a factory of another module: an implementation that is not torch's."""
    import torch
    return torch.optim.RMSprop(params, **hp)


def test_another_implementation_that_deviates_as_torch_does_is_told_so():
    """On the example of ``rmsprop-centered-negative-variance``, an implementation outside torch.optim that takes √
    of the negative rounding residue as torch does fails, and the failure names torch's known deviation; judged
    against a variant of the rule (same base rule) it names it too."""
    from optimizers.adapters import Subject
    from reference.registry import RULES
    deviation = next(d for d in DEVIATIONS if d.name == "rmsprop-centered-negative-variance")
    subject = Subject("ported_rmsprop", ported_rmsprop, RULES["rmsprop"], "properties.test_known_deviations:ported_rmsprop")
    with pytest.raises(NonConformance) as caught:
        check_trajectory(subject, deviation.example(), known_deviations=False)
    assert caught.value.details["torch's known deviations"] == ["rmsprop-centered-negative-variance"]
    assert "torch.optim has this case's deviation too" in str(caught.value)
    assert RULES["rmsprop_tf"].base == "rmsprop" and RULES["optax_rmsprop"].base == "rmsprop"
