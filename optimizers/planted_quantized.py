"""Adam with block-wise 8-bit state (Dettmers et al. 2022), as implementations keep it: ``exp_avg`` in the signed
and ``exp_avg_sq`` in the unsigned dynamic map, one absmax scale per block of 256 elements, for parameters of 4096
elements or more (a multiple of the block); smaller ones keep float32 state. Each step dequantizes the state,
computes the new moments and the update in float32 from them, and stores the moments quantized. Judged with
``--quantized-state exp_avg=signed,exp_avg_sq=unsigned`` (``LAYOUT``): a correct one conforms to rule ``adam``;
each planted bug is a correct one but for the one method it rewrites.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optimizers.planted import _loss
from properties.quantization import MAPS, Quantization

LAYOUT = Quantization({"exp_avg": "signed", "exp_avg_sq": "unsigned"})


@dataclass
class Blockwise:
    """A quantized buffer: a code per element into ``levels``, a scale per block; ``dequantize()`` gives it back."""

    codes: torch.Tensor
    scale: torch.Tensor
    levels: torch.Tensor

    def dequantize(self) -> torch.Tensor:
        return (self.levels[self.codes.long()].view(self.scale.numel(), -1) * self.scale[:, None]).view(self.codes.shape)


class Adam8bit(torch.optim.Optimizer):
    """Adam (coupled L2 decay) with 8-bit block-wise moments."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid hyperparameter: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.maps = {name: torch.tensor(MAPS[kind], dtype=torch.float32) for name, kind in LAYOUT.maps.items()}

    # ---- storage ---------------------------------------------------------------------------------------------------
    def _scale(self, blocks: torch.Tensor) -> torch.Tensor:
        return blocks.abs().amax(dim=1).clamp(min=1e-12)

    def _codes(self, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The nearest level's index for each y (ties up)."""
        above = torch.searchsorted(levels, y.contiguous()).clamp(1, len(levels) - 1)
        nearer_below = (y - levels[above - 1]) < (levels[above] - y)
        return torch.where(nearer_below, above - 1, above).to(torch.uint8)

    def _store(self, x: torch.Tensor, name: str):
        if not LAYOUT.quantizes(x.numel()):
            return x.clone()
        levels = self.maps[name]
        blocks = x.reshape(-1, LAYOUT.block)
        scale = self._scale(blocks)
        codes = self._codes(blocks / scale[:, None], levels)
        return Blockwise(codes.view(x.shape), scale, levels)

    def _load(self, held, name: str) -> torch.Tensor:
        return held.dequantize() if isinstance(held, Blockwise) else held

    # ---- the rule ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            β1, β2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = self._store(torch.zeros_like(p, dtype=torch.float32), "exp_avg")
                    state["exp_avg_sq"] = self._store(torch.zeros_like(p, dtype=torch.float32), "exp_avg_sq")
                state["step"] += 1
                t = state["step"]
                g = p.grad.float() + group["weight_decay"] * p.float()
                m = self._load(state["exp_avg"], "exp_avg").lerp(g, 1 - β1)
                v = self._load(state["exp_avg_sq"], "exp_avg_sq") * β2 + (1 - β2) * g * g
                state["exp_avg"], state["exp_avg_sq"] = self._store(m, "exp_avg"), self._store(v, "exp_avg_sq")
                denom = (v / (1 - β2**t)).sqrt() + group["eps"]
                p.copy_(p.float() - group["lr"] / (1 - β1**t) * m / denom)
        return loss


class Adam8bitFirstBlockScale(Adam8bit):
    """Dequantized with the first block's scale for every block."""

    def _load(self, held, name):
        if isinstance(held, Blockwise):
            return Blockwise(held.codes, held.scale[:1].expand_as(held.scale), held.levels).dequantize()
        return held


class Adam8bitSignedSecondMoment(Adam8bit):
    """The second moment stored in the signed map (half its levels for v ≥ 0) though dequantized as declared."""

    def _store(self, x, name):
        return super()._store(x, "exp_avg" if name == "exp_avg_sq" else name)


class Adam8bitCodesTruncated(Adam8bit):
    """y rounded down to the level below instead of to the nearest one."""

    def _codes(self, y, levels):
        return (torch.searchsorted(levels, y.contiguous(), right=True) - 1).clamp(0, len(levels) - 1).to(torch.uint8)


class Adam8bitScaleWithoutAbs(Adam8bit):
    """The block's scale taken as its largest value rather than its largest magnitude: a block of negative values
    (or mostly) overflows the levels' range and clips."""

    def _scale(self, blocks):
        return blocks.amax(dim=1).clamp(min=1e-12)


class Adam8bitStepFromStoredMoments(Adam8bit):
    """The update computed from the moments after storing them (quantized), not from the moments themselves."""

    def _store(self, x, name):
        held = super()._store(x, name)
        x.copy_(self._load(held, name))
        return held


CORRECT = ("Adam8bit",)
PLANTED = (
    ("Adam8bitFirstBlockScale", "dequantized with the first block's scale"),
    ("Adam8bitSignedSecondMoment", "second moment in the signed map"),
    ("Adam8bitCodesTruncated", "codes rounded down instead of to nearest"),
    ("Adam8bitScaleWithoutAbs", "block scale max instead of absmax"),
    ("Adam8bitStepFromStoredMoments", "update from the quantized moments"),
)
