"""The suite tests itself: it catches every planted bug and accepts every correct variant (``optimizers/planted.py``;
for the rules torch.optim does not ship, ``optimizers/planted_modern.py``).

A planted bug is a correct implementation of its rule but for one small, realistic mistake. For each, a Hypothesis
search over the same trajectory cases the suite draws for a user's implementation (float64, up to ``MAX_EXAMPLES``
examples, stopping at the first failure) must end in ``NonConformance``. No planted bug is a crash: a search that
ends in any other exception (the implementation, or the suite, raising) has not caught the bug, and that error
fails the test. The checks searched are the trajectory property, and for bugs that only the torch.optim contract
can see (state lost through ``state_dict``) the contract checks of ``properties/test_contract.py``.
A correct variant, written in another form than torch's, must pass the same checks on ``CORRECT_EXAMPLES`` examples.

``PLANTED_MAX_EXAMPLES`` and ``PLANTED_CORRECT_EXAMPLES`` in the environment change the two budgets (a release run
might give the correct variants as many examples as the bugs get).
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from optimizers import planted, planted_modern
from optimizers.adapters import Subject
from properties.assertions import NonConformance
from properties.strategies import cases
from properties.test_contract import CONTRACT_CHECKS
from properties.test_trajectory import check_trajectory
from reference.registry import RULES
from reference.trajectory import Case, Group

#: Hypothesis searches run inside these tests: the false-alarm run selects them (conftest's marker)
pytestmark = pytest.mark.seeded

MAX_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "300"))
CORRECT_EXAMPLES = int(os.environ.get("PLANTED_CORRECT_EXAMPLES", "40"))
DTYPE = torch.float64

#: bugs whose trajectory is right: only the torch.optim contract (state_dict round trip) can catch them
CONTRACT_BUGS = {"AdamStateOutsideStateDict"}
#: bugs that show only with two or more param groups of different hyperparameters: searched, as the suite's
#: per-group property (properties/test_contract.py) searches, on cases with at least two groups
GROUP_BUGS = {"AdamBetasFromDefaults"}


def subject_for(name: str, rule: str, module=planted) -> Subject:
    short = module.__name__.rsplit(".", 1)[-1]
    return Subject(f"{short}.{name}", getattr(module, name), RULES[rule], f"{module.__name__}:{name}")


def strategy(subject: Subject, min_groups: int = 1):
    if min_groups > 1 and "min_groups" in inspect.signature(cases).parameters:
        return cases(subject, DTYPE, min_groups=min_groups)
    return cases(subject, DTYPE)


def search(subject: Subject, checks: list, max_examples: int, min_groups: int = 1):
    """Run ``checks`` on up to ``max_examples`` Hypothesis cases for ``subject``, stopping at the first failure.

    Returns (what caught the subject: a NonConformance, or None; the number of examples drawn up to and including
    the first failure, or in all). Any other error propagates: a crash is not a conformance failure caught.
    """
    caught: list[BaseException] = []
    drawn = [0, 0]  # examples drawn in all; examples drawn when the first failure was seen

    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy(subject, min_groups))
    def run(case):
        drawn[0] += 1
        for check in checks:
            try:
                check(subject, case)
            except NonConformance as e:
                if not caught:
                    drawn[1] = drawn[0]
                caught.append(e)
                raise

    try:
        run()
    except Exception:
        if not caught:
            raise
        return caught[0], drawn[1]
    return None, drawn[0]


def _planted_params():
    return [pytest.param(name, rule, what, id=name) for name, rule, what in planted.PLANTED]


def _correct_params():
    return [pytest.param(name, rule, how, id=name) for name, rule, how in planted.CORRECT]


@pytest.mark.parametrize("name, rule, bug", _planted_params())
def test_suite_catches_planted_bug(name, rule, bug, record_property):
    """An implementation with this one realistic deviation from its rule is reported as non-conforming
    (NonConformance) within MAX_EXAMPLES drawn cases."""
    subject = subject_for(name, rule)
    checks = [check_trajectory] + (CONTRACT_CHECKS if name in CONTRACT_BUGS else [])
    caught, examples = search(subject, checks, MAX_EXAMPLES, min_groups=2 if name in GROUP_BUGS else 1)
    record_property("examples_to_catch", examples)
    assert caught is not None, (
        f"the suite did not catch planted bug {name} ({rule}: {bug}) in {examples} examples "
        f"(checks: {', '.join(c.__name__ for c in checks)})")


@pytest.mark.parametrize("name, rule, how", _correct_params())
def test_suite_accepts_correct_variant(name, rule, how, record_property):
    """A correct implementation of the rule in another form than torch's conforms on every drawn case: the
    trajectory property and the contract checks raise nothing."""
    subject = subject_for(name, rule)
    caught, examples = search(subject, [check_trajectory, *CONTRACT_CHECKS], CORRECT_EXAMPLES)
    record_property("examples", examples)
    if caught is not None:
        raise caught


def _rprop_sign_change_example() -> Case:
    """g = 1, −1, −1: a sign change at step 1 (the rule skips the step and sets g_prev = 0), then step 2, where the
    rule keeps η = 0.005 and RpropRemembersUnzeroedGrad, comparing with g_prev = −1, grows it to 0.006."""
    rule = RULES["rprop"]
    group = Group((0,), rule.defaults())
    grads = [[np.array([1.0])], [np.array([-1.0])], [np.array([-1.0])]]
    return Case(rule, [group], [np.array([1.0])], grads, [[group.hp["lr"]]] * len(grads))


EXAMPLES = {"RpropRemembersUnzeroedGrad": _rprop_sign_change_example}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_suite_catches_planted_bug_on_its_example(name):
    """On a small hand-made example where the bug shows, the trajectory check reports it (a regression test for
    the tolerance model: the example must be judged, not discarded as ill-conditioned)."""
    rule = next(r for n, r, _ in planted.PLANTED if n == name)
    subject = subject_for(name, rule)
    case = EXAMPLES[name]()
    with pytest.raises(NonConformance):
        check_trajectory(subject, case, known_deviations=False)


def test_planted_and_correct_lists_name_real_classes():
    """Every PLANTED and CORRECT entry names a class of optimizers/planted.py and a rule the suite knows, and at
    least 22 bugs and 5 correct variants are planted."""
    entries = planted.PLANTED + planted.CORRECT
    assert len(planted.PLANTED) >= 22 and len(planted.CORRECT) >= 5
    assert len({n for n, _, _ in entries}) == len(entries), "a class is listed twice"
    for name, rule, _ in entries:
        assert isinstance(getattr(planted, name, None), type), f"optimizers.planted has no class {name}"
        assert rule in RULES, f"{name}: unknown rule {rule!r}"
    assert CONTRACT_BUGS | GROUP_BUGS <= {n for n, _, _ in planted.PLANTED}
    assert set(EXAMPLES) <= {n for n, _, _ in planted.PLANTED}


# ---- the rules torch.optim does not ship (reference/modern_rules.py) ----------------------------------------------
@pytest.mark.parametrize("name, rule, bug", [pytest.param(*e, id=e[0]) for e in planted_modern.PLANTED])
def test_suite_catches_planted_bug_of_a_modern_rule(name, rule, bug, record_property):
    """As ``test_suite_catches_planted_bug``, for ``optimizers/planted_modern.py``'s bugs (lion, adopt, ademamix,
    adan, lamb, schedulefree_sgd, schedulefree_adamw)."""
    caught, examples = search(subject_for(name, rule, planted_modern), [check_trajectory], MAX_EXAMPLES)
    record_property("examples_to_catch", examples)
    assert caught is not None, f"the suite did not catch planted bug {name} ({rule}: {bug}) in {examples} examples"


@pytest.mark.parametrize("name, rule, how", [pytest.param(*e, id=e[0]) for e in planted_modern.CORRECT])
def test_suite_accepts_correct_implementation_of_a_modern_rule(name, rule, how, record_property):
    """``optimizers/modern.py``'s implementations conform: the trajectory property and the contract checks."""
    caught, examples = search(subject_for(name, rule, planted_modern), [check_trajectory, *CONTRACT_CHECKS],
                              CORRECT_EXAMPLES)
    record_property("examples", examples)
    if caught is not None:
        raise caught


def test_modern_planted_and_correct_lists_name_real_classes():
    """Every entry of optimizers/planted_modern.py names one of its classes and a rule the suite knows; each rule of
    reference/modern_rules.py and of reference/schedulefree_rules.py has a planted bug and a correct implementation."""
    from reference.modern_rules import MODERN_RULES
    from reference.schedulefree_rules import SCHEDULEFREE_RULES
    entries = planted_modern.PLANTED + planted_modern.CORRECT
    assert len({n for n, _, _ in entries}) == len(entries), "a class is listed twice"
    for name, rule, _ in entries:
        assert isinstance(getattr(planted_modern, name, None), type), f"optimizers.planted_modern has no class {name}"
        assert rule in RULES, f"{name}: unknown rule {rule!r}"
    for listed in (planted_modern.PLANTED, planted_modern.CORRECT):
        assert {r.name for r in (*MODERN_RULES, *SCHEDULEFREE_RULES)} <= {r for _, r, _ in listed}
