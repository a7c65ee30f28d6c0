"""The tolerance model: how far an implementation may be from the float64 reference, per element, per step.

The tolerance is a bound, computed in one pass beside the reference: the reference rule runs on ``Bounded`` values
(``properties/error_bound.py``), each carrying a bound on how far an implementation computing the same formula in
the case's dtype may be from it, propagated through every operation the rule makes. No sampling, no factor fitted
to results: a case is within the bound or it is a deviation.

What an implementation may do differently from the formula, and what each costs (the declared terms):

* **Each operation rounds** with relative error u (the dtype's unit roundoff, ``finfo.eps / 2``) plus, below the
  smallest normal number, an absolute η (the smallest subnormal). An implementation may carry an operation of the
  formula out as up to ``ROUNDINGS_PER_OPERATION`` = 2 rounded operations — the operation itself and an operand it
  precomputes in another form (γ/(1 − β1^t) as one scalar, √v/√(1 − β2^t) for √(v/(1 − β2^t))) — so each
  operation is charged 2u. The float64 reference rounds too (2·u₆₄, negligible but for float64 cases).
* **Hyperparameters and constants are inputs in the dtype**: each use of β, γ, λ, ε or a literal (0.96 in NAdam)
  carries its rounding to the dtype, |fl(c) − c| (for a fraction β also |fl(1 − β) − (1 − β)|: an implementation
  may hold it as 1 − β, as torch's ``lerp`` weight), and what the rule derives from it (1 − β, β^t, 1 − β^t) is
  bounded like every other result. Bounds add magnitudes, so two uses whose errors would cancel are never assumed
  to (an implementation may round the same hyperparameter differently in each place).
* **θ is written up to ``THETA_WRITES`` = 3 times a step** (decoupled decay, the update, an update applied in two
  parts as NAdam's two ``addcdiv``): the formula's one write plus 2 more, each ≤ 2u·max(|θ_{t−1}|, |θ_t|).
* **State may be written in another form**: m ← β1 m + (1 − β1) g as ``lerp(m, g, 1 − β1)`` = m + (1 − β1)(g − m)
  rounds relative to the previous m, not the (β1 times smaller) new one: each state tensor adds
  ``STATE_FORM_ROUNDINGS`` = 2 roundings of |s_{t−1}| + |s_t| a step — except an exact zero, which every
  implementation assigns exactly (Rprop's forgotten gradient).
* **The order of a product is the implementation's**: γ·g formed first underflows where g/(√v + ε)·γ does not, so θ
  and g carry η/c, c the smallest factor a hyperparameter can put on them (γ, λ, the weight 1 − β of a fraction;
  at most 1): negligible for normal values, the whole story for subnormal ones. A fraction β itself weighs the state
  (β m), and every product of nonzero factors already carries η where the formula forms it.

The tolerance of θ_t is its propagated bound plus the dtype's smallest normal number (below which an element has
no relative precision to speak of).

Judged for finiteness only (tolerance ∞): a case where a difference the rule declares ``cancelling`` (ṽ = v − ḡ² in
centered RMSprop) comes within its operands' bounds, so rounding decides its sign (``undetermined_sign``), or where
the rule branches on a comparison rounding decides (ρ_t > 5 in RAdam; ``error_bound.Rounding.undetermined``).

Not judged (Hypothesis discards the case): a float64 reference that is not finite or leaves the dtype's range; a
case whose exact run forms a product beyond the dtype's largest number once the hyperparameter factors < 1 in it are
taken out (another order of the same product, those factors applied last, overflows), or a quotient whose divisor's
reciprocal is beyond it (a·(1/b)): ``intermediate_overflow``; and an ill-conditioned case, whose bound anywhere exceeds
``ILL_CONDITIONED`` = 1% of the trajectory's size (|θ_t| + Σ|Δ_s|) or is infinite (a denominator within its bound of
0): the rule does not determine the result at that precision, and no implementation can be held to it.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import torch

from properties.error_bound import ARRAY, U64, Bounded, Rounding, both_ways, conversion_error, rounding
from reference.cancellation import watching
from reference.declarations import Pair, Real
from reference.sparse import Masked, as_sparse, masked
from reference.trajectory import Case

ROUNDINGS_PER_OPERATION = 2
THETA_WRITES = 3
STATE_FORM_ROUNDINGS = 2
ILL_CONDITIONED = 1e-2
#: a sum into a compensated parameter (Kahan summation over a pair of dtype numbers) rounds by this many u² of it
COMPENSATED_ROUNDING = 4


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def subnormal_spacing(dtype: torch.dtype) -> float:
    """The dtype's smallest subnormal, the spacing of its numbers below the smallest normal one: the absolute
    error of a result that underflows."""
    info = torch.finfo(dtype)
    return info.smallest_normal * info.eps


def scalar_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype scalars are held in beside tensors of ``dtype``: float32 at least (torch's opmath for bfloat16 and
    float16; a β2 of 0.9999 held in bfloat16 would be 1)."""
    return torch.float32 if torch.finfo(dtype).bits < 32 else dtype


#: how a 16-bit-parameter implementation computes: as its parameters' dtype; in float32 with float32 state,
#: rounding θ once to its dtype when storing it (``--precision float32-state``); or on float32 master weights, the
#: parameter their rounded copy (``--master-weights``: judged on the master)
PRECISIONS = ("parameters", "float32-state", "float32-master")


def computing_dtype(case: Case) -> torch.dtype:
    """The dtype the implementation judged on ``case`` computes and keeps its state in: float32 for 16-bit parameters
    under ``--precision float32-state`` or with float32 master weights, else the parameters' own."""
    low = torch.finfo(case.dtype).bits < 32
    return torch.float32 if low and case.notes.get("precision") in PRECISIONS[1:] else case.dtype


def flushes(case: Case) -> bool:
    """Whether the implementation judged on ``case`` may flush subnormal numbers to zero (``--subnormals=flush``)."""
    return case.notes.get("subnormals") == "flush"


def underflow_spacing(dtype: torch.dtype, flush: bool = False) -> float:
    """The absolute error of a result below the dtype's smallest normal number: its subnormal spacing, or with
    flush-to-zero the smallest normal number itself (a result, or an input, below it may be 0)."""
    return torch.finfo(dtype).tiny if flush else subnormal_spacing(dtype)


def arithmetic(dtype: torch.dtype, flush: bool = False) -> Rounding:
    """The rounding model of an implementation computing in ``dtype``, beside a float64 reference: tensors' elements
    round to ``dtype``, scalars to ``scalar_dtype(dtype)``; with ``flush``, subnormal results and inputs may be 0."""
    s = scalar_dtype(dtype)
    return Rounding(dtype, u=ROUNDINGS_PER_OPERATION * (unit_roundoff(dtype) + U64),
                    eta=ROUNDINGS_PER_OPERATION * underflow_spacing(dtype, flush),
                    limit=torch.finfo(dtype).max,
                    scalar_dtype=s, scalar_u=ROUNDINGS_PER_OPERATION * (unit_roundoff(s) + U64),
                    scalar_eta=ROUNDINGS_PER_OPERATION * underflow_spacing(s, flush), flush=flush)


def _fraction(domain) -> bool:
    if isinstance(domain, Pair):
        return all(_fraction(d) for d in domain.parts)
    return domain.lo >= 0.0 and domain.hi <= 1.0


def _fractions(rule) -> set[str]:
    """The hyperparameters declared in [0, 1] (β, α, ρ, momentum: used as β or through 1 − β)."""
    return {h.name for h in rule.hypers if isinstance(h.domain, (Real, Pair)) and _fraction(h.domain)}


def hyper_factors(rule, hp: dict) -> list[float]:
    """The hyperparameter-derived factors an implementation may multiply θ or g by before anything else (or after
    everything else): γ, λ, and 1 − β of a fraction, the weight it puts on g."""
    fractions, out = _fractions(rule), []
    for k, v in hp.items():
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, bool) or not isinstance(x, float) or x == 0.0:
                continue
            out += [1.0 - x] if k in fractions else [abs(x)] if k in ("lr", "weight_decay") else []
    return [x for x in out if x > 0]


def smallest_factor(case: Case) -> float:
    return min([1.0, *(x for g in case.groups for x in hyper_factors(case.rule, g.hp)),
                *(abs(lr) for row in case.lrs for lr in row if lr)])


def hyperparameter(v, dtype: torch.dtype, fraction: bool = False):
    """A hyperparameter as the rule sees it under the bound: a float with its rounding to the dtype. A fraction
    (β, α, ρ, μ) may be held as 1 − β instead (torch's ``lerp`` weight 1 − β1, rounded, makes β1 = 1 − fl(1 − β1)):
    its bound is the larger of the two roundings."""
    if isinstance(v, tuple):
        return tuple(hyperparameter(x, dtype, fraction) for x in v)
    if isinstance(v, bool) or not isinstance(v, float):
        return v
    return Bounded(float(v), _hyperparameter_error(v, dtype, fraction))


@functools.lru_cache(maxsize=4096)
def _hyperparameter_error(v: float, dtype: torch.dtype, fraction: bool) -> float:
    error = conversion_error(v, dtype)
    return max(error, _complement_error(v, dtype)) if fraction else error


def _complement_error(v: float, dtype: torch.dtype) -> float:
    """|fl(1 − v) − (1 − v)|, exactly: how far β moves when an implementation holds 1 − β in ``dtype``."""
    exact = 1 - Fraction(v)
    rounded = torch.tensor(float(exact), dtype=torch.float64).to(dtype).to(torch.float64).item()
    return float(abs(Fraction(rounded) - exact)) if math.isfinite(rounded) else math.inf


def _underflow(x: np.ndarray, c: float, dtype: torch.dtype, flush: bool = False) -> np.ndarray:
    """The bound an input carries because an implementation may form c·x first: where c·x is below the smallest
    normal number, η/c (at most |x|: rounding never crosses zero); elsewhere nothing beyond the rounding of c·x.
    With flush-to-zero, a subnormal input may be read as 0 (|x|), and η is the smallest normal number."""
    a = np.abs(x)
    limit = torch.finfo(dtype).tiny / c if c > 0 else math.inf
    return np.where((a < limit) & (a > 0), np.minimum(a, underflow_spacing(dtype, flush) / c), 0.0)


def _abs(b: Bounded) -> np.ndarray:
    return np.abs(np.asarray(b.v, dtype=np.float64))


def _declared_state_terms(r: Rounding, before: dict, after: dict) -> dict:
    out = {}
    for k, s in after.items():
        if isinstance(s, Bounded) and isinstance(s.v, ARRAY):
            prev = before.get(k)
            scale = _abs(s) + (_abs(prev) if isinstance(prev, Bounded) else 0.0)
            term = np.where(s.v == 0, 0.0, STATE_FORM_ROUNDINGS * r.u * scale)
            s = Bounded(s.v, s.e + term)
        out[k] = s
    return out


def _beyond_range(state, limit: float) -> bool:
    """Whether a state tensor of the exact run is beyond the dtype's largest number (Adagrad's Σg² in float16): an
    implementation's is ±inf there."""
    return any(isinstance(s, Bounded) and isinstance(s.v, ARRAY) and np.size(s.v) and np.max(np.abs(s.v)) > limit
               for s in state)


def _sparse_gradient(g, r: Rounding, c: float, dtype: torch.dtype) -> Masked:
    """A sparse gradient as the rule sees it, bounded: entries at the same index added in the dtype in any order
    (n entries: (n − 1) u Σ|values|), beside the underflow term of a dense gradient."""
    g = as_sparse(g)
    dense = np.asarray(g.dense(), dtype=np.float64)
    adding = r.u * np.maximum(g.entries() - 1, 0) * g.magnitude()
    return masked(g, Bounded(dense, _underflow(dense, c, dtype, r.flush) + adding))


def _blocks(case: Case) -> list[list[int]]:
    """Parameters the bound may run as one flat tensor: an element-wise rule treats each element alone, so the
    parameters of one group that have gradients at the same steps make one run (one parameter each otherwise, and
    for sparse gradients, which stay in their parameter's shape)."""
    if not case.rule.elementwise or case.rule.sparse_gradients:
        return [[i] for i in range(len(case.params))]
    blocks: dict = {}
    for i in range(len(case.params)):
        key = (case.group_of(i), tuple(row[i] is None for row in case.grads))
        blocks.setdefault(key, []).append(i)
    return list(blocks.values())


def _joined(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays])


def _row(row: list[np.ndarray], block: list[int]) -> np.ndarray:
    """A block's values from a row of per-parameter arrays (one parameter as it is, several joined)."""
    return np.asarray(row[block[0]], dtype=np.float64) if len(block) == 1 else _joined(row[i] for i in block)


def _restarted(case: Case, state: dict, held: list[dict], block: list[int], step: int) -> dict:
    """A block's reference state with the implementation's buffers (``held``, per parameter) in place of the
    reference's, exact: the rule's tensor state in order is its declared ``buffers``."""
    names = case.rule.buffers(case.hp_at(block[0], step))
    tensors = [k for k, v in state.items() if isinstance(v, Bounded) and isinstance(v.v, ARRAY)]
    if not tensors:   # no step taken yet
        return state
    if len(names) != len(tensors):
        raise ValueError(f"rule {case.rule.name!r} keeps {len(tensors)} state tensors ({', '.join(tensors)}) but "
                         f"declares {len(names)} buffers ({', '.join(names)}): its declaration must name each")
    out = dict(state)
    for key, name in zip(tensors, names):
        if all(name in h for h in held):
            out[key] = Bounded(_row([h[name] for h in held], list(range(len(held)))), 0.0)
    return out


def _state_row(case: Case, blocks: list[list[int]], states: list[dict], step: int) -> list[dict]:
    """Per parameter, each declared buffer's reference value and bound after ``step``."""
    out = [{} for _ in case.params]
    for k, b in enumerate(blocks):
        names = case.rule.buffers(case.hp_at(b[0], step))
        tensors = [s for s in states[k].values() if isinstance(s, Bounded) and isinstance(s.v, ARRAY)]
        for name, s in zip(names, tensors):
            values = _per_parameter(case, [b], [np.asarray(s.v, dtype=np.float64)])
            bounds = _per_parameter(case, [b], [np.broadcast_to(s.error(), np.shape(s.v))])
            for i in b:
                out[i][name] = (values[i], bounds[i])
    return out


def error_bounds(case: Case, restart: list[list[np.ndarray]] | None = None,
                 compensation: list[list[np.ndarray]] | None = None,
                 restart_states: list[list[dict]] | None = None) -> dict:
    """One pass of the reference on Bounded values: per step and parameter the bound on θ's error; and what the
    run met (``overflow``, ``undetermined_sign``, ``undetermined_from``: the first step a branch was undecided).
    With ``restart`` (an implementation's parameters after every step), each step starts from the implementation's
    θ_{t−1}, exact, instead of the reference's: the bound is then one step's (the state's bound still carries), and
    ``values`` holds the reference's step from there, per step and parameter, up to ``stopped`` (the step from which
    the rest is judged for finiteness only or not judged; None if none). With ``compensation`` (a compensated
    implementation's compensation after every step), ``restart`` holds its parameters plus their compensation, and a
    sum into the parameter rounds at the compensated precision (``COMPENSATED_ROUNDING``). With ``restart_states``
    (an implementation's buffers after every step, per parameter), each step also starts from the implementation's
    state, exact, and ``states`` holds the reference's buffers after each step with their bound, per parameter."""
    flush = flushes(case)
    compute = computing_dtype(case)
    r = arithmetic(compute, flush)
    compensated = compensation is not None
    if compensated:
        r.u_compensated = COMPENSATED_ROUNDING * unit_roundoff(case.dtype) ** 2 + ROUNDINGS_PER_OPERATION * U64
    c = smallest_factor(case)
    cancelled = []

    def observe(a, b, difference):
        if not isinstance(difference, Bounded):
            return
        width = np.asarray(difference.e, dtype=np.float64)
        if bool(((np.abs(difference.v) <= width) & (width > 0)).any()):
            cancelled.append(True)

    fractions = _fractions(case.rule)
    blocks = _blocks(case)
    single = [len(b) == 1 for b in blocks]
    params = []
    for b in blocks:
        t = np.array(case.params[b[0]], dtype=np.float64) if len(b) == 1 else _joined(case.params[i] for i in b)
        params.append(Bounded(t, _underflow(t, c, compute, flush), k=0.0 if compensated else None))
    states: list[dict] = [{} for _ in params]
    rows, values, state_rows, undetermined_from, stopped = [], [], [], None, None
    with rounding(r), watching(observe):
        for step, grads in enumerate(case.grads):
            if restart is not None and step > 0:
                # exact; a compensated parameter itself is its compensation away from θ + compensation
                distance = [np.abs(_row(compensation[step - 1], b)) if compensated else 0.0 for b in blocks]
                params = [Bounded(_row(restart[step - 1], b), d, k=d if compensated else None)
                          for b, d in zip(blocks, distance)]
            if restart_states is not None and step > 0:
                states = [_restarted(case, states[k], [restart_states[step - 1][i] for i in b], b, step)
                          for k, b in enumerate(blocks)]
            for k, b in enumerate(blocks):
                hp = {name: hyperparameter(v, scalar_dtype(compute), name in fractions)
                      for name, v in case.hp_at(b[0], step).items()}
                if grads[b[0]] is None:
                    if case.rule.idle is not None and case.present(b[0], step):   # the group's counters advance
                        states[k] = both_ways(lambda: case.rule.idle(states[k], **hp), r)
                    continue
                before = params[k]
                θ = Bounded(before.v, before.e + _underflow(before.v, c, compute, flush), k=before.k)
                if case.rule.sparse_gradients:
                    g = _sparse_gradient(grads[b[0]], r, c, compute)
                else:
                    gt = np.array(grads[b[0]], dtype=np.float64) if single[k] else _joined(grads[i] for i in b)
                    g = Bounded(gt, _underflow(gt, c, compute, flush))
                θ, state = both_ways(lambda: case.rule.update(θ, g, states[k], **hp), r)
                θ = Bounded(np.asarray(θ.v, dtype=np.float64), θ.error())
                writes = (THETA_WRITES - 1) * (r.u_compensated if compensated else r.u) * np.maximum(_abs(before),
                                                                                                   _abs(θ))
                if case.notes.get("precision") == "float32-state" and compute != case.dtype:
                    # computed in float32, stored once in the parameters' dtype
                    writes = writes + unit_roundoff(case.dtype) * _abs(θ) + underflow_spacing(case.dtype, flush)
                params[k] = Bounded(θ.v, θ.e + writes)
                states[k] = _declared_state_terms(r, states[k], state)
                r.overflow = r.overflow or _beyond_range(states[k].values(), r.limit)
            if r.undetermined and undetermined_from is None:
                undetermined_from = step
            rows.append([p.error() for p in params])
            values.append([np.asarray(p.v, dtype=np.float64) for p in params])
            if restart_states is not None:
                state_rows.append(_state_row(case, blocks, states, step))
            if undetermined_from is not None or r.overflow or cancelled:
                # the rest is judged for finiteness only (or not judged): no bound to compute
                stopped = step
                rows += [[np.full(p.shape, np.inf) for p in params] for _ in range(len(case.grads) - len(rows))]
                break
    return {"bounds": [_per_parameter(case, blocks, row) for row in rows],
            "values": [_per_parameter(case, blocks, row) for row in values],
            "overflow": r.overflow, "undetermined_sign": bool(cancelled), "undetermined_from": undetermined_from,
            "stopped": stopped, "states": state_rows}


def _per_parameter(case: Case, blocks: list[list[int]], row: list[np.ndarray]) -> list[np.ndarray]:
    """A row of per-block arrays split back into the case's parameters."""
    out = [None] * len(case.params)
    for k, b in enumerate(blocks):
        pieces = np.split(np.reshape(row[k], -1), np.cumsum([np.size(case.params[i]) for i in b])[:-1])
        for i, piece in zip(b, pieces, strict=True):
            out[i] = piece.reshape(np.shape(case.params[i]))
    return out


def _bounds(case: Case) -> dict:
    if "error bounds" not in case.notes:
        case.notes["error bounds"] = error_bounds(case)
    return case.notes["error bounds"]


def intermediate_overflow(case: Case) -> bool:
    """Whether the exact run forms a product beyond the dtype's largest number once its hyperparameter factors are
    taken out (another order of the same product overflows: g·g first where (1 − β2)·g·g = 2.8e38 is a float32
    number), a quotient whose divisor's reciprocal overflows, or overflows outright. Not judged."""
    return _bounds(case)["overflow"]


def undetermined_sign(case: Case) -> bool:
    """Whether a difference the rule declares ``cancelling`` (ṽ = v − ḡ² in centered RMSprop) comes within its
    operands' error bounds anywhere in the run: rounding decides its sign, and with it whether √ṽ is NaN, 0 or
    √(a residue) — the rule does not determine the result."""
    return _bounds(case)["undetermined_sign"]


def watched_steps(case: Case) -> int:
    """How many steps the bound followed, and with it watched the ``cancelling`` differences: all of them, or up to
    and including the step it stopped at (an undetermined branch, an overflow); later steps are judged for finiteness
    only, and a difference there may have cancelled unseen."""
    stopped = _bounds(case)["stopped"]
    return case.steps if stopped is None else stopped + 1


def tolerances(case: Case, expected: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Per step and parameter, the elementwise tolerance of the model above (∞: judged for finiteness only, or
    ill-conditioned, which ``judgeable`` tells apart)."""
    b = _bounds(case)
    case.notes["ill-conditioned"] = False
    if b["undetermined_sign"]:
        return [[np.full(np.shape(e), np.inf) for e in row] for row in expected]
    tiny = torch.finfo(case.dtype).tiny
    prev = [np.asarray(p, dtype=np.float64) for p in case.params]
    size = [np.abs(p) for p in prev]
    out = []
    for t, (exp_t, bound_t) in enumerate(zip(expected, b["bounds"], strict=True)):
        if b["undetermined_from"] is not None and t >= b["undetermined_from"]:
            out.append([np.full(np.shape(e), np.inf) for e in exp_t])
            continue
        row = []
        for i, (e, bound) in enumerate(zip(exp_t, bound_t, strict=True)):
            size[i] = size[i] + np.abs(e - prev[i])
            with np.errstate(invalid="ignore"):
                ill = ~(bound <= ILL_CONDITIONED * np.maximum(size[i], np.abs(e)))
            case.notes["ill-conditioned"] |= bool(ill.any())
            row.append(np.where(ill, np.inf, bound + tiny))
            prev[i] = e
        out.append(row)
    return out


def judgeable(case: Case, expected: list[list[np.ndarray]], tol: list[list[np.ndarray]] | None = None) -> bool:
    """Whether the float64 reference stays finite and inside the dtype's range (with headroom for one more
    multiply) and, given ``tol``, the rule determines the result at the dtype's precision (no ill-conditioned
    element, no product another order overflows). A case judged for finiteness only counts as judgeable."""
    limit = torch.finfo(case.dtype).max / 1e3
    ok = all(np.all(np.isfinite(e)) and np.all(np.abs(e) < limit) for row in expected for e in row)
    if not ok or tol is None:
        return ok
    return not intermediate_overflow(case) and not case.notes.get("ill-conditioned", False)


def step_tolerances(case: Case, actual: list[list[np.ndarray]],
                    compensation: list[list[np.ndarray]] | None = None,
                    states: list[list[dict]] | None = None) -> tuple[list, list]:
    """Judged step by step: per step and parameter, the reference's step from the implementation's own θ_{t−1}
    (``actual``; the case's θ_0 at the first step) with the reference's state, and its tolerance, one step's bound
    (the state's bound carried from the start) plus the dtype's smallest normal number. Rounding then cannot
    compound over the trajectory: what bfloat16 and float16 are judged by, where a whole trajectory is rarely
    determined. The rows stop before the first step the rule does not
    determine at this precision: one whose bound is not finite somewhere (a denominator within its bound of 0, ε
    below the dtype's smallest subnormal), that forms a product another order overflows (``intermediate_overflow``),
    branches where rounding decides (``Rounding.undetermined``) or cancels (``undetermined_sign``); through the
    state, no step after it is determined either. A compensated implementation (``compensation``: Kahan summation)
    is judged on its parameters plus their compensation (``actual``), held to a bound where its sums into the
    parameter round at the compensated precision. With ``states`` (the implementation's buffers after every step),
    each step starts from the implementation's state too (``error_bounds``' ``restart_states``)."""
    b = error_bounds(case, restart=actual, compensation=compensation, restart_states=states)
    case.notes["error bounds"] = b
    tiny = torch.finfo(case.dtype).tiny
    expected, tol = [], []
    for t, (row, values) in enumerate(zip(b["bounds"], b["values"])):
        if t == b["stopped"] or not all(np.all(np.isfinite(e)) for e in row):
            break
        tol.append([e + tiny for e in row])
        expected.append(values)
    return expected, tol
