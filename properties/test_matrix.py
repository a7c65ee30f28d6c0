"""The conformance matrix's own machinery (``optimizers/matrix.py``, ``optimizers/ecosystem.py``,
``reference/variants.py``), checked quickly and without any third-party optimizer library: the classifier on
synthetic reports, the mapping of hyperparameters and param groups, the standalone reproducer's import, and the
variant rules — equal to their base rule where the changed convention is inert, and conformed to by an
implementation written to the convention (which the base rule rejects)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizers import ecosystem, matrix
from optimizers.adapters import Subject
from optimizers.ecosystem import ENTRIES, Entry, Mapping
from properties.assertions import NonConformance
from properties.strategies import cases, hyperparameters
from properties.test_trajectory import check_trajectory
from reference.registry import RULES
from reference.trajectory import Case, Group


# ---- the classifier -------------------------------------------------------------------------------------------------
def _report(*failures: dict) -> dict:
    return {"implementations": [{"failures": list(failures), "tests": {"passed": 3, "failed": len(failures)}}]}


def _failure(test: str, kind: str = "check", **facts) -> dict:
    return {"test": f"properties/x.py::{test}[optimizers.ecosystem:lib_Cls-float64]", "kind": kind,
            "message": f"{kind} failed\n  detail", **facts}


TRAJECTORY = _failure("test_trajectory_matches_reference_rule", "trajectory", step=2, dtype="float64",
                      expected=1.0, actual=1.5, error=0.5, tolerance=1e-15, max_error=0.7,
                      hyperparameters={"lr": 0.1}, reproducer="import x\nassert False")


ROUNDED = {**TRAJECTORY, "expected": 1.0, "actual": 1.0 + 1e-7, "error": 1e-7}   # float32 rounding in float64
ROUNDED_TO_ZERO = {**ROUNDED, "expected": 0.0, "actual": 1.5e-8, "error": 1.5e-8}   # a step landing on ~0
ROUNDED_32 = {**ROUNDED, "test": ROUNDED["test"].replace("float64", "float32"), "dtype": "float32"}


@pytest.mark.parametrize("failures, verdict", [
    ((), "conforms"),
    ((_failure("test_rejects_hyperparameters_outside_the_rule_domain"),), "differs (validation)"),
    ((_failure("test_step_never_writes_grad_nor_replaces_parameters"),), "differs (side effects)"),
    ((_failure("test_state_dict_round_trip_continues_identically"),
      _failure("test_rejects_hyperparameters_outside_the_rule_domain")), "differs (side effects)"),
    ((TRAJECTORY, _failure("test_step_never_writes_grad_nor_replaces_parameters")), "differs (updates)"),
    ((_failure("test_adam_first_moment_is_an_ema"),), "differs (updates)"),
    ((TRAJECTORY, _failure("test_zero_grad_leaves_no_stale_gradient", "implementation error")), "crashes"),
    ((ROUNDED, _failure("test_rejects_hyperparameters_outside_the_rule_domain")), "differs (float64 precision)"),
    ((_failure("test_momentum_is_an_ema", "implementation error", message="x: the constructor, given {'lr': 0.0} "
               "raised ValueError: Invalid learning rate: 0.0 — a failure of the implementation under test"),),
     "differs (domain)"),
    ((_failure("test_momentum_is_an_ema", "implementation error", message="x: the constructor, given {'lr': 0.0} "
               "raised AssertionError: learning rate must be positive — a failure of the implementation under test"),),
     "differs (domain)"),
    ((_failure("test_trajectory_matches_reference_rule", message="Hypothesis found 2 distinct failures.\n x does "
               "not conform to rule 'adam'\n y: step 0 wrote into parameter 0's .grad"),), "differs (updates)"),
    (({**_failure("test_trajectory_matches_reference_rule", message="Hypothesis found 2 distinct failures."),
       "members": [ROUNDED, _failure("test_zero_grad_leaves_no_stale_gradient", "implementation error")]},),
     "crashes"),
    (({**TRAJECTORY, "subnormal inputs": True}, {**ROUNDED_32, "subnormal inputs": True}), "differs (subnormals)"),
    (({**TRAJECTORY, "subnormal inputs": True}, TRAJECTORY), "differs (updates)"),
    ((ROUNDED, ROUNDED_32), "differs (updates)"),
    ((ROUNDED, ROUNDED_TO_ZERO), "differs (float64 precision)"),
    (({**ROUNDED, "actual": float("nan"), "error": float("nan")},), "differs (updates)"),
], ids=["none", "validation", "side effect", "side effect and validation", "trajectory", "property", "raised",
        "float32 rounding in float64", "refuses lr = 0", "asserts lr > 0", "group of distinct failures", "itemized group",
        "subnormals flushed", "subnormals and not", "float32 fails too", "float32 rounding near zero", "NaN"])
def test_verdict_is_the_worst_category_of_the_findings(failures, verdict):
    """A run's verdict is its worst finding: a raise > updates > float64 precision > subnormals > side effects > a narrower
    domain > validation > none; float64 counterexamples off at float32's rounding level are precision only while float32 conforms."""
    assert matrix.verdict(matrix.findings(_report(*failures), 1, ""), [], None) == verdict


def test_a_variant_that_explains_the_updates_makes_it_a_convention():
    """Update-level findings explained by a conforming variant read 'differs by convention'; a known deviation
    alone (torch's rows) reads 'differs (known deviation)'."""
    found = matrix.findings(_report(TRAJECTORY), 1, "")
    assert matrix.verdict(found, [], "sgdw") == "differs by convention"
    assert matrix.verdict([], [{"category": "known deviation"}], None) == "differs (known deviation)"


def test_a_run_without_a_report_is_a_crash_with_its_error_line():
    """No report (the constructor failed while probing: pytest's usage error) is one 'crash' finding that quotes
    pytest's error line."""
    found = matrix.findings(None, 4, "ERROR: optimizers.ecosystem:x: constructing it raised TypeError: boom\n")
    assert [f["category"] for f in found] == ["crash"]
    assert found[0]["what"] == "optimizers.ecosystem:x: constructing it raised TypeError: boom"


def test_trajectory_finding_keeps_the_counterexample_facts():
    """A trajectory failure's finding says the step, expected and actual values, the error and tolerance, and the
    largest error of the failing step, and keeps the reproducer."""
    (f,) = matrix.findings(_report(TRAJECTORY), 1, "")
    assert (f["category"], f["test"], f["error"], f["tolerance"], f["max_error"]) == \
        ("updates", "test_trajectory_matches_reference_rule[float64]", 0.5, 1e-15, 0.7)
    assert "step 2" in f["what"] and "expected 1.0, actual 1.5" in f["what"]
    assert matrix.deviation({"findings": [f]}) == "0.7 (tol 1e-15)"


# ---- the table and its mappings -------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_declares_a_known_rule_and_a_mapping_inside_it(entry):
    """Every row names a known rule and variants, takes only the rule's hyperparameters, renames only those it
    takes, and has a factory whose signature is exactly (params, *takes)."""
    rule = RULES[entry.rule]
    assert all(v in RULES for v in entry.variants)
    m = entry.mapping
    assert set(m.takes) <= set(rule.names), set(m.takes) - set(rule.names)
    assert set(m.rename) | set(m.split) <= set(m.takes)
    import inspect
    assert list(inspect.signature(getattr(ecosystem, entry.name)).parameters) == ["params", *m.takes]
    compile(ecosystem.standalone_import(entry), entry.name, "exec")


class Recorder:
    """A stand-in library class that records what it was given."""

    calls: list = []

    def __init__(self, params, **kwargs):
        Recorder.calls.append((params, kwargs))


def test_factory_renames_constructor_arguments_and_param_group_keys():
    """The factory passes the rule's hyperparameters under the library's names, splits pairs, adds the fixed
    arguments, and renames the keys of param-group dicts the same way."""
    entry = Entry("torch", "Recorder", "adam", Mapping(("lr", "betas", "decoupled_weight_decay"),
                                                       rename={"decoupled_weight_decay": "weight_decouple"},
                                                       split={"betas": ("beta1", "beta2")}, fixed={"nus": (1, 1)}),
                  load="properties.test_matrix:Recorder", name="recorder")
    p, q = torch.zeros(1), torch.zeros(2)
    Recorder.calls.clear()
    ecosystem.factory(entry)([p, {"params": [q], "betas": (0.5, 0.6), "lr": 0.3}], lr=0.1, betas=(0.9, 0.99),
                             decoupled_weight_decay=True)
    (params, kwargs), = Recorder.calls
    assert kwargs == {"lr": 0.1, "beta1": 0.9, "beta2": 0.99, "weight_decouple": True, "nus": (1, 1)}
    assert params[0] is p and params[1] == {"params": [q], "beta1": 0.5, "beta2": 0.6, "lr": 0.3}


def test_standalone_reproducer_import_rebuilds_the_mapping_without_the_suite():
    """The reproducer's import, run on its own, binds ``Impl`` to the same mapping as the factory."""
    entry = Entry("torch", "Recorder", "adam", Mapping(("lr", "betas"), split={"betas": ("beta1", "beta2")},
                                                       fixed={"nus": (1, 1)}),
                  load="properties.test_matrix:Recorder", name="recorder")
    scope: dict = {}
    exec(ecosystem.standalone_import(entry), scope)
    Recorder.calls.clear()
    scope["Impl"]([{"params": [], "betas": (0.1, 0.2)}], lr=0.5, betas=(0.3, 0.4))
    (params, kwargs), = Recorder.calls
    assert kwargs == {"lr": 0.5, "beta1": 0.3, "beta2": 0.4, "nus": (1, 1)}
    assert params == [{"params": [], "beta1": 0.1, "beta2": 0.2}]


def test_standalone_replaces_the_suites_import_in_a_reproducer():
    """A reproducer written by the suite for the factory starts needing only the library."""
    from optimizers.loading import reproducer_import
    entry = next(e for e in ENTRIES if e.library == "timm")
    script = reproducer_import(entry.spec) + "\nopt = Impl([])"
    out = matrix.standalone(entry, script)
    assert "optimizers.ecosystem" not in out and out.endswith("opt = Impl([])")


# ---- the variant rules ----------------------------------------------------------------------------------------------
def _run(rule, hp, θ, grads):
    state = {}
    for g in grads:
        θ, state = rule.update(θ, g, state, **hp)
    return θ


@settings(max_examples=20)
@given(data=st.data())
def test_sgdw_is_sgd_without_weight_decay(data):
    """With λ = 0 the decoupled and coupled forms are the same arithmetic: sgdw equals sgd bit for bit."""
    hp = {**data.draw(hyperparameters(RULES["sgd"], frozenset(RULES["sgd"].names))), "weight_decay": 0.0}
    grads = [torch.tensor(data.draw(st.floats(-10, 10)), dtype=torch.float64) for _ in range(data.draw(st.integers(1, 5)))]
    θ = torch.tensor(data.draw(st.floats(-10, 10)), dtype=torch.float64)
    assert torch.equal(_run(RULES["sgdw"], hp, θ, grads), _run(RULES["sgd"], hp, θ, grads))


def test_sgdw_decays_the_parameter_outside_the_momentum():
    """Its formula on two steps (γ = 0.1, λ = 0.5, μ = 0.9, g = 1): θ₁ = 0.95·1 − 0.1 = 0.85;
    b₂ = 0.9 + 1 = 1.9 (the decay is not in b), θ₂ = 0.95·0.85 − 0.19 = 0.6175."""
    hp = {**RULES["sgdw"].defaults(), "lr": 0.1, "weight_decay": 0.5, "momentum": 0.9}
    θ = _run(RULES["sgdw"], hp, torch.tensor(1.0, dtype=torch.float64), [torch.tensor(1.0, dtype=torch.float64)] * 2)
    assert math.isclose(θ.item(), 0.95 * 0.85 - 0.19, rel_tol=1e-15)


class TFRMSprop(torch.optim.Optimizer):
    """RMSprop written the TensorFlow way (ε inside the square root, square average from 1, lr inside the
    momentum buffer), independently of ``reference/variants.py``: the variant rule must accept it."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                s = self.state[p]
                if not s:
                    s.update(v=torch.ones_like(p), g_ave=torch.zeros_like(p), b=torch.zeros_like(p))
                s["v"].mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
                v = s["v"]
                if group["centered"]:
                    s["g_ave"].mul_(group["alpha"]).add_(g, alpha=1 - group["alpha"])
                    v = v - s["g_ave"] * s["g_ave"]
                denominator = (v + group["eps"]).sqrt()
                if group["momentum"] > 0:
                    s["b"].mul_(group["momentum"]).addcdiv_(g, denominator, value=group["lr"])
                    p.sub_(s["b"])
                else:
                    p.addcdiv_(g, denominator, value=-group["lr"])


def _tf_subject(rule: str) -> Subject:
    return Subject("TFRMSprop", TFRMSprop, RULES[rule], "properties/test_matrix.py:TFRMSprop")


@settings(max_examples=15)
@given(data=st.data())
def test_rmsprop_tf_accepts_an_implementation_written_to_its_conventions(data):
    """An RMSprop written TensorFlow's way conforms to the variant over drawn trajectory cases (float64)."""
    subject = _tf_subject("rmsprop_tf")
    check_trajectory(subject, data.draw(cases(subject, torch.float64), label="case"))


def test_base_rmsprop_rejects_the_tensorflow_conventions():
    """The same implementation fails the base rule on one step (v₀ = 1: θ = 1 − 0.01·1/√(0.99 + 0.01·1 + ε),
    where rmsprop takes 1 − 0.01·1/(√0.01 + ε) = 0.9)."""
    rule = RULES["rmsprop"]
    case = Case(rule, [Group((0,), rule.defaults())], [torch.ones(()).numpy()], [[torch.ones(()).numpy()]],
                [[0.01]])
    with pytest.raises(NonConformance, match="expected 0.9"):
        check_trajectory(_tf_subject("rmsprop"), case)


@settings(max_examples=20)
@given(data=st.data())
def test_adamw_eps_floor_is_adamw_at_zero_eps(data):
    """With ε = 0, max(√v̂, ε) = √v̂ = √v̂ + ε: adamw_eps_floor equals adamw bit for bit."""
    hp = {**data.draw(hyperparameters(RULES["adamw"], frozenset(RULES["adamw"].names))), "eps": 0.0}
    steps = data.draw(st.integers(1, 5))
    grads = [torch.tensor(data.draw(st.floats(0.5, 10)), dtype=torch.float64) for _ in range(steps)]
    θ = torch.tensor(data.draw(st.floats(-10, 10)), dtype=torch.float64)
    assert torch.equal(_run(RULES["adamw_eps_floor"], hp, θ, grads), _run(RULES["adamw"], hp, θ, grads))


def test_adamw_eps_floor_takes_a_full_step_where_the_floor_does_not_bind():
    """One step from θ = −1 with g = −1, β1 = 0, γ = 1, ε = 0.1, λ = 0: √v̂ = 1 ≥ ε, so θ = −1 + 1 = 0, where adamw
    takes −1 + 1/1.1 (heavyball's counterexample)."""
    hp = {**RULES["adamw"].defaults(), "lr": 1.0, "betas": (0.0, 0.999), "eps": 0.1, "weight_decay": 0.0}
    g = [torch.tensor(-1.0, dtype=torch.float64)]
    θ = torch.tensor(-1.0, dtype=torch.float64)
    assert _run(RULES["adamw_eps_floor"], hp, θ, g).item() == 0.0
    assert math.isclose(_run(RULES["adamw"], hp, θ, g).item(), -1 + 1 / 1.1, rel_tol=1e-15)


def test_a_trajectory_failure_says_whether_its_case_fed_subnormal_numbers():
    """The failure's facts carry 'subnormal inputs': a nonzero parameter start or gradient, up to the failing step,
    below the dtype's smallest normal number (2.2e-308 in float64, 1.2e-38 in float32)."""
    import torch
    from optimizers.known_deviations import _case
    from properties.assertions import _subnormal_inputs
    assert _subnormal_inputs(_case("adam", [{}], [[0.0]], [[[-1e-308]]]), 0)
    assert not _subnormal_inputs(_case("adam", [{}], [[0.0]], [[[-1e-300]]]), 0)
    assert _subnormal_inputs(_case("adam", [{}], [[0.0]], [[[-1e-39]]], torch.float32), 0)
    assert not _subnormal_inputs(_case("adam", [{}], [[1.0]], [[[1.0]], [[-1e-308]]]), 0)   # not yet at step 0


def test_splice_replaces_the_selected_rows_and_notes_the_rerun(tmp_path):
    """``--splice DIR``: the rows a selection's run holds replace the same rows (library, class, path, rule) of the
    committed table, the others stay, and the header names the re-run rows, its date and the reason."""
    import json
    row = {"library": "torch", "class": "torch.optim.SGD", "path": "for-loop", "rule": "sgd", "version": "2",
           "mapping": "built-in subject", "verdict": "conforms", "findings": []}
    other = {**row, "class": "torch.optim.Adam", "rule": "adam"}
    base = {"generated": "2026-01-01", "command": "python -m optimizers.matrix", "seconds": 1.0,
            "suite": {"torch": "2", "python": "3", "profile": "dev", "examples_per_test": 25, "seed": 0,
                      "machine": "x"}, "libraries": {"torch": "2"}, "rows": [row, other]}
    (tmp_path / "into").mkdir()
    (tmp_path / "sel").mkdir()
    (tmp_path / "into" / "matrix.json").write_text(json.dumps(base))
    rerun = {**base, "generated": "2026-02-02", "command": "python -m optimizers.matrix --only SGD",
             "rows": [{**row, "verdict": "differs (validation)"}]}
    (tmp_path / "sel" / "matrix.json").write_text(json.dumps(rerun))
    assert matrix.main(["--splice", str(tmp_path / "sel"), "--out", str(tmp_path / "into"),
                        "--reason", "a test"]) == 0
    data = json.loads((tmp_path / "into" / "matrix.json").read_text())
    assert [r["verdict"] for r in data["rows"]] == ["differs (validation)", "conforms"]
    md = (tmp_path / "into" / "matrix.md").read_text()
    assert "because a test: torch.optim.SGD [for-loop]" in md and "--only SGD" in md


@pytest.mark.parametrize("start, subnormal", [([6.0, 6.0], False), ([1e-310, 6.0], True)])
def test_a_property_failure_says_whether_its_start_or_gradients_were_subnormal(start, subnormal):
    """A closed-loop property's failure carries 'subnormal inputs' too: its start x_0 or a gradient it was fed is
    subnormal (here a planted bug that clips every step fails from a normal and from a subnormal start)."""
    import numpy as np
    from properties.assertions import NonConformance
    from properties.quadratics import Quadratic
    from properties.test_descent import check_gd_rate
    from properties.test_plots import clipped_runner
    problem = Quadratic("test", np.array([0.4, 4.0]), None, np.zeros(2), np.array(start))
    with pytest.raises(NonConformance) as failed:
        check_gd_rate(clipped_runner(), problem, 0.1, steps=5)
    assert failed.value.details["subnormal inputs"] is subnormal


def test_readme_summary_of_the_matrix_is_the_committed_table():
    """The README's findings paragraph quotes the committed matrix: its rows, libraries, run time, conforming rows,
    likely bugs and confirmed conventions are what optimizers/results/matrix.json and the assessments give."""
    import json
    import re
    from pathlib import Path
    from optimizers.assessments import ASSESSMENTS
    from optimizers.matrix_report import assessment_of, classify
    root = Path(__file__).resolve().parent.parent
    data = json.loads((root / "optimizers/results/matrix.json").read_text())
    text = " ".join((root / "README.md").read_text().split())
    found = re.search(r"(\d+) rows of (\d+) libraries in one (\d+)-min run\) finds (\d+) conforming and (\d+) likely "
                      r"bugs.*?; (\d+) differ by a convention the suite confirms", text)
    assert found, "README's findings paragraph no longer states the matrix's counts"
    verdicts = [classify(r, assessment_of(r, ASSESSMENTS))[0] for r in data["rows"]]
    header = (root / "optimizers/results/matrix.md").read_text()
    minutes = re.search(r"in (\d+) min", header).group(1)
    assert [int(x) for x in found.groups()] == [
        len(data["rows"]), len({r["library"] for r in data["rows"]}), int(minutes), verdicts.count("conforms"),
        verdicts.count("likely bug"), verdicts.count("convention")]
