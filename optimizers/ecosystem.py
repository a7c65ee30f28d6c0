"""The optimizer ecosystem the conformance matrix runs (``python -m optimizers.matrix``): every class of torch.optim,
timm, heavyball, pytorch-optimizer, torch-optimizer and optax that claims, by its name or its documentation, a rule
the suite knows, with the hyperparameter mapping its documentation implies.

One table, ``ENTRIES``. A mapping is data (``Mapping``): which of the rule's hyperparameters (torch's names) the
class takes, under which of its own names, and which of its own arguments are fixed. ``factory(entry)`` turns it into
a constructor with the exact signature of what the class accepts — so the suite varies those and holds the rest at
the rule's defaults — that also renames the keys of param-group dicts; each entry's factory is a module attribute,
named by ``entry.name``, so that ``--optimizer optimizers.ecosystem:NAME`` runs it. ``standalone_import(entry)``
writes the same factory as plain code, for reproducers that run where only the library is installed.

The libraries are imported only when a factory is called: this module imports without any of them.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Callable

#: the distributions, by the name the matrix reports, and the module whose version is read
LIBRARIES = {"torch": "torch", "timm": "timm", "heavyball": "heavyball", "pytorch-optimizer": "pytorch_optimizer",
             "torch-optimizer": "torch_optimizer", "lion-pytorch": "lion_pytorch", "optax": "optax",
             "schedulefree": "schedulefree"}


def load_timm_optim(module: str):
    """``timm.optim.<module>`` without running ``timm/__init__.py``, which imports timm's models and through them
    torchvision (not installable here without its CUDA wheels). The optimizer modules themselves import only torch
    and ``timm.optim._helpers``/``_types``; with torchvision present, timm is imported normally."""
    if importlib.util.find_spec("torchvision") is None and "timm" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("No module named 'timm'", name="timm")
        root = os.path.dirname(spec.origin)
        for name, path in (("timm", root), ("timm.optim", os.path.join(root, "optim"))):
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
    return importlib.import_module(f"timm.optim.{module}")


@dataclass(frozen=True)
class Mapping:
    """The rule's hyperparameters (torch's names) as the library's constructor arguments.

    ``takes``: the rule's names the class accepts, in the rule's order; ``rename``: rule name -> library name (a
    name not in it is passed as it is); ``split``: a pair passed as two arguments (``betas`` -> ``beta1, beta2``);
    ``fixed``: library arguments always passed (documented settings that select the rule).
    """

    takes: tuple[str, ...]
    rename: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    #: the rule's names the library reads from its constructor only, not per param group (declared to the suite)
    constructor_only: tuple[str, ...] = ()

    def library_kwargs(self, hp: dict) -> dict:
        out = {}
        for name, value in hp.items():
            if name in self.split:
                first, second = self.split[name]
                out[first], out[second] = value
            else:
                out[self.rename.get(name, name)] = value
        return out

    def describe(self) -> str:
        parts = [f"{k}→{v}" for k, v in self.rename.items()]
        parts += [f"{k}→({a}, {b})" for k, (a, b) in self.split.items()]
        parts += [f"{k}={v!r}" for k, v in self.fixed.items()]
        parts += [f"{k}: constructor only" for k in self.constructor_only]
        return ", ".join(parts) or "same names"


@dataclass(frozen=True)
class Entry:
    """One row of the matrix: a library class and the rule it claims, under one mapping.

    ``load``: 'module:Name' of the class (``timm.optim.<module>:Name`` is loaded without torchvision);
    ``claim``: where the class claims the rule; ``variants``: rule variants (``reference/variants.py``) that each
    change one convention of the rule, tried when the class does not conform to it; ``path``: torch's code path
    (torch rows only: they run as the suite's built-in subjects, with torch's known deviations);
    ``note``: what reading the library's source showed about a difference (hand-verified, reported as such).
    """

    library: str
    cls: str
    rule: str
    mapping: Mapping | None
    load: str = ""
    claim: str = ""
    variants: tuple[str, ...] = ()
    path: str = ""
    name: str = ""
    note: str = ""
    module: str = "optimizers.ecosystem"   # the module whose attribute ``name`` is the row's factory

    @property
    def spec(self) -> str:
        if self.mapping is None and self.load:     # run through the suite's own adapter (optax:NAME)
            return self.load
        return f"{self.module}:{self.name}"


def load_class(load: str):
    module, _, name = load.partition(":")
    if module.startswith("timm.optim."):
        return getattr(load_timm_optim(module.removeprefix("timm.optim.")), name)
    return getattr(importlib.import_module(module), name)


def factory(entry: Entry) -> Callable:
    """A constructor ``(params, <the rule's names the class takes>)`` that builds ``entry``'s class with its
    mapping, renaming the keys of param-group dicts too, those given to ``add_param_group`` later included
    (set_lrs writes ``lr`` into the groups: every class here calls it ``lr``); a name the caller leaves out is
    passed at the rule's default."""
    m = entry.mapping

    def build(params, **hp):
        from reference.registry import RULES
        # what a caller leaves out is the rule's default, not the library's (heavyball's SGD defaults to β = 0.9)
        hp = {**{n: RULES[entry.rule].hyper(n).default for n in m.takes if n not in hp}, **hp}
        cls = load_class(entry.load)
        params = list(params)
        def library_group(g):
            return {**m.library_kwargs({k: v for k, v in g.items() if k != "params"}), "params": g["params"]}

        opt = cls([library_group(g) if isinstance(g, dict) else g for g in params], **m.library_kwargs(hp), **m.fixed)
        add = getattr(opt, "add_param_group", None)
        if callable(add):   # a group added later is in the rule's names too
            opt.add_param_group = lambda group: add(library_group(group))
        return opt

    build.constructor_only = m.constructor_only
    build.__signature__ = inspect.Signature(
        [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in m.takes])
    build.__name__ = build.__qualname__ = entry.name
    build.__doc__ = f"{entry.cls} as rule {entry.rule!r}: {m.describe()}"
    return build


def standalone_import(entry: Entry) -> str:
    """Python lines that bind ``Impl`` to ``entry``'s class under its mapping, needing only the library: what a
    reproducer starts with, so that a maintainer can paste it."""
    m = entry.mapping
    module, _, name = entry.load.partition(":")
    if module.startswith("timm.optim."):
        lines = ["import importlib, importlib.util, os, sys, types",
                 "if importlib.util.find_spec('torchvision') is None:  # timm/__init__ imports torchvision; the "
                 "optimizers do not",
                 "    _root = os.path.dirname(importlib.util.find_spec('timm').origin)",
                 "    for _n, _p in (('timm', _root), ('timm.optim', os.path.join(_root, 'optim'))):",
                 "        sys.modules[_n] = types.ModuleType(_n); sys.modules[_n].__path__ = [_p]",
                 f"from {module} import {name} as _Cls"]
    else:
        lines = [f"from {module} import {name} as _Cls"]
    from reference.registry import RULES
    defaults = {n: RULES[entry.rule].hyper(n).default for n in m.takes}
    lines += [f"_RENAME, _SPLIT, _FIXED = {m.rename!r}, {m.split!r}, {m.fixed!r}  # torch's names -> {name}'s",
              f"_DEFAULTS = {defaults!r}  # the rule's defaults, for what a caller leaves out",
              "def _lib(hp):",
              "    out = {}",
              "    for k, v in hp.items():",
              "        if k in _SPLIT: out[_SPLIT[k][0]], out[_SPLIT[k][1]] = v",
              "        else: out[_RENAME.get(k, k)] = v",
              "    return out",
              "def Impl(params, **hp):",
              "    hp = {**_DEFAULTS, **hp}",
              "    params = [{**_lib({k: v for k, v in g.items() if k != 'params'}), 'params': g['params']} "
              "if isinstance(g, dict) else g for g in params]",
              "    return _Cls(params, **_lib(hp), **_FIXED)"]
    return "\n".join(lines)


# ---- the table ------------------------------------------------------------------------------------------------------
ADAM_NAMES = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
_PO = "pytorch_optimizer"   # pytorch-optimizer's classes take **kwargs and ignore unknown names: mappings are exact
#: pytorch-optimizer's classes read maximize from the constructor (self.maximize, e.g. adamax.py:45), not per group
_PO_MAXIMIZE = ("maximize",)

ENTRIES: list[Entry] = [
    # ---- timm 1.0 (timm.optim): the classes named after a torch.optim rule -----------------------------------------
    Entry("timm", "timm.optim.AdamWLegacy", "adamw", Mapping(ADAM_NAMES), "timm.optim.adamw:AdamWLegacy",
          "docstring: 'Implements AdamW algorithm ... copied from PyTorch master'", name="timm_AdamWLegacy"),
    Entry("timm", "timm.optim.NAdamLegacy", "nadam",
          Mapping(("lr", "betas", "eps", "weight_decay", "momentum_decay"), rename={"momentum_decay": "schedule_decay"}),
          "timm.optim.nadam:NAdamLegacy", "docstring: 'Implements Nadam algorithm ... deprecated in favour of "
          "torch.optim.NAdam'", name="timm_NAdamLegacy"),
    Entry("timm", "timm.optim.RAdamLegacy", "radam", Mapping(("lr", "betas", "eps", "weight_decay")),
          "timm.optim.radam:RAdamLegacy", "docstring: 'PyTorch RAdam optimizer'", name="timm_RAdamLegacy",
          variants=("radam_decoupled",)),
    Entry("timm", "timm.optim.SGDW", "sgd", Mapping(("lr", "momentum", "dampening", "weight_decay", "nesterov",
                                                     "maximize")),
          "timm.optim.sgdw:SGDW", "name: SGD with decoupled weight decay (Loshchilov & Hutter)", name="timm_SGDW",
          variants=("sgdw",)),
    Entry("timm", "timm.optim.RMSpropTF", "rmsprop",
          Mapping(("lr", "alpha", "eps", "weight_decay", "momentum", "centered")),
          "timm.optim.rmsprop_tf:RMSpropTF", "docstring: 'PyTorch RMSprop with eps applied before sqrt and a few "
          "other modifications to closer match Tensorflow'", name="timm_RMSpropTF", variants=("rmsprop_tf",)),
    # ---- heavyball 3 (compiles its steps with torch.compile by default) ---------------------------------------------
    Entry("heavyball", "heavyball.AdamW", "adamw", Mapping(("lr", "betas", "eps", "weight_decay")),
          "heavyball:AdamW", "docstring: 'AdamW' (Loshchilov & Hutter)", name="heavyball_AdamW",
          variants=("adamw_eps_floor",)),
    Entry("heavyball", "heavyball.NAdam", "nadam",
          Mapping(("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay")),
          "heavyball:NAdam", "docstring: 'NAdam' (Dozat)", name="heavyball_NAdam"),
    Entry("heavyball", "heavyball.SGD", "sgd", Mapping(("lr", "momentum", "weight_decay"),
                                                       rename={"momentum": "beta"}),
          "heavyball:SGD", "docstring: 'SGD with heavy-ball momentum'", name="heavyball_SGD", variants=("sgdw",)),
    # the same, with state and arithmetic in float64 (storage_dtype): what its float32 default hides
    Entry("heavyball", "heavyball.AdamW", "adamw", Mapping(("lr", "betas", "eps", "weight_decay"),
                                                           fixed={"storage_dtype": "float64"}),
          "heavyball:AdamW", "docstring: 'AdamW' (Loshchilov & Hutter)", name="heavyball_AdamW_float64",
          variants=("adamw_eps_floor",), path="storage_dtype=float64"),
    Entry("heavyball", "heavyball.NAdam", "nadam",
          Mapping(("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"),
                  fixed={"storage_dtype": "float64"}),
          "heavyball:NAdam", "docstring: 'NAdam' (Dozat)", name="heavyball_NAdam_float64", path="storage_dtype=float64"),
    Entry("heavyball", "heavyball.SGD", "sgd", Mapping(("lr", "momentum", "weight_decay"), rename={"momentum": "beta"},
                                                       fixed={"storage_dtype": "float64"}),
          "heavyball:SGD", "docstring: 'SGD with heavy-ball momentum'", name="heavyball_SGD_float64",
          variants=("sgdw",), path="storage_dtype=float64"),
    # ---- pytorch-optimizer 4 (its own classes; its 'adam', 'sgd', ... are torch.optim's) ----------------------------
    Entry("pytorch-optimizer", "pytorch_optimizer.AdaDelta", "adadelta",
          Mapping(("lr", "rho", "eps", "weight_decay", "maximize"), constructor_only=_PO_MAXIMIZE), f"{_PO}:AdaDelta",
          "docstring: 'Adaptive updates based on accumulated squared gradients and updates' (Zeiler)",
          name="po_AdaDelta"),
    Entry("pytorch-optimizer", "pytorch_optimizer.AdaMax", "adamax",
          Mapping(("lr", "betas", "eps", "weight_decay", "maximize"), constructor_only=_PO_MAXIMIZE), f"{_PO}:AdaMax",
          "docstring: 'Adam with an exponentially weighted infinity norm denominator'", name="po_AdaMax",
          variants=("adamax_group_step",)),
    Entry("pytorch-optimizer", "pytorch_optimizer.RAdam", "radam",
          Mapping(("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"),
                  rename={"decoupled_weight_decay": "weight_decouple"}, constructor_only=_PO_MAXIMIZE), f"{_PO}:RAdam",
          "docstring: 'Rectified Adam'", name="po_RAdam"),
    Entry("pytorch-optimizer", "pytorch_optimizer.SGDW", "sgd",
          Mapping(("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"), constructor_only=_PO_MAXIMIZE),
          f"{_PO}:SGDW",
          "docstring: 'SGD with optional decoupled weight decay' (weight_decouple=True by default)",
          name="po_SGDW", variants=("sgdw",)),
    Entry("pytorch-optimizer", "pytorch_optimizer.QHAdam", "adam",
          Mapping(("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"),
                  rename={"decoupled_weight_decay": "weight_decouple"}, fixed={"nus": (1.0, 1.0)},
                  constructor_only=_PO_MAXIMIZE),
          f"{_PO}:QHAdam", "QHAdam paper (Ma & Yarats 2019): ν = (1, 1) recovers Adam", name="po_QHAdam"),
    # ---- torch-optimizer 0.3 -----------------------------------------------------------------------------------------
    Entry("torch-optimizer", "torch_optimizer.RAdam", "radam", Mapping(("lr", "betas", "eps", "weight_decay")),
          "torch_optimizer:RAdam", "docstring: 'Implements RAdam optimization algorithm'", name="to_RAdam",
          variants=("radam_decoupled",)),
    Entry("torch-optimizer", "torch_optimizer.SGDW", "sgd",
          Mapping(("lr", "momentum", "dampening", "weight_decay", "nesterov")), "torch_optimizer:SGDW",
          "docstring: 'Implements SGDW algorithm' (Loshchilov & Hutter)", name="to_SGDW", variants=("sgdw",)),
    Entry("torch-optimizer", "torch_optimizer.QHAdam", "adam",
          Mapping(("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
                  rename={"decoupled_weight_decay": "decouple_weight_decay"}, fixed={"nus": (1.0, 1.0)}),
          "torch_optimizer:QHAdam", "QHAdam paper (Ma & Yarats 2019): ν = (1, 1) recovers Adam", name="to_QHAdam"),
]


#: what reading each class's source showed about its differences, verified by running the counterexamples by hand
NOTES = {
    'timm_RAdamLegacy': 'step() computes in float32 (p.float(), float32 state) and copies back, so float64 parameters get float32 arithmetic; weight decay is decoupled (p_fp32.add_(p_fp32, alpha=-weight_decay * lr))',
    'timm_SGDW': 'decays θ by (1 − lr·λ) before the momentum step (param.mul_(1. - wd_scale * weight_decay)); the gradient is not decayed',
    'timm_RMSpropTF': 'documented TensorFlow conventions: square_avg starts at ones, eps inside the sqrt, lr accumulated in the momentum buffer, averages updated as v += (1 − α)(g² − v)',
    'heavyball_SGD': "storage_dtype='float32' by default, and the learning rate enters the update in float32; step() sets p.grad to None after the step",
    'heavyball_NAdam': "storage_dtype='float32' by default; step() sets p.grad to None after the step",
    'heavyball_AdamW': "storage_dtype='float32' by default; step() sets p.grad to None after the step",
    'po_AdaDelta': "pytorch-optimizer's BaseOptimizer.maximize_gradient negates p.grad in place (grad.neg_()) and reads maximize from the constructor (self.maximize), not from the param group; rejects rho = 1 (ValueError)",
    'po_AdaMax': "pytorch-optimizer's BaseOptimizer.maximize_gradient negates p.grad in place (grad.neg_()) and reads maximize from the constructor (self.maximize), not from the param group; the bias correction 1 − β1^t counts the group's steps (group['step']), not the parameter's, so a parameter that had no gradient at some step is corrected for steps it did not take",
    'po_RAdam': "pytorch-optimizer's BaseOptimizer.maximize_gradient negates p.grad in place (grad.neg_()) and reads maximize from the constructor (self.maximize), not from the param group; t is the group's step count; with weight_decouple=False weight decay is not applied at all (apply_weight_decay gets grad=None); while ρ_t < 5 with degenerated_to_sgd=False (the default) θ is not updated, where the rule takes θ − γ m̂",
    'po_SGDW': "pytorch-optimizer's BaseOptimizer.maximize_gradient negates p.grad in place (grad.neg_()) and reads maximize from the constructor (self.maximize), not from the param group; weight_decouple=True by default (θ ← θ(1 − lr·λ)); coupled decay adds λθ into p.grad in place",
    'po_QHAdam': "its bias-correction weights are float32 tensors (qhadam.py:83-84) in float64 runs; pytorch-optimizer's "
                 "BaseOptimizer.maximize_gradient negates p.grad in place (grad.neg_()) and reads maximize from the "
                 "constructor (self.maximize), not from the param group",
    'to_RAdam': "rejects lr = 0 (ValueError); like timm's RAdamLegacy, computes in float32 (p.grad.data.float(), "
                "p.data.float()) and decays θ decoupled (p_data_fp32.add_(p_data_fp32, alpha=-weight_decay * lr)); "
                "its step-size cache, lr folded in, is shared by every group with the same betas (radam.py:155)",
    'to_SGDW': 'rejects lr = 0 (ValueError); weight decay subtracts the constant lr·λ from every element (p.data.add_(weight_decay, alpha=-lr)), not lr·λ·θ: θ = 10, g = 0, lr = 0.1, λ = 0.5 gives 9.95 where θ(1 − lr·λ) = 9.5',
    'to_QHAdam': 'rejects lr = 0 (ValueError); coupled weight decay is added into p.grad in place (d_p = p.grad.data; d_p.add_(p.data, alpha=weight_decay))',
}
ENTRIES = [dataclasses.replace(e, note=NOTES.get(e.name, e.note)) for e in ENTRIES]


def torch_entries() -> list[Entry]:
    """Every torch.optim class with a rule, in each code path torch offers on CPU: the suite's built-in subjects
    (``optimizers/builtins.py``), which carry torch's known deviations (``optimizers/known_deviations.py``)."""
    from optimizers.builtins import torch_subjects
    return [Entry("torch", f"torch.optim.{s.rule.torch_class}", s.rule.name, None, claim="the rule's own class",
                  path=s.id.rpartition("[")[2].rstrip("]"), name=s.id) for s in torch_subjects("cpu")]


#: optax's aliases named after a rule the suite knows; run through the suite's optax adapter (``--optimizer
#: optax:NAME``, ``optimizers/optax_adapter.py``) with its declared name conventions (``optimizers/conventions.py``)
OPTAX_ALIASES = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "radam", "rprop")
#: (module, alias, rule) for optax's optimizers of the rules beyond torch.optim
OPTAX_MODERN = (("optax", "lion", "lion"), ("optax", "adan", "adan"), ("optax", "lamb", "lamb"),
                ("optax.contrib", "ademamix", "ademamix"), ("optax.contrib", "adopt", "adopt"),
                ("optax.contrib", "schedule_free_adamw", "schedulefree_adamw"),
                ("optax.contrib", "schedule_free_sgd", "schedulefree_sgd"))


def optax_entries() -> list[Entry]:
    """optax's rows, when the suite has its adapter (``optimizers/optax_adapter.py``); otherwise none."""
    if importlib.util.find_spec("optimizers.optax_adapter") is None:
        return []
    from reference.registry import RULES
    return [Entry("optax", f"optax.{alias}", alias, None, load=f"optax:{alias}", name=f"optax_{alias}",
                  claim="the alias's name and docstring",
                  variants=tuple(v for v in (f"optax_{alias}",) if v in RULES)) for alias in OPTAX_ALIASES] + [
        Entry("optax", f"{module}.{alias}", rule, None, load=f"{module}:{alias}", name=f"optax_{alias}",
              claim="the alias's name and docstring") for module, alias, rule in OPTAX_MODERN]


for _entry in ENTRIES:
    globals()[_entry.name] = factory(_entry)
