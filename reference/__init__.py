"""Reference update rules (float64, written from the published algorithms) and the problems they run on."""
from reference.declarations import Choice, Constraint, Flag, Hyper, Pair, Real, Rule
from reference.registry import RULES, get_rule

__all__ = ["Choice", "Constraint", "Flag", "Hyper", "Pair", "Real", "Rule", "RULES", "get_rule"]
