"""The third-party implementations of the rules of ``reference/modern_rules.py`` (lion, adopt, ademamix, adan, lamb)
and ``reference/schedulefree_rules.py`` (schedulefree_sgd, schedulefree_adamw),
as rows like ``optimizers/ecosystem.py``'s: one ``Entry`` per class, its hyperparameter mapping data, and a factory
per entry, a module attribute named by ``entry.name``, so that

    python -m pytest --optimizer optimizers.ecosystem_modern:po_Adan --rule adan

runs it. The libraries (``requirements-matrix.txt``, installed with ``pip install --no-deps``) are imported only
when a factory is called. ``fixed`` arguments select the rule's form where a library has options (no global
gradient-norm clipping, the paper's decay); a hyperparameter the library takes in another form (ADOPT's clip
exponent p as a callable s ↦ s^p) is converted by ``Converting``. Schedule-Free optimizers must be put in train mode
(``optimizer.train()``, which puts y into the parameters) before they step; the suite only calls ``step()``, so the
rows named in ``TRAIN_MODE`` have a factory that calls ``.train()`` once, right after constructing the optimizer.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from optimizers.ecosystem import Entry, Mapping, factory

_PO = "pytorch_optimizer"


@dataclass(frozen=True)
class Converting(Mapping):
    """A Mapping that also converts values: ``convert`` maps a rule name to (library name, function of the value)."""

    convert: dict = field(default_factory=dict)

    def library_kwargs(self, hp: dict) -> dict:
        plain = super().library_kwargs({k: v for k, v in hp.items() if k not in self.convert})
        return {**plain, **{self.convert[k][0]: self.convert[k][1](v) for k, v in hp.items() if k in self.convert}}

    def describe(self) -> str:
        return ", ".join([super().describe()] + [f"{k}→{name} (converted)" for k, (name, _) in self.convert.items()])


def _clip_lambda(p):
    """ADOPT's clip exponent p as the official code's ``clip_lambda``: s ↦ s^p (None: no clipping)."""
    return None if p is None else (lambda s: s**p)


def _no_clamp_as_inf(v):
    """torch-optimizer's Lamb takes a number for φ's bound: the rule's None (no clamp) is +∞."""
    return math.inf if v is None else v


SF_SGD_NAMES = ("lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power")
SF_ADAMW_NAMES = ("lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power")
#: the rows whose factory calls ``.train()`` after constructing the optimizer (``in_train_mode``)
TRAIN_MODE = frozenset({"sf_SGDScheduleFree", "sf_SGDScheduleFreeReference", "sf_AdamWScheduleFree",
                        "sf_AdamWScheduleFreeReference"})

ADOPT_NAMES = ("lr", "betas", "eps", "clip_exp", "weight_decay", "decoupled_weight_decay", "maximize")

ENTRIES: list[Entry] = [
    # ---- Lion ---------------------------------------------------------------------------------------------------------
    Entry("lion-pytorch", "lion_pytorch.Lion", "lion",
          Mapping(("lr", "betas", "weight_decay"), fixed={"use_triton": False, "decoupled_weight_decay": False}),
          "lion_pytorch:Lion", "README: 'Lion, new optimizer discovered by Google Brain'", name="lionpytorch_Lion"),
    Entry("pytorch-optimizer", "pytorch_optimizer.Lion", "lion",
          Mapping(("lr", "betas", "weight_decay"), fixed={"weight_decouple": True, "fixed_decay": False}),
          f"{_PO}:Lion", "docstring: 'Symbolic Discovery of Optimization Algorithms'", name="po_Lion"),
    Entry("timm", "timm.optim.Lion", "lion", Mapping(("lr", "betas", "weight_decay")), "timm.optim.lion:Lion",
          "docstring: 'Implements Lion algorithm'", name="timm_Lion"),
    # ---- ADOPT --------------------------------------------------------------------------------------------------------
    Entry("pytorch-optimizer", "pytorch_optimizer.ADOPT", "adopt",
          Converting(ADOPT_NAMES, rename={"decoupled_weight_decay": "weight_decouple"},
                     convert={"clip_exp": ("clip_lambda", _clip_lambda)}, constructor_only=("maximize",)),
          f"{_PO}:ADOPT", "docstring: 'Modified Adam Can Converge with Any β2 with the Optimal Rate'", name="po_ADOPT"),
    Entry("timm", "timm.optim.Adopt", "adopt", Mapping(ADOPT_NAMES, rename={"decoupled_weight_decay": "decoupled"}),
          "timm.optim.adopt:Adopt", "docstring: 'ADOPT: Modified Adam Can Converge with Any β2'", name="timm_Adopt"),
    # ---- AdEMAMix -----------------------------------------------------------------------------------------------------
    Entry("pytorch-optimizer", "pytorch_optimizer.AdEMAMix", "ademamix",
          Mapping(("lr", "betas", "alpha", "t_alpha_beta3", "eps", "weight_decay"), fixed={"weight_decouple": True}),
          f"{_PO}:AdEMAMix", "docstring: 'Better, Faster, Older'", name="po_AdEMAMix",
          variants=("ademamix_group_step",)),
    # ---- Adan ---------------------------------------------------------------------------------------------------------
    Entry("pytorch-optimizer", "pytorch_optimizer.Adan", "adan",
          Mapping(("lr", "betas", "eps", "weight_decay", "no_prox"), rename={"no_prox": "weight_decouple"},
                  fixed={"max_grad_norm": 0.0}),
          f"{_PO}:Adan", "docstring: 'Adaptive Nesterov Momentum Algorithm'", name="po_Adan",
          variants=("adan_group_step",)),
    Entry("timm", "timm.optim.Adan", "adan", Mapping(("lr", "betas", "eps", "weight_decay", "no_prox")),
          "timm.optim.adan:Adan", "docstring: 'Implements a pytorch variant of Adan'", name="timm_Adan",
          variants=("adan_group_step",)),
    # ---- LAMB ---------------------------------------------------------------------------------------------------------
    Entry("pytorch-optimizer", "pytorch_optimizer.Lamb", "lamb",
          Mapping(("lr", "betas", "eps", "weight_decay", "adam"), fixed={"max_grad_norm": 0.0, "weight_decouple": False}),
          f"{_PO}:Lamb", "docstring: 'Large Batch Optimization for Deep Learning'", name="po_Lamb"),
    Entry("timm", "timm.optim.Lamb", "lamb",
          Mapping(("lr", "bias_correction", "betas", "eps", "weight_decay"),
                  fixed={"max_grad_norm": None, "always_adapt": True}),
          "timm.optim.lamb:Lamb", "docstring: 'Implements a pure pytorch variant of FuseLAMB'", name="timm_Lamb",
          variants=("lamb_group_step",)),
    Entry("torch-optimizer", "torch_optimizer.Lamb", "lamb",
          Converting(("lr", "betas", "eps", "weight_decay", "clamp_value", "adam", "bias_correction"),
                     rename={"bias_correction": "debias"}, convert={"clamp_value": ("clamp_value", _no_clamp_as_inf)}),
          "torch_optimizer:Lamb", "docstring: 'Implements Lamb algorithm'", name="to_Lamb"),
    # ---- Schedule-Free (official code, facebookresearch/schedule_free) ----------------------------------------------
    Entry("schedulefree", "schedulefree.SGDScheduleFree", "schedulefree_sgd", Mapping(SF_SGD_NAMES),
          "schedulefree:SGDScheduleFree", "docstring: 'Schedule-Free SGD'", name="sf_SGDScheduleFree", variants=("schedulefree_sgd_group_step",)),
    Entry("schedulefree", "schedulefree.SGDScheduleFreeReference", "schedulefree_sgd", Mapping(SF_SGD_NAMES),
          "schedulefree:SGDScheduleFreeReference", "docstring: 'Schedule-Free SGD ... the reference implementation'",
          name="sf_SGDScheduleFreeReference", variants=("schedulefree_sgd_group_step",)),
    Entry("schedulefree", "schedulefree.AdamWScheduleFree", "schedulefree_adamw", Mapping(SF_ADAMW_NAMES),
          "schedulefree:AdamWScheduleFree", "docstring: 'Schedule-Free AdamW'", name="sf_AdamWScheduleFree", variants=("schedulefree_adamw_group_step",)),
    Entry("schedulefree", "schedulefree.AdamWScheduleFreeReference", "schedulefree_adamw",
          Mapping(SF_ADAMW_NAMES, fixed={"decay_at_z": False}), "schedulefree:AdamWScheduleFreeReference",
          "docstring: 'Schedule-Free AdamW (Simplified Reference Implementation)'",
          name="sf_AdamWScheduleFreeReference", variants=("schedulefree_adamw_group_step",)),
]

#: what reading each class's source showed about the differences the suite found (pinned versions of
#: requirements-matrix.txt; the suite's counterexamples in the commit that added this table)
_GROUP_STEP = "t is the group's step count (group['step']), not the parameter's: a parameter that missed a gradient " \
              "is bias-corrected for steps it did not take"
_SF_GROUP = "k (the step count t − 1), lr_max and the weight sum Σw are the group's (group['k'], group['lr_max'], " \
            "group['weight_sum']), advanced at every step(): a parameter without a gradient at a step still moves the " \
            "warm-up, the weights and c for the others; the rule counts each parameter's own steps. The per-group and " \
            "add_param_group contract checks fail too (not examined further)"
_PO_COMMON = "raises NegativeLRError (an Exception, not ValueError) for lr < 0"
NOTES: dict[str, str] = {
    "lionpytorch_Lion": "asserts lr > 0 (refuses lr = 0, inside the rule's domain) and accepts weight_decay < 0; the "
                        "cases it accepts conform",
    "po_Lion": "updates conform; " + _PO_COMMON,
    "timm_Lion": "updates conform; accepts weight_decay < 0",
    "po_ADOPT": "the clip bound is clip_lambda(group['step']) with the step already incremented: s^p with s = t, where "
                "the official code (and the paper's c_t) uses the step index s = t − 1 (θ off by (2^p − 1)γ(1 − β1) "
                "at the second step when clipping binds); " + _GROUP_STEP + "; negates and decays p.grad in place; "
                + _PO_COMMON,
    "timm_Adopt": "conforms (timm's clip_exp default is 0.333, the official code's 0.25)",
    "po_AdEMAMix": _GROUP_STEP + "; " + _PO_COMMON + "; its β3 scheduler applies min(…, β3) at every t (the paper's "
                   "formula as written) where the official code uses β3 from t = T on: the two differ only for "
                   "β1 > β3, which the rule leaves undefined",
    "po_Adan": _GROUP_STEP + " (so does the official sail-sg/Adan); " + _PO_COMMON,
    "timm_Adan": _GROUP_STEP + " (so does the official sail-sg/Adan); accepts weight_decay < 0",
    "po_Lamb": "its docstring says 'without bias correction' but the step is divided by 1 − β1^t (lamb.py:311), "
               "φ(z) = min(z, 10) always (class "
               "attribute clamp = 10.0), and ε in the trust ratio's denominator: φ(‖θ‖) / (‖u‖ + ε), which the "
               "paper does not have; " + _GROUP_STEP + "; " + _PO_COMMON,
    "timm_Lamb": _GROUP_STEP + "; accepts β < 0; with always_adapt=False (its default) no trust ratio when "
                 "weight_decay = 0",
    "to_Lamb": "debias=True scales the step by √(1 − β2^t)/(1 − β1^t) outside the trust ratio with ε on the "
               "uncorrected √v (Adam's step-size form), where the paper corrects m and v inside it; clamp_value, "
               "adam and debias are constructor attributes, not per group; rejects lr = 0 (ValueError)",
    # Schedule-Free (schedulefree 1.4.1). With every parameter given a gradient at every step, all four agree with
    # the rules to ~4e-16 over 8 steps (float64; scheduled lr, warm-up, r, p, λ > 0), and their eval() puts the
    # rule's x into the parameters; the suite's float64 counterexamples all have steps without a gradient.
    "sf_SGDScheduleFree": _SF_GROUP + "; first float64 counterexample: grads −1, 1, 0, None, None, 1 (lr 1, β 0.9): "
                          "expected −1.1, actual −1.0 at step 5 (c = 1/6 from the group's six weights instead of "
                          "1/4); weight decay added to p.grad in place (grad.add_(y, alpha=weight_decay), "
                          "sgd_schedulefree.py:161/:178): the contract checks see .grad written; starts in eval mode "
                          "(train_mode=False, :68): the row's factory calls .train()",
    "sf_SGDScheduleFreeReference": _SF_GROUP + "; first float64 counterexample at step 3 of 4, parameter 3: expected "
                                   "0.1, actual −0.0125 (lr 1, β 0.9, defaults otherwise); weight decay added to "
                                   "p.grad in place (sgd_schedulefree_reference.py:165); starts in train mode (:69)",
    "sf_AdamWScheduleFree": _SF_GROUP + " (bias correction 1 − β2^(k+1) too, adamw_schedulefree.py:135); first "
                            "float64 counterexample at step 5 of 6: expected −1.0028869917846834, actual "
                            "−1.0035340614905013 (lr 0.0025, β = (0, 0.999)); divides p.grad in place by the "
                            "denominator and adds λy to it (grad.div_(denom), :171/:198), so .grad is written and "
                            "gradients do not accumulate across steps without zero_grad; no argument validation "
                            "(accepts lr < 0)",
    "sf_AdamWScheduleFreeReference": _SF_GROUP + " (bias correction 1 − β2^(k+1) too, "
                                     "adamw_schedulefree_reference.py:148); first float64 counterexample: grads "
                                     "[−1, 1, −1], [0, −1, None], [1, −1, 1] (lr 1, β = (0, 0.999)): parameter 2 "
                                     "expected −1.0, actual −1.2244 at step 2; no argument validation (accepts "
                                     "lr < 0); its `lr = max(group['lr'], eps)` (:134) is dead code",
}
ENTRIES = [dataclasses.replace(e, note=NOTES.get(e.name, e.note), module=__name__) for e in ENTRIES]


def in_train_mode(build):
    """``build`` (a row's factory) followed by ``.train()`` on the optimizer it returns: a Schedule-Free optimizer
    refuses ``step()`` in eval mode (its constructor's mode for SGDScheduleFree and both AdamW classes), and in
    train mode its parameters hold y, the point the gradient is taken at — the rule's θ."""
    def build_in_train_mode(params, **hp):
        opt = build(params, **hp)
        opt.train()
        return opt

    build_in_train_mode.__signature__ = build.__signature__
    build_in_train_mode.__name__ = build_in_train_mode.__qualname__ = build.__name__
    build_in_train_mode.__doc__ = build.__doc__ + "; then .train()"
    return build_in_train_mode


for _entry in ENTRIES:
    globals()[_entry.name] = in_train_mode(factory(_entry)) if _entry.name in TRAIN_MODE else factory(_entry)
