"""A rule the user brings (``--rule path/to/rule.py:NAME``) gets the machinery a built-in rule gets: its declaration
checked first (a contradiction is one line), the strategies over its declared domain, the run header, the
trajectory and contract tests and the report; a planted bug of an implementation of it is caught and correct ones
pass. The rule is ``docs/your-own-rule.md``'s Lion (``docs/examples/lion_rule.py``), the bugs
``optimizers/planted_lion.py``.
"""
from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from optimizers import planted_lion
from optimizers.adapters import Subject
from properties.strategies import cases, value
from properties.test_bad_input import _torch_imported, run_suite  # noqa: F401 (the fixture pytester runs need)
from properties.test_contract import CONTRACT_CHECKS
from properties.test_planted_bugs import CORRECT_EXAMPLES, MAX_EXAMPLES, search
from properties.test_trajectory import check_trajectory
from reference.declarations import Pair, Rule
from reference.user_rules import RuleError, load_rule, problems

#: Hypothesis searches run inside these tests: the false-alarm run selects them (conftest's marker)
pytestmark = pytest.mark.seeded

LION_SPEC = "docs/examples/lion_rule.py:LION"
LION_IMPL = "docs/examples/lion.py:Lion"


@pytest.fixture(scope="module")
def lion() -> Rule:
    return load_rule(LION_SPEC)


def lion_subject(lion: Rule, name: str) -> Subject:
    return Subject(f"planted_lion.{name}", getattr(planted_lion, name), lion, f"optimizers.planted_lion:{name}")


def test_the_documented_rule_loads_without_problems(lion):
    assert isinstance(lion, Rule) and lion.name == "my_lion" and lion.names == ("lr", "betas", "weight_decay")
    assert problems(lion) == []
    assert "sign(c)" in lion.formula


# A rule file's lines after the imports; RULE is the name given; the regular expression is what the one line says.
_HEADER = """
import torch
from reference.declarations import Constraint, Flag, Hyper, Pair, Real, Rule

def step(θ, g, state, *, lr):
    '''θ ← θ − γ g'''
    return θ - lr * g, {}

LR = Hyper("lr", 0.1, Real(0.0, search=(1e-3, 1.0), log=True))
"""
BAD_RULES = [
    ("not-a-rule", "RULE = step", r"names a function, not a Rule"),
    ("no-such-name", "OTHER = Rule('mine', step, hypers=(LR,), source='s')", r"has no attribute 'RULE'"),
    ("raises-on-import", "RULE = 1 / 0", r"importing .* raised ZeroDivisionError"),
    ("default-outside-domain", "RULE = Rule('mine', step, hypers=(Hyper('lr', -1.0, Real(0.0, search=(1e-3, 1.0)))"
     ",), source='s')", r"hyperparameter 'lr': default -1.0 lies outside its domain \[0, inf\)"),
    ("edge-outside-domain", "RULE = Rule('mine', step, hypers=(Hyper('lr', 0.1, Real(0.0, 1.0, edges=(2.0,))),), "
     "source='s')", r"edge value 2.0 lies outside its domain \[0, 1\]"),
    ("search-outside-domain", "RULE = Rule('mine', step, hypers=(Hyper('lr', 0.1, Real(0.0, 1.0, search=(0.5, 2.0)"
     ")),), source='s')", r"searched range \(0.5, 2.0\) should be an interval inside its domain"),
    ("unbounded-without-search", "RULE = Rule('mine', step, hypers=(Hyper('lr', 0.1, Real(0.0)),), source='s')",
     r"unbounded domain \[0, inf\) needs search=\(lo, hi\)"),
    ("flag-default-not-bool", "def flagged(θ, g, state, *, lr, f):\n    \"\"\"θ ← θ\"\"\"\n    return θ, {}\n"
     "RULE = Rule('mine', flagged, hypers=(LR, Hyper('f', 0, Flag())), source='s')", r"'f': default 0 is not a bool"),
    ("repeated-hyperparameter", "RULE = Rule('mine', step, hypers=(LR, LR), source='s')",
     r"'lr' is declared more than once"),
    ("declared-but-not-taken", "RULE = Rule('mine', step, hypers=(LR, Hyper('momentum', 0.0, Real(0.0, 1.0))), "
     "source='s')", r"'momentum' is declared but step does not take it"),
    ("taken-but-not-declared", "def step2(θ, g, state, *, lr, momentum):\n    '''θ ← θ − γ g'''\n    return θ, {}\n"
     "RULE = Rule('mine', step2, hypers=(LR,), source='s')", r"step2 requires 'momentum', which the declaration "
                                                             r"does not declare"),
    ("no-docstring", "def bare(θ, g, state, *, lr):\n    return θ - lr * g, {}\nRULE = Rule('mine', bare, "
     "hypers=(LR,), source='s')", r"bare has no docstring; write the rule's formula there"),
    ("idle-not-callable", "RULE = Rule('mine', step, hypers=(LR,), source='s', idle={'t': 1})",
     r"idle is a dict; it should be None or a function \(state, \*\*hp\) -> state"),
    ("defaults-violate-constraint", "RULE = Rule('mine', step, hypers=(LR,), source='s', constraints=(Constraint("
     "'lr above 1', holds=lambda hp: hp['lr'] > 1, repair=lambda hp: hp),))",
     r"the defaults violate the rule's own constraint 'lr above 1'"),
    ("unknown-buffer", "RULE = Rule('mine', step, hypers=(LR,), source='s', buffers=lambda hp: ('exp avg',))",
     r"buffer 'exp avg' is not a state name"),
    ("buffers-raise", "RULE = Rule('mine', step, hypers=(LR,), source='s', buffers=lambda hp: (hp['betas'],))",
     r"buffers\(defaults\) raised KeyError"),
    ("update-changes-shape", "def flat(θ, g, state, *, lr):\n    '''θ ← sum θ'''\n    return θ.sum(), {}\n"
     "RULE = Rule('mine', flat, hypers=(LR,), source='s')", r"flat returned θ of shape torch.Size\(\[\]\); it "
                                                            r"should keep θ's shape \(3,\)"),
    ("update-raises", "def broken(θ, g, state, *, lr):\n    '''θ ← θ − γ g'''\n    return θ - lr * state['m'], {}\n"
     "RULE = Rule('mine', broken, hypers=(LR,), source='s')", r"broken raised KeyError at the defaults"),
]


@pytest.mark.parametrize("source, says", [pytest.param(s, r, id=i) for i, s, r in BAD_RULES])
def test_a_bad_rule_file_is_one_line_naming_the_problem(tmp_path, source, says):
    path = tmp_path / "rule.py"
    path.write_text(textwrap.dedent(_HEADER) + source + "\n")
    with pytest.raises(RuleError) as e:
        load_rule(f"{path}:RULE")
    message = str(e.value)
    assert "\n" not in message and message.startswith("--rule"), message
    assert re.search(says, message), f"{message!r} does not say {says!r}"


def test_a_bad_rule_file_is_a_usage_error(pytester, monkeypatch, tmp_path):
    """On the command line: exit 4, the one line on stderr, no traceback."""
    path = tmp_path / "rule.py"
    path.write_text(textwrap.dedent(_HEADER) + "RULE = Rule('adam', step, hypers=(LR,), source='s')\n")
    result = run_suite(pytester, monkeypatch, ["--optimizer", "torch.optim:SGD", "--rule", f"{path}:RULE"])
    errors = [line for line in result.errlines if line.strip()]
    assert result.ret == 4 and len(errors) == 1, result.errlines
    assert re.search(r"the name 'adam' is a built-in rule's; give yours another name", errors[0]), errors


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_strategies_draw_within_the_declared_domain(lion, data):
    case = data.draw(cases(lion_subject(lion, "LionForeach")), label="case")
    for group in case.groups:
        assert lion.valid(group.hp), f"drawn hyperparameters {group.hp} lie outside lion's declared domain"


def test_strategies_reach_the_declared_edges(lion):
    """Every declared edge value of every hyperparameter is drawn (the strategy ``cases`` draws each from)."""
    for h in lion.hypers:
        for part, domain in ([(None, h.domain)] if not isinstance(h.domain, Pair) else
                             list(enumerate(h.domain.parts))):
            for edge in domain.edges:
                find(value(h.domain), lambda v: (v if part is None else v[part]) == edge,
                     settings=settings(max_examples=300, database=None))


def test_a_user_rule_runs_with_the_header_the_tests_and_the_report(pytester, monkeypatch):
    result = run_suite(pytester, monkeypatch, ["--optimizer", LION_IMPL, "--rule", LION_SPEC,
                                               "properties/test_trajectory.py", "-k", "float32"])
    out = "\n".join(result.outlines)
    assert result.ret == 0, out[-3000:]
    assert f"implementation: {LION_IMPL}  rule: my_lion (Chen et al. 2023, Algorithm 2)" in out, out[:2000]
    assert "hyperparameters varied: lr, betas, weight_decay" in out, out[:2000]
    assert re.search(rf"{re.escape(LION_IMPL)} — rule my_lion: CONFORMS \(\d+ passed", out), out[-3000:]


@pytest.mark.parametrize("name, bug", planted_lion.PLANTED, ids=[n for n, _ in planted_lion.PLANTED])
def test_a_planted_bug_of_a_user_rule_is_caught(lion, name, bug):
    caught, examples = search(lion_subject(lion, name), [check_trajectory], MAX_EXAMPLES)
    assert caught is not None, f"planted_lion.{name} ({bug}) was not caught in {examples} examples"
    assert "rule 'my_lion'" in str(caught)


@pytest.mark.parametrize("name, how", planted_lion.CORRECT, ids=[n for n, _ in planted_lion.CORRECT])
def test_a_correct_implementation_of_a_user_rule_passes(lion, name, how):
    caught, _ = search(lion_subject(lion, name), [check_trajectory, *CONTRACT_CHECKS], CORRECT_EXAMPLES)
    if caught is not None:
        raise caught
