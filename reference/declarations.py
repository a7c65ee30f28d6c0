"""Declarations: a rule, its hyperparameters (valid domain, searched range, edge values) and invalid combinations.

A rule declares its hyperparameters once, with these classes; Hypothesis strategies (``properties/strategies.py``),
the run header, and the invalid-input checks all derive from that declaration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Real:
    """A real hyperparameter valid on [lo, hi] (bounds open where said), searched on ``search`` (log scale if ``log``).

    ``edges`` are values drawn with priority (zero, the default, the bounds of the search range).
    ``enforced`` names the bounds ("lo", "hi") past which a torch.optim-style implementation must raise
    ValueError, as torch does; past the other bounds the rule merely has no defined meaning.
    """

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    search: tuple[float, float] | None = None
    log: bool = False
    edges: tuple[float, ...] = ()
    enforced: tuple[str, ...] = ("lo",)
    #: None is a valid value too, with a meaning the rule gives it (Adafactor's ε1 = None: the dtype's machine
    #: epsilon); the search draws numbers only
    optional: bool = False

    def contains(self, x: float) -> bool:
        if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
            return x is None and self.optional
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below and not math.isnan(x)

    def describe(self) -> str:
        lb = "(" if self.lo_open else "["
        rb = ")" if self.hi_open or math.isinf(self.hi) else "]"
        hi = "inf" if math.isinf(self.hi) else f"{self.hi:g}"
        return f"{lb}{self.lo:g}, {hi}{rb}" + (" or None" if self.optional else "")

    def outside(self) -> list[float]:
        """Values just outside the valid domain (for the checks that invalid input is rejected)."""
        out = []
        if "lo" in self.enforced and math.isfinite(self.lo):
            out.append(self.lo if self.lo_open else self.lo - max(abs(self.lo), 1.0) * 1e-3)
        if "hi" in self.enforced and math.isfinite(self.hi):
            out.append(self.hi if self.hi_open else self.hi + max(abs(self.hi), 1.0) * 1e-3)
        return out


@dataclass(frozen=True)
class Flag:
    """A boolean hyperparameter; both values are edges."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, bool)

    def describe(self) -> str:
        return "{False, True}"

    def outside(self) -> list[Any]:
        return []


@dataclass(frozen=True, init=False)
class Pair:
    """Reals passed as one tuple argument: a pair (``betas``, ``etas``, ``step_sizes``) or more (Muon's
    ``ns_coefficients`` (a, b, c)): ``Pair(first, second, ...)``. ``edges`` are whole tuples drawn with priority
    (Muon's published coefficient sets), besides each part's own edges."""

    parts: tuple[Real, ...]
    edges: tuple[tuple, ...]

    def __init__(self, *parts: Real, edges: tuple[tuple, ...] = ()):
        object.__setattr__(self, "parts", tuple(parts))
        object.__setattr__(self, "edges", tuple(edges))

    @property
    def first(self) -> Real:
        return self.parts[0]

    @property
    def second(self) -> Real:
        return self.parts[1]

    def contains(self, x: Any) -> bool:
        return (isinstance(x, (tuple, list)) and len(x) == len(self.parts)
                and all(d.contains(v) for d, v in zip(self.parts, x)))

    def describe(self) -> str:
        return "(" + ", ".join(d.describe() for d in self.parts) + ")"

    def outside(self) -> list[tuple]:
        """One part just outside its domain, the others at a valid value (their first edge, or their lower bound)."""
        ok = [d.edges[0] if d.edges else d.lo for d in self.parts]
        return [tuple(v if j == i else ok[j] for j in range(len(ok))) for i, d in enumerate(self.parts)
                for v in d.outside()]


@dataclass(frozen=True)
class Choice:
    """A hyperparameter that takes one of a few values (a name, an integer, a tuple), each an edge; ``invalid``
    are values a torch.optim-style implementation must reject with ValueError."""

    values: tuple
    invalid: tuple = ()

    def contains(self, x: Any) -> bool:
        return any(x == v and type(x) is type(v) for v in self.values)

    def describe(self) -> str:
        return "{" + ", ".join(repr(v) for v in self.values) + "}"

    def outside(self) -> list[Any]:
        return list(self.invalid)


@dataclass(frozen=True)
class Hyper:
    """One constructor hyperparameter of a rule: torch's name for it, its default, and its domain."""

    name: str
    default: Any
    domain: Real | Flag | Pair | Choice
    doc: str = ""
    #: changed between steps by a scheduler through ``param_groups`` (only ``lr`` today)
    scheduled: bool = False


@dataclass(frozen=True)
class Constraint:
    """A combination of hyperparameters the rule does not define.

    ``holds(hp)`` is True for valid combinations. ``repair`` maps an invalid draw to a valid one (the strategies
    use it instead of rejecting draws); ``violations`` gives invalid combinations made from a valid one, which a
    torch.optim-style implementation must reject with ValueError when ``enforced``.
    """

    reason: str
    holds: Callable[[dict], bool]
    repair: Callable[[dict], dict]
    violations: Callable[[dict], list[dict]] = field(default=lambda hp: [])
    enforced: bool = True


@dataclass(frozen=True)
class Rule:
    """One update rule: the pure function that applies it and the one declaration everything else derives from.

    ``update(θ, g, state, **hyperparameters) -> (θ, state)`` maps one parameter tensor (float64), its gradient and
    its state (a dict, empty before the first step) to the new parameter and state; it never mutates its inputs.
    ``buffers`` are the per-element state tensors an implementation must keep (benchmark byte counts use them).
    """

    name: str
    update: Callable[..., tuple[Any, dict]]
    hypers: tuple[Hyper, ...]
    source: str
    torch_class: str | None = None
    constraints: tuple[Constraint, ...] = ()
    buffers: Callable[[dict], tuple[str, ...]] = field(default=lambda hp: ())
    elementwise: bool = True
    #: ``weight_decay`` scales θ by 1 − γλ (decoupled) instead of adding λθ to the gradient (the gradient of
    #: λ/2‖θ‖², which the identity tests check)
    decoupled_decay: bool = False
    #: gradients come in torch's sparse COO layout (``reference/sparse.py``); ``update`` receives a ``Masked`` g
    sparse_gradients: bool = False
    #: the numbers of dimensions a parameter may have (None: any); Muon's rule is for matrices
    ndims: tuple[int, ...] | None = None
    #: the rule is a closure's: ``step(closure)`` evaluates f and ∇f itself, as often as the rule says (L-BFGS), and
    #: ``update`` is ``(x, fg, state, **hp) -> (x, state, info)``; such a rule is judged by the closure tests
    #: (``properties/test_lbfgs.py``), not by the open-loop ones that feed gradients
    closure: bool = False
    #: what a ``step()`` does to the state of a parameter that has no gradient at it, ``idle(state, **hp) -> state``
    #: (θ is untouched); None: nothing, the parameter is skipped (torch's rules: t counts the parameter's own steps).
    #: A rule whose counters are its parameter group's (t advances at every step()) declares it
    idle: Callable[..., dict] | None = None
    #: the torch-class rule this one writes another way (a variant's base, optax's rmsprop for ``rmsprop``): torch's
    #: named known deviations of that class may show in its implementations too, and a failure says so
    base: str | None = None

    def __repr__(self) -> str:
        return f"Rule({self.name})"

    def _repr_pretty_(self, printer, cycle) -> None:   # Hypothesis prints falsifying examples with this
        printer.text(repr(self))

    @property
    def formula(self) -> str:
        return (self.update.__doc__ or "").strip()

    def hyper(self, name: str) -> Hyper:
        for h in self.hypers:
            if h.name == name:
                return h
        raise KeyError(f"rule {self.name!r} has no hyperparameter {name!r}; it has {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hypers)

    def defaults(self) -> dict:
        return {h.name: h.default for h in self.hypers}

    def repair(self, hp: dict) -> dict:
        """``hp`` with every violated constraint repaired, in declaration order."""
        for c in self.constraints:
            if not c.holds(hp):
                hp = c.repair(hp)
        return hp

    def valid(self, hp: dict) -> bool:
        return all(self.hyper(k).domain.contains(v) for k, v in hp.items()) and all(
            c.holds({**self.defaults(), **hp}) for c in self.constraints
        )
