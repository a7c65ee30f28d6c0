"""What a parameter group means beyond its hyperparameters: a step count kept per group (the ``*_group_step``
variants of ``reference/variants.py``), a group added later with ``add_param_group``, a hyperparameter an
implementation reads from its constructor only (named when a case shows it, or declared), and a constructor that
refuses values inside the rule's domain (held out, reported once). Expected numbers are worked by hand in the
comments from the rules' formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optimizers import misbehaving
from optimizers.adapters import Subject
from properties import categories
from properties.assertions import NonConformance
from properties import test_contract
from properties.test_planted_bugs import search
from properties.test_trajectory import check_trajectory
from reference.registry import RULES
from reference.trajectory import Case, Group, reference_trajectory


pytestmark = pytest.mark.seeded   # two tests search with Hypothesis inside (the planted bugs' ``search``)


def _case(rule: str, grads, joins=None, **hp) -> Case:
    r = RULES[rule]
    groups = [Group((0,), {**r.defaults(), **hp})]
    return Case(r, groups, [np.array(-1.0)], [[g if g is None else np.array(g)] for g in grads],
                [[groups[0].hp["lr"]] for _ in grads], joins=joins or {})


def test_adamax_group_step_counts_a_step_without_a_gradient():
    # Adamax, lr = 0.002, β = (0.9, 0.999), ε = 1e-8, θ_0 = −1; gradients −1, None, −1.
    # step 1: m = −0.1, u = 1 + ε, t = 1: θ_1 = −1 + 0.002·0.1/(0.1 (1 + ε)) = −1 + 0.002/(1 + ε)
    # step 2: no gradient; the group's t becomes 2, m and u unchanged
    # step 3: m = 0.9·(−0.1) − 0.1 = −0.19, u = max(0.999 (1 + ε), 1 + ε) = 1 + ε; the group's t = 3:
    #   θ_3 = θ_1 + 0.002·0.19/((1 − 0.9³)(1 + ε)); counted per parameter (t = 2) it would be /(1 − 0.9²)
    ε = 1e-8
    θ1 = -1 + 0.002 / (1 + ε)
    group = reference_trajectory(_case("adamax_group_step", [-1.0, None, -1.0]))
    own = reference_trajectory(_case("adamax", [-1.0, None, -1.0]))
    assert math.isclose(group[2][0], θ1 + 0.002 * 0.19 / ((1 - 0.9**3) * (1 + ε)), rel_tol=1e-14)
    assert math.isclose(own[2][0], θ1 + 0.002 * 0.19 / ((1 - 0.9**2) * (1 + ε)), rel_tol=1e-14)
    assert group[1][0] == group[0][0]   # θ untouched by a step without its gradient


def test_schedulefree_group_step_advances_the_average_at_a_step_without_a_gradient():
    # Schedule-Free SGD, lr = 1, β = 0.9, W = 2 (warm-up), r = 0, p = 2, θ_0 = −1; gradients None, 1.
    # step 1 (no gradient): t = 1, γ_1 = 1/2, lr_max = 1/2, Σw = (1/2)² = 1/4
    # step 2: t = 2, γ_2 = 1, lr_max = 1, w = 1, Σw = 5/4, c = 4/5;  z = −1 − 1 = −2;
    #   x = (1/5)(−1) + (4/5)(−2) = −1.8;  y = 0.1 z + 0.9 x = −0.2 − 1.62 = −1.82
    # counted per parameter the step would be its first: γ = 1/2, c = 1, z = x = y = −1.5
    hp = dict(lr=1.0, momentum=0.9, warmup_steps=2, r=0.0, weight_lr_power=2.0)
    assert math.isclose(reference_trajectory(_case("schedulefree_sgd_group_step", [None, 1.0], **hp))[1][0], -1.82,
                        rel_tol=1e-14)
    assert math.isclose(reference_trajectory(_case("schedulefree_sgd", [None, 1.0], **hp))[1][0], -1.5, rel_tol=1e-14)


def test_a_group_added_later_counts_its_steps_from_when_it_joined():
    # the Adamax case above with the group added before step 2 (add_param_group): no step counted before it, so
    # step 3 is its second (t = 2), whatever the group-step rule counts for groups there from the start
    joined = reference_trajectory(_case("adamax_group_step", [None, -1.0, -1.0], joins={0: 1}))
    own = reference_trajectory(_case("adamax", [None, -1.0, -1.0]))
    assert joined[2][0] == own[2][0]


def _two_groups(maximize: bool) -> Case:
    r = RULES["sgd"]
    hp = {**r.defaults(), "lr": 0.5}
    groups = [Group((0,), hp), Group((1,), {**hp, "maximize": maximize})]
    return Case(r, groups, [np.array(1.0), np.array(1.0)], [[np.array(1.0), np.array(1.0)]], [[0.5, 0.5]])


def test_a_group_hyperparameter_read_from_the_constructor_is_named():
    subject = Subject("misbehaving.ConstructorMaximize", misbehaving.ConstructorMaximize, RULES["sgd"],
                      "optimizers.misbehaving:ConstructorMaximize")
    with pytest.raises(NonConformance) as caught:
        check_trajectory(subject, _two_groups(maximize=True), known_deviations=False)
    assert "maximize set in a param group is ignored" in str(caught.value)
    failure = {"test": "test_trajectory_matches_reference_rule", **caught.value.details}
    assert caught.value.details["ignored group hyperparameters"] == ["maximize"]
    assert categories.of_failure(failure) == "API contract"


def test_a_real_deviation_is_not_blamed_on_a_group_hyperparameter():
    # torch's SGD (weight decay coupled) judged against sgdw (decoupled), its two groups apart in maximize: it fails
    # at step 2 (the decay went into the momentum buffer), and no group given the constructor's maximize explains it
    r = RULES["sgdw"]
    hp = {**r.defaults(), "lr": 0.5, "momentum": 0.5, "weight_decay": 0.5}
    case = Case(r, [Group((0,), hp), Group((1,), {**hp, "maximize": True})], [np.array(1.0), np.array(1.0)],
                [[np.array(1.0), np.array(1.0)]] * 2, [[0.5, 0.5]] * 2)
    subject = Subject("torch.optim.SGD", torch.optim.SGD, r, "torch.optim:SGD")
    with pytest.raises(NonConformance) as caught:
        check_trajectory(subject, case, known_deviations=False)
    assert caught.value.details["ignored group hyperparameters"] == []


def test_a_declared_constructor_only_hyperparameter_is_given_to_every_group():
    declared = Subject("misbehaving.ConstructorMaximizeDeclared", misbehaving.ConstructorMaximizeDeclared,
                       RULES["sgd"], "optimizers.misbehaving:ConstructorMaximizeDeclared",
                       constructor_only=("maximize",))
    caught, examples = search(declared, [check_trajectory], 60, min_groups=2)
    assert caught is None and examples >= 60


def test_a_refused_value_is_held_out_and_reported_once():
    subject = Subject("misbehaving.RefusesZeroLr", misbehaving.RefusesZeroLr, RULES["sgd"],
                      "optimizers.misbehaving:RefusesZeroLr")
    caught, examples = search(subject, [check_trajectory], 60)
    assert caught is None, caught   # cases with lr = 0 are held out, the rest judged
    with pytest.raises(NonConformance, match=r"refuses values inside the domain of rule 'sgd'.*lr=0\.0 "
                                             r"\(AssertionError"):
        test_contract.test_accepts_hyperparameters_inside_the_rule_domain(subject)
