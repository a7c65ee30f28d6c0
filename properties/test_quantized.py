"""Block-wise 8-bit optimizer state (``properties/quantization.py``), judged with its declared layout
(``Subject.quantization``): each step from the implementation's own parameters and dequantized state, θ within one
step's float32 bound, and the stored state within the layout's quantization bound of the rule's. Correct
implementations conform — the suite's own (``optimizers/planted_quantized.py``) and torchao's ``Adam8bit`` and
``AdamW8bit`` (skipped where torchao is not installed); each planted bug fails; and the same quantized Adam judged
as a plain one (its state not declared) does not conform: the layout is what makes the verdict.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings

from optimizers import planted_quantized
from optimizers.adapters import Subject
from properties.assertions import NonConformance
from properties.quantization import MAPS, Quantization, dynamic_levels, parse, quantization_error
from properties.strategies import cases
from properties.test_trajectory import check_steps
from reference.registry import RULES

pytestmark = pytest.mark.seeded

MAX_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "300"))
CORRECT_EXAMPLES = int(os.environ.get("PLANTED_CORRECT_EXAMPLES", "40"))
HAVE_TORCHAO = importlib.util.find_spec("torchao") is not None
#: quantized (≥ 4096 elements, whole blocks of 256) and not (the rest keep float32 state), mixed in one case
SHAPES = ((4096,), (16, 256), (2, 4096), (3,), (5, 2))
TORCHAO_LAYOUT = Quantization({"exp_avg": "signed", "exp_avg_sq": "unsigned"})


@contextlib.contextmanager
def _eager():
    """``torch.compile`` as the identity: torchao compiles its step per hyperparameter value (seconds each); eagerly
    its own code runs as written."""
    original = torch.compile
    torch.compile = lambda fn=None, **kwargs: fn if fn is not None else (lambda f: f)
    try:
        yield
    finally:
        torch.compile = original


def _torchao(name: str):
    import torchao.optim

    class Eager(getattr(torchao.optim, name)):
        """torchao's optimizer run eagerly; a learning rate set as a number (a scheduler's) written into the
        float32 tensor torchao keeps it in."""

        def step(self, closure=None):
            for group in self.param_groups:
                if not isinstance(group["lr"], torch.Tensor):
                    group["lr"] = torch.tensor(group["lr"], dtype=torch.float32)
            with _eager():
                return super().step(closure)

    Eager.__name__ = name
    return Eager


# amsgrad is held off: eagerly, torchao's AMSGrad takes torch.maximum of its quantized tensor, which only its
# compiled path supports
def torchao_adam8bit(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    return _torchao("Adam8bit")(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def torchao_adamw8bit(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return _torchao("AdamW8bit")(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def subject(name: str, layout: Quantization | None = planted_quantized.LAYOUT) -> Subject:
    if name.startswith("torchao"):
        factory, rule = globals()[name], RULES["adamw" if "adamw" in name else "adam"]
        return Subject(name, factory, rule, f"properties.test_quantized:{name}", quantization=TORCHAO_LAYOUT)
    return Subject(name, getattr(planted_quantized, name), RULES["adam"], f"optimizers.planted_quantized:{name}",
                   quantization=layout)


def search(s: Subject, max_examples: int) -> None:
    @settings(max_examples=max_examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(s, torch.float32, max_steps=8, shapes=SHAPES))
    def run(case):
        check_steps(s, case)
    run()


@pytest.mark.parametrize("name", [*planted_quantized.CORRECT, *(pytest.param(n, marks=pytest.mark.skipif(
    not HAVE_TORCHAO, reason="torchao is not installed (pip install -r requirements.txt)"))
    for n in ("torchao_adam8bit", "torchao_adamw8bit"))])
def test_correct_quantized_implementation_conforms(name):
    search(subject(name), CORRECT_EXAMPLES)


@pytest.mark.parametrize("name, what", planted_quantized.PLANTED, ids=[n for n, _ in planted_quantized.PLANTED])
def test_planted_quantization_bug_is_caught(name, what):
    with pytest.raises(NonConformance):
        search(subject(name), MAX_EXAMPLES)


def test_quantized_state_judged_as_plain_state_does_not_conform():
    """The correct 8-bit Adam judged without its layout (state carried by the reference, no quantization term):
    after a few steps its θ leaves float32 Adam's bound. Plain float32 Adam judged with the layout conforms (a state
    stored exactly is within any quantization bound)."""
    with pytest.raises(NonConformance):
        search(subject("Adam8bit", layout=None), MAX_EXAMPLES)
    plain = Subject("torch.optim.Adam", torch.optim.Adam, RULES["adam"], "torch.optim:Adam", {"foreach": False},
                    quantization=planted_quantized.LAYOUT)
    search(plain, CORRECT_EXAMPLES)


@pytest.mark.skipif(not HAVE_TORCHAO, reason="torchao is not installed")
def test_declared_levels_are_torchaos_tables():
    """The dynamic map written from the papers is torchao's table, within the float32 roundings of its levels that
    the bound allows (``LEVEL_ROUNDINGS``)."""
    from torchao.optim.subclass_8bit import get_qmap_signed, get_qmap_unsigned
    for ours, theirs in ((MAPS["signed"], get_qmap_signed()), (MAPS["unsigned"], get_qmap_unsigned())):
        theirs = np.asarray(theirs, dtype=np.float32).astype(np.float64)
        assert np.all(np.abs(theirs - ours) <= 4 * np.finfo(np.float32).eps * np.abs(ours))


def test_quantization_bound_by_hand():
    """One block of 256: values i/255 (scale 1), exact (bound 0). Each value's error is at most half the gap of the
    unsigned levels around it; the largest gap of the unsigned map is in [0.1, 1]: 0.9/128, so no element's bound
    exceeds 0.9/256 (+ the float32 slack), and an exact level (1.0) still has its neighbours' half gap at most."""
    layout = Quantization({"v": "unsigned"}, block=256, min_size=256)
    v = np.arange(256) / 255.0
    e = quantization_error(v, np.zeros(256), layout, "v")
    assert np.all(e <= 0.9 / 256 + 1e-6) and e[-1] > 0
    levels = dynamic_levels(signed=False)
    nearest = levels[np.abs(levels[None, :] - v[:, None]).argmin(axis=1)]
    assert np.all(np.abs(nearest - v) <= e)
    assert np.all(quantization_error(v[:255], np.zeros(255), layout, "v") == 0)   # not whole blocks: unquantized


def test_a_bad_layout_is_one_line():
    with pytest.raises(ValueError, match="the maps are signed, unsigned"):
        parse("exp_avg=int8")
    with pytest.raises(ValueError, match="block must be a positive integer"):
        parse("exp_avg=signed,block=x")
    assert parse("exp_avg=signed,exp_avg_sq=unsigned,block=128").block == 128
