"""Bad input never produces a traceback from the suite: every mistake a user (or their implementation) can make
ends in one line that says what is wrong and what would be right, with the right exit code — 4 (usage error)
for the command line, 1 (a failing test, the implementation's fault, its traceback shown) for misbehaviour.

``BAD_INPUT`` is the table: the arguments, the exit code, and what the output must say. Each row runs the suite
in-process on one small test (``pytester``), so the table costs seconds, not a torch import per row.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
TRAJECTORY = "properties/test_trajectory.py::test_trajectory_matches_reference_rule"
CONTRACT = "properties/test_contract.py::test_step_never_writes_grad_nor_replaces_parameters"
MISBEHAVING = "optimizers.misbehaving"

# (id, arguments, exit code, regular expression one line of ``message_lines`` must match)
BAD_INPUT = [
    ("spec-does-not-import", ["--optimizer", "no_such_package.optim:Adam", "--rule", "adam"], 4,
     r"no_such_package"),
    ("spec-does-not-resolve", ["--optimizer", "torch.optim:Adamm", "--rule", "adam"], 4, r"Adamm"),
    ("spec-file-missing", ["--optimizer", "missing/file.py:Adam", "--rule", "adam"], 4, r"missing/file\.py"),
    ("not-an-optimizer", ["--optimizer", f"{MISBEHAVING}:NoStep", "--rule", "sgd"], 4, r"no step\(\) method"),
    ("numpy-step-function-for-another-rule", ["--optimizer", "optimizers.numpy_examples:adam", "--rule", "sgd"], 4,
     r"constructing it .* raised KeyError: 'betas'"),
    ("unknown-rule", ["--optimizer", "torch.optim:Adam", "--rule", "adamx"], 4, r"'adamx' is not a known rule.*adam"),
    ("rule-without-optimizer", ["--rule", "adam"], 4, r"--rule adam needs --optimizer"),
    ("optimizer-without-rule", ["--optimizer", "torch.optim:Adam"], 4, r"needs --rule RULE"),
    ("unknown-device", ["--optimizer", "torch.optim:Adam", "--rule", "adam", "--device", "tpu"], 4,
     r"--device 'tpu' is not supported; use one of: cpu, cuda"),
    ("bad-step-timeout", ["--optimizer", "torch.optim:Adam", "--rule", "adam", "--step-timeout", "soon"], 4,
     r"--step-timeout 'soon' is not a number"),
    ("bad-ranks", ["--optimizer", "optimizers.distributed:ZeroAdam", "--rule", "adam", "--ranks", "1"], 4,
     r"--ranks must be an integer >= 2"),
    ("ranks-without-optimizer", ["--ranks", "2"], 4, r"--ranks 2 needs --optimizer SPEC --rule RULE"),
    ("constructor-refuses-a-hyperparameter", ["--optimizer", f"{MISBEHAVING}:RefusesNesterov", "--rule", "sgd",
                                              TRAJECTORY, "-k", "float64"], 0,
     r"refused by the constructor .*nesterov \(TypeError: nesterov is not supported\)"),
    ("constructor-only-not-a-hyperparameter", ["--optimizer", f"{MISBEHAVING}:ConstructorOnlyTypo", "--rule", "sgd"],
     4, r"constructor_only names maximise, not hyperparameters of rule 'sgd' \(lr, momentum"),
    ("quantized-state-unknown-map", ["--optimizer", "torch.optim:Adam", "--rule", "adam", "--quantized-state",
                                     "exp_avg=bogus"], 4, r"buffer 'exp_avg' has map 'bogus'; the maps are signed"),
    ("quantized-state-not-name-value", ["--optimizer", "torch.optim:Adam", "--rule", "adam", "--quantized-state",
                                        "nonsense"], 4, r"'nonsense' is not NAME=VALUE"),
    ("master-weights-key-missing", ["--optimizer", "torch.optim:Adam", "--rule", "adam", "--master-weights", "nope",
                                    TRAJECTORY, "-k", "float64"], 1,
     r"state has no tensor 'nope' \(the --master-weights key\); its state keys are step, exp_avg, exp_avg_sq"),
    ("step-raises", ["--optimizer", f"{MISBEHAVING}:RaisesInStep", "--rule", "sgd", TRAJECTORY, "-k", "float64"], 1,
     r"step\(\) at step 1 raised RuntimeError: kernel launch failed — a failure of the implementation"),
    ("nan-where-reference-finite", ["--optimizer", f"{MISBEHAVING}:NaNInStep", "--rule", "sgd", TRAJECTORY,
                                    "-k", "float64"], 1, r"expected -?\d[\d.e+-]*\s+actual nan$"),
    ("step-hangs", ["--optimizer", f"{MISBEHAVING}:HangsInStep", "--rule", "sgd", "--step-timeout", "0.5",
                    TRAJECTORY, "-k", "float64"], 1, r"step\(\) at step 0 raised TimeoutError: did not return "
                                                     r"within 0.5 s \(--step-timeout\)"),
    ("step-changes-dtype", ["--optimizer", f"{MISBEHAVING}:ChangesDtype", "--rule", "sgd", CONTRACT], 1,
     r"step \d changed parameter \d from \(dtype, shape, device, storage\) \(torch\.float64, .*\) to "
     r"\(torch\.float32, .*; a step updates parameters in place$"),
    ("step-replaces-parameter", ["--optimizer", f"{MISBEHAVING}:ReplacesParameter", "--rule", "sgd", CONTRACT], 1,
     # the same dtype, shape and device (the backreference), another storage
     r"step \d changed parameter \d from \(dtype, shape, device, storage\) \((.*\)), \d+\) to \(\1, \d+\); "
     r"a step updates parameters in place$"),
    ("step-writes-grad", ["--optimizer", f"{MISBEHAVING}:WritesGrad", "--rule", "sgd", CONTRACT], 1,
     r"wrote into parameter \d's \.grad"),
]


@pytest.fixture(scope="module", autouse=True)
def _torch_imported():
    """pytester restores ``sys.modules`` after each in-process run; torch registers native operators when its lazy
    submodules are first imported and refuses to register them twice, so import them here, before any run."""
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    for cls in (torch.optim.SGD, torch.optim.Adam):
        cls([p]).step()


def run_suite(pytester, monkeypatch, args):
    """Run the suite in-process from the project root, as a user would from the command line."""
    monkeypatch.chdir(ROOT)
    # the same profile as the outer run: the inner run's conftest loads one, and Hypothesis's profile is global
    profile = f"--hypothesis-profile={settings._current_profile}"
    return pytester.runpytest_inprocess("-p", "no:warnings", profile, *args)


def message_lines(result, code: int) -> list[str]:
    """The lines where a run of exit ``code`` says what is wrong: a usage error's lines on stderr; a failing test's
    exception message (pytest's ``E`` lines, not the traceback's source lines); a passing run's header (up to
    "collected"), where the suite says what it held back. Not the rest of the output, which names the implementation
    and the dtypes and quotes the tests' source whatever went wrong."""
    if code == 4:
        return result.errlines
    if code == 1:
        return [line for line in result.outlines if line.startswith("E ")]
    return list(itertools.takewhile(lambda line: not line.startswith("collected "), result.outlines))


@pytest.mark.parametrize("args, code, says", [pytest.param(a, c, s, id=i) for i, a, c, s in BAD_INPUT])
def test_bad_input_is_one_clear_line_with_the_right_exit_code(pytester, monkeypatch, args, code, says):
    """The run ends with the table's exit code; the line that says what is wrong says what the table says; a usage
    error is one line with no traceback from the suite."""
    result = run_suite(pytester, monkeypatch, args)
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret == code, f"exit {result.ret}, should be {code}; output:\n{out[-3000:]}"
    assert any(re.search(says, line) for line in message_lines(result, code)), (
        f"no line saying what is wrong matches {says!r}; the output is:\n{out[-3000:]}")
    if code == 4:
        errors = [line for line in result.errlines if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("ERROR: "), f"a usage error should be one line: {errors}"
        assert "Traceback" not in out
