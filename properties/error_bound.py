"""A deterministic bound on rounding error: running error analysis in midpoint–radius form.

``Bounded(v, e)`` is a float64 value v (a NumPy array or a Python number) with a bound e ≥ 0 on the absolute
difference between v and what an implementation computing the same formula in a lower precision may hold. Reference
rules run on Bounded values unchanged: Python operators and the torch functions a rule calls (``torch.sqrt``,
``torch.where``, …, through ``__torch_function__``) compute the value as before and propagate the bound:

    a ± b:   e_a + e_b                               + u (|a| + |b|)
    a · b:   |a| e_b + |b| e_a + e_a e_b             + ρ(z)
    a / b:   (|a| e_b + |b| e_a) / (|b| (|b| − e_b))  + ρ(z)      (∞ where |b| ≤ e_b: the sign of b is not known)
    √a:      max(√a − √max(a − e_a, 0), √(a + e_a) − √a) + ρ(z)  (rounding never makes a sum of non-negatives
                                                                   negative; a difference that may cancel is marked
                                                                   with ``cancelling`` and decided separately)
    f(a):    max |f'| on [a − e_a, a + e_a] · e_a      + ρ(z)      (exp, log, sin, cos, tanh, …)
    Σ a_i:   Σ e_i + (n − 1) u Σ |a_i|                             (any order of the sum; Σ |a_i| beyond the
                                                                  dtype's range: a partial sum may overflow)
    A @ B:   |A| e_B + e_A |B| + e_A e_B + n u |A||B|               (any order of the dot products)

with ρ(z) = u·|z| + η·[z ≠ 0]: one rounding of the result (relative u, the dtype's unit roundoff, plus η, its
smallest subnormal, for gradual underflow; an exact zero stays exact, and a product of nonzero factors that
underflowed to 0 in float64 is not exact). In a float64 case a bound is never rounded to 0 below float64's range
where one of its terms is nonzero: it is floored at float64's smallest subnormal. A sum is charged u·(|a| + |b|) instead of
u·|a ± b|: the bound of a sum of terms in any order and grouping (an implementation may add an update in two
parts, θ − a − b for θ − (a + b)); sums are exact in the subnormal range, so they carry no η. These are interval
bounds (the products of errors are kept), not first-order estimates.

A comparison whose operands' intervals overlap is *undetermined*: elementwise (``torch.where``, ``torch.sign``)
the result takes the distance between the branches as its error; a scalar one that a rule branches on (ρ_t > 5 in
RAdam, max(1, t − t0) in ASGD) is followed both ways (``both_ways``) and the result's bound widened to cover the
other branch's values; only branches that cannot be spanned (a different state, more than ``MAX_UNDECIDED`` in one
step) mark the run undetermined from that step on, and the case is then judged for finiteness only.

The arithmetic is NumPy's on float64 arrays: the cases' tensors are small, and a NumPy operation on a few elements
costs a third of a torch one; torch tensors a rule passes in are converted on entry, and ``error()`` gives the bound
as an array of the value's shape.

A Python number that meets a Bounded value is an input in the dtype: its error is its own rounding to the dtype,
|fl(c) − c| (0 for 1, 0.5, 3.0). So is a hyperparameter, which a driver wraps before calling the rule, so that what
the rule derives from it (1 − β, β^t, 1 − β^t) is rounded and bounded like every other result.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

U64 = torch.finfo(torch.float64).eps / 2
# η·[z ≠ 0] is computed as min(|z|·2^1000, η): for every dtype's η and every nonzero |z| ≥ η·2^−1000 (all but
# float64 subnormals under a float16 η) that is η, and 0 for an exact zero.
_SUBNORMAL_INVERSE = 2.0**1000
_SMALLEST64 = float(torch.finfo(torch.float64).smallest_normal * torch.finfo(torch.float64).eps)
#: array values: NumPy arrays and the NumPy scalars an operation on a 0-d array gives (a Python float is a number)
ARRAY = (np.ndarray, np.generic)


def _array(x) -> np.ndarray:
    """x as a float64 array: a torch tensor copied out, a number or array converted."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def _bool_array(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


@dataclass
class Rounding:
    """The arithmetic being bounded: per-operation relative rounding ``u``, absolute ``eta`` below the smallest
    normal number, the dtype whose numbers inputs are rounded to; what the run met (overflow, undetermined branch)."""

    dtype: torch.dtype
    u: float
    eta: float
    #: the dtype's largest number: a product beyond it once its hyperparameter factors are taken out overflows in
    #: another order (``_overflow_check``), and so does a scalar over a tensor whose reciprocal is beyond it
    limit: float = math.inf
    #: the dtype, u and η of scalars (Python numbers: hyperparameters and what is derived from them alone), where
    #: they are held in another dtype than the tensors' (None: the tensors')
    scalar_dtype: torch.dtype | None = None
    scalar_u: float | None = None
    scalar_eta: float | None = None
    #: subnormal results may be flushed to 0 (``eta`` is then the smallest normal number): sums carry η too
    flush: bool = False
    #: the relative rounding of a sum into a compensated parameter (Kahan summation: ``Bounded.k``)
    u_compensated: float = 0.0
    overflow: bool = False
    undetermined: bool = False        # branches that could not be followed both ways were met
    # scalar comparisons of the current call: how many so far, the outcomes forced, the undecided ones met
    count: int = 0
    forced: dict = field(default_factory=dict)
    undecided: list = field(default_factory=list)

    def __post_init__(self):
        self.scalar_dtype = self.scalar_dtype or self.dtype
        self.scalar_u = self.u if self.scalar_u is None else self.scalar_u
        self.scalar_eta = self.eta if self.scalar_eta is None else self.scalar_eta

    def decide(self, value: bool, undecided: bool) -> bool:
        """The outcome of the call's next scalar comparison: forced if exploring, else ``value`` (noted if
        rounding could decide it otherwise)."""
        index, self.count = self.count, self.count + 1
        if index in self.forced:
            return self.forced[index]
        if undecided:
            self.undecided.append((index, bool(value)))
        return bool(value)

    def rho(self, z, magnitude=None):
        """One rounding of the result z (not of a sum: ``rho_sum``); ``magnitude`` = |z| if already computed."""
        if isinstance(z, ARRAY):
            a = np.abs(z) if magnitude is None else magnitude
            return np.minimum(a * _SUBNORMAL_INVERSE, self.eta) + a * self.u
        return self.scalar_u * abs(z) + (self.scalar_eta if z != 0 else 0.0)

    def rho_product(self, magnitude, a, b):
        """The rounding of a product or quotient a·b (a/b: b = 1) of magnitude |z|: u·|z|, plus η unless a factor is
        an exact zero — a float64 result that underflowed to 0 from nonzero factors is not exact."""
        if isinstance(magnitude, ARRAY):
            if self.dtype != torch.float64:
                # a float64 product of numbers of a narrower dtype never underflows: z ≠ 0 ⟺ both factors ≠ 0
                return self.rho(magnitude, magnitude)
            return magnitude * self.u + np.where(np.not_equal(a, 0) & np.not_equal(b, 0), self.eta, 0.0)
        return self.scalar_u * magnitude + (self.scalar_eta if a != 0 and b != 0 else 0.0)

    def _narrow(self, scalar, error) -> bool:
        """Whether the scalar operand of a sum is held exactly and is a number of the tensors' dtype (then the sum is
        one of two such numbers, exact below the smallest normal number)."""
        return error is not None and _is_zero(error) and conversion_error(float(scalar), self.dtype) == 0.0

    def rho_sum(self, a, b, ea=None, eb=None):
        """The rounding of a ± b in any grouping with other terms: u·(|a| + |b|) (the partial sums an
        implementation forms instead, θ − a' − b' for θ − (a' + b'), are bounded by the terms' magnitudes); a sum of
        numbers of the dtype is exact below its smallest normal number, a sum with a wider scalar (unless the scalar,
        held exactly, is a number of the dtype), or one whose subnormal result may be flushed to 0, is not (+η)."""
        array_a, array_b = isinstance(a, ARRAY), isinstance(b, ARRAY)
        if not (array_a or array_b):
            return self.scalar_u * (abs(a) + abs(b)) + (self.scalar_eta if self.flush else 0.0)
        if self.flush or array_a != array_b and self.scalar_dtype != self.dtype and not (
                self._narrow(b, eb) if array_a else self._narrow(a, ea)):
            # a scalar of a wider dtype is not a number of the tensor's: the sum rounds below its smallest normal too
            return self.u * (abs(a) + abs(b)) + self.eta
        return self.u * (abs(a) + abs(b))


_ACTIVE: list[Rounding] = []


def active() -> Rounding:
    if not _ACTIVE:
        raise RuntimeError("Bounded arithmetic outside a `rounding(...)` block")
    return _ACTIVE[-1]


@contextlib.contextmanager
def rounding(r: Rounding) -> Iterator[Rounding]:
    """Bounded arithmetic under ``r`` inside the block (NumPy's warnings off: ∞ and NaN are values here, as in
    torch)."""
    _ACTIVE.append(r)
    try:
        with np.errstate(all="ignore"):
            yield r
    finally:
        _ACTIVE.pop()


@functools.lru_cache(maxsize=4096)
def conversion_error(c: float, dtype: torch.dtype) -> float:
    """|fl(c) − c|: how far the number c moves when an implementation holds it in ``dtype``."""
    if c != c or c in (math.inf, -math.inf):
        return 0.0
    if dtype == torch.float64:
        return 0.0
    rounded = torch.tensor(c, dtype=torch.float64).to(dtype).to(torch.float64).item()
    return abs(rounded - c) if math.isfinite(rounded) else math.inf


def lift(x) -> "Bounded":
    """x as a Bounded value: Bounded as it is; a tensor or array exactly; a Python number with its rounding to the
    dtype."""
    if isinstance(x, Bounded):
        return x
    if isinstance(x, (torch.Tensor, *ARRAY)):
        return Bounded(_array(x), 0.0)
    if isinstance(x, bool):
        return Bounded(float(x), 0.0)
    if isinstance(x, int):
        return Bounded(float(x), conversion_error(float(x), active().scalar_dtype) if abs(x) > 2**24 else 0.0)
    return Bounded(x, conversion_error(float(x), active().scalar_dtype))


def _is_zero(e) -> bool:
    """Whether a bound is an exact (scalar) zero: the operand carries no error."""
    return not isinstance(e, np.ndarray) and e == 0


def _scaled(magnitude, e):
    """|magnitude| · e, skipping the work for an exact operand. (0 · ∞ gives NaN, which the tolerance reads as
    not determined: conservative, and only where a bound is already infinite.)"""
    if _is_zero(e):
        return 0.0
    return abs(magnitude) * e


def _plus(*terms):
    """The sum of bounds, skipping exact (scalar 0) terms."""
    out = 0.0
    for t in terms:
        if not _is_zero(t):
            out = t if _is_zero(out) else out + t
    return out


def _floor(r: "Rounding", e, a, ea, b, eb):
    """``e`` (the bound of a·b, or of a/b with b its divisor), at least float64's smallest subnormal where one of
    its terms — |a|·e_b, |b|·e_a, e_a·e_b — is nonzero in exact arithmetic: a bound below float64's range would
    round to 0 and be lost (a product of subnormal numbers, scaled by a factor < 1). Only float64 cases have errors
    that small (every other dtype's η is far inside float64's range)."""
    if r.dtype != torch.float64:
        return e
    if isinstance(e, np.ndarray) and e.size and e.min() > 0:
        return e
    ea_pos, eb_pos = np.greater(ea, 0), np.greater(eb, 0)
    nonzero = (ea_pos & eb_pos) | (np.not_equal(a, 0) & eb_pos) | (np.not_equal(b, 0) & ea_pos)
    if isinstance(nonzero, np.ndarray):
        return np.where(nonzero, np.maximum(e, _SMALLEST64), e)
    return max(e, _SMALLEST64) if nonzero else e


def _factor(x: "Bounded") -> float:
    """The hyperparameter factors < 1 in x's product: a scalar (a hyperparameter or what is derived from it alone)
    is one, min(1, |x|); a tensor carries the product of those multiplied into it (``Bounded.c``)."""
    return x.c if isinstance(x.v, ARRAY) else min(1.0, abs(x.v))


def _overflow_check(magnitude, c: float) -> None:
    """Note a product (or quotient) beyond the limit once its hyperparameter factors c are taken out: another order
    of the same product, those factors applied last, overflows the dtype (g·g first where (1 − β2)·g·g fits)."""
    r = _ACTIVE[-1]
    if r.overflow:
        return
    mz = float(np.max(magnitude)) if np.size(magnitude) else 0.0
    r.overflow = mz > r.limit * c or not math.isfinite(mz)


def _compensated_sum(a: "Bounded", b: "Bounded", z) -> "Bounded":
    """A sum into a compensated parameter (Kahan summation): the parameter plus its compensation takes the other term
    with one rounding of the compensation, u·(|term| + |compensation|) ≤ u·|term| + u_c·|parameter| — not u·|parameter|.
    The compensation's own distance (k) does not enter; the result is a compensated parameter again."""
    r = _ACTIVE[-1]
    θ, term = (a, b) if a.k is not None else (b, a)
    own = θ.e - θ.k if not _is_zero(θ.k) else θ.e
    rho = r.u * abs(term.v) + r.u_compensated * abs(θ.v)
    return Bounded(z, _plus(own, term.e, rho), k=0.0)


def _reciprocal_check(reciprocal) -> None:
    """Note a tensor divisor of a scalar whose reciprocal overflows the dtype: torch computes ``scalar / tensor``
    as scalar·(1/tensor), which overflows where the quotient does not."""
    r = _ACTIVE[-1]
    if not r.overflow and np.size(reciprocal) and np.max(np.abs(reciprocal)) > r.limit:
        r.overflow = True


class BoundedMask:
    """The result of an elementwise comparison: its value, and where rounding could have decided it otherwise."""

    def __init__(self, value, undetermined):
        self.value, self.undetermined = value, undetermined

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return Bounded.__torch_function__(func, types, args, kwargs)

    def __bool__(self) -> bool:
        return active().decide(bool(self.value), bool(np.any(self.undetermined)))

    def to(self, *args, **kwargs) -> "BoundedMask":
        floating = any(isinstance(a, torch.dtype) and a.is_floating_point for a in (*args, *kwargs.values()))
        return BoundedMask(np.asarray(self.value, dtype=np.float64), self.undetermined) if floating else self

    def __invert__(self) -> "BoundedMask":
        return BoundedMask(~self.value, self.undetermined)

    def __and__(self, other) -> "BoundedMask":
        o = _mask(other)
        return BoundedMask(self.value & o.value, self.undetermined | o.undetermined)

    def __or__(self, other) -> "BoundedMask":
        o = _mask(other)
        return BoundedMask(self.value | o.value, self.undetermined | o.undetermined)


def _mask(m) -> BoundedMask:
    return m if isinstance(m, BoundedMask) else BoundedMask(_bool_array(m), False)


class Bounded:
    """A float64 value and a bound on its absolute error (module docstring)."""

    __slots__ = ("v", "e", "c", "k")

    def __init__(self, v, e=0.0, c=1.0, k=None):
        self.v = _array(v) if isinstance(v, torch.Tensor) else v
        self.e = _array(e) if isinstance(e, torch.Tensor) else e
        self.c = c   # a tensor's hyperparameter factors (``_factor``): 1 but for products
        # a compensated parameter (Kahan summation): v is the parameter plus its compensation, exact for a sum into
        # it; k, the part of e that is the compensation (the parameter's distance from v), counts only where the
        # parameter itself is used (products); None: not a compensated parameter
        self.k = k

    def __repr__(self) -> str:
        return f"Bounded({self.v!r} ± {self.e!r})"

    # ---- data ---------------------------------------------------------------------------------------------------
    @property
    def shape(self):
        return np.shape(self.v)

    @property
    def ndim(self):
        return np.ndim(self.v)

    @property
    def dtype(self):
        return torch.float64

    def numel(self):
        return int(np.size(self.v))

    def error(self) -> np.ndarray:
        """The bound as a float64 array of the value's shape."""
        return np.broadcast_to(np.asarray(self.e, dtype=np.float64), self.shape).copy()

    def clone(self) -> "Bounded":
        return Bounded(np.copy(self.v) if isinstance(self.v, np.ndarray) else self.v, self.e)

    def __getitem__(self, index) -> "Bounded":
        e = self.e[index] if isinstance(self.e, np.ndarray) and self.e.ndim else self.e
        return Bounded(self.v[index], e)

    def reshape(self, *shape) -> "Bounded":
        e = self.e.reshape(*shape) if isinstance(self.e, np.ndarray) and self.e.ndim else self.e
        return Bounded(np.reshape(self.v, shape[0] if len(shape) == 1 else shape), e)

    def __float__(self) -> float:
        return float(self.v)

    def __len__(self) -> int:
        return len(self.v)

    # ---- arithmetic ---------------------------------------------------------------------------------------------
    def __add__(self, other):
        o = other if type(other) is Bounded else lift(other)
        if self.k is not None or o.k is not None:
            return _compensated_sum(self, o, self.v + o.v)
        return Bounded(self.v + o.v, _plus(self.e, o.e, _ACTIVE[-1].rho_sum(self.v, o.v, self.e, o.e)))

    def __radd__(self, other):
        return lift(other) + self

    def __sub__(self, other):
        o = other if type(other) is Bounded else lift(other)
        if self.k is not None or o.k is not None:
            return _compensated_sum(self, o, self.v - o.v)
        return Bounded(self.v - o.v, _plus(self.e, o.e, _ACTIVE[-1].rho_sum(self.v, o.v, self.e, o.e)))

    def __rsub__(self, other):
        return lift(other) - self

    def __neg__(self):
        return Bounded(-self.v, self.e)

    def __abs__(self):
        return Bounded(abs(self.v), self.e)

    def __mul__(self, other):
        o = other if type(other) is Bounded else lift(other)
        z = self.v * o.v
        r = _ACTIVE[-1]
        mz = abs(z)
        c = 1.0
        if isinstance(z, ARRAY):
            c = _factor(self) * _factor(o)
            _overflow_check(mz, c)
        rho = r.rho_product(mz, self.v, o.v)
        ea, eb = self.e, o.e
        exact_a, exact_b = _is_zero(ea), _is_zero(eb)
        if exact_a and exact_b:
            return Bounded(z, rho, c)
        if exact_a:
            return Bounded(z, _floor(r, abs(self.v) * eb + rho, self.v, 0.0, o.v, eb), c)
        if exact_b:
            return Bounded(z, _floor(r, abs(o.v) * ea + rho, self.v, ea, o.v, 0.0), c)
        return Bounded(z, _floor(r, abs(self.v) * eb + abs(o.v) * ea + ea * eb + rho, self.v, ea, o.v, eb), c)

    def __rmul__(self, other):
        return lift(other) * self

    def __truediv__(self, other):
        o = other if type(other) is Bounded else lift(other)
        z = self.v / o.v if isinstance(self.v, ARRAY) or isinstance(o.v, ARRAY) else _divide(self.v, o.v)
        mz = abs(z)
        c = 1.0
        if isinstance(z, ARRAY):
            c = _factor(self)
            _overflow_check(mz, c)
            if not isinstance(self.v, ARRAY):
                _reciprocal_check(1.0 / np.asarray(o.v, dtype=np.float64))
        if _is_zero(o.e) and _is_zero(self.e):
            e = 0.0
        else:   # (|a| e_b + |b| e_a) / (|b| (|b| − e_b)), as (e_a + |z| e_b) / (|b| − e_b): no product underflows
            margin = abs(o.v) - o.e
            spread = _plus(self.e, _scaled(z, o.e))
            if isinstance(margin, ARRAY) or isinstance(spread, ARRAY):
                e = np.where(margin > 0, spread / margin, math.inf)
            else:
                e = spread / margin if margin > 0 else math.inf
            e = _floor(_ACTIVE[-1], e, self.v, self.e, 1.0, o.e)
        return Bounded(z, _plus(e, _ACTIVE[-1].rho_product(mz, self.v, 1.0)), c)

    def __rtruediv__(self, other):
        return lift(other) / self

    def __pow__(self, n):
        if isinstance(n, Bounded) or not float(n).is_integer() or n < 0:
            return _power(self, lift(n))
        n = int(n)
        if n == 0:
            return Bounded(np.ones_like(self.v) if isinstance(self.v, ARRAY) else 1.0, 0.0)
        z = self.v**n
        c = 1.0
        if isinstance(z, ARRAY):
            c = _factor(self) ** n
            _overflow_check(abs(z), c)
        if _is_zero(self.e):
            e = 0.0
        else:   # (|x| + e)^n − |x|^n: the interval's widest point
            e = (abs(self.v) + self.e) ** n - abs(z)
        # x^n as n − 1 multiplications (or a pow within a few ulps): up to max(1, n − 1) roundings
        return Bounded(z, _plus(e, max(1, n - 1) * active().rho(z)), c)

    def __rpow__(self, base):
        return _power(lift(base), self)

    # ---- comparisons --------------------------------------------------------------------------------------------
    def _compare(self, other, op):
        o = lift(other)
        value = op(self.v, o.v)
        gap = abs(self.v - o.v)
        width = _plus(self.e, o.e)
        if isinstance(value, ARRAY):
            return BoundedMask(value, (gap <= width) & (width > 0) if not _is_zero(width) else False)
        return active().decide(value, 0 < width and gap <= width)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = None

    def __bool__(self) -> bool:
        return bool(self.v)

    # ---- torch functions ----------------------------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OPERATORS:   # a plain tensor on the left of an operator: the same operation on Bounded values
            return _OPERATORS[func](lift(args[0]), args[1])
        handler = _HANDLERS.get(func)
        if handler is None:
            raise NotImplementedError(f"the error bound has no rule for {getattr(func, '__name__', func)}; "
                                      "add one to properties/error_bound.py")
        return handler(*args, **kwargs)

    def sqrt(self):
        return _sqrt(self)

    def abs(self):
        return abs(self)

    def sum(self, dim=None, keepdim=False):
        return _sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        n = self.numel() if dim is None else self.shape[dim]
        return _sum(self, dim, keepdim) / n

    def square(self):
        return self * self

    def cosh(self):
        return _HANDLERS[torch.cosh](self)

    def max(self):
        return Bounded(np.max(self.v), np.max(self.error()))

    def min(self):
        return Bounded(np.min(self.v), np.max(self.error()))

    def to(self, *args, **kwargs):
        return self

    def squeeze(self, *dims):
        return Bounded(np.squeeze(self.v, dims or None), np.squeeze(self.error(), dims or None))

    def unsqueeze(self, dim):
        return Bounded(np.expand_dims(self.v, dim), np.expand_dims(self.error(), dim))

    def dot(self, other):
        return _matmul(self, other)

    def __matmul__(self, other):
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul(lift(other), self)

    @property
    def T(self):
        return Bounded(self.v.T, self.e.T if isinstance(self.e, np.ndarray) and self.e.ndim else self.e)


def _divide(a: float, b: float) -> float:
    """a / b for Python numbers as torch divides: ±∞ or NaN for b = 0."""
    try:
        return a / b
    except ZeroDivisionError:
        return float(np.float64(a) / np.float64(b))


def _power(base: Bounded, exponent: Bounded) -> Bounded:
    """b^y for b > 0: first order in both, e = |y| b^(y−1) e_b + |z ln b| e_y, taken at the interval's worst end."""
    z = np.power(_array(base.v), _array(exponent.v))
    if not isinstance(base.v, ARRAY) and not isinstance(exponent.v, ARRAY):
        z = float(z)
    lo = _array(base.v) - base.e if not _is_zero(base.e) else _array(base.v)
    hi = _array(base.v) + base.e
    worst = np.maximum(np.abs(lo), np.abs(hi))
    y = _array(exponent.v)
    if not _is_zero(base.e):
        slope = np.abs(y) * np.maximum(np.maximum(lo, 0) ** (y - 1), hi ** (y - 1))
        e_b = np.where(lo > 0, slope * base.e, math.inf)
    else:
        e_b = 0.0
    e_y = np.abs(worst**y * np.log(worst)) * exponent.e if not _is_zero(exponent.e) else 0.0
    e = _plus(e_b, e_y)
    if not isinstance(z, ARRAY) and isinstance(e, ARRAY):
        e = float(e)
    # exp(y·ln b): the rounding of y·ln b, relative to |y ln b|, becomes a relative error of z; plus z's own
    amplification = 1.0 + abs(float(np.max(np.abs(y * np.log(worst))))) if float(np.min(worst)) > 0 else 1.0
    return Bounded(z, _plus(e, amplification * active().rho(z)))


def _sqrt(a) -> Bounded:
    a = lift(a)
    v = _array(a.v)
    z = np.sqrt(v)
    if _is_zero(a.e):
        e = 0.0
    else:
        # the farther end of [√max(a − e, 0), √(a + e)]: below for a ≥ e (√ is concave), above for a small value
        # whose bound reaches past it (a = 0 ± e: up to √e)
        e = np.maximum(z - np.sqrt(np.maximum(v - a.e, 0.0)), np.sqrt(v + a.e) - z)
    return _shaped_like(a, z, _plus(e, active().rho(z)))


def _shaped_like(a: Bounded, z, e) -> Bounded:
    """The result z ± e of an elementwise function of a: a number where a's value is one."""
    if isinstance(a.v, ARRAY):
        return Bounded(z, e)
    return Bounded(float(z), float(e) if isinstance(e, ARRAY) else e)


def _rsqrt(a) -> Bounded:
    return 1.0 / _sqrt(a)


def _unary(f, slope):
    """An elementwise function with the bound max|f'| over the interval · e (``slope(lo, hi)``) + one rounding."""
    def apply(a):
        a = lift(a)
        v = _array(a.v)
        z = f(v)
        e = 0.0 if _is_zero(a.e) else slope(v - a.e, v + a.e) * a.e
        return _shaped_like(a, z, _plus(e, active().rho(z)))
    return apply


def _maxabs(f):
    return lambda lo, hi: np.maximum(np.abs(f(lo)), np.abs(f(hi)))


def _bounded_by(c):
    return lambda lo, hi: np.full_like(lo, c)


def _beside(bound, tensor: "Bounded") -> "Bounded":
    """A bound of a comparison (maximum, minimum, clamp) beside a tensor: a scalar one is rounded to the tensor's
    dtype (torch converts a clamp's bound, as a tensor made with full_like is): ε = 1e-12 is 0 in float16."""
    b = lift(bound)
    if isinstance(tensor.v, ARRAY) and not isinstance(b.v, ARRAY):
        extra = conversion_error(float(b.v), active().dtype)
        if extra:
            b = Bounded(b.v, _plus(b.e, extra))
    return b


def _maximum(a, b, out=None):
    a, b = lift(a), lift(b)
    a, b = _beside(a, b), _beside(b, a)
    return Bounded(np.maximum(_array(a.v), _array(b.v)), _max_err(a.e, b.e))


def _minimum(a, b, out=None):
    a, b = lift(a), lift(b)
    a, b = _beside(a, b), _beside(b, a)
    return Bounded(np.minimum(_array(a.v), _array(b.v)), _max_err(a.e, b.e))


def _max_err(ea, eb):
    if _is_zero(ea) and _is_zero(eb):
        return 0.0
    return np.maximum(ea, eb)


def _clamp(a, min=None, max=None):
    a = lift(a)
    v = a.v
    e = a.e
    if min is not None:
        m = _beside(min, a)
        v = np.maximum(v, m.v)
        e = _max_err(e, m.e)
    if max is not None:
        m = _beside(max, a)
        v = np.minimum(v, m.v)
        e = _max_err(e, m.e)
    return Bounded(v, e)


def _where(cond, x, y):
    m = _mask(cond)
    x, y = lift(x), lift(y)
    z = np.where(m.value, x.v, y.v)
    e = np.where(m.value, x.e, y.e) if not (_is_zero(x.e) and _is_zero(y.e)) else 0.0
    undetermined = m.undetermined
    if isinstance(undetermined, ARRAY) and undetermined.any():
        # rounding could have taken the other branch: the error also spans the distance between the two
        e = np.where(undetermined, np.maximum(x.e, y.e) + np.abs(x.v - y.v), e)
    return Bounded(z, e)


def _sign(a):
    a = lift(a)
    z = np.sign(a.v)
    if _is_zero(a.e):
        return Bounded(z, 0.0)
    return Bounded(z, np.where((np.abs(a.v) <= a.e) & np.greater(a.e, 0), 1.0 + np.abs(z), 0.0))


def _like(f):
    def make(a, *args, **kwargs):
        kwargs.pop("dtype", None)
        a = a.v if isinstance(a, Bounded) else _array(a)
        args = tuple(float(x.v) if isinstance(x, Bounded) else x for x in args)
        if f is np.full_like:   # the fill value is an input in the dtype
            return Bounded(f(a, args[0], dtype=np.float64), conversion_error(float(args[0]), active().dtype))
        return Bounded(f(a, *args, dtype=np.float64), 0.0)
    return make


def _sum(a, dim=None, keepdim=False):
    a = lift(a)
    v = _array(a.v)
    if dim is None:
        magnitude = np.abs(v).sum()
        _overflow_check(magnitude, 1.0)
        e = _plus(a.error().sum() if not _is_zero(a.e) else 0.0, max(v.size - 1, 0) * active().u * magnitude)
        return Bounded(v.sum(), e)
    z = v.sum(axis=dim, keepdims=keepdim)
    n = v.shape[dim]
    magnitude = np.abs(v).sum(axis=dim, keepdims=keepdim)
    _overflow_check(magnitude, 1.0)
    err = a.error().sum(axis=dim, keepdims=keepdim) if not _is_zero(a.e) else 0.0
    return Bounded(z, _plus(err, max(n - 1, 0) * active().u * magnitude))


def _matmul(a, b):
    a, b = lift(a), lift(b)
    z = a.v @ b.v
    n = np.shape(a.v)[-1]
    magnitude = np.abs(a.v) @ np.abs(b.v)
    _overflow_check(magnitude, 1.0)
    e = _plus(np.abs(a.v) @ b.error() if not _is_zero(b.e) else 0.0,
              a.error() @ np.abs(b.v) if not _is_zero(a.e) else 0.0,
              a.error() @ b.error() if not (_is_zero(a.e) or _is_zero(b.e)) else 0.0,
              n * active().u * magnitude)
    return Bounded(z, e)


def _stack(xs, dim=0):
    xs = [lift(x) for x in xs]
    return Bounded(np.stack([_array(x.v) for x in xs], dim), np.stack([x.error() for x in xs], dim))


def _diag(a):
    a = lift(a)
    return Bounded(np.diag(a.v), np.diag(a.error()))


_sin_cos_slope = _bounded_by(1.0)
_HANDLERS = {
    torch.sqrt: _sqrt, torch.Tensor.sqrt: _sqrt, torch.rsqrt: _rsqrt,
    torch.abs: abs, torch.Tensor.abs: abs, torch.neg: lambda a: -a,
    torch.maximum: _maximum, torch.minimum: _minimum, torch.clamp: _clamp, torch.where: _where,
    torch.sign: _sign, torch.zeros_like: _like(np.zeros_like), torch.ones_like: _like(np.ones_like),
    torch.full_like: _like(np.full_like), torch.Tensor.clone: lambda a: a.clone(),
    torch.exp: _unary(np.exp, lambda lo, hi: np.exp(hi)),
    torch.log: _unary(np.log, lambda lo, hi: np.where(lo > 0, 1.0 / lo, math.inf)),
    torch.sin: _unary(np.sin, _sin_cos_slope), torch.cos: _unary(np.cos, _sin_cos_slope),
    torch.tanh: _unary(np.tanh, _bounded_by(1.0)),
    torch.sigmoid: _unary(lambda x: 1.0 / (1.0 + np.exp(-x)), _bounded_by(0.25)),
    torch.cosh: _unary(np.cosh, _maxabs(np.sinh)), torch.sinh: _unary(np.sinh, _maxabs(np.cosh)),
    torch.sum: _sum, torch.dot: _matmul, torch.matmul: _matmul, torch.stack: _stack, torch.diag: _diag,
    torch.square: lambda a: a * a,
}


MAX_UNDECIDED = 3


def both_ways(call, r: Rounding, forced: dict | None = None, depth: int = 0):
    """``call()`` (a rule's update), with every scalar comparison rounding could decide otherwise followed both
    ways (up to ``MAX_UNDECIDED`` in one call): the result is the one the reference takes, its bound widened to
    cover the other branch's values. Branches that cannot be spanned (different state, too many) mark the run
    ``undetermined``."""
    r.count, r.forced, r.undecided = 0, dict(forced or {}), []
    out = call()
    pending = [(i, v) for i, v in r.undecided if i not in (forced or {})]
    if not pending:
        return out
    if depth >= MAX_UNDECIDED:
        r.undetermined = True
        return out
    index, value = pending[0]
    taken = both_ways(call, r, {**(forced or {}), index: value}, depth + 1)
    other = both_ways(call, r, {**(forced or {}), index: not value}, depth + 1)
    spanned = _span(taken, other)
    if spanned is None:
        r.undetermined = True
        return taken
    return spanned


def _span(a, b):
    """a, with each Bounded value's bound widened to contain b's interval; None if their structure differs."""
    if isinstance(a, Bounded) and isinstance(b, Bounded):
        if _is_zero(a.e) and _is_zero(b.e) and type(a.v) is float and type(b.v) is float and a.v == b.v:
            return a
        gap = abs(a.v - b.v)
        return Bounded(a.v, _max_err(_plus(a.e, 0.0), _plus(b.e, gap)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        parts = [_span(x, y) for x, y in zip(a, b)]
        return None if any(p is None for p in parts) else type(a)(parts)
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        parts = {k: _span(a[k], b[k]) for k in a}
        return None if any(p is None for p in parts.values()) else parts
    if isinstance(a, (Bounded, float)) or isinstance(b, (Bounded, float)):
        return _span(lift(a), lift(b))
    return a if a == b else None


_OPERATORS = {
    torch.Tensor.__add__: lambda a, b: a + b, torch.Tensor.add: lambda a, b: a + b,
    torch.Tensor.__radd__: lambda a, b: b + a,
    torch.Tensor.__sub__: lambda a, b: a - b, torch.Tensor.sub: lambda a, b: a - b,
    torch.Tensor.__rsub__: lambda a, b: b - a,
    torch.Tensor.__mul__: lambda a, b: a * b, torch.Tensor.mul: lambda a, b: a * b,
    torch.Tensor.__rmul__: lambda a, b: b * a,
    torch.Tensor.__truediv__: lambda a, b: a / b, torch.Tensor.div: lambda a, b: a / b,
    torch.Tensor.__rtruediv__: lambda a, b: b / a,
    torch.Tensor.__matmul__: _matmul, torch.Tensor.matmul: _matmul, torch.Tensor.__rmatmul__: lambda a, b: _matmul(b, a),
    torch.Tensor.__pow__: lambda a, b: a**b, torch.Tensor.__rpow__: lambda a, b: lift(b) ** a,
}
_HANDLERS[torch.max] = lambda a, *rest, **kw: lift(a).max() if not rest and not kw else _maximum(a, rest[0])
_HANDLERS[torch.min] = lambda a, *rest, **kw: lift(a).min() if not rest and not kw else _minimum(a, rest[0])
