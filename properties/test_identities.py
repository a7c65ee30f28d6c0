"""Identities every rule shares, between two runs of the same implementation:

* coupled weight decay λ is the gradient of (λ/2)‖x‖²: weight_decay=λ equals weight_decay=0 fed g + λx;
* maximize=True fed −g equals maximize=False fed g;
* splitting the parameters into param groups with equal hyperparameters changes nothing;
* an element-wise rule acts on each element alone: changing one element's problem leaves the others' trajectories
  untouched, and permuting the elements permutes the trajectory.

Where the arithmetic of the two runs is the same operation for operation, the runs must agree bit for bit (said in
each docstring); where it is not, they must agree within the trajectory tolerance of each run (the suite's model,
``properties/tolerances.py``, on the open-loop case of the gradients each run was fed).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.quadratics import (Doubled, Layout, Runner, SubjectRunner, assert_identical, assert_matches, avoided,
                                   closed_loop, failure, heavy, judged_tolerance, known_deviations, layouts, needs,
                                   quadratics, replay, rule_hyperparameters, runner_hyperparameters, schedules,
                                   separable_problems, sketch, smooth_problems)
from reference.registry import RULES

MAX_STEPS = 12
TOLERANCE_STEPS = 6          # runs judged against the trajectory tolerance: its bound grows with the steps


# ---- weight decay --------------------------------------------------------------------------------------------------
COUPLED_DECAY = tuple(r.name for r in RULES.values() if "weight_decay" in r.names and not r.decoupled_decay)


def check_weight_decay_is_l2_gradient(runner: Runner, problem, hp: dict, steps: int, lrs=None) -> None:
    """Coupled weight decay λ is the gradient of (λ/2)‖x‖²: run A (weight_decay = λ, fed ∇f(x_t)) and run B
    (weight_decay = 0, fed the same ∇f plus λ·x_t of its own parameters) take the same steps. Under maximize the
    rules negate the gradient first and then add λx (decay still shrinks x), so B is fed ∇f − λx_t.

    The runs differ only in where g + λx is rounded (inside the implementation, or by the test), so they agree
    within tol_A + tol_B, each run's trajectory tolerance on the gradients it was fed (both runs compute the same
    scalars bit for bit, so their bias corrections' rounding is common to both)."""
    __tracebackhide__ = True
    lam = -hp["weight_decay"] if hp.get("maximize") else hp["weight_decay"]
    free = {**hp, "weight_decay": 0.0}
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        a = closed_loop(runner, problem, hp, steps, lrs)
        b = runner.run(free, problem.x0, replay(a, lambda x, t: lam * x), steps, lrs)
    tol_a = judged_tolerance(runner, hp, a)
    tol_b = judged_tolerance(runner, free, b)
    assert_matches(runner, "weight_decay = λ equals weight_decay = 0 with λ·x added to the gradient", free, problem,
                   b, a.xs, tol_a + tol_b, "expected: the run with weight_decay = λ")


@st.composite
def weight_decay_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn with λ > 0 (a drawn 0 becomes 1) and coupled decay; 1–6 steps; an lr schedule; a
    smooth problem."""
    held = {"decoupled_weight_decay": False} if "decoupled_weight_decay" in runner.rule.names else {}
    hp = draw(runner_hyperparameters(runner, **held), label="hyperparameters")
    if hp["weight_decay"] == 0:
        hp["weight_decay"] = 1.0
    steps = draw(st.integers(1, TOLERANCE_STEPS), label="steps")
    return {"hp": hp, "steps": steps, "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs"),
            "problem": draw(smooth_problems(), label="problem")}


@pytest.mark.applies_to(*COUPLED_DECAY)
@heavy()
@given(data=st.data())
def test_weight_decay_equals_adding_the_gradient_of_l2(subject, data):
    """For every rule with coupled weight decay (SGD, Adam, RMSprop, Adagrad, Adadelta, AdaMax, NAdam, RAdam, ASGD;
    Adam, NAdam, RAdam with decoupled_weight_decay=False), weight_decay = λ > 0 equals weight_decay = 0 fed
    g + λx, other hyperparameters and a scheduled lr drawn, on closed-loop runs over random quadratics and the
    documents' surfaces."""
    needs(subject, "weight_decay")
    runner = SubjectRunner(subject)
    check_weight_decay_is_l2_gradient(runner, **data.draw(weight_decay_cases(runner), label="case"))


# ---- maximize ------------------------------------------------------------------------------------------------------
MAXIMIZE = tuple(r.name for r in RULES.values() if "maximize" in r.names)


def check_maximize_negates_gradient(runner: Runner, problem, hp: dict, steps: int, lrs=None,
                                    layout: Layout | None = None) -> None:
    """maximize=True fed −∇f takes exactly the steps of maximize=False fed ∇f, bit for bit: the documented rules
    negate the gradient first, and negation is exact and commutes with every rounding."""
    __tracebackhide__ = True
    up, down = {**hp, "maximize": True}, {**hp, "maximize": False}
    with known_deviations(runner, sketch(runner.rule, down, x0=problem.x0)):
        a = closed_loop(runner, problem, down, steps, lrs, layout)
        b = closed_loop(runner, problem, up, steps, lrs, layout, feed=lambda g, t, x: -g)
    assert_identical(runner, "maximize=True fed −∇f equals maximize=False fed ∇f", up, problem, b, a,
                     "the parameters of the run with maximize=False fed ∇f", layout)


@st.composite
def maximize_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn, 1–12 steps, an lr schedule, a smooth problem laid out in 1–3 tensors."""
    hp = draw(runner_hyperparameters(runner), label="hyperparameters")
    steps = draw(st.integers(1, MAX_STEPS), label="steps")
    problem = draw(smooth_problems(), label="problem")
    return {"hp": hp, "steps": steps, "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs"),
            "problem": problem, "layout": draw(layouts(problem.x0.shape[0]), label="layout")}


@pytest.mark.applies_to(*MAXIMIZE)
@heavy()
@given(data=st.data())
def test_maximize_equals_negating_the_gradient(subject, data):
    """For every rule with ``maximize``: maximize=True fed −∇f equals maximize=False fed ∇f exactly, over the other
    hyperparameters and a scheduled lr, with the parameters in 1–3 tensors, on closed-loop runs over random
    quadratics and the documents' surfaces."""
    needs(subject, "maximize")
    runner = SubjectRunner(subject)
    check_maximize_negates_gradient(runner, **data.draw(maximize_cases(runner), label="case"))


# ---- param groups --------------------------------------------------------------------------------------------------
def check_groups_with_equal_hyperparameters(runner: Runner, problem, hp: dict, other: dict, steps: int,
                                            layout: Layout, lrs=None) -> None:
    """The parameters split into several param groups, each given ``hp`` explicitly (the constructor given
    ``other``), take exactly the steps they take as the constructor's one group with ``hp``: an update rule acts on
    each parameter with its group's hyperparameters, whatever the grouping. Bit for bit: the same operations on the
    same values, only grouped differently."""
    __tracebackhide__ = True
    single = Layout(layout.shapes, layout.perm, None)
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0, ctor_hp=other)):
        a = closed_loop(runner, problem, hp, steps, lrs, single)
        b = closed_loop(runner, problem, hp, steps, lrs, layout, ctor_hp=other)
    assert_identical(runner, f"{len(layout.groups)} param groups with equal hyperparameters (constructor given "
                     "others) step exactly as one group", hp, problem, b, a,
                     f"the parameters when all tensors are in one group; groups (tensor indices): {layout.groups}, "
                     f"shapes {layout.shapes}, constructor hyperparameters {other}", layout)


@st.composite
def group_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn for every group, the constructor given the rule's defaults (so that a group read from
    the defaults shows); a quadratic of 2–8 elements in 2–3 tensors over 2–3 groups; 1–12 steps; an lr schedule."""
    hp, other = avoided(runner, draw(rule_hyperparameters(runner.rule, runner.accepted), label="hyperparameters"),
                        runner.rule.defaults())
    problem = draw(quadratics(min_dim=2), label="problem")
    steps = draw(st.integers(1, MAX_STEPS), label="steps")
    return {"hp": hp, "other": other, "problem": problem, "steps": steps,
            "layout": draw(layouts(problem.dim, groups=True), label="layout"),
            "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs")}


@heavy()
@given(data=st.data())
def test_param_groups_with_equal_hyperparameters_change_nothing(subject, data):
    """For every rule: the parameters in 2–3 param groups that all carry the same drawn hyperparameters (the
    constructor given the rule's defaults) step exactly as they do in one group, with a scheduled lr applied to
    every group, on closed-loop runs over random quadratics (2–8 elements in 2–3 tensors)."""
    needs(subject, "param_groups")
    runner = SubjectRunner(subject)
    check_groups_with_equal_hyperparameters(runner, **data.draw(group_cases(runner), label="case"))


# ---- element-wise rules --------------------------------------------------------------------------------------------
ELEMENTWISE = tuple(r.name for r in RULES.values() if r.elementwise)


def check_elementwise(runner: Runner, problem, hp: dict, steps: int, k: int, layout: Layout, lrs=None) -> None:
    """An element-wise rule on a separable problem (f = Σ f_i(x_i)):

    * locality — doubling f_k (its gradient times 2, exactly) leaves every other element's trajectory bit for bit
      unchanged (the same operations on the same values, at the same positions);
    * permutation — stored in another order (and shape), fed the same gradients permuted, the elements follow the
      same trajectories, within twice the trajectory tolerance: a vectorised kernel may round an element
      differently at another position (fused multiply-add in its SIMD body, separate operations in its tail)."""
    __tracebackhide__ = True
    with known_deviations(runner, sketch(runner.rule, hp, x0=problem.x0)):
        a = closed_loop(runner, problem, hp, steps, lrs)
        c = closed_loop(runner, Doubled(problem, k), hp, steps, lrs)
        b = runner.run(hp, problem.x0, replay(a), steps, lrs, layout)
    others = [i for i in range(problem.x0.shape[0]) if i != k]
    same = (a.xs[:, others] == c.xs[:, others]) | (np.isnan(a.xs[:, others]) & np.isnan(c.xs[:, others]))
    if not same.all():
        t, j = (int(v) for v in np.argwhere(~same)[0])
        raise failure(runner, "an element-wise rule acts on each element alone", hp, problem, c, t, others[j],
                      a.xs[t, others[j]], c.xs[t, others[j]], 0.0,
                      f"only element {k}'s part of f was doubled; element {others[j]} must not change at all")
    tol = judged_tolerance(runner, hp, a)
    assert_matches(runner, "an element-wise rule commutes with permuting the elements", hp, problem, b, a.xs,
                   2 * tol, f"stored as {layout.shapes} in the order {layout.perm}", layout)


@st.composite
def elementwise_cases(draw, runner: Runner) -> dict:
    """Hyperparameters drawn, a separable problem, the element whose part of f is doubled, a permuted layout in
    1–3 tensors, 1–6 steps, an lr schedule."""
    hp = draw(runner_hyperparameters(runner), label="hyperparameters")
    problem = draw(separable_problems(), label="problem")
    n = problem.x0.shape[0]
    steps = draw(st.integers(1, TOLERANCE_STEPS), label="steps")
    return {"hp": hp, "problem": problem, "k": draw(st.integers(0, n - 1), label="changed element"),
            "layout": draw(layouts(n, permuted=True), label="layout"), "steps": steps,
            "lrs": draw(schedules(runner, hp["lr"], steps), label="lrs")}


@pytest.mark.applies_to(*ELEMENTWISE)
@heavy()
@given(data=st.data())
def test_elementwise_rules_act_on_each_element_alone(subject, data):
    """For every element-wise rule, on closed-loop runs over separable problems (diagonal quadratics and 001's
    function_2d): one element's problem changed, the others' trajectories are unchanged; the elements stored
    permuted (in 1–3 tensors, 0-d and 2-d ones included), the trajectory is the same, permuted."""
    runner = SubjectRunner(subject)
    check_elementwise(runner, **data.draw(elementwise_cases(runner), label="case"))
