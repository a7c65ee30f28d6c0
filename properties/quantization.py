"""Block-wise quantized optimizer state (Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"): the
declared layout and the bound on what storing a state tensor in it may change.

An implementation with quantized state keeps each buffer of a large enough parameter (``min_size`` elements or more,
a multiple of ``block``) as one 8-bit code per element and one scale per block of ``block`` consecutive elements: the
scale is the block's largest magnitude (absmax), the code the level nearest to x/scale in a fixed table of 256
``levels`` in [−1, 1]. Stored, x becomes levels[code]·scale; the step that produced x uses x itself.

The bound on |levels[code]·scale − x| follows from the declaration alone: the scale s of x's block lies between the
block's smallest and largest possible absmax (the reference's values ± their bound), x/s within the corresponding
range of y, and rounding y to the nearest level moves it by at most half the widest gap between levels that this
range of y touches (all the way to the end level, outside the table's range): ``quantization_error``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

#: the smallest scale an implementation divides by (a block of zeros): absmax clipped below at this
SCALE_FLOOR = 1e-12
#: a level as held in float32, computed there (a linspace and a product): a few roundings of it; and x/s rounds
LEVEL_ROUNDINGS = 8


def dynamic_levels(signed: bool, bits: int = 8, exponent_bits: int = 7) -> np.ndarray:
    """The dynamic tree quantization's levels (Dettmers 2016, §3; Dettmers et al. 2022, §2.3): for each decade
    10^−(exponent_bits − 1 − i), i = 0 … exponent_bits − 1, the midpoints of 2^i (signed: each sign) or 2^(i+1)
    (unsigned) equal intervals of [0.1, 1] times the decade, then 0 and 1: 2^bits levels, ascending."""
    data = []
    for i in range(exponent_bits):
        n = 2 ** (i + bits - 1 - exponent_bits) if signed else 2 ** (i + bits - exponent_bits)
        edges = np.linspace(0.1, 1.0, n + 1)
        means = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (i - (exponent_bits - 1))
        data += [*means, *(-means if signed else [])]
    levels = np.sort(np.array([*data, 0.0, 1.0]))
    assert len(levels) == 2**bits
    return levels


MAPS = {"signed": dynamic_levels(True), "unsigned": dynamic_levels(False)}


@dataclass(frozen=True)
class Quantization:
    """A declared quantized-state layout: per buffer (the rule's state names), the level table it is stored in."""

    maps: dict = field(default_factory=dict)   # buffer -> "signed" | "unsigned"
    block: int = 256
    min_size: int = 4096

    def quantizes(self, numel: int) -> bool:
        return numel >= self.min_size and numel % self.block == 0

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Parameter shapes a search draws for this layout: quantized ones (the smallest whole number of blocks at
        or above ``min_size``; as a matrix of rows of one block; twice that) and small unquantized ones."""
        n = -(-self.min_size // self.block) * self.block
        return ((n,), (n // self.block, self.block), (2, n), (3,), (5, 2))

    def describe(self) -> str:
        buffers = ", ".join(f"{b} ({m})" for b, m in self.maps.items())
        return (f"quantized state: {buffers} in blocks of {self.block} with an absmax scale, dynamic 8-bit levels, "
                f"for parameters of ≥ {self.min_size} elements")


def parse(spec: str) -> Quantization:
    """``exp_avg=signed,exp_avg_sq=unsigned[,block=256][,min_size=4096]`` → a Quantization; ValueError saying what
    is wrong and what would be right."""
    maps, options = {}, {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"--quantized-state: {item!r} is not NAME=VALUE (e.g. exp_avg=signed,block=256)")
        if key in ("block", "min_size"):
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"--quantized-state: {key} must be a positive integer, not {value!r}")
            options[key] = int(value)
        elif value in MAPS:
            maps[key] = value
        else:
            raise ValueError(f"--quantized-state: buffer {key!r} has map {value!r}; the maps are "
                             f"{', '.join(sorted(MAPS))}")
    if not maps:
        raise ValueError("--quantized-state names no buffer (e.g. exp_avg=signed,exp_avg_sq=unsigned)")
    return Quantization(maps, **options)


def _gap_maxima(levels: np.ndarray) -> np.ndarray:
    """M[i, j] = the largest half gap among the intervals i … j of the levels (i ≤ j)."""
    half = np.diff(levels) / 2
    n = len(half)
    out = np.zeros((n, n))
    for i in range(n):
        out[i, i:] = np.maximum.accumulate(half[i:])
    return out


_MAXIMA = {name: _gap_maxima(levels) for name, levels in MAPS.items()}


def _rounding_distance(y_lo: np.ndarray, y_hi: np.ndarray, levels: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """The largest distance from a y in [y_lo, y_hi] to the level nearest to it: half the widest gap the range
    touches, or the way to the end level from outside the levels' range."""
    n = len(levels) - 1
    lo = np.clip(np.searchsorted(levels, y_lo, side="right") - 1, 0, n - 1)
    hi = np.clip(np.searchsorted(levels, y_hi, side="left") - 1, 0, n - 1)
    hi = np.maximum(hi, lo)
    inside = maxima[lo, hi]
    below = np.maximum(levels[0] - y_lo, 0.0)
    above = np.maximum(y_hi - levels[-1], 0.0)
    return np.maximum(inside, np.maximum(below, above))


def quantization_error(value: np.ndarray, bound: np.ndarray, layout: Quantization, buffer: str) -> np.ndarray:
    """The bound on how far storing a state tensor in ``layout`` moves it: ``value`` the reference's state of one
    parameter, ``bound`` its error bound (the implementation's state lies within it). 0 where the layout leaves the
    parameter or the buffer unquantized."""
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    e = np.broadcast_to(np.asarray(bound, dtype=np.float64), np.shape(value)).reshape(-1)
    if buffer not in layout.maps or not layout.quantizes(v.size):
        return np.zeros(np.shape(value))
    levels, maxima = MAPS[layout.maps[buffer]], _MAXIMA[layout.maps[buffer]]
    lo, hi = (v - e).reshape(-1, layout.block), (v + e).reshape(-1, layout.block)
    s_hi = np.maximum(np.max(np.maximum(np.abs(lo), np.abs(hi)), axis=1, keepdims=True), SCALE_FLOOR)
    s_lo = np.maximum(np.max(np.where((lo > 0) | (hi < 0), np.minimum(np.abs(lo), np.abs(hi)), 0.0), axis=1,
                             keepdims=True), SCALE_FLOOR)
    with np.errstate(invalid="ignore", divide="ignore"):
        corners = np.stack([lo / s_lo, lo / s_hi, hi / s_lo, hi / s_hi])
    y_lo = np.clip(corners.min(axis=0), -1.0, 1.0)
    y_hi = np.clip(corners.max(axis=0), -1.0, 1.0)
    distance = _rounding_distance(y_lo.reshape(-1), y_hi.reshape(-1), levels, maxima).reshape(y_lo.shape)
    u = torch.finfo(torch.float32).eps / 2
    slack = LEVEL_ROUNDINGS * u * (np.abs(y_hi) + np.abs(y_lo))
    out = s_hi * (distance + slack)
    return np.where(np.isfinite(out), out, math.inf).reshape(np.shape(value))
