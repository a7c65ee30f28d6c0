"""How a rule's hyperparameters are spelled by another framework: one declaration per rule and target.

A rule names its hyperparameters as torch does (``lr``, ``betas``, ``alpha``, ...). A target that spells them
otherwise gets a ``Convention``: which keyword of the target each hyperparameter becomes (``betas`` → ``(b1, b2)``),
how a value is converted (optax spells "no momentum" ``None``, torch ``0``), which hyperparameters the target
cannot express at all — those are *not accepted*: the suite holds them at the rule's defaults and says so in the
run header (``Subject.held()``) — and the sign of what the target returns.

* NumPy step functions (``optimizers/numpy_adapter.py``): the identity. They receive the rule's own names.
* optax (``optimizers/optax_adapter.py``): ``OPTAX`` below, one entry per (rule, optax alias) the findings cover.
  A pair not declared gets ``generic_convention``: ``lr`` → ``learning_rate``, ``betas`` → ``(b1, b2)``, and every
  other hyperparameter by its own name where the alias has that keyword; the rest not accepted.
  optax returns *updates to add* (θ ← θ + u, ``optax.apply_updates``), the learning rate's minus sign inside
  (``scale_by_learning_rate(flip_sign=True)``): ``sign = +1``.

Differences of *meaning* under the same name (optax's ``eps`` inside the square root in rmsprop and adagrad) are not
conventions: the mapping passes the value through, and the trajectory check reports the difference — that is the
finding. Where the target implements a different rule, that rule is declared in ``reference/optax_rules.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Conversion:
    """A value converted on its way to the target (``to``) and back (``back``, for the target's defaults).

    ``code``: ``to`` as the source of a Python expression that needs only the standard library (a lambda), for the
    standalone reproducers (``optimizers/optax_standalone.py``) to write out; None where it cannot be written so
    (those reproducers then import the suite's adapter). It must compute what ``to`` computes; a callable ``to``
    returns may differ in kind (``Power`` compares by value for the adapter's compile cache, a lambda does not
    need to)."""

    to: Callable[[Any], Any]
    back: Callable[[Any], Any]
    why: str
    code: str | None = None


#: optax's aliases take ``momentum=None`` for "no momentum"; 0 through ``optax.trace`` would be the same arithmetic,
#: but None is the path an optax user without momentum runs.
NONE_FOR_ZERO = Conversion(to=lambda v: None if v == 0 else v, back=lambda v: 0.0 if v is None else v,
                           why="optax spells none None (no momentum, no weight decay)",
                           code="lambda v: None if v == 0 else v")

#: optax.contrib's schedule-free aliases spell "no warm-up" ``warmup_steps=None`` (a step count: back to the int 0)
NO_WARMUP = Conversion(to=lambda v: None if v == 0 else v, back=lambda v: 0 if v is None else v,
                       why="optax spells no warm-up None", code="lambda v: None if v == 0 else v")


def _positive_first(v):
    if v[0] <= 0:
        raise ValueError(f"b1 = {v[0]!r}: optax.contrib.schedule_free_adamw requires b1 strictly positive (its "
                         "docstring)")
    return v


#: optax.contrib.schedule_free_adamw documents "requires b1 strictly positive" (y interpolates towards x by b1): a
#: documented restriction, so b1 = 0 is refused at construction (held out of the searches, reported once)
POSITIVE_B1 = Conversion(to=_positive_first, back=lambda v: v, why="optax documents b1 > 0 for schedule-free AdamW",
                         code="lambda v: v if v[0] > 0 else (_ for _ in ()).throw(ValueError('b1 must be > 0'))")


@dataclass(frozen=True)
class Power:
    """The clip function s ↦ s^p of ADOPT's clip exponent p, as ``optax.contrib.adopt``'s ``clip_value_fn`` (its
    default is ``lambda x: x**0.25``; optax calls it with the step count before the increment, the paper's s = t − 1).
    A dataclass rather than a lambda: equal exponents give equal (and hashable) functions, so the adapter compiles
    once per p, not once per step."""

    p: float

    def __call__(self, s):
        return s ** self.p


def _exponent(fn: Callable) -> Any:
    """p for a power function s ↦ s^p (optax's default clip function gives 0.25); ``fn`` itself otherwise."""
    if isinstance(fn, Power):
        return fn.p
    import math
    try:
        p = round(math.log2(float(fn(2.0))), 12)
        if math.isclose(float(fn(3.0)), 3.0 ** p, rel_tol=1e-9):
            return p
    except (TypeError, ValueError, ArithmeticError):
        pass
    return fn


#: ADOPT's clip exponent p (None: no clipping) as optax.contrib.adopt's (use_clipping, clip_value_fn)
CLIP_EXPONENT = Conversion(to=lambda p: (False, None) if p is None else (True, Power(p)),
                           back=lambda v: _exponent(v[1]) if v[0] else None,
                           why="optax takes the clip function s ↦ s^p, and use_clipping=False for none",
                           code="lambda p: (False, None) if p is None else (True, lambda s: s ** p)")


@dataclass(frozen=True)
class Convention:
    """The rule's hyperparameters as the target spells them.

    ``names``: rule hyperparameter → target keyword, or a tuple of keywords for a pair (``betas`` → ``(b1, b2)``).
    ``inexpressible``: rule hyperparameter → why the target cannot express it (held at the rule's default).
    ``fixed``: target keywords always passed, settings the rule has no hyperparameter for, chosen so that the target
    computes the rule (``optax.adan``'s ``eps_root = 0``: the rule adds no ε inside the root).
    ``sign``: the target's result u is applied as θ ← θ + sign·u.
    """

    rule: str
    target: str
    names: dict
    conversions: dict = field(default_factory=dict)
    inexpressible: dict = field(default_factory=dict)
    sign: int = +1
    fixed: dict = field(default_factory=dict)

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(self.names)

    def translate(self, hp: dict) -> dict:
        """The target's keyword arguments for the rule's hyperparameters ``hp`` (those accepted), and ``fixed``."""
        out = dict(self.fixed)
        for name, keyword in self.names.items():
            if name not in hp:
                continue
            value = self.conversions[name].to(hp[name]) if name in self.conversions else hp[name]
            if isinstance(keyword, tuple):
                out.update(zip(keyword, value))
            else:
                out[keyword] = value
        return out

    def back(self, target_defaults: dict) -> dict:
        """The rule's hyperparameters for the target's keyword values ``target_defaults`` (those it has)."""
        out = {}
        for name, keyword in self.names.items():
            keywords = keyword if isinstance(keyword, tuple) else (keyword,)
            if not all(k in target_defaults for k in keywords):
                continue
            value = tuple(target_defaults[k] for k in keywords) if isinstance(keyword, tuple) else target_defaults[keyword]
            out[name] = self.conversions[name].back(value) if name in self.conversions else value
        return out


NO_MAXIMIZE = "optax has no maximize (negate the loss instead)"
NO_WEIGHT_DECAY = "this alias has no weight decay (optax.add_decayed_weights chained before it is another optimizer)"

OPTAX: tuple[Convention, ...] = (
    Convention("adam", "adam", {"lr": "learning_rate", "betas": ("b1", "b2"), "eps": "eps"},
               inexpressible={"weight_decay": NO_WEIGHT_DECAY, "amsgrad": "AMSGrad is the separate alias optax.amsgrad",
                              "maximize": NO_MAXIMIZE,
                              "decoupled_weight_decay": "decoupled weight decay is the separate alias optax.adamw"}),
    Convention("adamw", "adamw", {"lr": "learning_rate", "betas": ("b1", "b2"), "eps": "eps",
                                  "weight_decay": "weight_decay"},
               inexpressible={"amsgrad": "optax.adamw has no AMSGrad", "maximize": NO_MAXIMIZE}),
    Convention("sgd", "sgd", {"lr": "learning_rate", "momentum": "momentum", "nesterov": "nesterov"},
               conversions={"momentum": NONE_FOR_ZERO},
               inexpressible={"dampening": "optax.trace has no dampening", "weight_decay": NO_WEIGHT_DECAY,
                              "maximize": NO_MAXIMIZE}),
    Convention("rmsprop", "rmsprop", {"lr": "learning_rate", "alpha": "decay", "eps": "eps", "momentum": "momentum",
                                      "centered": "centered"},
               conversions={"momentum": NONE_FOR_ZERO},
               inexpressible={"weight_decay": NO_WEIGHT_DECAY, "maximize": NO_MAXIMIZE}),
    Convention("adagrad", "adagrad", {"lr": "learning_rate", "initial_accumulator_value": "initial_accumulator_value",
                                      "eps": "eps"},
               inexpressible={"lr_decay": "optax.adagrad has no learning-rate decay (pass a schedule instead)",
                              "weight_decay": NO_WEIGHT_DECAY, "maximize": NO_MAXIMIZE}),
    # optax's own rules (reference/optax_rules.py) keep optax's names; only the learning rate is the suite's lr
    Convention("optax_rmsprop", "rmsprop", {
        "lr": "learning_rate", "decay": "decay", "eps": "eps", "initial_scale": "initial_scale",
        "eps_in_sqrt": "eps_in_sqrt", "centered": "centered", "momentum": "momentum", "nesterov": "nesterov",
        "bias_correction": "bias_correction"}, conversions={"momentum": NONE_FOR_ZERO}),
    Convention("optax_adagrad", "adagrad", {"lr": "learning_rate", "initial_accumulator_value":
                                            "initial_accumulator_value", "eps": "eps"}),
    # the rules beyond torch.optim (reference/modern_rules.py, reference/schedulefree_rules.py) on optax's aliases
    # and optax.contrib's
    Convention("adan", "adan", {"lr": "learning_rate", "betas": ("b1", "b2", "b3"), "eps": "eps",
                                "weight_decay": "weight_decay"},
               inexpressible={"no_prox": "optax.adan has only its own form of the decay"},
               fixed={"eps_root": 0.0}),
    Convention("ademamix", "ademamix", {"lr": "learning_rate", "betas": ("b1", "b2", "b3"), "alpha": "alpha",
                                        "eps": "eps", "weight_decay": "weight_decay"},
               inexpressible={"t_alpha_beta3": "optax.contrib.ademamix takes schedules for α and β3, not a warm-up "
                                               "length (held at none)"}),
    Convention("adopt", "adopt", {"lr": "learning_rate", "betas": ("b1", "b2"), "eps": "eps",
                                  "clip_exp": ("use_clipping", "clip_value_fn")},
               conversions={"clip_exp": CLIP_EXPONENT},
               inexpressible={"weight_decay": NO_WEIGHT_DECAY, "maximize": NO_MAXIMIZE,
                              "decoupled_weight_decay": NO_WEIGHT_DECAY}),
    Convention("schedulefree_adamw", "schedule_free_adamw", {
        "lr": "learning_rate", "betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay",
        "warmup_steps": "warmup_steps", "weight_lr_power": "weight_lr_power"},
        conversions={"warmup_steps": NO_WARMUP, "betas": POSITIVE_B1},
        inexpressible={"r": "optax's weight is lr_max^p alone (r = 0)"}),
    Convention("schedulefree_sgd", "schedule_free_sgd", {
        "lr": "learning_rate", "momentum": "b1", "weight_decay": "weight_decay", "warmup_steps": "warmup_steps",
        "weight_lr_power": "weight_lr_power"},
        conversions={"warmup_steps": NO_WARMUP, "weight_decay": NONE_FOR_ZERO},
        inexpressible={"r": "optax's weight is lr_max^p alone (r = 0)"}),
)


def generic_convention(rule_name: str, rule_names: Iterable[str], target: str, keywords: Iterable[str]) -> Convention:
    """For a (rule, alias) pair not declared: the learning rate, betas, and hyperparameters of the same name."""
    keywords = set(keywords)
    names, inexpressible = {}, {}
    for n in rule_names:
        if n == "lr" and "learning_rate" in keywords:
            names[n] = "learning_rate"
        elif n == "betas" and {"b1", "b2"} <= keywords:
            names[n] = ("b1", "b2")
        elif n in keywords:
            names[n] = n
        else:
            inexpressible[n] = f"optax.{target} has no keyword {n!r} (no convention declared for this pair)"
    return Convention(rule_name, target, names, inexpressible=inexpressible)


def optax_convention(rule_name: str, rule_names: Iterable[str], target: str, keywords: Iterable[str]) -> Convention:
    """The declared convention for ``rule_name`` on ``optax.<target>``, else the generic one."""
    for c in OPTAX:
        if c.rule == rule_name and c.target == target:
            return c
    return generic_convention(rule_name, rule_names, target, keywords)
