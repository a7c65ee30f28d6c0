"""The rule properties test themselves (``properties/test_descent.py``, ``test_momentum.py``, ``test_adaptive.py``,
``test_identities.py``):

* every property holds for the suite's own reference rules, on the same drawn cases the implementations get —
  a property that failed on its reference would be a wrong claim or a wrong check;
* every property fails on a deliberately broken variant (``optimizers/planted_properties.py`` and
  ``optimizers/planted.py``): a small Hypothesis search, stopping at the first failure, must end in
  NonConformance — a property that passes everything protects nobody;
* the broken variants' correct base classes satisfy the properties their variants fail.

These judge the suite, not an implementation named by ``--optimizer``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException

from optimizers import planted, planted_properties
from optimizers.adapters import Subject
from properties import test_adaptive as adaptive
from properties import test_descent as descent
from properties import test_identities as identities
from properties import test_momentum as momentum
from properties.assertions import NonConformance
from properties.quadratics import ReferenceRunner, SubjectRunner, book_paraboloids
from reference.registry import RULES

#: Hypothesis searches run inside these tests: the false-alarm run selects them (conftest's marker)
pytestmark = pytest.mark.seeded

#: examples per (property, reference rule): the reference is pure float64 torch code, the cases are the same
#: strategies the implementations get; a fifth of the profile's examples (5 of dev's 25, 400 of thorough's 2000)
REFERENCE_FRACTION = 0.2
#: how many cases a broken variant's search may draw before the property is declared blind to it
BROKEN_MAX_EXAMPLES = 200


@dataclass(frozen=True)
class Property:
    name: str
    check: Callable
    cases: Callable | None         # cases(runner) -> strategy of keyword arguments for check; None: see ``fixed``
    rules: tuple[str, ...]
    broken: tuple[tuple[object, str, str], ...]   # (module, class name, rule)
    fixed: tuple[dict, ...] = ()  # keyword arguments for a property checked on fixed examples


PARABOLOIDS = tuple({"problem": p, "lr": lr, "steps": 100} for p, lr, _ in book_paraboloids())
P, PP = planted, planted_properties
PROPERTIES = [
    Property("descent lemma", descent.check_descent_lemma, descent.descent_cases, descent.GD_RULES,
             ((PP, "GDMomentumZeroIsDefault", "sgd"),)),
    Property("GD rate on quadratics", descent.check_gd_rate, descent.rate_cases, descent.GD_RULES,
             ((PP, "GDClippedUpdate", "sgd"), (PP, "GDMomentumZeroIsDefault", "sgd"))),
    Property("002's paraboloids", descent.check_gd_rate, None, descent.GD_RULES,
             ((PP, "GDClippedUpdate", "sgd"),), fixed=PARABOLOIDS),
    Property("momentum is an EMA", momentum.check_momentum_is_ema, momentum.ema_cases, ("sgd", "book_momentum"),
             ((P, "SGDDampeningOnFirstStep", "sgd"),)),
    Property("book and torch momentum", momentum.check_book_and_torch_momentum, momentum.form_cases,
             ("sgd", "book_momentum"),
             ((PP, "SGDBookFormBuffer", "sgd"), (P, "BookMomentumTorchForm", "book_momentum"))),
    Property("Nesterov look-ahead", momentum.check_nesterov_is_lookahead, momentum.nesterov_cases, ("sgd",),
             ((P, "SGDNesterovUsesBuffer", "sgd"),)),
    Property("Adam's first moment is an EMA", adaptive.check_adam_moments_under_constant_magnitude,
             adaptive.adam_ema_cases, adaptive.ADAM_EMA_RULES, ((P, "AdamBiasCorrectionOffByOne", "adam"),)),
    Property("Adam's step bound", adaptive.check_adam_step_bound, adaptive.bound_cases, adaptive.ADAM_BOUND_RULES,
             ((P, "AdamNoBiasCorrectionV", "adam"),)),
    Property("Adam's worst case attains the bound", adaptive.check_worst_case_attains_bound, None, ("adam", "adamw"),
             ((P, "AdamBiasCorrectionOffByOne", "adam"),), fixed=({"T": 2}, {"T": 10}, {"T": 50})),
    Property("decoupled decay", adaptive.check_decoupled_decay, adaptive.decay_cases,
             ("adamw", "adam", "nadam", "radam"),
             ((PP, "AdamWDecayLrSquared", "adamw"), (P, "AdamWCoupledWeightDecay", "adamw"),
              (P, "AdamWDecayWithoutLr", "adamw"))),
    Property("AdamW without decay is Adam", adaptive.check_decay_free_form_is_the_other_rule, adaptive.adamw_cases,
             ("adamw", "adam"),
             ((PP, "AdamWBiasCorrectionNotRooted", "adamw"), (P, "AdamIgnoresDecoupledWeightDecay", "adam"))),
    Property("scale invariance", adaptive.check_scale_invariance, adaptive.scale_cases, adaptive.SCALE_INVARIANT,
             ((PP, "AdamEpsZeroIgnored", "adam"),)),
    Property("Adagrad's effective step", adaptive.check_adagrad_effective_step, adaptive.adagrad_cases,
             ("adagrad", "book_adagrad"), ((PP, "AdagradForgetfulAccumulator", "adagrad"),)),
    Property("RMSprop's square average", adaptive.check_rmsprop_square_average, adaptive.rmsprop_cases,
             ("rmsprop", "book_rmsprop"), ((PP, "RMSpropSumsSquares", "rmsprop"),)),
    Property("weight decay is the L2 gradient", identities.check_weight_decay_is_l2_gradient,
             identities.weight_decay_cases, identities.COUPLED_DECAY,
             ((P, "SGDWeightDecayAfterMomentum", "sgd"), (PP, "AdagradDecayOutsideAccumulator", "adagrad"))),
    Property("maximize negates the gradient", identities.check_maximize_negates_gradient, identities.maximize_cases,
             identities.MAXIMIZE, ((PP, "AdamMaximizeFirstParamOnly", "adam"),)),
    Property("equal param groups change nothing", identities.check_groups_with_equal_hyperparameters,
             identities.group_cases, tuple(name for name, r in RULES.items() if not r.closure),
             ((P, "AdamBetasFromDefaults", "adam"), (P, "SGDLrFromDefaults", "sgd"))),
    Property("element-wise rules", identities.check_elementwise, identities.elementwise_cases, identities.ELEMENTWISE,
             ((PP, "AdamPerTensorDenominator", "adam"),)),
]


def _subject(module, name: str, rule: str) -> Subject:
    return Subject(f"{module.__name__.rsplit('.', 1)[-1]}.{name}", getattr(module, name), RULES[rule],
                   f"{module.__name__}:{name}")


def _search(check, runner, cases, max_examples: int) -> tuple[NonConformance | None, int]:
    """Run ``check`` on up to ``max_examples`` cases drawn for ``runner``, stopping at the first NonConformance;
    (that failure or None, the number of examples drawn)."""
    caught: list[NonConformance] = []
    drawn = [0]

    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(runner))
    def run(case):
        drawn[0] += 1
        try:
            check(runner, **case)
        except HypothesisException:
            raise
        except NonConformance as e:
            caught.append(e)
            raise

    try:
        run()
    except NonConformance:
        pass
    return (caught[0] if caught else None), drawn[0]


def _reference_params():
    return [pytest.param(p, rule, id=f"{p.name}-{rule}") for p in PROPERTIES for rule in p.rules]


def _broken_params():
    return [pytest.param(p, module, name, rule, id=f"{p.name}-{name}")
            for p in PROPERTIES for module, name, rule in p.broken]


@pytest.mark.parametrize("prop, rule", _reference_params())
def test_property_holds_for_the_reference_rule(prop, rule):
    """The property holds for the reference rule itself, on the cases the implementations get (a fifth of the
    profile's examples) or on its fixed examples."""
    runner = ReferenceRunner(RULES[rule])
    if prop.cases is None:
        for kwargs in prop.fixed:
            prop.check(runner, **kwargs)
        return

    @settings(max_examples=max(1, round(settings.default.max_examples * REFERENCE_FRACTION)))
    @given(case=prop.cases(runner))
    def run(case):
        prop.check(runner, **case)

    run()


@pytest.mark.parametrize("prop, module, name, rule", _broken_params())
def test_property_fails_on_broken_variant(prop, module, name, rule, record_property):
    """The property catches the broken variant: a NonConformance within BROKEN_MAX_EXAMPLES drawn cases (or on one
    of its fixed examples)."""
    runner = SubjectRunner(_subject(module, name, rule))
    if prop.cases is None:
        for kwargs in prop.fixed:
            try:
                prop.check(runner, **kwargs)
            except NonConformance:
                return
        pytest.fail(f"{prop.name}: {name} ({rule}) passed every fixed example")
    caught, examples = _search(prop.check, runner, prop.cases, BROKEN_MAX_EXAMPLES)
    record_property("examples_to_catch", examples)
    assert caught is not None, (f"the property '{prop.name}' did not catch the broken variant {name} ({rule}) in "
                                f"{examples} examples")


@pytest.mark.parametrize("name, rule", [pytest.param(n, r, id=n) for n, r, _ in planted_properties.CORRECT])
def test_broken_variants_bases_satisfy_the_properties(name, rule):
    """Each broken variant's base class — the same code without the bug — satisfies every property of its rule,
    so a variant's failure is its bug's."""
    runner = SubjectRunner(_subject(planted_properties, name, rule))
    for prop in PROPERTIES:
        if rule not in prop.rules:
            continue
        if prop.cases is None:
            for kwargs in prop.fixed:
                prop.check(runner, **kwargs)
            continue

        @settings(max_examples=max(1, round(settings.default.max_examples * REFERENCE_FRACTION)))
        @given(case=prop.cases(runner))
        def run(case):
            prop.check(runner, **case)

        run()
