"""The conformance report states what the run did: per implementation, its verdict, the tests and examples, the
hyperparameters and features the judged cases exercised, and every failure's facts — in the terminal and, with
``--conformance-json``, as JSON. Run in-process on a few tests (``pytester``), as in ``test_bad_input.py``."""
from __future__ import annotations

import json
from xml.etree import ElementTree

from properties.report import SCHEMA_VERSION
from properties.test_bad_input import TRAJECTORY, _torch_imported, run_suite  # noqa: F401 (autouse fixture)
from reference.registry import RULES


def test_report_of_a_conforming_implementation_lists_what_was_exercised(pytester, monkeypatch, tmp_path):
    """A conforming run: verdict 'conforms', its passed tests and judged examples counted, every hyperparameter the
    constructor accepts seen away from its default within its declared domain, and the features exercised."""
    out, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = run_suite(pytester, monkeypatch, ["--optimizer", "torch.optim:SGD", "--rule", "sgd", TRAJECTORY,
                                               f"--conformance-json={out}", f"--junitxml={junit}"])
    assert result.ret == 0
    text = "\n".join(result.outlines)
    assert "conformance report" in text and "torch.optim:SGD — rule sgd: CONFORMS" in text
    properties = {p.get("name"): p.get("value") for p in ElementTree.parse(junit).iter("property")}
    assert properties.get("conformance torch.optim:SGD (rule sgd)") == "conforms", properties
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 1
    (imp,) = data["implementations"]
    assert imp["verdict"] == "conforms" and imp["rule"] == "sgd"
    assert imp["tests"]["passed"] == 2 and imp["tests"]["failed"] == 0
    assert imp["examples"]["judged"] >= imp["judged trajectory cases"] > 0
    rule = RULES["sgd"]
    assert set(imp["varied"]) == set(rule.names)
    for h in rule.hypers:
        entry = imp["hyperparameters"][h.name]
        assert entry["judged cases away from the default"] > 0, h.name
        if "range" in entry:
            lo, hi = entry["range"]
            assert h.domain.contains(lo) and h.domain.contains(hi), (h.name, lo, hi)
    assert imp["features"]["dtype float64"] + imp["features"]["dtype float32"] == imp["judged trajectory cases"]


def test_report_of_a_failing_implementation_carries_the_failure_facts(pytester, monkeypatch, tmp_path):
    """A run that finds a deviation: verdict 'does not conform', and the failure as data — step, expected, actual,
    error above tolerance, the hyperparameters and a reproducer script — as well as the message."""
    out = tmp_path / "report.json"
    result = run_suite(pytester, monkeypatch, ["--optimizer", "optimizers.planted:AdamBiasCorrectionOffByOne",
                                               "--rule", "adam", TRAJECTORY, "-k", "float64",
                                               f"--conformance-json={out}"])
    assert result.ret == 1
    assert "DOES NOT CONFORM" in "\n".join(result.outlines)
    (imp,) = json.loads(out.read_text())["implementations"]
    assert imp["verdict"] == "does not conform" and imp["tests"]["failed"] == 1
    (f,) = imp["failures"]
    assert f["kind"] == "trajectory" and f["error"] > f["tolerance"] >= 0
    assert abs(f["actual"] - f["expected"]) == f["error"]
    assert set(f["hyperparameters"]) <= set(RULES["adam"].names)
    assert "does not conform to rule 'adam'" in f["message"] and "Reproduce without the suite" in f["message"]
    assert f["reproducer"] in f["message"] and "Impl" in f["reproducer"]


def test_distinct_failures_of_one_test_are_itemized_with_their_own_facts():
    """Where Hypothesis reports several distinct failures of one test (an exception group), the report keeps each
    member's message and facts (error, tolerance, reproducer), not only the group's headline."""
    from types import SimpleNamespace
    from properties.assertions import NonConformance
    from properties.report import _failure
    first = NonConformance("x does not conform to rule 'adam'")
    first.details = {"kind": "trajectory", "error": 2.0, "tolerance": 1e-15, "reproducer": "import torch"}
    second = RuntimeError("step() raised")
    group = BaseExceptionGroup("Hypothesis found 2 distinct failures.", [first, second])
    f = _failure(SimpleNamespace(nodeid="t.py::test", longreprtext=""), group)
    assert f["kind"] == "distinct failures"
    (a, b) = f["members"]
    assert (a["kind"], a["error"], a["tolerance"], a["reproducer"]) == ("trajectory", 2.0, 1e-15, "import torch")
    assert b["kind"] == "error" and b["message"] == "step() raised"
    assert "[1] x does not conform" in f["message"] and "[2] step() raised" in f["message"]


UNCHECKED = '''import torch


class UncheckedSGD(torch.optim.SGD):
    """SGD that accepts a negative learning rate (torch's raises ValueError)."""

    def __init__(self, params, lr=1e-3, **kwargs):
        super().__init__(params, lr=abs(lr), **kwargs)
        for group in self.param_groups:
            group["lr"] = lr
'''


def test_an_accepted_invalid_hyperparameter_comes_with_a_script_that_shows_it(pytester, monkeypatch, tmp_path):
    """A constructor that accepts lr < 0: the failure's facts carry a script that constructs it with that value and
    fails its assertion when run on its own (outside the suite), as the matrix checks."""
    import subprocess
    import sys
    module = tmp_path / "unchecked.py"
    module.write_text(UNCHECKED)
    out = tmp_path / "report.json"
    result = run_suite(pytester, monkeypatch, ["--optimizer", f"{module}:UncheckedSGD", "--rule", "sgd",
                                               "-k", "test_rejects_hyperparameters_outside_the_rule_domain",
                                               f"--conformance-json={out}"])
    assert result.ret == 1
    (imp,) = json.loads(out.read_text())["implementations"]
    (f,) = imp["failures"]
    assert "accepted lr=" in f["message"] and f["reproducer"]
    run = subprocess.run([sys.executable, "-c", f["reproducer"]], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "AssertionError: " in run.stderr and "accepted lr=" in run.stderr, run.stderr


def test_a_step_that_writes_into_grad_comes_with_a_script_that_shows_it(pytester, monkeypatch, tmp_path):
    """An implementation whose step() adds into p.grad: the failure's facts carry a script that replays the steps
    and fails its assertion on p.grad when run on its own (outside the suite), as the matrix checks."""
    import subprocess
    import sys
    from pathlib import Path
    out = tmp_path / "report.json"
    result = run_suite(pytester, monkeypatch, ["--optimizer", "optimizers.misbehaving:WritesGrad", "--rule", "sgd",
                                               "-k", "test_step_never_writes_grad", f"--conformance-json={out}"])
    assert result.ret == 1
    (imp,) = json.loads(out.read_text())["implementations"]
    (f,) = imp["failures"]
    assert "wrote into parameter" in f["message"] and f["reproducer"]
    root = Path(__file__).resolve().parent.parent   # the script imports optimizers.misbehaving from the suite
    run = subprocess.run([sys.executable, "-c", f["reproducer"]], capture_output=True, text=True, cwd=root)
    assert run.returncode == 1 and "step() changed p.grad" in run.stderr, run.stderr
