"""The conformance report: per implementation under test, what the run exercised and what came of it.

At the end of a run the terminal summary says, per implementation and its rule, the verdict, the tests that passed,
failed and were skipped (and why), how many Hypothesis examples were judged and how many were not (the rule is
undefined for them at the dtype's precision, or a known deviation without a workaround), and which hyperparameters
and API features the judged trajectory cases exercised: for each hyperparameter, in how many judged cases it was
away from the rule's default, the range of values seen, and which declared edge values were hit. With
``--conformance-json FILE`` the same, with every failure's facts (step, parameter, expected, actual, error,
tolerance, hyperparameters, reproducer), is written as JSON for CI to keep.

Examples are counted by wrapping the Hypothesis test's inner function for the duration of the test (one call per
example; an example that ends in ``assume(False)`` is not judged), and coverage is recorded by ``exercised()``,
which the trajectory check calls for every case it judges; both are committed when the test passes (a failing test
reports its failure instead: the examples replayed while shrinking it say nothing about coverage).
"""
from __future__ import annotations

import functools
import json
import math
import os
import platform
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
from _pytest import junitxml

from properties import categories

from reference.declarations import Choice, Flag, Pair
from reference.sparse import SparseGrad

@dataclass
class Ledger:
    """What the run did to one implementation."""

    outcomes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    examples: Counter = field(default_factory=Counter)            # judged / not judged / failed
    non_default: Counter = field(default_factory=Counter)         # hyperparameter -> judged cases away from default
    seen: dict = field(default_factory=dict)                      # hyperparameter -> [min, max] or set of values
    edges: dict = field(default_factory=lambda: defaultdict(set))
    features: Counter = field(default_factory=Counter)
    judging: Counter = field(default_factory=Counter)             # "dtype|how|judged" or "dtype|how|not judged"
    categories: Counter = field(default_factory=Counter)          # "category|passed" or "category|failed"
    cases: int = 0
    subject: object = None


class Run:
    """One pytest session's ledgers (pytester runs a session inside a session: each has its own)."""

    def __init__(self):
        self.ledgers: dict[str, Ledger] = defaultdict(Ledger)
        self.pending: list = []         # cases judged by the test now running, committed if it passes
        self.examples: Counter = Counter()


_RUNS: list[Run] = []


def exercised(subject, case) -> None:
    """Note that ``case`` is being judged against ``subject`` (committed when the example's outcome is known)."""
    if _RUNS:
        _RUNS[-1].pending.append((subject, case))


def _scalar_items(name: str, domain, value):
    if isinstance(domain, Pair):
        for i, (d, v) in enumerate(zip(domain.parts, value)):
            yield f"{name}[{i}]", d, v
    else:
        yield name, domain, value


def _values(g):
    return g.values if isinstance(g, SparseGrad) else g


def _commit(ledger: Ledger, case) -> None:
    ledger.cases += 1
    rule = case.rule
    defaults = rule.defaults()
    away = set()
    for group in case.groups:
        for h in rule.hypers:
            if h.name not in group.hp:
                continue
            if group.hp[h.name] != defaults[h.name]:
                away.add(h.name)
            for name, domain, v in _scalar_items(h.name, h.domain, group.hp[h.name]):
                if isinstance(domain, (Flag, Choice)):
                    ledger.seen.setdefault(name, set()).add(repr(v) if isinstance(domain, Choice) else bool(v))
                    continue
                if v is None:   # an optional Real's None (Adafactor's ε1): not a point of the range
                    continue
                lo_hi = ledger.seen.setdefault(name, [math.inf, -math.inf])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], v), max(lo_hi[1], v)
                if v in domain.edges:
                    ledger.edges[name].add(v)
    ledger.non_default.update(away)
    f = ledger.features
    f[f"dtype {str(case.dtype).replace('torch.', '')}"] += 1
    f["several param groups"] += len(case.groups) > 1
    f["inherited group hyperparameters"] += any(g.inherits for g in case.groups)
    f["learning rate changed between steps"] += any(row != case.lrs[0] for row in case.lrs)
    f["steps without a gradient"] += any(g is None for row in case.grads for g in row)
    f["exact zero gradients"] += any(g is not None and (_values(g) == 0).any() for row in case.grads for g in row)
    sparse = [g for row in case.grads for g in row if isinstance(g, SparseGrad)]
    if sparse:
        f["sparse gradients with a repeated index"] += any((g.entries() > 1).any() for g in sparse)
        f["sparse gradients with an absent index"] += any(not g.present().all() for g in sparse)
    f["0-d parameters"] += any(p.ndim == 0 for p in case.params)
    f["10+ steps"] += case.steps >= 10
    for what in ("parameters", "gradients"):
        if case.notes.get(what, "normal") != "normal":
            f[f"{what} {case.notes[what]}"] += 1


def _subject_of(item):
    callspec = getattr(item, "callspec", None)
    subject = callspec.params.get("subject") if callspec else None
    return subject if subject is not None and hasattr(subject, "rule") else None


def _counting(inner, examples: Counter):
    from hypothesis.errors import UnsatisfiedAssumption

    @functools.wraps(inner)   # Hypothesis names the test, and keys its example database, by the inner function
    def counted(*args, **kwargs):
        examples["drawn"] += 1
        try:
            return inner(*args, **kwargs)
        except UnsatisfiedAssumption:
            examples["not judged"] += 1
            raise
    return counted


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    run = item.config._conformance_run
    run.pending, run.examples = [], Counter()
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if inner is not None and _subject_of(item) is not None:
        handle.inner_test = _counting(inner, run.examples)
    try:
        yield
    finally:
        if inner is not None:
            handle.inner_test = inner


def _failure(report, exc) -> dict:
    """One failed test's facts. Where Hypothesis found several distinct failures (an exception group), each is a
    member with its own facts, and the failure's message lists them all."""
    if isinstance(exc, BaseExceptionGroup):
        members = [_failure(report, e) for e in exc.exceptions]
        message = "\n\n".join([str(exc), *(f"[{i + 1}] {m['message']}" for i, m in enumerate(members))])
        return {"test": report.nodeid, "kind": "distinct failures", "message": message,
                "error": None, "tolerance": None, "reproducer": None, "members": members}
    message = str(exc) if exc is not None else (report.longreprtext or "")
    details = dict(getattr(exc, "details", {}) or {})
    kind = details.pop("kind", None) or {"NonConformance": "property", "ImplementationError": "implementation error",
                                         "Skipped": "skip"}.get(type(exc).__name__, "error")
    return {"test": report.nodeid, "kind": kind, "message": message.strip(),
            "error": details.pop("error", None), "tolerance": details.pop("tolerance", None),
            "reproducer": details.pop("reproducer", None), **details}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # Hypothesis re-raises the minimal example's own exception: its message and details are the failure's
    exc = call.excinfo.value if call.excinfo is not None else None
    subject = _subject_of(item)
    if subject is None:
        return
    ledger = item.config._conformance_run.ledgers[subject.id]
    ledger.subject = subject
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            ledger.outcomes["xfailed" if report.skipped else "xpassed"] += 1
        elif report.skipped:
            ledger.outcomes["skipped"] += 1
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            ledger.skipped.append({"test": report.nodeid, "reason": reason.removeprefix("Skipped: ")})
        elif report.failed:
            ledger.outcomes["failed" if report.when == "call" else "errors"] += 1
            ledger.failures.append(_failure(report, exc))
            ledger.categories[f"{categories.of_failure(ledger.failures[-1])}|failed"] += 1
        else:
            ledger.outcomes["passed"] += 1
            ledger.categories[f"{categories.of_test(getattr(item, 'originalname', item.name))}|passed"] += 1
            run = item.config._conformance_run
            ledger.examples["judged"] += run.examples["drawn"] - run.examples["not judged"]
            ledger.examples["not judged"] += run.examples["not judged"]
            how, dtype = item.get_closest_marker("judged"), getattr(item, "callspec", None)
            dtype = dtype.params.get("dtype") if dtype is not None else None
            if how is not None and dtype is not None:
                key = f"{str(dtype).replace('torch.', '')}|{how.args[0]}"
                ledger.judging[f"{key}|judged"] += run.examples["drawn"] - run.examples["not judged"]
                ledger.judging[f"{key}|not judged"] += run.examples["not judged"]
            for s, case in run.pending:
                _commit(run.ledgers[s.id], case)
            run.pending, run.examples = [], Counter()


def _verdict(ledger: Ledger) -> str:
    # an unexpected pass of a strict expected failure (a known deviation, a --known-deviations entry) is already a
    # failure, listed with its "[XPASS(strict)]" reason: the declaration no longer holds
    if ledger.outcomes["failed"] or ledger.outcomes["errors"]:
        return "does not conform"
    if not ledger.outcomes["passed"]:
        return "not tested"
    return "conforms"


def _hyperparameters(ledger: Ledger) -> dict:
    out = {}
    for name, seen in ledger.seen.items():
        base = name.split("[")[0]
        entry = {"judged cases away from the default": ledger.non_default[base]}
        if isinstance(seen, set):
            entry["values"] = sorted(seen)
        else:
            entry["range"] = seen
            entry["edges hit"] = sorted(ledger.edges.get(name, ()))
        out[name] = entry
    return out


#: the version of the ``--conformance-json`` layout (docs/report-schema.md): raised when a key changes meaning or goes
SCHEMA_VERSION = 1


def summary(config) -> dict:
    """The report as data: the JSON written by ``--conformance-json`` (docs/report-schema.md)."""
    from hypothesis import settings
    import torch
    implementations = []
    for sid, ledger in config._conformance_run.ledgers.items():
        s = getattr(ledger, "subject", None)
        if s is None:
            continue
        caps = s.caps
        implementations.append({
            "id": s.id, "spec": s.spec, "rule": s.rule.name, "rule source": s.rule.source, "device": s.device,
            "varied": list(s.varied()), "held": {k: list(v) if isinstance(v, tuple) else v for k, v in s.held().items()},
            "refused": dict(caps.rejected),
            "api": {f: getattr(caps, f) for f in ("param_groups", "state_dict", "closure", "zero_grad",
                                                  "add_param_group")},
            "verdict": _verdict(ledger),
            "tests": {k: ledger.outcomes[k] for k in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")},
            "examples": {k: ledger.examples[k] for k in ("judged", "not judged")},
            "examples by dtype": _by_dtype(ledger.judging),
            "by category": _by_category(ledger.categories),
            "judged trajectory cases": ledger.cases,
            "hyperparameters": _hyperparameters(ledger),
            "features": dict(ledger.features),
            "failures": ledger.failures,
            "skipped": ledger.skipped,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": {"torch": torch.__version__, "python": platform.python_version(),
                  "hypothesis_profile": settings._current_profile, "examples_per_test": settings().max_examples,
                  "seed": config.getoption("hypothesis_seed", None), "args": list(config.invocation_params.args)},
        "implementations": implementations,
    }


def _by_category(counts: Counter) -> dict:
    """Per category of test (``properties/categories.py``), how many passed and failed."""
    out: dict = {}
    for key, n in counts.items():
        category, outcome = key.split("|")
        out.setdefault(category, {"passed": 0, "failed": 0})[outcome] += n
    return out


def _by_dtype(judging: Counter) -> dict:
    """Per dtype of the trajectory tests: how its examples are judged (over the trajectory, step by step) and how
    many were judged and not."""
    out: dict = {}
    for key, n in judging.items():
        dtype, how, outcome = key.split("|")
        out.setdefault(dtype, {"how": how, "judged": 0, "not judged": 0})[outcome] += n
    return out


def _range(entry: dict) -> str:
    if "values" in entry:
        return "/".join(str(v) for v in entry["values"])
    lo, hi = entry["range"]
    edges = f", edges {', '.join(f'{e:g}' for e in entry['edges hit'])}" if entry["edges hit"] else ""
    return f"{lo:.6g}..{hi:.6g}{edges}"


def terminal_lines(data: dict, detailed: bool) -> list[str]:
    lines = []
    for imp in data["implementations"]:
        t, ex = imp["tests"], imp["examples"]
        counts = ", ".join(f"{n} {k}" for k, n in t.items() if n)
        lines.append(f"{imp['id']} — rule {imp['rule']}: {imp['verdict'].upper()} ({counts}; examples "
                     f"{ex['judged']} judged, {ex['not judged']} not judged)")
        if not detailed:
            continue
        if imp["held"]:
            lines.append(f"  held at the rule's defaults: {', '.join(f'{k}={v!r}' for k, v in imp['held'].items())}")
        hp = imp["hyperparameters"]
        if hp:
            lines.append(f"  hyperparameters in {imp['judged trajectory cases']} judged trajectory cases "
                         "(cases away from the default; values seen):")
            for name, entry in hp.items():
                lines.append(f"    {name}: {entry['judged cases away from the default']}; {_range(entry)}")
        if imp["by category"]:
            lines.append("  by category: " + "; ".join(
                f"{c} " + ", ".join(f"{n} {k}" for k, n in o.items() if n) for c, o in imp["by category"].items()))
        if imp["examples by dtype"]:
            lines.append("  examples by dtype: " + ", ".join(
                f"{d} {e['judged']} of {e['judged'] + e['not judged']} judged {e['how']}"
                for d, e in imp["examples by dtype"].items()))
        if imp["features"]:
            lines.append("  features: " + ", ".join(f"{k} {n}" for k, n in imp["features"].items()))
        for s in imp["skipped"]:
            lines.append(f"  skipped {s['test'].split('::')[-1]}: {s['reason']}")
        for f in imp["failures"]:
            first = f["message"].splitlines()[0] if f["message"] else ""
            lines.append(f"  FAILED {f['test'].split('::')[-1]}: {first}")
    return lines


# ---- pytest-xdist: each worker keeps its own ledgers; the controller merges them and reports -----------------------
def _ledger_data(ledger: Ledger) -> dict:
    return {"outcomes": dict(ledger.outcomes), "failures": ledger.failures, "skipped": ledger.skipped,
            "examples": dict(ledger.examples), "non_default": dict(ledger.non_default),
            "ranges": {k: v for k, v in ledger.seen.items() if not isinstance(v, set)},
            "flags": {k: sorted(v) for k, v in ledger.seen.items() if isinstance(v, set)},
            "edges": {k: sorted(v) for k, v in ledger.edges.items()}, "features": dict(ledger.features),
            "judging": dict(ledger.judging), "cases": ledger.cases}


def _merge(ledger: Ledger, data: dict) -> None:
    ledger.outcomes.update(data["outcomes"])
    ledger.failures += data["failures"]
    ledger.skipped += data["skipped"]
    ledger.examples.update(data["examples"])
    ledger.non_default.update(data["non_default"])
    for k, (lo, hi) in data["ranges"].items():
        mine = ledger.seen.setdefault(k, [math.inf, -math.inf])
        mine[0], mine[1] = min(mine[0], lo), max(mine[1], hi)
    for k, values in data["flags"].items():
        ledger.seen.setdefault(k, set()).update(values)
    for k, values in data["edges"].items():
        ledger.edges[k].update(values)
    ledger.features.update(data["features"])
    ledger.judging.update(data["judging"])
    ledger.cases += data["cases"]


@pytest.hookimpl(tryfirst=True)   # before junitxml writes its file
def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workeroutput"):   # an xdist worker: hand the ledgers to the controller
        run = config._conformance_run
        config.workeroutput["conformance"] = json.dumps({sid: _ledger_data(l) for sid, l in run.ledgers.items()},
                                                        default=str)
        return
    xml = config.stash.get(junitxml.xml_key, None)
    if xml is not None:   # --junitxml: the verdict per implementation, as test-suite properties CI systems show
        for imp in summary(config)["implementations"]:
            xml.add_global_property(f"conformance {imp['id']} (rule {imp['rule']})", imp["verdict"])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    data = getattr(node, "workeroutput", {}).get("conformance")
    if not data:
        return
    config = node.config
    subjects = {s.id: s for s in getattr(config, "subjects", [])}
    for sid, ledger_data in json.loads(data).items():
        ledger = config._conformance_run.ledgers[sid]
        ledger.subject = ledger.subject or subjects.get(sid)
        _merge(ledger, ledger_data)


def pytest_configure(config):
    config._conformance_run = run = Run()
    _RUNS.append(run)


def pytest_unconfigure(config):
    run = getattr(config, "_conformance_run", None)
    if run in _RUNS:
        _RUNS.remove(run)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    data = summary(config)
    if not data["implementations"]:
        return
    detailed = len(data["implementations"]) == 1 or config.getoption("verbose") > 0
    terminalreporter.section("conformance report")
    for line in terminal_lines(data, detailed):
        terminalreporter.write_line(line)
    path = config.getoption("conformance_json")
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1, default=str)
        terminalreporter.write_line(f"conformance report written to {os.path.abspath(path)}")
