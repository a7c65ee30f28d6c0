"""Hypothesis strategies, all derived from a rule's declaration (``reference/declarations.py``).

Hyperparameters are drawn over each one's searched range with its edge values drawn first-class; invalid
combinations are repaired by the rule's constraints rather than rejected. Tensors are small (what matters is the
arithmetic per element), of varied shapes including 0-d and repeated shapes; gradient magnitudes span 1e-8..1e4
(narrower where the dtype cannot hold their squares), with exact zeros and steps where a parameter has no gradient;
one case in four has its parameters or its gradients at an edge of the dtype's range (subnormal, near overflow).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from hypothesis import strategies as st

from optimizers.known_deviations import avoiding
from reference.declarations import Choice, Flag, Pair, Real, Rule
from reference.sparse import SparseGrad
from reference.trajectory import Case, Group

MAX_STEPS = 20
# Small shapes for the arithmetic per element, and a few past a SIMD width (8 or 16 lanes) with and without a
# remainder: vectorised kernels handle full blocks and the scalar tail in different code (pytorch/pytorch#191763:
# fused SGD on CPU skipped the full blocks of bfloat16 parameters). Matrices square, wide and tall, and a stack of
# them, for the rules that treat rows and columns apart (Adafactor's factors).
SHAPES = [(), (1,), (2,), (3,), (5,), (2, 2), (2, 3), (3, 1, 2), (7,), (8,), (17,), (4, 9), (5, 2)]


def real(domain: Real) -> st.SearchStrategy[float]:
    lo, hi = domain.search or (domain.lo, domain.hi)
    if domain.log:
        body = st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0**e))
    else:
        body = st.floats(lo, hi, exclude_min=domain.lo_open and lo == domain.lo,
                         exclude_max=domain.hi_open and hi == domain.hi)
    edges = [e for e in domain.edges if domain.contains(e)]
    return st.one_of(st.sampled_from(edges), body) if edges else body


@functools.lru_cache(maxsize=None)
def value(domain) -> st.SearchStrategy:
    """The strategy for a domain's values, built once per domain (a strategy is validated on first use: building it
    afresh for every draw cost more than drawing from it)."""
    return _value(domain)


def _value(domain) -> st.SearchStrategy:
    if isinstance(domain, Flag):
        return st.booleans()
    if isinstance(domain, Choice):
        return st.sampled_from(domain.values)
    if isinstance(domain, Pair):
        parts = st.tuples(*(real(d) for d in domain.parts))
        return st.one_of(st.sampled_from(domain.edges), parts) if domain.edges else parts
    return real(domain)


@st.composite
def hyperparameters(draw, rule: Rule, accepted: frozenset[str]) -> dict:
    """A valid hyperparameter dict: accepted ones drawn, the rest held at the rule's defaults."""
    hp = rule.repair({h.name: draw(value(h.domain)) if h.name in accepted else h.default for h in rule.hypers})
    return hp


def magnitude_range(dtype: torch.dtype) -> tuple[float, float]:
    """Gradient magnitudes searched for ``dtype``: 1e-8..1e4, narrowed so that squares of gradients stay normal
    numbers of the dtype (float16: about 0.08..26); below, rules like Adam are undefined at that precision."""
    info = torch.finfo(dtype)
    return max(1e-8, math.sqrt(info.tiny) * 10), min(1e4, math.sqrt(info.max) / 10)


def magnitude_regimes(dtype: torch.dtype) -> dict[str, tuple[float, float]]:
    """Magnitude ranges for a case's values: ``normal`` (``magnitude_range``), and the edges of the dtype's range —
    ``subnormal``, from a few subnormal spacings to just above the smallest normal number (gradual underflow:
    squares underflow to 0), and ``near overflow``, from √max (squares overflow) to max/10⁴ (float16, whose range is
narrow: to 10√max). The tolerance model
    accounts for both (the error bound's η per operation and η/c on the inputs; the overflow check of products), so
    cases the rule does not determine there are discarded, not misjudged."""
    info = torch.finfo(dtype)
    return {"normal": magnitude_range(dtype),
            "subnormal": (info.smallest_normal * info.eps * 8, info.smallest_normal * 1e3),
            "near overflow": (math.sqrt(info.max), max(info.max / 1e4, math.sqrt(info.max) * 10))}


# Most cases are normal; one in eight is at each edge of the dtype's range (shrinking goes to normal).
REGIMES = st.sampled_from(["normal"] * 6 + ["subnormal", "near overflow"])
# Strategies drawn from in every case are built once (a strategy is validated when first drawn from).
SPREADS = st.sampled_from([0.0, 1.0, 4.0])                  # decades a tensor's magnitudes spread over
ZERO_FRACTIONS = st.sampled_from([0.0, 0.0, 0.3, 1.0])      # the fraction of a tensor's elements that are 0
# a scheduler's change of lr at a step: none, halving, a tenth, doubling, and factors between, over 0.01..3 (products
# of them over the steps reach any learning rate); a case's schedule is drawn from a seed, a factor per step, in two
# cases of three, and constant otherwise (what shrinking goes to)
LR_FACTORS = (1.0, 1.0, 0.5, 0.1, 2.0, 0.01, 0.03, 0.3, 0.7, 0.9, 1.1, 1.5, 3.0)
SEEDS = st.integers(0, 2**32 - 1)
_SCHEDULED = st.sampled_from([False, True, True])
_BOOLEANS = st.booleans()


@functools.lru_cache(maxsize=None)
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@functools.lru_cache(maxsize=None)
def _exponents(lo: float, hi: float) -> st.SearchStrategy[float]:
    """A decimal exponent in [log10 lo, log10 hi]."""
    return st.floats(math.log10(lo), math.log10(hi))


@functools.lru_cache(maxsize=None)
def _cuts(n: int, k: int) -> st.SearchStrategy[list[int]]:
    """k distinct places to cut n parameters into k + 1 groups."""
    return st.lists(st.integers(1, n - 1), min_size=k, max_size=k, unique=True)


@functools.lru_cache(maxsize=None)
def _orders(n: int) -> st.SearchStrategy[list[int]]:
    return st.permutations(range(n))


@functools.lru_cache(maxsize=None)
def _shapes(ndims: tuple[int, ...] | None) -> st.SearchStrategy:
    """The shapes a rule's parameters may have (``Rule.ndims``; None: all of ``SHAPES``)."""
    return st.sampled_from([s for s in SHAPES if ndims is None or len(s) in ndims])


@st.composite
def tensor(draw, shape: tuple, lo: float, hi: float, zeros: bool = True) -> np.ndarray:
    """Elements of magnitude in [lo, hi] around a drawn centre, random signs, some exact zeros."""
    n = int(np.prod(shape)) if shape else 1
    centre = draw(_exponents(lo, hi))
    spread = draw(SPREADS)
    zero_fraction = draw(ZERO_FRACTIONS) if zeros else 0.0
    rng = np.random.default_rng(draw(SEEDS))
    exps = np.clip(centre + spread * rng.uniform(-1, 1, n), math.log10(lo), math.log10(hi))
    values = np.where(rng.random(n) < 0.5, -1.0, 1.0) * 10.0**exps
    values[rng.random(n) < zero_fraction] = 0.0
    return values.reshape(shape)


#: per parameter, the chance it is one that sometimes has no gradient; per step, the chance such a parameter has none;
#: per step and parameter, the chance its gradient is all zeros
INTERMITTENT, ABSENT, ALL_ZERO = 1 / 3, 0.3, 0.1
_INTERMITTENT = st.sampled_from([False, False, True])


def gradient_rows(draw, shapes: list[tuple], lo: float, hi: float, steps: int, dtype: torch.dtype,
                  sparse: bool = False) -> list[list]:
    """Per step, a gradient per parameter (None: none this step). Each parameter draws its magnitudes once — a
    centre in [lo, hi], a spread of 0, 1 or 4 decades, a fraction of exact zeros — and whether it is intermittent
    (``INTERMITTENT``); one seed then gives every step's values in turn, an intermittent parameter's absence
    (``ABSENT``) and an all-zero gradient (``ALL_ZERO``): a few draws a case rather than a few per tensor, so that
    generating a case costs little beside judging it, while shrinking still reduces steps (the first k steps are the
    same whatever the number of steps), parameters and magnitudes. Parameters of one group that always have a
    gradient are judged as one run (``tolerances._blocks``), which absences at random steps in every parameter would
    split.

    ``sparse``: each gradient is a ``SparseGrad`` over the first ``sparse_dim`` dimensions (drawn per parameter,
    0 to its number of dimensions) with 0 to twice as many entries as there are indices, at indices drawn with
    repetition: repeated indices, absent ones, none at all and every one."""
    magnitudes = []
    for s in shapes:
        centre = draw(_exponents(lo, hi))
        spread = draw(SPREADS)
        zero_fraction = draw(ZERO_FRACTIONS)
        sparse_dim = draw(_integers(0, len(s))) if sparse else None
        magnitudes.append((centre, spread, zero_fraction, draw(_INTERMITTENT), sparse_dim))
    rows = []
    rng = np.random.default_rng(draw(SEEDS))
    for _ in range(steps):
        row = []
        for s, (centre, spread, zero_fraction, intermittent, sparse_dim) in zip(shapes, magnitudes, strict=True):
            absent, all_zero = intermittent and rng.random() < ABSENT, rng.random() < ALL_ZERO
            if sparse_dim is not None:
                indices = int(np.prod(s[:sparse_dim]))
                nnz = int(rng.integers(0, 2 * indices + 1))
                at = np.unravel_index(rng.integers(0, indices, nnz), s[:sparse_dim]) if sparse_dim else ()
                shape = (nnz, *s[sparse_dim:])
            else:
                shape = s
            n = int(np.prod(shape))
            exps = np.clip(centre + spread * rng.uniform(-1, 1, n), math.log10(lo), math.log10(hi))
            values = np.where(rng.random(n) < 0.5, -1.0, 1.0) * 10.0**exps
            values[(rng.random(n) < zero_fraction) | all_zero] = 0.0
            values = representable(values.reshape(shape), dtype)
            if sparse_dim is not None:
                values = SparseGrad(np.array(at, dtype=np.int64).reshape(sparse_dim, nnz), values, s)
            row.append(None if absent else values)
        rows.append(row)
    return rows


def representable(a: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """``a`` rounded to ``dtype`` and back to float64: what the implementation and the reference both see."""
    if dtype in _NUMPY_DTYPES:   # NumPy rounds to nearest even as torch does, subnormals included, in a tenth the time
        with np.errstate(over="ignore"):   # beyond the dtype's range: ±inf, as torch gives
            return np.asarray(a, dtype=np.float64).astype(_NUMPY_DTYPES[dtype]).astype(np.float64)
    return torch.tensor(a, dtype=torch.float64).to(dtype).to(torch.float64).numpy()


_NUMPY_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


@st.composite
def cases(draw, subject, dtype: torch.dtype = torch.float64, max_steps: int = MAX_STEPS,
          min_groups: int = 1, shapes: tuple | None = None) -> Case:
    """A trajectory case for ``subject``'s rule, using only the API features ``subject`` has; with
    ``min_groups`` > 1, that many groups at least, each with its own hyperparameters; with ``shapes``, parameters of
    those shapes instead of ``SHAPES`` (for a quantized-state subject, its layout's)."""
    rule, caps = subject.rule, subject.caps
    n = draw(_integers(max(1, min_groups), 4))
    if shapes is None and getattr(subject, "quantization", None) is not None:
        shapes = tuple(s for s in subject.quantization.shapes() if rule.ndims is None or len(s) in rule.ndims)
    pool, shapes = _shapes(rule.ndims) if shapes is None else st.sampled_from(shapes), []
    for _ in range(n):
        repeat = shapes and draw(_BOOLEANS)
        shapes.append(shapes[-1] if repeat else draw(pool))
    regimes = magnitude_regimes(dtype)
    param_regime, grad_regime = draw(REGIMES), draw(REGIMES)
    lo, hi = regimes[grad_regime]
    p_lo, p_hi = (1e-3, min(1e3, regimes["normal"][1])) if param_regime == "normal" else regimes[param_regime]
    params = [representable(draw(tensor(s, p_lo, p_hi)), dtype) for s in shapes]

    n_groups = draw(_integers(min_groups, n)) if caps.param_groups else 1
    order = draw(_orders(n)) if n_groups > 1 else list(range(n))
    cuts = sorted(draw(_cuts(n, n_groups - 1))) if n_groups > 1 else []
    bounds = [0, *cuts, n]
    groups = []
    for k in range(n_groups):
        indices = tuple(sorted(order[bounds[k]:bounds[k + 1]]))
        inherits = k > 0 and min_groups == 1 and draw(_BOOLEANS)
        hp = dict(groups[0].hp) if inherits else draw(hyperparameters(rule, caps.accepted))
        if k > 0:   # what the implementation declares it reads from the constructor only: the constructor's value
            hp.update({n: groups[0].hp[n] for n in getattr(subject, "constructor_only", ())})
        groups.append(Group(indices, hp, inherits))

    steps = draw(_integers(1, max_steps))
    grads = gradient_rows(draw, shapes, lo, hi, steps, dtype, rule.sparse_gradients)

    scheduled = caps.param_groups and "lr" in caps.accepted and rule.hyper("lr").scheduled and draw(_SCHEDULED)
    drawn = np.random.default_rng(draw(SEEDS)).choice(LR_FACTORS, steps - 1) if scheduled else np.ones(steps - 1)
    factors = [1.0, *(float(f) for f in drawn)]
    lrs, f = [], 1.0
    for factor in factors:
        f *= factor
        lrs.append([g.hp["lr"] * f if "lr" in g.hp else None for g in groups])
    notes = {"parameters": param_regime, "gradients": grad_regime, "subnormals": subject.subnormals,
             "precision": "float32-master" if getattr(subject, "master", None) else getattr(subject, "precision", None)}
    return avoiding(subject, Case(rule, groups, params, grads, lrs, dtype, notes))
