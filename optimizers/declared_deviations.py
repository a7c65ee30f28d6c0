"""``--known-deviations FILE``: deviations a user knows of and declares, each with a mandatory reason, so that a run
checks everything else and stays green until something new turns up.

FILE is TOML, one ``[[deviation]]`` table per entry::

    [[deviation]]                 # a test, by id or glob: it becomes an expected failure
    test = "properties/test_contract.py::test_state_dict_round_trip_continues_identically*"
    reason = "state_dict drops the step count (issue #12)"

    [[deviation]]                 # a rule's hyperparameter, or hyperparameter=value: cases using it are not judged
    rule = "adam"
    feature = "amsgrad=true"
    reason = "amsgrad keeps the max of v, not of v̂ (planned for 2.0)"

    [[deviation]]                 # a rule's API feature: the tests of that feature become expected failures
    rule = "adam"
    feature = "closure"
    reason = "step() ignores its closure"

``test`` is matched (fnmatch) against the test id pytest prints and against the test's name. A hyperparameter
feature takes, for the implementations of that rule, every case in which some group has that hyperparameter away
from its default (or equal to the given value) out of the searches — the rest of the rule is still checked — and
counts them. API features are the contract tests' (``FEATURE_TESTS``). At the end of the run every entry is listed
with what it matched, and one that matched nothing says so: a fixed deviation, or a typo.
"""
from __future__ import annotations

import ast
import fnmatch
import tomllib
from dataclasses import dataclass, field

FEATURE_TESTS = {
    "state_dict": "test_state_dict_round_trip_continues_identically",
    "closure": "test_step_with_closure_calls_it_once_and_returns_its_loss",
    "zero_grad": "test_zero_grad_leaves_no_stale_gradient",
    "param_groups": "test_per_group_hyperparameters_are_honoured",
    "add_param_group": "test_add_param_group_joins_mid_trajectory",
    "side_effects": "test_step_never_writes_grad_nor_replaces_parameters",
    "validation": "test_rejects_hyperparameters_outside_the_rule_domain",
}
KEYS = {"test", "rule", "feature", "reason"}


class DeviationsFileError(ValueError):
    """The file cannot be used; the message is one line naming the entry and what is wrong."""


@dataclass
class Entry:
    number: int                      # 1-based position in the file
    reason: str
    test: str | None = None
    rule: str | None = None
    feature: str | None = None       # a hyperparameter name or an API feature (FEATURE_TESTS)
    value: object = None             # for "name=value"
    has_value: bool = False
    cases: int = 0                   # cases taken out of the searches (a hyperparameter entry)
    tests: set = field(default_factory=set)   # ids of the tests marked (a test or API-feature entry)
    # the interface of optimizers.known_deviations.KnownDeviation, for hyperparameter entries
    workaround = None
    avoid = None
    check: str = "trajectory"
    name: str = field(init=False, default="")

    def __post_init__(self):
        self.name = f"--known-deviations entry {self.number}"

    def describe(self) -> str:
        what = (f"test {self.test}" if self.test else
                f"rule {self.rule}, feature {self.feature}" + (f"={self.value!r}" if self.has_value else ""))
        return f"entry {self.number} ({what})"

    @property
    def hyperparameter(self) -> bool:
        return self.feature is not None and self.feature not in FEATURE_TESTS

    def matches_test(self, item) -> bool:
        if self.test is not None:
            return fnmatch.fnmatchcase(item.nodeid, self.test) or fnmatch.fnmatchcase(item.name, self.test)
        if self.feature in FEATURE_TESTS:
            subject = getattr(getattr(item, "callspec", None), "params", {}).get("subject")
            return (item.originalname == FEATURE_TESTS[self.feature] and subject is not None
                    and subject.rule.name == self.rule)
        return False

    def concerns(self, subject) -> bool:
        return self.hyperparameter and subject.rule.name == self.rule

    def when(self, case) -> bool:
        default = case.rule.hyper(self.feature).default
        hit = any((g.hp[self.feature] == self.value) if self.has_value else (g.hp[self.feature] != default)
                  for g in case.groups)
        self.cases += hit
        return hit

    @property
    def matched(self) -> int:
        return self.cases if self.hyperparameter else len(self.tests)


#: the entries of the file given with --known-deviations (the plugin loads them)
DECLARED: list[Entry] = []


def _value(text: str):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise DeviationsFileError(f"value {text.strip()!r} is not a number, true/false or a tuple") from None


def load(path: str, rules: dict) -> list[Entry]:
    """The entries of ``path``; DeviationsFileError (one line) for a file or an entry that cannot be used."""
    where = f"--known-deviations {path}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise DeviationsFileError(f"{where}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise DeviationsFileError(f"{where}: not valid TOML ({e}); see the README for the format") from None
    unknown = set(data) - {"deviation"}
    if unknown or not isinstance(data.get("deviation", []), list):
        raise DeviationsFileError(f"{where}: expected only [[deviation]] tables, found {sorted(unknown) or data}")
    entries = []
    for n, raw in enumerate(data.get("deviation", []), 1):
        at = f"{where}, entry {n}"
        if set(raw) - KEYS:
            raise DeviationsFileError(f"{at}: unknown keys {sorted(set(raw) - KEYS)}; an entry has "
                                      "test or rule + feature, and reason")
        reason = str(raw.get("reason", "")).strip()
        if not reason:
            raise DeviationsFileError(f"{at}: reason is missing; every entry says why the deviation is expected")
        if "test" in raw:
            if "rule" in raw or "feature" in raw:
                raise DeviationsFileError(f"{at}: give either test, or rule and feature, not both")
            entries.append(Entry(n, reason, test=str(raw["test"])))
            continue
        if "rule" not in raw or "feature" not in raw:
            raise DeviationsFileError(f"{at}: needs test = \"ID or glob\", or rule and feature")
        rule = rules.get(raw["rule"])
        if rule is None:
            raise DeviationsFileError(f"{at}: rule {raw['rule']!r} is not known; known rules: {', '.join(rules)}")
        name, eq, text = str(raw["feature"]).partition("=")
        name = name.strip()
        if name in FEATURE_TESTS:
            if eq:
                raise DeviationsFileError(f"{at}: API feature {name!r} takes no value")
            entries.append(Entry(n, reason, rule=rule.name, feature=name))
            continue
        if name not in rule.names:
            raise DeviationsFileError(f"{at}: {name!r} is neither a hyperparameter of rule {rule.name} "
                                      f"({', '.join(rule.names)}) nor an API feature ({', '.join(FEATURE_TESTS)})")
        try:
            value = _value(text) if eq else None
        except DeviationsFileError as e:
            raise DeviationsFileError(f"{at}: {e}") from None
        if isinstance(value, list):
            value = tuple(value)
        entries.append(Entry(n, reason, rule=rule.name, feature=name, value=value, has_value=bool(eq)))
    return entries
