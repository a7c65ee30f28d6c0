"""The tolerance model: how far an implementation may be from the float64 reference, per element, per step.

Every elementary operation rounds with relative error at most u (the dtype's unit roundoff, ``finfo.eps / 2``).
Two terms, both computed from the case itself, never tuned:

1. **Rounding budget** (``floor``). At step s an implementation writes θ at most ``WRITES_PER_STEP`` = 3 times
   (decoupled decay, the update, the rounded decay factor), each off by ≤ u·|θ_s|; it computes the update
   Δ_s = θ_s − θ_{s−1} with at most ``OPS_PER_STEP`` = 16 operations on state that has gathered at most
   ``OPS_PER_STATE_STEP`` = 4 roundings per step so far, so Δ_s is off by ≤ (16 + 4s)·u·|Δ_s|. Summed:
   ``floor_t = u · Σ_{s≤t} (3|θ_s| + (16 + 4s)|Δ_s|) + tiny``.

2. **Amplification by the case's conditioning** (``sensitivity``). Later operations can magnify rounding:
   weight decay feeds θ's error back into the gradient; a cancellation (θ ≈ γ·update, m ≈ 0 under alternating
   gradients, v − ḡ² in centered RMSprop) turns a small absolute error into a large relative one that a later
   division magnifies. We measure this rather than model it, by *Monte Carlo arithmetic* (Parker 1997): the
   float64 reference is run again with every floating-point result of every operation multiplied by (1 ± u), sign
   at random — rounding at the dtype's precision, simulated at its largest — and once with its arithmetic really
   in float32 (and in the dtype itself for half dtypes), that difference scaled from float32's unit roundoff to
   the dtype's. The largest difference from the exact run is the sensitivity. The number of random runs is set
   by cancellation: perturbations of equal size and opposite sign cancel, and where two of them dominate an
   element (g² − v ≈ −1 rounded, then scaled by 1 − α = 1) a run sees nothing with probability ½, so k runs
   all see nothing with probability 2^−k (false-alarm seed 11 found an element whose four runs all cancelled).
   An element-wise rule runs them as one batch along a leading axis, where more runs cost almost nothing:
   ``MCA_BATCH_SAMPLES`` = 16 (2^−16; 20-step Adam on 53 elements: 0.16 s for 4, 0.17 s for 16); a rule that
   is not element-wise runs them one by one, ``MCA_SAMPLES`` = 4, as do the closed-loop properties.
   A state update may be written in another form than the documentation's — torch computes the moving average
   m ← β1 m + (1 − β1) g as ``lerp(m, g, 1 − β1)`` = m + (1 − β1)(g − m), whose error is relative to the previous
   m, not to the (β1 times smaller) new one — so each MCA run also moves every state tensor, after every step,
   by ±4u·(|s_{t−1}| + |s_t|): the budget of a state update relative to its inputs (except exact zeros, which
   are assigned rather than computed, like Rprop's forgotten gradient, and which every implementation writes
   exactly). For the same reason every hyperparameter declared in [0, 1] (β, α, ρ, momentum: used as β or
   through 1 − β) moves by ±u absolute, the others (γ, ε, λ) by ±u relative — and becomes a 0-d tensor,
   so that what the rule derives from it (1 − β, β^t, 1 − β^t) is rounded like every other result. It is
   re-rounded at every use — an implementation may round it differently in each place (optax takes 1 − β2 from
   the Python number and β2^t from β2 in float32) — with signs at random, and in the last sample alternately −δ
   and +δ over each hyperparameter's uses in a step, the same pattern every step, so that uses whose errors would
   cancel under one sign (1 − β2 and β2^t) do not, by luck or not at all, and the difference builds up over steps.
   Below the smallest normal number rounding is absolute (η, the subnormal spacing: ``RoundingNoise``), and which
   product underflows depends on the implementation's order — γ·g formed first underflows where g/(√v + ε)·γ
   does not — so each MCA run also moves θ and g by ±η/c, c the smallest factor a hyperparameter can put on them
   (γ, λ, β or 1 − β; at most 1), without crossing zero: negligible for normal values, the whole story for
   subnormal ones.
   Two correct implementations, or two samples, differ by amounts of the same order; ``SENSITIVITY_FACTOR`` = 8
   covers that spread.

   ``tolerance_t = SENSITIVITY_FACTOR · sensitivity_t + floor_t``

With float64 parameters this is ~1e-16 relative plus amplification, so an implementation computing in float32
internally (~1e-7 relative) fails while one that only reorders float64 operations passes.

Judged for finiteness only: a case where rounding decides the sign of a difference the rule declares cancelling
(``undetermined_sign``: ṽ = v − ḡ² ≈ 0 in centered RMSprop) — any value is as right as another, but not NaN or inf.

Not judged (Hypothesis discards the case): a case whose exact reference run overflows an intermediate, or forms a
product of factors ≥ 1 within the factor c (below) of the dtype's largest number (``intermediate_overflow``: the result depends on
the order of the operations); a float64 reference that is not finite or leaves the dtype's range,
and a case that is ill-conditioned at the dtype's precision — a rounding-sized perturbation makes the reference
non-finite, or moves it by more than ``ILL_CONDITIONED`` = 1% of the trajectory's size (|θ_t| + Σ|Δ_s|): the
rule does not determine the result at that precision (centered RMSprop with α ≈ 0: √(v − ḡ²) of a rounding
residue), and no implementation can be held to it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from reference.cancellation import watching
from reference.declarations import Pair, Real
from reference.trajectory import Case, reference_trajectory

WRITES_PER_STEP = 3
OPS_PER_STEP = 16
OPS_PER_STATE_STEP = 4
SENSITIVITY_FACTOR = 8.0
MCA_SAMPLES = 4
MCA_BATCH_SAMPLES = 16
ILL_CONDITIONED = 1e-2


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def subnormal_spacing(dtype: torch.dtype) -> float:
    """The dtype's smallest subnormal, the spacing of its numbers below the smallest normal one: the absolute
    error of a result that underflows."""
    info = torch.finfo(dtype)
    return info.smallest_normal * info.eps


def step_budget(u: float, step: int, before, after):
    """The rounding one step may add to θ (the floor's summand), elementwise."""
    return u * (WRITES_PER_STEP * torch.abs(after) + (OPS_PER_STEP + OPS_PER_STATE_STEP * (step + 1))
                * torch.abs(after - before))


# Operations whose float result is exact (no rounding to simulate) or that only move data.
_EXACT = {torch.abs, torch.Tensor.abs, torch.neg, torch.Tensor.neg, torch.Tensor.__neg__, torch.sign,
          torch.Tensor.sign, torch.maximum, torch.minimum, torch.where, torch.clamp, torch.Tensor.clone,
          torch.zeros_like, torch.full_like, torch.Tensor.to, torch.tensor, torch.Tensor.__getitem__,
          torch.Tensor.numpy, torch.Tensor.copy_}

# Operations that take a hyperparameter as a number, not a tensor to broadcast.
_SCALAR_ARGUMENTS = {torch.full_like, torch.full, torch.Tensor.fill_, torch.Tensor.new_full}


class RoundingNoise(TorchFunctionMode):
    """Within this mode every float64 result x of a torch operation becomes x(1 ± u) ± η, signs at random: the
    largest error rounding may make (the standard model with gradual underflow: relative error u, plus an absolute
    error η below the dtype's smallest normal number, ``eta`` = its smallest subnormal), with the sign rounding
    leaves to chance. Rounding never changes a result's sign, so the η term stops at zero; an exact zero stays.

    An input made with ``rounded_input(value, delta)`` (a hyperparameter) is moved by ±delta afresh at every
    operation that reads it: an implementation may round the same hyperparameter differently in each place it
    uses it (optax takes 1 − β2 from the Python number and β2^t from β2 rounded to float32), and errors that cancel
    when every use sees the same rounded value (v̂ = v/(1 − β2^t), both scaled by 1 − β2) then do not. A sign at
    random per use finds the pattern that does not cancel only by luck (one draw per step, shared by a batch), so
    with ``alternate`` each input's own uses take −δ, +δ, −δ, … in turn — the same pattern at every step, since a
    step's hyperparameters are new inputs — and optax's pattern (β2·v and β2^t off one way, 1 − β2 not) has a
    counterpart that does not cancel either, step after step.

    With ``batch`` (a run of that many samples along a leading axis), a use that meets the batch's tensors (β1·m)
    takes a sign per sample; a use among scalars (μ_t = β1(1 − ½·0.96^{tψ}), ρ_t, β2^t: what a rule may branch
    on) one per batch. Shared signs cancel for every sample alike: NAdam's m_t = β1 m + (1 − β1) g and μ_{t+1}·m_t
    moved by the same δ leave μ_{t+1} m_t unchanged to first order when β1 m dominates, and false-alarm seed 14
    met a case (β1 = 0.001, m = −999) where torch's lerp weight 1 − β1, rounded to float32, moves β1 by 1.3e-5
    relative in m_t alone."""

    def __init__(self, u: float, seed: int, eta: float = 0.0, alternate: bool = False, batch: int | None = None):
        super().__init__()
        self.u, self.eta, self.gen = u, eta, torch.Generator().manual_seed(seed)
        self.inputs: dict[int, tuple[torch.Tensor, float]] = {}
        self.alternate, self.uses, self.batch = alternate, {}, batch

    def rounded_input(self, value: float, delta: float) -> torch.Tensor:
        t = torch.tensor(value, dtype=torch.float64)
        self.inputs[id(t)] = (t, delta)   # the reference keeps t alive, so its id is not reused
        return t

    def _reround(self, a, shape=()):
        if isinstance(a, torch.Tensor) and id(a) in self.inputs:
            if self.alternate:   # the k-th use of this input (a hyperparameter of this step) takes (−1)^k δ
                self.uses[id(a)] = self.uses.get(id(a), 0) + 1
                return a + (-1.0) ** self.uses[id(a)] * self.inputs[id(a)][1]
            return a + self._signs(shape) * self.inputs[id(a)][1]
        if isinstance(a, (list, tuple)) and any(isinstance(x, torch.Tensor) and id(x) in self.inputs for x in a):
            return type(a)(self._reround(x, shape) for x in a)
        return a

    def _sample_shape(self, func, operands) -> tuple[int, ...]:
        """(batch, 1, …, 1) if a batched run's operation meets a tensor with the sample axis, else () (a scalar, and
        the fill value of ``full_like``, which takes a number)."""
        ndim = max((x.ndim for x in operands if isinstance(x, torch.Tensor) and id(x) not in self.inputs), default=0)
        return (self.batch,) + (1,) * (ndim - 1) if self.batch and ndim and func not in _SCALAR_ARGUMENTS else ()

    def _signs(self, shape) -> torch.Tensor:
        return torch.where(torch.rand(shape, generator=self.gen) < 0.5, -1.0, 1.0).to(torch.float64)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.inputs:
            shape = self._sample_shape(func, [*args, *(kwargs or {}).values()])
            args = tuple(self._reround(a, shape) for a in args)
            kwargs = {k: self._reround(v, shape) for k, v in (kwargs or {}).items()}
        out = func(*args, **(kwargs or {}))
        if func in _EXACT or not isinstance(out, torch.Tensor) or out.dtype != torch.float64:
            return out
        noisy = out * (1 + self._signs(out.shape) * self.u)
        if self.eta:
            noisy = torch.sign(out) * torch.clamp(torch.abs(noisy) + self._signs(out.shape) * self.eta, min=0.0)
        return noisy


_PRODUCTS = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__}
_QUOTIENTS = {torch.div, torch.true_divide, torch.Tensor.div, torch.Tensor.__truediv__}


def _factors_that_grow(func, args):
    """The two factors of a product or quotient (a/b as a·(1/b)), or None for another operation."""
    if func in _PRODUCTS:
        return args[0], args[1]
    if func in _QUOTIENTS:
        return args[0], 1.0 / torch.as_tensor(args[1], dtype=torch.float64)
    if func is torch.Tensor.__rtruediv__:
        return args[1], 1.0 / torch.as_tensor(args[0], dtype=torch.float64)
    return None


class OverflowWatch(TorchFunctionMode):
    """Notes whether any operation turns finite float inputs into an infinite result, or forms a product of two
    factors of magnitude ≥ 1 above ``limit``: the dtype's largest number times the smallest factor c ≤ 1 a
    hyperparameter can put on a product — an implementation that applies c later forms the product / c first."""

    def __init__(self, limit: float = float("inf")):
        super().__init__()
        self.overflowed, self.limit = False, limit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.overflowed or not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        inputs = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        finite = all(bool(torch.isfinite(a).all()) for a in inputs if a.is_floating_point())
        if bool(torch.isinf(out).any()):
            self.overflowed = finite
        elif finite and (factors := _factors_that_grow(func, args)) is not None:
            a, b = (torch.abs(torch.as_tensor(x, dtype=torch.float64)) for x in factors)
            self.overflowed = bool(((a >= 1) & (b >= 1) & (torch.abs(out) > self.limit)).any())
        return out


def _watch_exact_run(case: Case) -> None:
    """One exact run of the reference, watched for what it alone shows — an overflowing intermediate and a
    cancelling difference within rounding of its operands — noted in ``case.notes`` for the two questions below."""
    u = unit_roundoff(case.dtype)
    factor = (2 * OPS_PER_STATE_STEP * case.steps + 2) * u
    found = []

    def observe(a, b, difference):
        bound = factor * (torch.abs(a) + torch.abs(b))
        if bool(((bound > 0) & (torch.abs(difference) <= bound)).any()):
            found.append(True)

    c = min([1.0, *(x for g in case.groups for x in hyper_factors(case.rule, g.hp)),
             *(abs(lr) for row in case.lrs for lr in row if lr)])
    with OverflowWatch(torch.finfo(case.dtype).max * c) as overflow, watching(observe):
        reference_trajectory(case)
    case.notes["intermediate overflow"] = overflow.overflowed
    case.notes["undetermined sign"] = bool(found)


def intermediate_overflow(case: Case) -> bool:
    """Whether the exact (float64) run of the reference overflows an intermediate — g² for |g| ≥ √max — that a
    different order of the same operations keeps finite ((1 − β2)·g first, then ·g), or forms a product that
    another order would overflow in the case's dtype: (1 − γ)·g·g = 2.8e38 for γ = 0.5, g = −2.37e19 is a float32
    number, g·g first is not (false-alarm seed 19: an RMSprop forming g² first left θ where it was). Its result
    then depends on the order, and the rule does not determine it at the precision. Not judged."""
    if "intermediate overflow" not in case.notes:
        _watch_exact_run(case)
    return case.notes["intermediate overflow"]


def undetermined_sign(case: Case) -> bool:
    """Whether a difference the rule declares ``cancelling`` (ṽ = v − ḡ² in centered RMSprop) comes within the
    rounding error of its operands at the case's precision, anywhere in the exact run: then rounding decides its
    sign, and with it whether √ṽ is NaN, 0 or √(a residue) — the rule does not determine the result. The bound is
    the model's budget for the operands: each state gathers ≤ ``OPS_PER_STATE_STEP``·u relative error per step, so
    after the case's steps a and b (a square: twice) carry ≤ (2·OPS_PER_STATE_STEP·steps + 2)·u·(|a| + |b|).
    Deterministic where the Monte Carlo runs, four random roundings, see a negative residue only by chance."""
    if "undetermined sign" not in case.notes:
        _watch_exact_run(case)
    return case.notes["undetermined sign"]


def _fraction(domain) -> bool:
    if isinstance(domain, Pair):
        return _fraction(domain.first) and _fraction(domain.second)
    return domain.lo >= 0.0 and domain.hi <= 1.0


def _fractions(rule) -> set[str]:
    """The hyperparameters declared in [0, 1] (β, α, ρ, momentum: used as β or through 1 − β)."""
    return {h.name for h in rule.hypers if isinstance(h.domain, (Real, Pair)) and _fraction(h.domain)}


def hyper_factors(rule, hp: dict) -> list[float]:
    """The hyperparameter-derived factors an implementation may multiply θ or g by before anything else (or after
    everything else): β and 1 − β of a fraction, γ, λ."""
    fractions, out = _fractions(rule), []
    for k, v in hp.items():
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, bool) or not isinstance(x, float) or x == 0.0:
                continue
            out += [abs(x), 1.0 - x] if k in fractions else [abs(x)] if k in ("lr", "weight_decay") else []
    return [x for x in out if x > 0]


def _mca_runs(case: Case, seed: int, samples: int) -> list[list[list[np.ndarray]]]:
    """``samples`` Monte Carlo runs of the reference on ``case``; in the last, a hyperparameter's uses alternate
    between +δ and −δ (``RoundingNoise``). An element-wise rule runs the others as one batch: every tensor gets a
    leading sample axis, along which the rounding noise is independent (a hyperparameter's too, where its use meets
    the batch's tensors: ``RoundingNoise``)."""
    if not case.rule.elementwise:
        return [_mca_batch(case, seed + k, None, alternate=k == samples - 1) for k in range(samples)]
    batched = _mca_batch(case, seed, samples - 1) if samples > 1 else []
    alternating = _mca_batch(case, seed + samples, 1, alternate=True)
    return [*([[p[k] for p in row] for row in batched] for k in range(samples - 1)),
            [[p[0] for p in row] for row in alternating]]


def _mca_batch(case: Case, seed: int, batch: int | None, alternate: bool = False):
    u = unit_roundoff(case.dtype)
    gen = torch.Generator().manual_seed(10_000 + seed)
    update = case.rule.update
    fractions = _fractions(case.rule)

    def noisy(name, v):
        if isinstance(v, tuple):
            return tuple(noisy(name, x) for x in v)
        if isinstance(v, bool) or not isinstance(v, float) or v == 0.0:
            return v
        # A 0-d tensor, not a float: what the rule derives from it (1 − β, β^t, 1 − β^t) is then computed by torch
        # operations and rounded like every other result. Python-float arithmetic would be exact here, and
        # 1 − β₂^t, which rounding of β₂^t moves by u/(1 − β₂^t) relative, would escape the model. The noise
        # re-rounds it at every use (``RoundingNoise.rounded_input``).
        return noise.rounded_input(v, u * (1.0 if name in fractions else abs(v)))

    eta = subnormal_spacing(case.dtype)
    noise = RoundingNoise(u, seed, eta=eta, alternate=alternate, batch=batch)

    def underflow(x, c):
        """x moved by ±η/c without crossing zero: the error of an implementation that forms c·x first, if c·x
        underflows (γ·g, (1 − β)·g, λ·θ: the order of a product is the implementation's choice)."""
        signs = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
        return torch.sign(x) * torch.clamp(torch.abs(x) + signs * eta / c, min=0.0)

    def noisy_update(θ, g, state, **hp):
        c = min([1.0, *hyper_factors(case.rule, hp)])
        θ, g = underflow(θ, c), underflow(g, c)
        θ, new = update(θ, g, state, **{k: noisy(k, v) for k, v in hp.items()})
        out = {}
        for k, v in new.items():
            if torch.is_tensor(v) and v.is_floating_point():
                scale = torch.abs(v) + (torch.abs(torch.as_tensor(state[k], dtype=torch.float64)) if k in state else 0.0)
                # An exact zero is assigned, not computed (Rprop forgets the gradient after a sign change; a
                # buffer starts at zero): every implementation writes it exactly, so it is not perturbed.
                scale = torch.where(v == 0, 0.0, scale)
                signs = torch.where(torch.rand(v.shape, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
                v = v + signs * OPS_PER_STATE_STEP * u * scale
            out[k] = v
        return θ, out

    def stack(a):
        return a if a is None or batch is None else np.broadcast_to(a, (batch, *np.shape(a)))

    perturbed = dataclasses.replace(case, rule=dataclasses.replace(case.rule, update=noisy_update),
                                    params=[stack(p) for p in case.params],
                                    grads=[[stack(g) for g in row] for row in case.grads])
    with noise:
        return reference_trajectory(perturbed, torch.float64)


def sensitivity(case: Case, expected: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Per step and parameter: how far rounding of the case's dtype can carry the result (inf: ill-conditioned)."""
    u = unit_roundoff(case.dtype)
    count = MCA_BATCH_SAMPLES if case.rule.elementwise else MCA_SAMPLES
    samples = [(run, 1.0, "mca") for run in _mca_runs(case, 0, count)]
    samples.append((reference_trajectory(case, torch.float32), u / unit_roundoff(torch.float32),
                    "dtype" if case.dtype == torch.float32 else "float32"))
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
    if undetermined_sign(case):   # judged for finiteness only (see ``judgeable``)
        return [[np.full(np.shape(e), np.inf) for e in row] for row in expected]
    u = unit_roundoff(case.dtype)
    tiny = torch.finfo(case.dtype).tiny
    sens = sensitivity(case, expected)
    prev = [torch.tensor(np.asarray(p, dtype=np.float64)) for p in case.params]
    floor = [torch.zeros_like(p) for p in prev]
    size = [torch.abs(p) for p in prev]
    out = []
    for t, exp_t in enumerate(expected):
        row = []
        for i, e in enumerate(exp_t):
            now = torch.tensor(e)
            if case.grads[t][i] is not None:
                floor[i] = floor[i] + step_budget(u, t, prev[i], now)
                size[i] = size[i] + torch.abs(now - prev[i])
            rounding = SENSITIVITY_FACTOR * sens[t][i] + floor[i].numpy()
            # An element that rounding cannot move (θ = 0 held by γ = 0, say) is determined, however small.
            ill = rounding > ILL_CONDITIONED * torch.maximum(size[i], torch.abs(now)).numpy()
            tol = rounding + tiny
            row.append(np.where(ill, np.inf, tol))
            prev[i] = now
        out.append(row)
    return out


def judgeable(case: Case, expected: list[list[np.ndarray]], tol: list[list[np.ndarray]] | None = None) -> bool:
    """Whether the float64 reference stays finite and inside the dtype's range (with headroom for one more
    multiply), and rounding-sized perturbations keep it finite: whether the rule is defined at this precision.
    A case whose sign of a cancelling difference rounding decides (``undetermined_sign``) is judged for finiteness
    only — its tolerance is infinite, but θ must stay finite where the rule's does (a variance is ≥ 0: √ṽ is
    never NaN by the rule) — so it counts as judgeable."""
    limit = torch.finfo(case.dtype).max / 1e3
    ok = all(np.all(np.isfinite(e)) and np.all(np.abs(e) < limit) for row in expected for e in row)
    ok = ok and not intermediate_overflow(case)
    if not ok or tol is None or undetermined_sign(case):
        return ok
    return all(np.all(np.isfinite(x)) for row in tol for x in row)
