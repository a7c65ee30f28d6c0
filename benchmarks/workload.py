"""What a benchmarked step works on: a realistic parameter list of a given total size, with its gradients.

An optimizer steps over a model's parameter list, not one flat tensor: a few large matrices, many small vectors.
Every size is the same small transformer (27 tensors): a token embedding V×d, two blocks of [LayerNorm weight and
bias, attention qkv 3d×d + bias, output projection d×d + bias, LayerNorm weight and bias, MLP up 4d×d + bias,
MLP down d×4d + bias], and a final LayerNorm. The width d and vocabulary V are chosen so that the blocks hold
about 70% of the elements and the embedding the rest, and the total is within d/2 of the nominal size. Keeping the
tensor count fixed across sizes keeps the per-tensor overhead of a step (kernel launches, Python) the same at every
size, so time per element against size reads as overhead plus bandwidth.

Values are drawn once per (device, size, dtype) from a fixed seed: g ~ N(0, 1) and θ ~ 0.001·N(0, 1), smaller than a
model's initialisation so that bfloat16 resolves every update the rules make at their default learning rates in the
few dozen steps a case takes (RAdam's first rectified steps move θ by ~3e-5; at |θ| = 0.02 bfloat16 rounds that
away, and the harness would rightly refuse a step that changed nothing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BLOCKS = 2


def shapes(size: int) -> list[tuple[int, ...]]:
    """The parameter shapes of the model with about ``size`` elements."""
    d = max(2, round(math.sqrt(0.7 * size / (12 * BLOCKS))))
    per_block = 12 * d * d + 13 * d
    vocab = max(1, round((size - BLOCKS * per_block - 2 * d) / d))
    out: list[tuple[int, ...]] = [(vocab, d)]
    for _ in range(BLOCKS):
        out += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,),
                (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return out + [(d,), (d,)]


def elements(size: int) -> int:
    return sum(math.prod(s) for s in shapes(size))


def label(size: int) -> str:
    """1e5 for 100000; sizes are powers of ten or written out."""
    exponent = round(math.log10(size))
    return f"1e{exponent}" if 10 ** exponent == size else str(size)


@dataclass
class Workload:
    params: list[torch.nn.Parameter]

    @property
    def elements(self) -> int:
        return sum(p.numel() for p in self.params)


_TEMPLATE: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}


def _template(size: int, dtype: torch.dtype, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The drawn (θ, g) values, kept for the most recent (size, dtype, device) only: the benchmarks are ordered so
    that consecutive cases share it, and a 1e8-element copy should not outlive its cases."""
    key = (size, dtype, device)
    if key not in _TEMPLATE:
        _TEMPLATE.clear()
        gen = torch.Generator(device=device).manual_seed(size)
        values = []
        for shape in shapes(size):
            theta = torch.randn(shape, generator=gen, device=device).mul_(1e-3).to(dtype)
            grad = torch.randn(shape, generator=gen, device=device).to(dtype)
            values.append((theta, grad))
        _TEMPLATE[key] = values
    return _TEMPLATE[key]


def make(size: int, dtype: torch.dtype, device: str) -> Workload:
    """Fresh parameters (with their gradients set) for one benchmark case."""
    params = []
    for theta, grad in _template(size, dtype, device):
        p = torch.nn.Parameter(theta.clone())
        p.grad = grad.clone()
        params.append(p)
    return Workload(params)


def release() -> None:
    _TEMPLATE.clear()
