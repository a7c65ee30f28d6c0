"""SGD of bfloat16 parameters with stochastic rounding: the step computed in float32, then rounded to one of the two
bfloat16 numbers around it, away from zero with probability (distance from the one towards zero) / (their spacing),
so that the rounded parameter is the float32 one in expectation. Judged by ``properties/test_stochastic_rounding.py``
(unbiasedness, at a stated false-alarm rate); each planted bug is a correct one but for the one method it rewrites.
"""
from __future__ import annotations

import torch

from optimizers.planted import _loss

LOW_BITS = 16   # a float32's bits below bfloat16's


class StochasticRoundingSGD(torch.optim.Optimizer):
    """θ ← SR(θ − γ g), the difference computed in float32."""

    def __init__(self, params, lr=1e-3):
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        super().__init__(params, dict(lr=lr))

    def _random(self, shape) -> torch.Tensor:
        return torch.randint(0, 1 << LOW_BITS, shape, dtype=torch.int32)

    def _round(self, x: torch.Tensor) -> torch.Tensor:
        """Adding a uniform random number below 2^16 to the magnitude's bits carries into bfloat16's last bit with
        probability (low bits) / 2^16; the low bits are then dropped (exactly: the result is a bfloat16 number)."""
        bits = x.view(torch.int32) + self._random(x.shape)
        return (bits & -(1 << LOW_BITS)).view(torch.float32).to(torch.bfloat16)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                x = p.float() - group["lr"] * p.grad.float()
                p.copy_(self._round(x) if p.dtype == torch.bfloat16 else x)
        return loss


class TruncatingSGD(StochasticRoundingSGD):
    """The low bits dropped without the random carry: always towards zero."""

    def _random(self, shape):
        return torch.zeros(shape, dtype=torch.int32)


class HalfRangeSGD(StochasticRoundingSGD):
    """The random number drawn below 2^15 instead of 2^16: rounds away from zero only past the midpoint, and then
    with twice too small a probability."""

    def _random(self, shape):
        return torch.randint(0, 1 << (LOW_BITS - 1), shape, dtype=torch.int32)


class NearestSGD(StochasticRoundingSGD):
    """Round to nearest (float32 → bfloat16 conversion): deterministic, so biased for every value not at a midpoint."""

    def _round(self, x):
        return x.to(torch.bfloat16)


CORRECT = ("StochasticRoundingSGD",)
PLANTED = (("TruncatingSGD", "always towards zero"), ("HalfRangeSGD", "random carry from 15 bits"),
           ("NearestSGD", "round to nearest"))
