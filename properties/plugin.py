"""The suite as a pytest plugin: ``pytest --optimizer SPEC --rule RULE [--device cpu|cuda]`` runs every test that
applies to RULE against the implementation SPEC names; without ``--optimizer`` the built-in implementations are
checked. Its options are ``properties/options.py``'s.

Bad options stop the run as a usage error (exit 4) with one line saying what is wrong and what is accepted.
"""
from __future__ import annotations

import gc
import os
import platform

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from optimizers import adapters, declared_deviations
from optimizers.adapters import NotAnOptimizer, Subject
from optimizers.builtins import builtin_subjects
from optimizers.loading import SPEC_FORMS, SpecError, resolve
from properties import plots
from properties.isolation import isolated
from reference import user_rules
from reference.registry import RULES

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.differing_executors]
# The explain phase re-runs a failure many times to annotate source lines; our messages explain it instead.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
# quick: a first look while editing; dev (the default): local validation; ci: what CI runs (loaded when CI is set;
# prints a @reproduce_failure blob); thorough: release checks (thousands of examples, the 10⁴-step runs).
_COMMON = dict(deadline=None, suppress_health_check=_HEALTH, phases=_PHASES)
if os.environ.get("CONFORMANCE_EXAMPLE_DB"):
    # A directory CI keeps between runs (a cache or an artifact): every counterexample found once is replayed first
    # by every later run, whatever its seed (Hypothesis's reuse phase).
    _COMMON["database"] = DirectoryBasedExampleDatabase(os.environ["CONFORMANCE_EXAMPLE_DB"])
settings.register_profile("quick", max_examples=10, **_COMMON)
settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=25, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=2000, print_blob=True, **_COMMON)
PROFILES = ("quick", "dev", "ci", "thorough")


def _load_profile(config) -> None:
    """HYPOTHESIS_PROFILE, else ci when CI is set, else dev (Hypothesis's own --hypothesis-profile NAME wins)."""
    if config.getoption("hypothesis_profile", None):
        return
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={name!r} is not a profile of this suite; use one of: "
                                f"{', '.join(PROFILES)}")
    settings.load_profile(name)

pytest_plugins = ("pytester", "properties.report")

DEVICES = ("cpu", "cuda")


def _subjects(config) -> list[Subject]:
    spec, rule_name, device = (config.getoption(o) for o in ("optimizer", "rule", "device"))
    if device not in DEVICES:
        raise pytest.UsageError(f"--device {device!r} is not supported; use one of: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is "
                                "False); use --device cpu")
    rule_name = config.user_rule.name if config.user_rule is not None else rule_name
    if rule_name is not None and rule_name not in RULES:
        raise pytest.UsageError(f"--rule {rule_name!r} is not a known rule; known rules: {', '.join(RULES)}; or "
                                "a rule of your own as path/to/rule.py:NAME (docs/your-own-rule.md)")
    if spec is None:
        if rule_name is not None:
            raise pytest.UsageError(f"--rule {rule_name} needs --optimizer SPEC ({SPEC_FORMS}) to name the "
                                    "implementation to check against it")
        return builtin_subjects(device)
    if rule_name is None:
        raise pytest.UsageError(f"--optimizer {spec} needs --rule RULE; known rules: {', '.join(RULES)}")
    try:
        factory = resolve(spec, RULES[rule_name])
        subnormals = config.getoption("subnormals") or getattr(factory, "subnormals", "ieee")
        constructor_only = tuple(getattr(factory, "constructor_only", ()))
        if unknown := [n for n in constructor_only if n not in RULES[rule_name].names]:
            raise SpecError(f"{spec}: constructor_only names {', '.join(unknown)}, not hyperparameters of rule "
                            f"{rule_name!r} ({', '.join(RULES[rule_name].names)})")
        quantized = config.getoption("quantized_state")
        subject = Subject(spec, factory, RULES[rule_name], spec, device=device, subnormals=subnormals,
                          compensation=config.getoption("compensation"),
                          quantization=None if quantized is None else _layout(quantized, RULES[rule_name]),
                          precision=None if config.getoption("precision") in (None, "parameters") else
                          config.getoption("precision"), master=config.getoption("master_weights"),
                          constructor_only=constructor_only)
        if config.ranks:  # a sharded constructor needs its process group: probe it in every rank
            from properties.ranks import probe_across
            probe_across(subject, config.ranks)
        with isolated():  # probing constructs it, and a constructor may change torch's global state too
            subject.caps  # probe now, so that an unusable implementation is a usage error, not a failing test
    except (SpecError, NotAnOptimizer) as e:
        raise pytest.UsageError(str(e)) from None
    return [subject]


def _layout(spec: str, rule):
    """``--quantized-state SPEC`` as a layout of ``rule``'s buffers; a usage error saying what is wrong."""
    from properties.quantization import parse
    try:
        layout = parse(spec)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    from reference.declarations import Choice, Flag
    d = rule.defaults()
    settings = [d, *({**d, h.name: v} for h in rule.hypers if isinstance(h.domain, (Flag, Choice))
                     for v in ((True, False) if isinstance(h.domain, Flag) else h.domain.values))]
    known = {b for hp in settings for b in rule.buffers(hp)}
    unknown = sorted(set(layout.maps) - known)
    if unknown:
        raise pytest.UsageError(f"--quantized-state: rule {rule.name!r} has no buffer {', '.join(map(repr, unknown))}; "
                                f"its buffers: {', '.join(sorted(known)) or 'none'}")
    return layout


# The suite's tests of itself (and of its documents, which only a clone has): they judge the suite, not the
# implementation named by --optimizer.
SELF_TESTS = {"test_planted_bugs.py", "test_problem_self_checks.py", "test_property_self_checks.py",
              "test_bad_input.py", "test_isolation.py", "test_report.py", "test_tolerance_model.py",
              "test_declared_deviations.py", "test_user_rules.py", "test_documented_commands.py",
              "test_packaging.py", "test_compensated.py", "test_quantized.py",
              "test_stochastic_rounding.py", "test_mixed_precision.py", "test_modern_rules.py"}


def pytest_ignore_collect(collection_path, config):
    return collection_path.name in SELF_TESTS and bool(config.getoption("optimizer"))


def _step_timeout(config) -> float:
    raw = config.getoption("step_timeout")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise pytest.UsageError(f"--step-timeout {raw!r} is not a number of seconds; give a number >= 0 "
                                "(0 disables the timeout)")
    return seconds


def _ranks(config) -> int:
    raw = config.getoption("ranks")
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n == 0:
        return 0
    if n < 2:
        raise pytest.UsageError(f"--ranks must be an integer >= 2 (processes to run --optimizer across), not {raw!r}; "
                                "0 or absent: one process")
    if not config.getoption("optimizer"):
        raise pytest.UsageError(f"--ranks {n} needs --optimizer SPEC --rule RULE: the sharded implementation to run "
                                "across the ranks, e.g. --optimizer optimizers.distributed:ZeroAdam --rule adam")
    if config.getoption("device") != "cpu":
        raise pytest.UsageError(f"--ranks {n} runs on CPU (gloo); --device {config.getoption('device')} is not "
                                "supported with it")
    from properties.ranks import available
    if (why := available()) is not None:
        raise pytest.UsageError(f"--ranks {n}: {why}")
    return n


def _user_rule(config):
    """The rule of ``--rule path/to/rule.py:NAME`` (or ``package.module:NAME``), checked and registered beside the
    built-in ones under its name, so that everything that looks a rule up finds it; None for a built-in rule."""
    value = config.getoption("rule")
    if value is None or value in RULES or not user_rules.is_spec(value):
        return None
    try:
        rule = user_rules.load_rule(value)
    except user_rules.RuleError as e:
        raise pytest.UsageError(str(e)) from None
    if RULES.get(rule.name, rule) is not rule:
        raise pytest.UsageError(f"--rule {value}: the name {rule.name!r} is a built-in rule's; give yours another "
                                "name")
    RULES[rule.name] = rule
    return rule


def _declared_deviations(config) -> list:
    path = config.getoption("known_deviations")
    if path is None:
        return []
    try:
        return declared_deviations.load(path, RULES)
    except declared_deviations.DeviationsFileError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_configure(config):
    config.addinivalue_line("markers", "applies_to(*rules): the test checks a property of these rules only")
    from properties.categories import DESCRIPTIONS
    for marker, what in DESCRIPTIONS.items():
        config.addinivalue_line("markers", f"{marker}: {what} (-m 'not {marker}' leaves it out)")
    config.addinivalue_line("markers", "judged(how): how the test judges its examples (over the trajectory, step by "
                                       "step), counted per dtype in the conformance report")
    config.addinivalue_line("markers", "ranks: the test runs the implementation across --ranks N processes (and "
                                       "only those tests run under --ranks)")
    config.addinivalue_line("markers", "seeded: the test runs Hypothesis searches inside it (its outcome depends on "
                                       "--hypothesis-seed, as a @given test's does): the false-alarm run selects "
                                       "these and the @given tests (-m 'hypothesis or seeded')")
    _load_profile(config)
    adapters.STEP_TIMEOUT = _step_timeout(config)
    config.user_rule = _user_rule(config)
    declared_deviations.DECLARED[:] = _declared_deviations(config)
    config.ranks = _ranks(config)
    from properties.ranks import shutdown
    config.add_cleanup(shutdown)  # the rank processes of --ranks and of properties/test_distributed.py
    plots.configure(config)  # --plots DIR, and the plugin drawing pictures of failing runs
    config.subjects = _subjects(config)
    # torch, Hypothesis and the suite are loaded: the collector need not walk their objects again. A full
    # collection over them costs ~1 s at exit and at every pytest clean-up (gc.collect()), and more in between.
    gc.freeze()


def pytest_report_header(config):
    subjects = config.subjects
    prof = settings._current_profile
    lines = [f"optimizer conformance: torch {torch.__version__}, Python {platform.python_version()}, "
             f"Hypothesis profile {prof!r} ({settings().max_examples} examples per test)"]
    if config.getoption("optimizer"):
        s = subjects[0]
        lines += [
            f"implementation: {s.id}  rule: {s.rule.name} ({s.rule.source})  device: {s.device}",
            f"hyperparameters varied: {', '.join(s.varied()) or 'none'}",
            f"held at the rule's defaults: {', '.join(f'{k}={v!r}' for k, v in s.held().items()) or 'none'}",
            *([f"read from the constructor only (declared; every param group given the constructor's value): "
               + ", ".join(s.constructor_only)] if s.constructor_only else []),
            *([f"refused by the constructor (held at the default, the rest tested): "
               + "; ".join(f"{k} ({e})" for k, e in s.caps.rejected.items())] if s.caps.rejected else []),
            "API: " + ", ".join(f"{f}={'yes' if getattr(s.caps, f) else 'no'}"
                                for f in ("param_groups", "state_dict", "closure", "zero_grad", "add_param_group")),
            *([f"ranks: {config.ranks} processes (torch.distributed, gloo on 127.0.0.1), every rank's parameters "
               "judged after every step"] if config.ranks else []),
            *(["subnormals: flush (the implementation may flush subnormal inputs and results to zero; judged "
               "against a reference that may too)"] if s.subnormals == "flush" else []),
            *([f"compensated: bfloat16/float16 judged on the parameter plus state[{s.compensation!r}] (Kahan "
               "summation), at the compensated precision"] if s.compensation else []),
            *([s.quantization.describe() + "; every dtype judged step by step from the implementation's own "
               "parameters and (dequantized) state, its state within the quantization bound"]
              if s.quantization is not None else []),
            *(["precision: float32-state (bfloat16/float16 parameters with float32 state and arithmetic, θ rounded "
               "once a step): judged at that precision, step by step, its state read back"]
              if s.precision is not None else []),
            *([f"master weights: bfloat16/float16 judged on the float32 master state[{s.master!r}] at float32 "
               "precision, the parameter within a rounding of it"] if s.master is not None else []),
        ]
    else:
        lines.append(f"built-in implementations: {len(subjects)} "
                     f"({', '.join(sorted({s.rule.name for s in subjects}))}); device: {subjects[0].device}")
    from properties.test_trajectory import DTYPES, LOW_PRECISION
    whole, steps = (", ".join(str(d).replace("torch.", "") for d in dtypes) for dtypes in (DTYPES, LOW_PRECISION))
    lines.append(f"dtypes: {whole} (judged over the trajectory); {steps} (step by step)")
    return lines


@pytest.hookimpl(trylast=True)   # after -k/-m deselection, so that entries count the tests that run
@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item):
    """Each test's category as a marker (``properties/categories.py``), before ``-m`` selects."""
    from properties.categories import MARKERS, of_test
    item.add_marker(getattr(pytest.mark, MARKERS[of_test(getattr(item, "originalname", item.name))]))


def pytest_collection_modifyitems(config, items):
    """Tests a --known-deviations entry names become strict expected failures: one that passes (the deviation
    fixed) fails the run as XPASS(strict). Any exception counts as the deviation (no ``raises``): how a user's
    implementation fails a test — NonConformance, an assertion, its own exception from a call the test makes
    directly (state_dict(), zero_grad()) — is theirs to know. Under --optimizer, run only the tests that drive an
    implementation (those taking ``subject``); the tests of the references and of torch's own LBFGS and
    schedulers, which cannot judge it, run without --optimizer."""
    for entry in declared_deviations.DECLARED:
        for item in items:
            if entry.matches_test(item):
                entry.tests.add(item.nodeid)
                item.add_marker(pytest.mark.xfail(reason=f"--known-deviations {entry.describe()}: {entry.reason}",
                                                  strict=True))
    if not config.getoption("optimizer"):
        return
    own = [item for item in items if "subject" not in getattr(item, "fixturenames", ())
           and "implementation" not in getattr(item, "fixturenames", ())]
    if config.ranks:  # across ranks, only the tests that drive it through the ranks' runner can build it
        own += [item for item in items if item not in own and item.get_closest_marker("ranks") is None]
    if own:
        config.hook.pytest_deselected(items=own)
        items[:] = [item for item in items if item not in own]
    # The cheap per-rule properties, then the tests that judge every step against the rule, then the rest in file
    # order: under -x a mistake in the arithmetic stops the run early, before the contract's other checks have run.
    items.sort(key=lambda item: FIRST.get(getattr(item, "originalname", item.name),
                                          0 if item.path.name == "test_adaptive.py" else len(FIRST)))


#: the tests an --optimizer run starts with (after test_adaptive.py's), in this order
FIRST = {"test_trajectory_matches_reference_rule": 1, "test_per_group_hyperparameters_are_honoured": 2}


def pytest_unconfigure(config):
    declared_deviations.DECLARED.clear()
    if getattr(config, "user_rule", None) is not None:   # a run inside this process (pytester) loads its own
        RULES.pop(config.user_rule.name, None)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):   # an xdist worker: hand what the entries matched to the controller
        session.config.workeroutput["declared"] = [(e.cases, sorted(e.tests)) for e in declared_deviations.DECLARED]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for entry, (cases, tests) in zip(declared_deviations.DECLARED, getattr(node, "workeroutput", {}).get("declared", [])):
        entry.cases += cases
        entry.tests.update(tests)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    entries = declared_deviations.DECLARED
    if not entries:
        return
    terminalreporter.section("known deviations file")
    for e in entries:
        what = "cases taken out of the searches" if e.hyperparameter else "tests marked as expected failures"
        line = f"{e.describe()}: {e.matched} {what} — {e.reason}"
        terminalreporter.write_line(line if e.matched else f"{e.describe()} MATCHED NOTHING (fixed, or a typo?) — "
                                                           f"{e.reason}")


@pytest.fixture(autouse=True)
def _isolated():
    """torch's default dtype, threads, deterministic flag, grad mode and the RNGs are restored after every test,
    whatever the implementation under test changed."""
    with isolated():
        yield


def pytest_generate_tests(metafunc):
    """Parametrize ``subject`` over the implementations under test; a test marked ``applies_to(*rules)`` takes only
    those whose rule is one of ``rules`` (and is skipped, saying why, when none is)."""
    if "subject" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("ranks") is not None and not metafunc.config.ranks:
        metafunc.parametrize("subject", [pytest.param(None, marks=pytest.mark.skip(
            reason="runs the implementation across processes: give --optimizer SPEC --rule RULE --ranks N"))],
            ids=["n/a"])
        return
    subjects = metafunc.config.subjects
    marker = metafunc.definition.get_closest_marker("applies_to")
    if marker is not None:
        rules = marker.args
        subjects = [s for s in subjects if s.rule.name in rules]
        reason = f"property of rule {', '.join(rules)}"
    else:   # a closure's rule (L-BFGS) is judged by its closure tests only: the open-loop tests feed gradients
        subjects = [s for s in subjects if not s.rule.closure]
        reason = "drives the implementation with given gradients; a closure's rule is judged by its closure tests"
    if not subjects:
        tested = sorted({s.rule.name for s in metafunc.config.subjects})
        metafunc.parametrize("subject", [pytest.param(None, marks=pytest.mark.skip(
            reason=f"{reason}; the implementation under test claims {', '.join(tested)}"))], ids=["n/a"])
        return
    metafunc.parametrize("subject", subjects, ids=[s.id for s in subjects])
