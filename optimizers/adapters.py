"""Driving an implementation under test: what its API supports, and running a trajectory case through it.

An implementation is a class or factory called like a torch.optim class, ``(params, **hyperparameters)``, whose
object has ``step()``. Everything else is optional and probed: which of the rule's hyperparameters the constructor
accepts (read from its signature; ``**kwargs`` accepts all), ``param_groups`` (per-group hyperparameters, learning
rates changed by a scheduler, ``add_param_group``), ``state_dict``/``load_state_dict``, ``step(closure)``.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import numpy as np
import torch

from reference.declarations import Choice, Flag, Pair, Rule
from reference.sparse import as_sparse
from reference.trajectory import Case


@dataclass(frozen=True)
class Capabilities:
    accepted: frozenset[str]          # the rule's hyperparameters the constructor accepts
    rejected: dict                    # name -> the error of those its signature names but it refuses to take
    param_groups: bool
    add_param_group: bool
    state_dict: bool
    closure: bool
    zero_grad: bool

    def missing(self, feature: str) -> str | None:
        """Why a test needing ``feature`` cannot run, or None."""
        if not getattr(self, feature):
            return f"the implementation has no {feature.replace('_', ' ')} support"
        return None


@dataclass(frozen=True)
class Subject:
    """An implementation under test, the rule it claims, and how to name and rebuild it outside the suite."""

    id: str
    factory: Callable
    rule: Rule
    spec: str                                   # for the reproducer: module:Name or path.py:Name
    fixed: dict = field(default_factory=dict)   # constructor arguments always passed (foreach=True, ...)
    device: str = "cpu"
    #: "ieee" (gradual underflow, the default) or "flush": the implementation may flush subnormal inputs and results
    #: to zero (GPU fast math, Triton, XLA on CPU), and is judged against a reference that may too
    subnormals: str = "ieee"
    #: the state key under which a compensated implementation (Kahan summation of 16-bit parameters) keeps each
    #: parameter's compensation: judged on the parameter plus it (None: not compensated)
    compensation: str | None = None
    #: a quantized-state layout (``properties.quantization.Quantization``): judged with its state read back after
    #: every step, each buffer within the layout's quantization bound of the rule's (None: state not judged)
    quantization: Any = None
    #: "float32-state": 16-bit parameters with float32 state and arithmetic, θ rounded once a step (judged with its
    #: state read back); None: the implementation computes in its parameters' dtype
    precision: str | None = None
    #: the state key under which the implementation keeps float32 master weights of 16-bit parameters (the parameter
    #: their rounded copy): judged on the master at float32 precision, the parameter within a rounding of it
    master: str | None = None
    #: hyperparameters the implementation reads from its constructor only, not per param group (declared by its
    #: factory's ``constructor_only`` attribute): every group is given the constructor's value, and the report says so
    constructor_only: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Subject({self.id}, rule {self.rule.name})"

    def _repr_pretty_(self, printer, cycle) -> None:   # Hypothesis prints falsifying examples with this
        printer.text(repr(self))

    @functools.cached_property
    def caps(self) -> Capabilities:
        return probe(self)

    def varied(self) -> tuple[str, ...]:
        return tuple(n for n in self.rule.names if n in self.caps.accepted)

    def held(self) -> dict:
        return {n: v for n, v in self.rule.defaults().items() if n not in self.caps.accepted}


class NotAnOptimizer(TypeError):
    """The SPEC resolved, but what it names cannot be used as an optimizer; the message is one line."""


class ImplementationError(Exception):
    """The implementation under test raised, or did not return in time, while the suite drove it: its failure,
    not the suite's. The implementation's own exception is chained (``raise ... from``) with its traceback."""


#: seconds one call into the implementation (a constructor, a step) may take; the plugin sets it from --step-timeout
STEP_TIMEOUT = 60.0


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError in the calling (main) thread after ``seconds``; a no-op where SIGALRM is unavailable."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"did not return within {seconds:g} s (--step-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(subject: "Subject", what: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, a call into the implementation described by ``what``: an exception it raises, or
    running past ``STEP_TIMEOUT``, becomes an ImplementationError that says so."""
    __tracebackhide__ = True
    try:
        with _deadline(STEP_TIMEOUT):
            return fn(*args, **kwargs)
    except (ImplementationError, hypothesis.errors.UnsatisfiedAssumption):   # a case a test wrapper holds out
        raise
    except Exception as e:
        raise ImplementationError(f"{subject.id}: {what} raised {type(e).__name__}: {e} — a failure of the "
                                  "implementation under test (its traceback is above)") from e


def accepted_hyperparameters(factory: Callable, rule: Rule) -> frozenset[str]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return frozenset(rule.names)
    params = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(rule.names)
    names = {p.name for p in params[1:]} if params else set()
    return frozenset(n for n in rule.names if n in names)


def typical(domain):
    """A valid value inside the searched range and away from its edges: the middle (geometric, for log ranges)."""
    if isinstance(domain, Flag):
        return True
    if isinstance(domain, Choice):
        return domain.values[-1]
    if isinstance(domain, Pair):
        return tuple(typical(d) for d in domain.parts)
    lo, hi = domain.search or (domain.lo, domain.hi)
    return float(10 ** ((math.log10(lo) + math.log10(hi)) / 2)) if domain.log else (lo + hi) / 2


def _construction_error(subject: Subject, kwargs: dict) -> str | None:
    shape = (2,) if subject.rule.ndims is None or 1 in subject.rule.ndims else (2,) * subject.rule.ndims[0]
    p = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64, device=subject.device))
    try:
        subject.factory([p], **kwargs, **subject.fixed)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def rejected_hyperparameters(subject: Subject, accepted: frozenset[str]) -> dict[str, str]:
    """The hyperparameters the constructor's signature names but that it refuses: constructing it with that one
    dropped succeeds where the defaults fail, or it raises for a typical non-default value of it."""
    rule = subject.rule
    defaults = {n: v for n, v in rule.defaults().items() if n in accepted}
    rejected = {}
    if (err := _construction_error(subject, defaults)) is not None:
        for name in sorted(accepted):
            if _construction_error(subject, {k: v for k, v in defaults.items() if k != name}) is None:
                rejected[name] = err
        defaults = {k: v for k, v in defaults.items() if k not in rejected}
        if _construction_error(subject, defaults) is not None:
            return rejected   # the constructor fails whatever is dropped: probe() reports it
    for h in rule.hypers:
        if h.name not in defaults or h.name in rejected:
            continue
        hp = rule.repair({**rule.defaults(), h.name: typical(h.domain)})
        kwargs = {k: v for k, v in hp.items() if k in defaults}
        if (err := _construction_error(subject, kwargs)) is not None:
            rejected[h.name] = f"{h.name}={hp[h.name]!r}: {err}"
    return rejected


def probe(subject: Subject) -> Capabilities:
    signature = accepted_hyperparameters(subject.factory, subject.rule)
    rejected = rejected_hyperparameters(subject, signature)
    accepted = signature - rejected.keys()
    shape = (2,) if subject.rule.ndims is None or 1 in subject.rule.ndims else (2,) * subject.rule.ndims[0]
    p = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64, device=subject.device))
    kwargs = {**{n: v for n, v in subject.rule.defaults().items() if n in accepted}, **subject.fixed}
    try:
        opt = subject.factory([p], **kwargs)
    except Exception as e:
        raise NotAnOptimizer(f"{subject.id}: constructing it as {subject.id}([param], **{kwargs!r}) raised "
                             f"{type(e).__name__}: {e}") from None
    if not callable(getattr(opt, "step", None)):
        raise NotAnOptimizer(f"{subject.id}: {subject.id}(params, ...) returned a {type(opt).__name__} with no "
                             "step() method; expected an object used like a torch.optim optimizer")
    groups = getattr(opt, "param_groups", None)
    has_groups = isinstance(groups, list) and all(isinstance(g, dict) and "params" in g for g in groups)
    try:
        step_params = list(inspect.signature(opt.step).parameters)
    except (TypeError, ValueError):
        step_params = ["closure"]
    return Capabilities(
        accepted=accepted,
        rejected=rejected,
        param_groups=has_groups,
        add_param_group=has_groups and callable(getattr(opt, "add_param_group", None)),
        state_dict=callable(getattr(opt, "state_dict", None)) and callable(getattr(opt, "load_state_dict", None)),
        closure=len(step_params) >= 1,
        zero_grad=callable(getattr(opt, "zero_grad", None)),
    )


def make_params(case: Case, device: str) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(p, dtype=case.dtype, device=device)) for p in case.params]


def _own(subject: Subject, hp: dict) -> dict:
    """The hyperparameters ``subject`` is given from ``hp``: those its constructor accepts. The others are the
    implementation's own (held at the rule's defaults by the strategies, or fixed by a factory such as a
    ``functools.partial``); the judgement then shows whether it holds the value the case names."""
    return {k: v for k, v in hp.items() if k in subject.caps.accepted}


def construct(subject: Subject, case: Case, params: list[torch.Tensor]) -> Any:
    """Build the optimizer for ``case``: the constructor takes group 0's hyperparameters; every group with
    parameters is passed as a param-group dict, with its own hyperparameters unless it inherits the constructor's
    (a group 0 without parameters only gives the constructor other hyperparameters than the groups')."""
    kwargs = {**_own(subject, case.groups[0].hp), **subject.fixed}
    if not subject.caps.param_groups:
        return constructed(subject, f"the constructor, given {kwargs}", list(params), **kwargs)
    groups = [{"params": [params[i] for i in g.indices], **({} if g.inherits else _own(subject, g.hp))}
              for g in case.groups if g.indices]
    return constructed(subject, f"the constructor, given {kwargs} and groups "
                       f"{[{k: v for k, v in g.items() if k != 'params'} for g in groups]}", groups, **kwargs)


#: what a constructor raises to refuse hyperparameter values (torch's ValueError; lion-pytorch's ``assert lr > 0``)
REFUSALS = (ValueError, AssertionError)


def constructed(subject: Subject, what: str, *args, **kwargs) -> Any:
    """``subject.factory(*args, **kwargs)`` as ``call`` makes it. Inside a Hypothesis example, a refusal (ValueError,
    or a failed assert as lion-pytorch's ``assert lr > 0``) of the example's hyperparameters — inside the rule's
    domain, as every case's are — holds the example out instead of failing it, so the rest of the domain is still
    searched; ``test_accepts_hyperparameters_inside_the_rule_domain`` reports the refusal."""
    try:
        return call(subject, what, subject.factory, *args, **kwargs)
    except ImplementationError as e:
        if isinstance(e.__cause__, REFUSALS) and hypothesis.currently_in_test_context():
            hypothesis.reject()
        raise


def step(subject: Subject, opt: Any, t: int, closure: Callable | None = None) -> Any:
    """``opt.step()`` (or ``opt.step(closure)``) at step ``t``, as a call into the implementation."""
    __tracebackhide__ = True
    if closure is None:
        return call(subject, f"step() at step {t}", opt.step)
    return call(subject, f"step(closure) at step {t}", opt.step, closure)


def set_grads(case: Case, params: list[torch.Tensor], step: int, grads: list | None = None) -> None:
    """Give each parameter its gradient of ``step`` (``grads`` if given, else the case's): a fresh tensor, in sparse
    COO layout (uncoalesced, as given) for a rule with sparse gradients."""
    for p, g in zip(params, case.grads[step] if grads is None else grads, strict=True):
        p.grad = None if g is None else grad_tensor(case, g, p.device)


def grad_tensor(case: Case, g, device) -> torch.Tensor:
    if not case.rule.sparse_gradients:
        return torch.tensor(g, dtype=case.dtype, device=device)
    g = as_sparse(g)
    return torch.sparse_coo_tensor(torch.tensor(g.index, device=device),
                                   torch.tensor(g.values, dtype=case.dtype, device=device), g.shape)


def dense(t: torch.Tensor) -> torch.Tensor:
    """A gradient tensor in dense layout (a sparse one's entries added up)."""
    return t.to_dense() if t.is_sparse else t


def same_grad(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether gradient tensors ``a`` and ``b`` hold the same numbers in the same layout (sparse: the same entries)."""
    if a.is_sparse or b.is_sparse:
        return (a.is_sparse and b.is_sparse and a.shape == b.shape and torch.equal(a._indices(), b._indices())
                and torch.equal(a._values(), b._values()))
    return torch.equal(a, b)


def set_lrs(subject: Subject, case: Case, opt: Any, step: int) -> None:
    if subject.caps.param_groups and "lr" in subject.caps.accepted and case.rule.hyper("lr").scheduled:
        lrs = [lr for g, lr in zip(case.groups, case.lrs[step], strict=True) if g.indices]
        for group, lr in zip(opt.param_groups, lrs):
            group["lr"] = lr


def snapshot(params: list[torch.Tensor]) -> list[np.ndarray]:
    return [p.detach().to("cpu", torch.float64).numpy().copy() for p in params]


#: closed loop: the gradients of step t, given the parameters before it (float64 arrays, one per parameter)
Feedback = Callable[[list[np.ndarray], int], list]


def compensation(opt: Any, params: list[torch.Tensor], key: str) -> list[np.ndarray]:
    """Each parameter's compensation as the implementation keeps it, ``opt.state[p][key]`` (0 where it keeps none:
    a dtype it does not compensate)."""
    state = getattr(opt, "state", None)
    out = []
    for p in params:
        c = state.get(p, {}).get(key) if hasattr(state, "get") else None
        out.append(np.zeros(tuple(p.shape)) if not isinstance(c, torch.Tensor) else
                   c.detach().to("cpu", torch.float64).numpy().reshape(tuple(p.shape)).copy())
    return out


def buffers(opt: Any, params: list[torch.Tensor], names: list[tuple[str, ...]]) -> list[dict]:
    """Each parameter's state buffers ``names[i]`` as the implementation keeps them, as float64 arrays: a quantized
    buffer dequantized (``.dequantize()``), a missing one absent."""
    state = getattr(opt, "state", None)
    out = []
    for p, keys in zip(params, names, strict=True):
        held = state.get(p, {}) if hasattr(state, "get") else {}
        row = {}
        for k in keys:
            b = held.get(k)
            if type(b) is not torch.Tensor and callable(getattr(b, "dequantize", None)):
                b = b.dequantize()
            if isinstance(b, torch.Tensor):
                row[k] = b.detach().to("cpu", torch.float64).numpy().reshape(tuple(p.shape)).copy()
        out.append(row)
    return out


def implementation_trajectory(subject: Subject, case: Case, feedback: Feedback | None = None,
                              compensations: list | None = None, states: list | None = None) -> list[list[np.ndarray]]:
    """Run ``case`` through the implementation; the parameters after every step. Open loop, each step is fed the
    case's gradients; closed loop, ``feedback(parameters, t)``'s (the case's rows then only count the steps). The
    one driver of an implementation: the trajectory, contract and property tests all run through it. Given
    ``compensations`` (a list), a compensated implementation's (``Subject.compensation``) compensation after every
    step is appended to it, and the parameters returned are the parameters plus their compensation; for one with
    master weights (``Subject.master``), the compensation is master − parameter, so that the masters are returned.
    Given
    ``states`` (a list), each parameter's state buffers (the rule's ``buffers``) after every step are appended."""
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    out = []
    for t in range(case.steps):
        set_lrs(subject, case, opt, t)
        set_grads(case, params, t, None if feedback is None else feedback(snapshot(params), t))
        step(subject, opt, t)
        out.append(snapshot(params))
        if compensations is not None and subject.compensation is not None:
            compensations.append(compensation(opt, params, subject.compensation))
            out[-1] = [θ + c for θ, c in zip(out[-1], compensations[-1], strict=True)]
        elif compensations is not None and subject.master is not None:   # the master as θ + (master − θ)
            held = buffers(opt, params, [(subject.master,)] * len(params))
            state = getattr(opt, "state", {})
            for i, (p, h) in enumerate(zip(params, held)):
                kept = state.get(p, {}) if hasattr(state, "get") else {}
                if kept and subject.master not in h:
                    raise ImplementationError(
                        f"{subject.id}: after step {t} parameter {i}'s state has no tensor {subject.master!r} (the "
                        f"--master-weights key); its state keys are {', '.join(map(str, kept)) or 'none'}")
            compensations.append([h[subject.master] - θ if subject.master in h else np.zeros(np.shape(θ))
                                  for θ, h in zip(out[-1], held, strict=True)])
            out[-1] = [θ + c for θ, c in zip(out[-1], compensations[-1], strict=True)]
        if states is not None:
            states.append(buffers(opt, params, [case.rule.buffers(case.hp_at(i, t)) for i in range(len(params))]))
    return out
