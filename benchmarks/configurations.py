"""The configurations each rule is benchmarked in, declared once per rule.

A configuration changes what a step must read and write (a momentum buffer, AMSGrad's running maximum, centered
RMSprop's gradient average) or the arithmetic it does (Nesterov); hyperparameters that change neither are left at
the rule's defaults. The first configuration of a rule is the one ``--bench-quick`` runs: the form most people use.
A rule without an entry (the textbook forms) is benchmarked at its defaults.
"""
from __future__ import annotations

from reference.declarations import Rule

CONFIGURATIONS: dict[str, dict[str, dict]] = {
    "sgd": {"momentum": {"momentum": 0.9}, "plain": {}, "nesterov": {"momentum": 0.9, "nesterov": True}},
    "adam": {"default": {}, "amsgrad": {"amsgrad": True}},
    "adamw": {"default": {}, "amsgrad": {"amsgrad": True}},
    "rmsprop": {"default": {}, "momentum": {"momentum": 0.9}, "centered": {"centered": True}},
    "adagrad": {"default": {}},
    "adadelta": {"default": {}},
    "adamax": {"default": {}},
    "nadam": {"default": {}},
    "radam": {"default": {}},
    "asgd": {"default": {}},
    "rprop": {"default": {}},
}


def configurations(rule: Rule, quick: bool = False) -> list[tuple[str, dict]]:
    """``(name, hyperparameters)`` for each configuration of ``rule``: every hyperparameter, the rule's defaults
    overridden by the configuration's own (only the first configuration when ``quick``)."""
    declared = list(CONFIGURATIONS.get(rule.name, {"default": {}}).items())
    out = []
    for name, overrides in declared[:1] if quick else declared:
        hp = {**rule.defaults(), **overrides}
        if not rule.valid(hp):
            raise ValueError(f"benchmark configuration {rule.name}/{name} {overrides} is not valid for the rule's "
                             "declaration")
        out.append((name, hp))
    return out
