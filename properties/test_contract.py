"""The torch.optim contract, for implementations that have the API: state_dict round trips mid-trajectory,
step(closure), zero_grad, per-group hyperparameters, add_param_group, no writes into .grad, parameters that keep
their identity, dtype, shape and device, and hyperparameters outside the rule's domain rejected.

Each ``check_*`` function takes (subject, case) and raises NonConformance; ``CONTRACT_CHECKS`` lists those that
apply to any trajectory case (the self-tests run them on planted bugs too).
"""
from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given, reject
from hypothesis import strategies as st

from optimizers.known_deviations import applicable
from optimizers.adapters import REFUSALS, construct, dense, make_params, same_grad, set_grads, set_lrs, snapshot, step
from optimizers.loading import reproducer_import
from reference.declarations import Choice, Flag, Pair
from properties.assertions import NonConformance, grad_reproducer
from properties.strategies import cases
from properties.test_trajectory import check_trajectory, under_known_deviations

DTYPE = torch.float64


def _require(subject, *features: str) -> None:
    for f in features:
        reason = subject.caps.missing(f)
        if reason:
            pytest.skip(reason)


def _run(subject, case, opt, params, steps):
    for t in steps:
        set_lrs(subject, case, opt, t)
        set_grads(case, params, t)
        step(subject, opt, t)


def check_state_dict_round_trip(subject, case) -> None:
    """Halfway through, a fresh optimizer on copies of the parameters, given ``load_state_dict(state_dict())``,
    continues exactly as the original does."""
    __tracebackhide__ = True
    if not subject.caps.state_dict or case.steps < 2:
        return
    k = case.steps // 2
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    _run(subject, case, opt, params, range(k))
    saved = copy.deepcopy(opt.state_dict())
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fresh = construct(subject, case, twins)
    fresh.load_state_dict(saved)
    for t in range(k, case.steps):
        _run(subject, case, opt, params, [t])
        _run(subject, case, fresh, twins, [t])
        for i, (a, b) in enumerate(zip(snapshot(params), snapshot(twins))):
            if not np.array_equal(a, b, equal_nan=True):
                j = np.unravel_index(int(np.argmax(a != b)), a.shape) if a.shape else ()
                raise NonConformance(
                    f"{subject.id}: after load_state_dict at step {k}, step {t} of parameter {i} differs from the "
                    f"uninterrupted run: element {tuple(int(x) for x in j)} is {b[j]!r}, but should be {a[j]!r} "
                    f"({case!r}). State is lost or changed by state_dict()/load_state_dict().")


def check_step_leaves_grads_and_params_intact(subject, case) -> None:
    """step() never writes into .grad and keeps every parameter's identity, storage, dtype, shape and device."""
    __tracebackhide__ = True
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    before = [(p.dtype, tuple(p.shape), p.device, p.data_ptr()) for p in params]
    for t in range(case.steps):
        set_lrs(subject, case, opt, t)
        set_grads(case, params, t)
        grads = [p.grad for p in params]
        copies = [None if g is None else g.detach().clone() for g in grads]
        step(subject, opt, t)
        for i, (p, g, c) in enumerate(zip(params, grads, copies)):
            if p.grad is not g or (c is not None and not same_grad(p.grad, c)):
                raise NonConformance(f"{subject.id}: step {t} wrote into parameter {i}'s .grad "
                                     f"(it should only read it) ({case!r})",
                                     {"reproducer": grad_reproducer(subject, case, t, i)})
            now = (p.dtype, tuple(p.shape), p.device, p.data_ptr())
            if now != before[i]:
                raise NonConformance(f"{subject.id}: step {t} changed parameter {i} from (dtype, shape, device, "
                                     f"storage) {before[i]} to {now}; a step updates parameters in place")
        if subject.caps.param_groups:
            held = [q for g in opt.param_groups for q in g["params"]]
            if any(not any(q is p for q in held) for p in params):
                raise NonConformance(f"{subject.id}: after step {t} param_groups no longer hold the parameter "
                                     "objects it was given")


CONTRACT_CHECKS = [check_state_dict_round_trip, check_step_leaves_grads_and_params_intact]


@given(data=st.data())
def test_state_dict_round_trip_continues_identically(subject, data):
    """state_dict()/load_state_dict() in the middle of a trajectory: a fresh optimizer continues identically."""
    _require(subject, "state_dict")
    case = data.draw(cases(subject, DTYPE), label="case")
    assume(case.steps >= 2)
    with under_known_deviations(subject, case):
        check_state_dict_round_trip(subject, case)


@given(data=st.data())
def test_step_never_writes_grad_nor_replaces_parameters(subject, data):
    """step() leaves .grad untouched and updates parameters in place (same object, storage, dtype, shape,
    device)."""
    case = data.draw(cases(subject, DTYPE), label="case")
    assume(not applicable(subject, case, "grads"))
    with under_known_deviations(subject, case):
        check_step_leaves_grads_and_params_intact(subject, case)


@given(data=st.data())
def test_step_with_closure_calls_it_once_and_returns_its_loss(subject, data):
    """step(closure) calls the closure exactly once, returns what it returned, and updates as step() does."""
    _require(subject, "closure")
    case = data.draw(cases(subject, DTYPE, max_steps=3), label="case")
    with under_known_deviations(subject, case):
        _check_closure(subject, case)


def _check_closure(subject, case):
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    plain = make_params(case, subject.device)
    plain_opt = construct(subject, case, plain)
    for t in range(case.steps):
        calls = []
        loss = torch.tensor(float(t) + 0.5)

        def closure():
            calls.append(t)
            set_grads(case, params, t)
            return loss

        set_lrs(subject, case, opt, t)
        got = step(subject, opt, t, closure)
        assert len(calls) == 1, f"{subject.id}: step(closure) called the closure {len(calls)} times, should be once"
        assert got is loss, f"{subject.id}: step(closure) returned {got!r}, should return the closure's loss {loss!r}"
        _run(subject, case, plain_opt, plain, [t])
        for i, (a, b) in enumerate(zip(snapshot(params), snapshot(plain))):
            assert np.array_equal(a, b, equal_nan=True), (
                f"{subject.id}: step {t}: parameter {i} after step(closure) is {a!r}, should equal step()'s {b!r}")


@given(data=st.data())
def test_zero_grad_leaves_no_stale_gradient(subject, data):
    """Without zero_grad(), gradients stay as they were through step(); after zero_grad() every parameter's
    gradient is None or zero."""
    _require(subject, "zero_grad")
    case = data.draw(cases(subject, DTYPE, max_steps=2), label="case")
    assume(not applicable(subject, case, "grads"))   # a known deviation that writes into .grad
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    with under_known_deviations(subject, case):
        for t in range(case.steps):
            set_lrs(subject, case, opt, t)
            set_grads(case, params, t)
            kept = [None if p.grad is None else p.grad.clone() for p in params]   # as given, before step()
            step(subject, opt, t)
            for i, (p, k) in enumerate(zip(params, kept, strict=True)):
                assert (p.grad is None) == (k is None) and (k is None or same_grad(p.grad, k)), (
                    f"{subject.id}: step {t} changed parameter {i}'s gradient from "
                    f"{None if k is None else dense(k).tolist()} to "
                    f"{None if p.grad is None else dense(p.grad).tolist()} before "
                    f"zero_grad() was called ({case!r})")
    opt.zero_grad()
    for i, p in enumerate(params):
        assert p.grad is None or not torch.any(dense(p.grad) != 0), (
            f"{subject.id}: after zero_grad() parameter {i} still has gradient {dense(p.grad).tolist()!r}; should be "
            "None or zeros")


@given(data=st.data())
def test_per_group_hyperparameters_are_honoured(subject, data):
    """With two or more param groups, each with its own hyperparameters, every parameter follows its group's."""
    _require(subject, "param_groups")
    case = data.draw(cases(subject, DTYPE, min_groups=2), label="case")
    check_trajectory(subject, case)


@given(data=st.data())
def test_add_param_group_joins_mid_trajectory(subject, data):
    """Groups added with add_param_group after some steps follow the rule from then on, from fresh state."""
    _require(subject, "add_param_group")
    case = data.draw(cases(subject, DTYPE, min_groups=2), label="case")
    join = data.draw(st.integers(0, case.steps - 1), label="join step")
    late = {i for g in case.groups[1:] for i in g.indices}
    grads = [[None if (i in late and t < join) else g for i, g in enumerate(row)] for t, row in enumerate(case.grads)]
    case = dataclasses.replace(case, grads=grads, joins={k: join for k in range(1, len(case.groups))})

    class Joining:
        """The implementation, built on group 0 only; the other groups join through add_param_group."""

        wraps = subject.factory

        def __init__(self, params, **kwargs):
            self.opt = subject.factory(params[:1], **kwargs)
            self.pending = params[1:]
            self.param_groups = self.opt.param_groups
            self.t = 0
            self._join()

        def _join(self):
            if self.t == join:
                for g in self.pending:
                    try:
                        self.opt.add_param_group(g)
                    except REFUSALS:   # values it refuses: held out, as a constructor's
                        reject()

        def step(self):
            loss = self.opt.step()
            self.t += 1
            self._join()
            return loss

    joining = dataclasses.replace(subject, factory=Joining, id=f"{subject.id} (groups 1.. added at step {join})")
    joining.__dict__["caps"] = subject.caps
    check_trajectory(joining, case)


def _edge_values(h) -> list:
    """The values of ``h`` the strategies draw first: both flags, every choice, a real's edges (zero, the bounds of
    the searched range), and for a tuple its own edges and each part's with the other parts at their first edge."""
    d = h.domain
    if isinstance(d, Flag):
        return [False, True]
    if isinstance(d, Choice):
        return list(d.values)
    if isinstance(d, Pair):
        first = tuple(p.edges[0] if p.edges else h.default[j] for j, p in enumerate(d.parts))
        return list(d.edges) + [first[:i] + (e,) + first[i + 1:] for i, part in enumerate(d.parts)
                                for e in part.edges]
    return list(d.edges)


def _inside_domain(rule, accepted):
    """(name, value, hyperparameters) for each edge value of each accepted hyperparameter that the rule's
    constraints leave as is (the others at their defaults, repaired where a constraint needs it)."""
    out = []
    for h in rule.hypers:
        if h.name in accepted:
            for v in _edge_values(h):
                hp = rule.repair({**rule.defaults(), h.name: v})
                if v != h.default and hp[h.name] == v:
                    out.append((h.name, v, hp))
    return out


def test_accepts_hyperparameters_inside_the_rule_domain(subject):
    """Constructing with each edge value of the rule's domain (zero, the bounds of the searched range) succeeds: a
    constructor that refuses one narrows the rule. The other tests hold refused values out (a case the constructor
    refuses with ValueError or a failed assert is not judged) and search the rest; this test reports them."""
    accepted = subject.caps.accepted
    refused = []
    ndims = subject.rule.ndims
    shape = (2,) if ndims is None or 1 in ndims else (2,) * ndims[0]
    for name, v, hp in _inside_domain(subject.rule, accepted):
        p = torch.nn.Parameter(torch.zeros(shape, dtype=DTYPE))
        kwargs = {**{k: w for k, w in hp.items() if k in accepted}, **subject.fixed}
        try:
            subject.factory([p], **kwargs)
        except Exception as e:   # noqa: BLE001 — any refusal counts; the message names it
            refused.append(f"{name}={v!r} ({type(e).__name__}: {e})")
    if refused:
        raise NonConformance(f"{subject.id}: the constructor refuses values inside the domain of rule "
                             f"{subject.rule.name!r} "
                             f"(held out of the other tests, which search the rest): {'; '.join(refused)}")


def _out_of_domain(rule):
    """(hyperparameter, invalid value) pairs derived from the rule's declaration, and invalid combinations."""
    out = []
    for h in rule.hypers:
        for v in h.domain.outside():
            out.append(({h.name: v}, f"{h.name}={v!r} (valid: {h.domain.describe()})"))
    for c in rule.constraints:
        if c.enforced:
            for hp in c.violations(rule.defaults()):
                changed = {k: v for k, v in hp.items() if rule.defaults()[k] != v}
                out.append((changed, f"{changed} ({c.reason})"))
    return out


def _rejection_script(subject, kwargs: dict, message: str) -> str:
    """A script that constructs the implementation with ``kwargs`` and fails its assertion where it is accepted."""
    literal = re.sub(r"\b(-?)(inf|nan)\b", r"\1math.\2", repr(kwargs))
    return "\n".join(["import math", "import torch", reproducer_import(subject.spec), "",
                      f"p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64, device={subject.device!r}))",
                      "try:", f"    Impl([p], **{literal})",
                      "except (ValueError, TypeError, RuntimeError, AssertionError) as e:",
                      "    print('rejected:', type(e).__name__, e)",
                      "except Exception as e:   # refused, but not with the exception torch.optim raises",
                      f"    raise AssertionError({message!r}) from e",
                      "else:", f"    raise AssertionError({message!r})"])


def test_rejects_hyperparameters_outside_the_rule_domain(subject):
    """Constructing with a hyperparameter outside its declared domain, or an invalid combination, raises."""
    _require(subject, "param_groups")
    accepted = subject.caps.accepted
    tried = 0
    for hp, what in _out_of_domain(subject.rule):
        if not set(hp) <= accepted:
            continue
        tried += 1
        p = torch.nn.Parameter(torch.zeros(2, dtype=DTYPE))
        kwargs = {**{k: v for k, v in subject.rule.defaults().items() if k in accepted}, **subject.fixed, **hp}
        rejects = (f"torch.optim.{subject.rule.torch_class} rejects it with ValueError" if subject.rule.torch_class
                   else "outside the rule's domain, a torch.optim-style constructor raises ValueError")
        try:
            subject.factory([p], **kwargs)
        except (ValueError, TypeError, RuntimeError, AssertionError):
            continue
        except Exception as e:   # noqa: BLE001 — refused, but not as the contract says
            message = f"{subject.id} rejected {what} with {type(e).__name__} ({e}), not ValueError; {rejects}"
        else:
            message = f"{subject.id} accepted {what}; {rejects}"
        failure = pytest.fail.Exception(message, pytrace=False)
        failure.details = {"reproducer": _rejection_script(subject, kwargs, message)}
        raise failure
    if not tried:
        pytest.skip("the constructor accepts none of the rule's range-checked hyperparameters")
