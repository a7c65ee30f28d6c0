"""The tolerance model: how far an implementation may be from the float64 reference, per element, per step.

Every elementary operation rounds with relative error at most u (the dtype's unit roundoff, ``finfo.eps / 2``).
Two terms, both computed from the case itself, never tuned:

1. **Rounding budget** (``floor``). At step s an implementation writes θ at most ``WRITES_PER_STEP`` = 3 times
   (decoupled decay, the update, the rounded decay factor), each off by ≤ u·|θ_s|; it computes the update
   Δ_s = θ_s − θ_{s−1} with at most ``OPS_PER_STEP`` = 16 operations on state that has gathered at most
   ``OPS_PER_STATE_STEP`` = 4 roundings per step so far, so Δ_s is off by ≤ (16 + 4s)·u·|Δ_s|. Summed:
   ``floor_t = u · Σ_{s≤t} (3|θ_s| + (16 + 4s)|Δ_s|) + tiny``.

2. **Amplification by the rule's own dynamics** (``sensitivity``). The budget above is what each step adds;
   later steps can magnify it — weight decay feeds θ's error back into the gradient, a cancellation
   (θ ≈ γ·update, m ≈ 0 under alternating gradients, v − ḡ² in centered RMSprop) turns a small absolute error
   into a large relative one that a later division magnifies. We measure this rather than model it:
   * *Monte Carlo arithmetic*: the float64 reference is run ``MCA_SAMPLES`` more times, each time perturbing,
     after every step, θ by a uniform random fraction of that step's budget and every state tensor by a uniform
     random relative 4u; the spread from the unperturbed run is how far honest rounding can carry the result.
   * *Lower precision*: the reference is run once with its arithmetic in float32 (and, for half dtypes, once in
     the dtype), which also catches cancellation inside a single step; its difference from float64 is scaled
     from float32's unit roundoff to the dtype's.
   Two correct implementations, or two samples, differ by amounts of the same order; ``SENSITIVITY_FACTOR`` = 8
   covers that spread.

   ``tolerance_t = SENSITIVITY_FACTOR · sensitivity_t + floor_t``

With float64 parameters this is ~1e-16 relative plus amplification, so an implementation computing in float32
internally (~1e-7 relative) fails while one that only reorders float64 operations passes.

Not judged (Hypothesis discards the case): a float64 reference that is not finite or leaves the dtype's range,
and a case where a perturbation of rounding size makes the reference non-finite — the rule is ill-conditioned
there (centered RMSprop with α = 0: √(v − ḡ²) of a rounding residue), and no implementation can be held to it.
"""
from __future__ import annotations

import numpy as np
import torch

from reference.trajectory import Case, reference_trajectory

WRITES_PER_STEP = 3
OPS_PER_STEP = 16
OPS_PER_STATE_STEP = 4
SENSITIVITY_FACTOR = 8.0
MCA_SAMPLES = 2


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def step_budget(u: float, step: int, before, after):
    """The rounding one step may add to θ (the floor's summand), elementwise."""
    return u * (WRITES_PER_STEP * torch.abs(after) + (OPS_PER_STEP + OPS_PER_STATE_STEP * (step + 1))
                * torch.abs(after - before))


def _mca_run(case: Case, seed: int):
    u = unit_roundoff(case.dtype)
    gen = torch.Generator().manual_seed(seed)

    def noise(x):
        return 2 * torch.rand(x.shape, generator=gen, dtype=torch.float64) - 1

    def perturb(step, before, after, state):
        after = after + noise(after) * step_budget(u, step, before, after)
        state = {k: v * (1 + OPS_PER_STATE_STEP * u * noise(v)) if torch.is_tensor(v) and v.is_floating_point()
                 else v for k, v in state.items()}
        return after, state

    return reference_trajectory(case, torch.float64, perturb)


def sensitivity(case: Case, expected: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Per step and parameter: how far rounding of the case's dtype can carry the result (inf: ill-conditioned)."""
    u = unit_roundoff(case.dtype)
    samples = [(_mca_run(case, seed), 1.0, "mca") for seed in range(MCA_SAMPLES)]
    samples.append((reference_trajectory(case, torch.float32), u / unit_roundoff(torch.float32), "float32"))
    if case.dtype not in (torch.float32, torch.float64):
        samples.append((reference_trajectory(case, case.dtype), 1.0, "dtype"))
    out = []
    for t, exp_t in enumerate(expected):
        row = []
        for i, e in enumerate(exp_t):
            s = np.zeros_like(e)
            for traj, scale, kind in samples:
                with np.errstate(invalid="ignore", over="ignore"):
                    d = scale * np.abs(traj[t][i] - e)
                # float32 overflowing says nothing about a wider dtype's rounding: the other terms bound it.
                d = np.where(np.isfinite(d), d, 0.0 if kind == "float32" else np.inf)
                s = np.maximum(s, d)
            row.append(s)
        out.append(row)
    return out


def tolerances(case: Case, expected: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Per step and parameter, the elementwise tolerance of the model above."""
    u = unit_roundoff(case.dtype)
    tiny = torch.finfo(case.dtype).tiny
    sens = sensitivity(case, expected)
    prev = [torch.tensor(np.asarray(p, dtype=np.float64)) for p in case.params]
    floor = [torch.zeros_like(p) for p in prev]
    out = []
    for t, exp_t in enumerate(expected):
        row = []
        for i, e in enumerate(exp_t):
            now = torch.tensor(e)
            if case.grads[t][i] is not None:
                floor[i] = floor[i] + step_budget(u, t, prev[i], now)
            row.append(SENSITIVITY_FACTOR * sens[t][i] + floor[i].numpy() + tiny)
            prev[i] = now
        out.append(row)
    return out


def judgeable(case: Case, expected: list[list[np.ndarray]], tol: list[list[np.ndarray]] | None = None) -> bool:
    """Whether the float64 reference stays finite and inside the dtype's range (with headroom for one more
    multiply), and rounding-sized perturbations keep it finite: whether the rule is defined at this precision."""
    limit = torch.finfo(case.dtype).max / 1e3
    ok = all(np.all(np.isfinite(e)) and np.all(np.abs(e) < limit) for row in expected for e in row)
    return ok and (tol is None or all(np.all(np.isfinite(x)) for row in tol for x in row))
