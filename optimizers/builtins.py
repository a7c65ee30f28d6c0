"""The implementations checked when no ``--optimizer`` is given: every torch.optim class the suite has a rule for,
in each code path torch offers on the device (for-loop, foreach, fused, where the class has them), and the
documents' template optimizers."""
from __future__ import annotations

import inspect

import torch

from optimizers import template
from optimizers.adapters import Subject
from reference.registry import RULES

# torch.optim classes with a fused kernel; torch raises when fused=True is asked of the others.
FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}

TEMPLATE_RULES = {"GD": "sgd", "Momentum": "book_momentum", "Adagrad": "book_adagrad", "RMSProp": "book_rmsprop",
                  "Adam": "book_adam"}


def code_paths(torch_class: str) -> dict[str, dict]:
    """The code paths of ``torch.optim.<torch_class>`` and the constructor arguments that choose each: for-loop and
    foreach where the class takes ``foreach`` (one path otherwise: SparseAdam, LBFGS), and fused for ``FUSED``."""
    paths = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}}
    if "foreach" not in inspect.signature(getattr(torch.optim, torch_class)).parameters:
        paths = {"for-loop": {}}
    if torch_class in FUSED:
        paths["fused"] = {"fused": True}
    return paths


def torch_subjects(device: str = "cpu") -> list[Subject]:
    out = []
    for rule in RULES.values():
        if rule.torch_class is None:
            continue
        cls = getattr(torch.optim, rule.torch_class)
        for path, fixed in code_paths(rule.torch_class).items():
            out.append(Subject(f"torch.optim.{rule.torch_class}[{path}]", cls, rule, f"torch.optim:{rule.torch_class}",
                               fixed, device))
    return out


def template_subjects(device: str = "cpu") -> list[Subject]:
    return [Subject(f"template.{name}", getattr(template, name), RULES[rule], f"optimizers.template:{name}",
                    device=device) for name, rule in TEMPLATE_RULES.items()]


def builtin_subjects(device: str = "cpu") -> list[Subject]:
    return torch_subjects(device) + template_subjects(device)
