"""Closed forms of the learning-rate schedulers 001 lists (``optim.lr_scheduler.LambdaLR``, ``ExponentialLR``,
``MultiStepLR``, ``StepLR``), written from torch.optim.lr_scheduler's documentation — never by calling it.

Each gives the learning rate of a param group whose initial learning rate is ``base_lr`` after the scheduler's
``step()`` has been called ``t`` times (t = ``last_epoch``; t = 0 right after construction), pure float64 arithmetic:

    StepLR(step_size, γ)        η_t = η_0 · γ^⌊t / step_size⌋
    MultiStepLR(milestones, γ)  η_t = η_0 · γ^#{m ∈ milestones : m ≤ t}     (a milestone listed k times counts k times)
    ExponentialLR(γ)            η_t = η_0 · γ^t
    LambdaLR(λ)                 η_t = η_0 · λ(t)

``exponent`` says how many factors γ the schedule has applied by step t: a scheduler that multiplies the learning
rate by γ as it goes has rounded that many products (the tolerance model of ``properties/test_schedulers.py``).
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Callable, Sequence


def step_exponent(t: int, *, step_size: int) -> int:
    return t // step_size


def multistep_exponent(t: int, *, milestones: Sequence[int]) -> int:
    return bisect_right(sorted(milestones), t)


def step_lr(base_lr: float, t: int, *, step_size: int, gamma: float) -> float:
    """StepLR: "Decays the learning rate of each parameter group by gamma every step_size epochs":
    η_t = η_0 · γ^⌊t / step_size⌋."""
    return base_lr * gamma ** step_exponent(t, step_size=step_size)


def multistep_lr(base_lr: float, t: int, *, milestones: Sequence[int], gamma: float) -> float:
    """MultiStepLR: "Decays the learning rate … by gamma once the number of epoch reaches one of the milestones":
    η_t = η_0 · γ^#{m ∈ milestones : m ≤ t}, counting a repeated milestone as often as it is listed."""
    return base_lr * gamma ** multistep_exponent(t, milestones=milestones)


def exponential_lr(base_lr: float, t: int, *, gamma: float) -> float:
    """ExponentialLR: "Decays the learning rate … by gamma every epoch": η_t = η_0 · γ^t."""
    return base_lr * gamma**t


def lambda_lr(base_lr: float, t: int, *, lr_lambda: Callable[[int], float]) -> float:
    """LambdaLR: "Sets the learning rate … to the initial lr times a given function": η_t = η_0 · λ(t)."""
    return base_lr * lr_lambda(t)
