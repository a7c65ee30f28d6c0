"""Rules the user brings: ``--rule path/to/rule.py:NAME`` or ``--rule package.module:NAME`` names a ``Rule``
declared exactly as the built-in ones are (``reference/rules.py``): a pure update function whose docstring carries
the formula, and its declaration. The declaration is checked before anything runs; a contradiction is one line
naming what is wrong and what would be right (``RuleError``). Everything else — strategies, the run header, the
error bound, the tests, the report — derives from the declaration as it does for a built-in rule.
"""
from __future__ import annotations

import inspect
import math

import torch

from optimizers.loading import SPEC_FORMS, SpecError, load_object
from reference.declarations import Choice, Constraint, Flag, Hyper, Pair, Real, Rule

RULE_FORMS = "a rule name, or a rule of your own as path/to/rule.py:NAME or package.module:NAME"


class RuleError(ValueError):
    """A ``--rule`` that cannot be used; its message is the one line shown to the user."""


def is_spec(value: str) -> bool:
    """Whether ``--rule VALUE`` names a rule of the user's (a file or module and a name) rather than a built-in."""
    return ":" in value or value.endswith(".py")


def load_rule(spec: str) -> Rule:
    """The ``Rule`` that ``spec`` names, its declaration checked (``problems``)."""
    try:
        obj = load_object(spec, "--rule")
    except SpecError as e:
        raise RuleError(str(e).replace(SPEC_FORMS, RULE_FORMS)) from None
    if not isinstance(obj, Rule):
        raise RuleError(f"--rule {spec}: names a {type(obj).__name__}, not a Rule; declare it as "
                        "reference.declarations.Rule(name, update, hypers=(Hyper(...), ...), source=...) "
                        "(docs/your-own-rule.md)")
    found = problems(obj)
    if found:
        raise RuleError(f"--rule {spec}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    return obj


def problems(rule: Rule) -> list[str]:
    """What in ``rule``'s declaration contradicts itself or the update function, each as a phrase naming the fix."""
    out = []
    if not isinstance(rule.name, str) or not rule.name.isidentifier():
        out.append(f"the rule's name {rule.name!r} should be an identifier such as 'lion'")
    if not callable(rule.update):
        return out + [f"update is a {type(rule.update).__name__}; it should be the function (θ, g, state, **hp)"]
    if not (rule.update.__doc__ or "").strip():
        out.append(f"{rule.update.__name__} has no docstring; write the rule's formula there (every failure "
                   "prints it)")
    if rule.idle is not None and not callable(rule.idle):
        out.append(f"idle is a {type(rule.idle).__name__}; it should be None or a function (state, **hp) -> state")
    names = [getattr(h, "name", None) for h in rule.hypers]
    for h in rule.hypers:
        if not isinstance(h, Hyper):
            out.append(f"hypers holds a {type(h).__name__}; each should be a Hyper(name, default, domain)")
    if out:
        return out
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        out.append(f"hyperparameter {repeated[0]!r} is declared more than once")
    for h in rule.hypers:
        out += [f"hyperparameter {h.name!r}: {p}" for p in _domain_problems(h)]
    out += _signature_problems(rule, names)
    for c in rule.constraints:
        if not isinstance(c, Constraint):
            out.append(f"constraints holds a {type(c).__name__}; each should be a Constraint")
        elif not out and not c.holds(rule.defaults()):
            out.append(f"the defaults violate the rule's own constraint {c.reason!r}")
    if not out:
        out += _buffer_problems(rule)
    if not out:
        out += _dry_run_problems(rule)
    return out


def _domain_problems(h: Hyper) -> list[str]:
    d = h.domain
    if isinstance(d, Flag):
        return [] if isinstance(h.default, bool) else [f"default {h.default!r} is not a bool (its domain is a Flag)"]
    if isinstance(d, Pair):
        if not isinstance(h.default, tuple) or len(h.default) != len(d.parts):
            return [f"default {h.default!r} should be a tuple of {len(d.parts)} reals (its domain is a Pair of "
                    f"{len(d.parts)})"]
        return [f"element {i} of the tuple: {p}" for i, (part, v) in enumerate(zip(d.parts, h.default))
                for p in _real_problems(part, v)]
    if isinstance(d, Real):
        return _real_problems(d, h.default)
    if isinstance(d, Choice):
        return [] if d.contains(h.default) else [f"default {h.default!r} is not one of its Choice {d.describe()}"]
    return [f"domain is a {type(d).__name__}; it should be Real(...), Flag(), Pair(Real(...), Real(...)) or "
            "Choice((value, ...))"]


def _real_problems(d: Real, default) -> list[str]:
    if default is None and d.optional:
        return []
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return [f"default {default!r} is not a number (its domain is Real {d.describe()})"]
    if not d.lo <= d.hi:
        return [f"its domain's lower bound {d.lo} is above its upper bound {d.hi}"]
    out = []
    if not d.contains(float(default)):
        out.append(f"default {default!r} lies outside its domain {d.describe()}")
    if d.search is not None:
        lo, hi = d.search
        if not (lo <= hi and d.contains(lo) and d.contains(hi)):
            out.append(f"searched range {d.search} should be an interval inside its domain {d.describe()}")
        elif d.log and not lo > 0:
            out.append(f"a log-scale search needs a positive range, not {d.search}")
    elif d.log and not d.lo > 0:
        out.append(f"a log-scale search over {d.describe()} needs search=(lo, hi) with lo > 0")
    elif not (math.isfinite(d.lo) and math.isfinite(d.hi)):
        out.append(f"an unbounded domain {d.describe()} needs search=(lo, hi): the range to draw from")
    outside = [e for e in d.edges if not d.contains(e)]
    if outside:
        out.append(f"edge value {outside[0]!r} lies outside its domain {d.describe()}")
    return out


def _signature_problems(rule: Rule, names: list[str]) -> list[str]:
    try:
        params = inspect.signature(rule.update).parameters
    except (TypeError, ValueError):
        return []
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3:
        return [f"{rule.update.__name__} should take (θ, g, state, *, hyperparameters...), not "
                f"{inspect.signature(rule.update)}"]
    keywords = [p.name for p in params.values() if p.kind == p.KEYWORD_ONLY] + [p.name for p in positional[3:]]
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return []
    out = [f"hyperparameter {n!r} is declared but {rule.update.__name__} does not take it" for n in names
           if n not in keywords]
    required = [p.name for p in params.values() if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    out += [f"{rule.update.__name__} requires {n!r}, which the declaration does not declare (add a Hyper for it)"
            for n in required if n not in names]
    return out


def _buffer_problems(rule: Rule) -> list[str]:
    try:
        buffers = tuple(rule.buffers(rule.defaults()))
    except Exception as e:
        return [f"buffers(defaults) raised {type(e).__name__}: {e}; it should return the names of the state "
                "tensors an implementation keeps, e.g. ('exp_avg',)"]
    bad = [b for b in buffers if not isinstance(b, str) or not b.isidentifier()]
    if bad:
        return [f"buffer {bad[0]!r} is not a state name; buffers should return names such as ('exp_avg',)"]
    if len(set(buffers)) != len(buffers):
        return [f"buffers {buffers} names a state tensor twice"]
    return []


def _dry_run_problems(rule: Rule) -> list[str]:
    """One step and a second from the defaults on a small tensor: the update must return (θ, state) of θ's shape."""
    θ = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    g = torch.tensor([0.25, 1.0, -3.0], dtype=torch.float64)
    name = rule.update.__name__
    try:
        state: dict = {}
        for _ in range(2):
            out = rule.update(θ, g, state, **rule.defaults())
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
                return [f"{name} returned {type(out).__name__}; it should return (θ, state) with state a dict"]
            θ_new, state = out
            if not isinstance(θ_new, torch.Tensor) or θ_new.shape != θ.shape:
                return [f"{name} returned θ of shape {getattr(θ_new, 'shape', None)}; it should keep θ's shape "
                        f"{tuple(θ.shape)}"]
            θ = θ_new
    except Exception as e:
        return [f"{name} raised {type(e).__name__} at the defaults: {e}"]
    return []
