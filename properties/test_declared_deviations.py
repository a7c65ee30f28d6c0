"""``--known-deviations FILE`` (``optimizers/declared_deviations.py``): a declared test becomes a strict expected
failure (one that passes fails the run), a declared hyperparameter is taken out of the searches so that the rest of
the rule is still checked, every entry is reported with what it matched — one that matched nothing says so — and a
file that cannot be used is one line and exit 4. Run in-process (``pytester``), as in ``test_bad_input.py``."""
from __future__ import annotations

import pytest

from properties.test_bad_input import TRAJECTORY, _torch_imported, run_suite  # noqa: F401 (autouse fixture)

BUG = ["--optimizer", "optimizers.planted:AdamIgnoresAmsgrad", "--rule", "adam", TRAJECTORY, "-k", "float64"]

DECLARED = '''
[[deviation]]
rule = "adam"
feature = "amsgrad=true"
reason = "amsgrad is not implemented yet"

[[deviation]]
test = "*test_no_such_test*"
reason = "left over from last release"
'''


def test_declared_hyperparameter_is_taken_out_and_unmatched_entries_are_reported(pytester, monkeypatch, tmp_path):
    """The planted bug (amsgrad ignored) fails the trajectory test; declaring amsgrad=true as a known deviation
    takes those cases out, the rest of the rule conforms (exit 0), the entry reports how many cases it took out,
    and the entry naming no collected test is reported as matching nothing."""
    assert run_suite(pytester, monkeypatch, BUG).ret == 1
    path = tmp_path / "deviations.toml"
    path.write_text(DECLARED)
    result = run_suite(pytester, monkeypatch, [*BUG, f"--known-deviations={path}"])
    out = "\n".join(result.outlines)
    assert result.ret == 0, out[-3000:]
    assert "known deviations file" in out
    taken = [line for line in result.outlines if line.startswith("entry 1 (rule adam, feature amsgrad=True):")]
    assert taken and int(taken[0].split(": ")[1].split()[0]) > 0, out[-2000:]
    assert "entry 2 (test *test_no_such_test*) MATCHED NOTHING" in out


def test_declared_test_becomes_an_expected_failure(pytester, monkeypatch, tmp_path):
    """A test named by id glob is reported as an expected failure with the entry's reason."""
    path = tmp_path / "deviations.toml"
    path.write_text('[[deviation]]\ntest = "*test_trajectory_matches_reference_rule*"\nreason = "bias correction"\n')
    result = run_suite(pytester, monkeypatch, [*BUG, f"--known-deviations={path}", "-rx"])
    out = "\n".join(result.outlines)
    assert result.ret == 0 and "1 xfailed" in out and "bias correction" in out, out[-3000:]


def test_declared_test_that_passes_fails_the_run(pytester, monkeypatch, tmp_path):
    """A declared test that passes (the deviation fixed, or never there) is XPASS(strict): the run fails."""
    path = tmp_path / "deviations.toml"
    path.write_text('[[deviation]]\ntest = "*test_trajectory_matches_reference_rule*"\nreason = "bias correction"\n')
    result = run_suite(pytester, monkeypatch, ["--optimizer", "torch.optim:Adam", "--rule", "adam", TRAJECTORY,
                                               "-k", "float64", f"--known-deviations={path}"])
    out = "\n".join(result.outlines)
    assert result.ret == 1 and "XPASS(strict)" in out and "1 failed" in out, out[-3000:]


@pytest.mark.parametrize("text, says", [
    ('[[deviation]]\ntest = "x"\n', r"entry 1: reason is missing"),
    ('[[deviation]]\nrule = "adamm"\nfeature = "eps"\nreason = "r"\n', r"rule 'adamm' is not known"),
    ('[[deviation]]\nrule = "adam"\nfeature = "epsilon"\nreason = "r"\n',
     r"'epsilon' is neither a hyperparameter of rule adam"),
    ('[[deviation]]\nrule = "adam"\nreason = "r"\n', r"needs test = .* or rule and feature"),
    ('[[deviation]\n', r"not valid TOML"),
], ids=["no-reason", "unknown-rule", "unknown-feature", "no-feature", "not-toml"])
def test_unusable_file_is_one_line_and_exit_4(pytester, monkeypatch, tmp_path, text, says):
    """A file that cannot be used stops the run before any test, as a usage error naming the entry."""
    import re
    path = tmp_path / "deviations.toml"
    path.write_text(text)
    result = run_suite(pytester, monkeypatch, ["--optimizer", "torch.optim:Adam", "--rule", "adam",
                                               f"--known-deviations={path}"])
    errors = [line for line in result.errlines if line.strip()]
    assert result.ret == 4 and len(errors) == 1 and re.search(says, errors[0]), errors
