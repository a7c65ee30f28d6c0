"""torch.optim's known deviations from its documented rules (``optimizers/known_deviations.py``), each shown on
its own example as a strict expected failure: listed in every run's summary, and failing the run as XPASS once
torch fixes it."""
from __future__ import annotations

import pytest

from optimizers.known_deviations import DEVIATIONS
from properties.test_contract import check_step_leaves_grads_and_params_intact
from properties.test_trajectory import check_trajectory

CHECKS = {"trajectory": lambda s, c: check_trajectory(s, c, known_deviations=False),
          "grads": check_step_leaves_grads_and_params_intact}


def _pairs(config):
    return [(d, s) for d in DEVIATIONS for s in config.subjects if d.concerns(s)]


def pytest_generate_tests(metafunc):
    if "deviation" in metafunc.fixturenames:
        pairs = _pairs(metafunc.config)
        params = [pytest.param(d, s, marks=pytest.mark.xfail(strict=True, reason=f"{d.name}: {d.reason} [{d.link}]"),
                               id=f"{d.name}-{s.id}") for d, s in pairs]
        metafunc.parametrize("deviation, implementation", params or [pytest.param(None, None, marks=pytest.mark.skip(
            reason="no known deviation concerns the implementation under test"))])


def test_known_deviation_still_deviates(deviation, implementation):
    """The implementation deviates from the reference rule on the deviation's example (expected to fail)."""
    CHECKS[deviation.check](implementation, deviation.example())
