"""Problems for the rule properties, and the closed-loop driver that runs an implementation or a reference rule on
them.

Problems (float64, at most ``MAX_DIM`` = 8 coordinates):

* ``quadratics()`` — f(x) = ½ (x − x*)ᵀ A (x − x*) + c with A = Q diag(λ) Qᵀ: a drawn spectrum λ (geometric with a
  drawn condition number, isotropic, or two clusters; its largest |λ| is exactly the drawn L; random signs for
  indefinite ones) and Q a random orthogonal matrix (QR of a Gaussian matrix, signs fixed). ``diagonal=True`` takes
  Q = I: a separable quadratic.
* ``document_surfaces()`` — the documents' smooth surfaces that are not quadratics, from ``reference/problems.py``
  (001's function_2d in 1–8 dimensions, 000's pathological_loss, 003's regression with MSE, Huber and SmoothL1,
  004's cosh and x·cos(cx), 001's saddle x² − y², and Rosenbrock), from their documents' starts or drawn ones in
  the convex region where their L holds.
* ``abs_problems()`` — f(x) = Σ c_i |x_i − x*_i| (001's 5·|x|): gradients of constant magnitude c_i per element.
* ``Constant`` — a constant function: every gradient is zero. ``Doubled`` — a separable problem with one element's
  part doubled. ``book_paraboloids()`` — 002's two paraboloids with the learning rates the chapter discusses.

Claims about the value of f are judged on values known to a stated accuracy: quadratics are evaluated in extended
precision (``np.longdouble``, a 64-bit significand, unit roundoff 2⁻⁶⁴) with the standard bound γ_k = k·u on a
k-term evaluation; the document surfaces in float64, with a bound on the rounding error of f and ∇f computed as the
trajectory tolerance computes a rule's (``properties/error_bound.py``): the surface's own f or ∇f evaluated once on
a ``Bounded`` point under ``arithmetic(float64)``, every operation charged with two float64 roundings (4u relative,
and 2η absolute below the smallest normal number: more than the evaluation's own one) and each error carried
through the rest of the evaluation.

The driver: ``Runner.run(hp, x0, grad, steps, lrs, layout)`` steps an implementation (``SubjectRunner``) or a
reference rule (``ReferenceRunner``) in closed loop — before each step the gradient is ``grad(x, t)`` at the
parameters the runner holds now — and records the parameters after every step and the gradients it fed. Both go
through the suite's one driver (``optimizers.adapters.implementation_trajectory``,
``reference.trajectory.reference_trajectory``) on the trajectory case of the run (``layout_case``), with the
gradient as a feedback.
``closed_loop(runner, problem, ...)`` is that with ∇f. A ``Layout`` lays the flat vector x out as parameter tensors
(shapes, a storage permutation, param groups); the gradient is always computed on x in its own order, then
permuted and split, so a layout never changes the problem's arithmetic.

Comparisons with a closed form are made in lockstep: the closed form is evaluated on the gradients the run was fed
(``Run.grads``), so that the closed loop's feedback — which multiplies any rounding difference by the problem's
conditioning — does not enter the comparison, and the tolerance is the suite's trajectory tolerance of the
open-loop case those gradients make (``lockstep_tolerance``).
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import pytest
import torch
from hypothesis import assume, settings
from hypothesis import strategies as st

from optimizers.adapters import Subject, implementation_trajectory
from optimizers.known_deviations import applicable, avoiding
from optimizers.loading import reproducer_import
from properties.assertions import NonConformance, any_subnormal
from properties.error_bound import Bounded, rounding
from properties import plots
from properties.strategies import value
from properties.test_trajectory import under_known_deviations
from properties.tolerances import arithmetic, judgeable, tolerances, unit_roundoff
from reference import problems as documents
from reference.declarations import Rule
from reference.trajectory import Case, Group, reference_trajectory

MAX_DIM = 8
U = unit_roundoff(torch.float64)                     # 2⁻⁵³
U_EXT = float(np.finfo(np.longdouble).eps) / 2       # 2⁻⁶⁴ on x86 (80-bit long double)
LD = np.longdouble
SUBNORMAL = float(np.finfo(np.float64).smallest_subnormal)


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0**e))


# Strategies drawn from in every example are built once (Hypothesis validates a strategy when first drawn from).
SEEDS = st.integers(0, 2**32 - 1)
_L = st.sampled_from([1.0, 0.4, 4.0]) | log_uniform(1e-2, 1e2)
_CONDITION = st.sampled_from([10.0, 1e3]) | log_uniform(1.0, 1e4)
_SCALE = st.sampled_from([1.0]) | log_uniform(1e-2, 1e2)
_KINDS = {True: st.sampled_from(["geometric", "isotropic", "two clusters"]),
          False: st.sampled_from(["geometric", "isotropic", "two clusters", "indefinite"])}
_LR_FACTOR = st.sampled_from([1.0, 0.5, 0.1, 2.0]) | st.floats(0.01, 3.0)
_DIMS = {(lo, hi): st.integers(lo, hi) for lo in (1, 2) for hi in range(lo, MAX_DIM + 1)}


# ---- problems ------------------------------------------------------------------------------------------------------
class Problem(Protocol):
    name: str
    x0: np.ndarray
    L: float | None                     # ‖∇²f‖₂ ≤ L wherever ``in_region`` holds (a convex set)
    separable: bool                     # f = Σ f_i(x_i), and ∇f is computed element by element

    def grad(self, x: np.ndarray) -> np.ndarray: ...          # float64: what an optimizer is fed


@dataclass(frozen=True)
class Quadratic:
    """f(x) = ½ (x − x*)ᵀ A (x − x*) + c,  A = Q diag(λ) Qᵀ rounded to float64 (Q None: A = diag(λ), exact)."""

    name: str
    lam: np.ndarray
    Q: np.ndarray | None
    x_star: np.ndarray
    x0: np.ndarray
    c: float = 0.0

    @property
    def dim(self) -> int:
        return self.lam.shape[0]

    @property
    def separable(self) -> bool:
        return self.Q is None

    @functools.cached_property
    def A(self) -> np.ndarray:
        if self.Q is None:
            return np.diag(self.lam)
        return (self.Q * self.lam) @ self.Q.T

    @functools.cached_property
    def storage_error(self) -> tuple[LD, LD]:
        """(F, D): F = ‖A_stored − Q Λ Qᵀ‖_F and D = ‖QᵀQ − I‖_F, in extended precision (0, 0 for diagonal A)."""
        if self.Q is None:
            return 0.0, 0.0
        q = self.Q.astype(LD)
        exact = (q * self.lam.astype(LD)) @ q.T
        F = np.sqrt(np.sum((self.A.astype(LD) - exact) ** 2))
        D = np.sqrt(np.sum((q.T @ q - np.eye(self.dim, dtype=LD)) ** 2))
        return F, D

    @functools.cached_property
    def L(self) -> float:
        """An upper bound on ‖A_stored‖₂: ‖QΛQᵀ‖₂ ≤ max|λ|·‖Q‖₂² ≤ max|λ|(1 + D), plus ‖A_stored − QΛQᵀ‖₂ ≤ F;
        inflated by 64·n·u_ext for the extended-precision evaluation of F and D, and rounded up to a float64."""
        F, D = self.storage_error
        bound = (LD(np.max(np.abs(self.lam))) * (1 + LD(D)) + LD(F)) * (1 + 64 * self.dim * LD(U_EXT))
        L = float(bound)
        return float(np.nextafter(L, np.inf)) if LD(L) < bound else L

    def grad(self, x: np.ndarray) -> np.ndarray:
        if self.Q is None:
            return self.lam * (x - self.x_star)
        return self.A @ (x - self.x_star)

    def value(self, x: np.ndarray) -> tuple[LD, float]:
        """f(x) in extended precision and a bound on its evaluation error (γ_{n+3} of the absolute terms)."""
        d = x.astype(LD) - self.x_star.astype(LD)
        A = self.A.astype(LD)
        f = LD(0.5) * (d @ (A @ d)) + LD(self.c)
        scale = 0.5 * float(np.abs(d) @ (np.abs(A) @ np.abs(d))) + abs(self.c)
        return f, (self.dim + 3) * U_EXT * scale

    def grad_exact(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∇f(x) = A_stored (x − x*) in extended precision, and a bound on its evaluation error (γ_{n+1})."""
        d = x.astype(LD) - self.x_star.astype(LD)
        A = self.A.astype(LD)
        return A @ d, (self.dim + 1) * U_EXT * (np.abs(self.A) @ np.abs(d.astype(np.float64)))

    def grad_error(self, x: np.ndarray) -> np.ndarray:
        """A bound on |grad(x) − ∇f(x)| elementwise: the float64 gradient against the extended-precision one."""
        g_ext, err = self.grad_exact(x)
        return np.abs((self.grad(x).astype(LD) - g_ext).astype(np.float64)) + err

    def in_region(self, x: np.ndarray) -> bool:
        return True

    def __repr__(self) -> str:
        return (f"{self.name}: λ = {np.array2string(self.lam, precision=4)}, x* = "
                f"{np.array2string(self.x_star, precision=4)}, x0 = {np.array2string(self.x0, precision=4)}")


@dataclass(frozen=True)
class Surface:
    """One of the documents' surfaces (``reference/problems.py``) from a drawn start. Its L holds on the convex
    set ``region`` (a step is judged only when both of its ends lie there)."""

    problem: documents.Problem
    x0: np.ndarray
    region: Callable[[np.ndarray], bool] = field(default=lambda x: True)
    separable: bool = False

    @property
    def name(self) -> str:
        return self.problem.name

    @property
    def L(self) -> float | None:
        return self.problem.L

    @property
    def dim(self) -> int:
        return self.x0.shape[0]

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.problem.grad(torch.tensor(x, dtype=torch.float64)).numpy().copy()

    def _measured(self, fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fn(x) in float64 and a bound on its rounding error: fn evaluated once on ``Bounded(x)`` (x exact) under
        ``arithmetic(float64)``, which charges every operation of f or ∇f with two roundings — 4u relative, and below
        the smallest normal number 2η absolute (gradual underflow) — and carries each error through the operations
        after it (``properties/error_bound.py``)."""
        with rounding(arithmetic(torch.float64)):
            out = fn(Bounded(torch.tensor(x, dtype=torch.float64)))
        return np.asarray(out.v, dtype=np.float64), out.error()

    def value(self, x: np.ndarray) -> tuple[LD, float]:
        f, err = self._measured(self.problem.f, x)
        return LD(float(f)), float(err)

    def grad_error(self, x: np.ndarray) -> np.ndarray:
        return self._measured(self.problem.grad, x)[1]

    def in_region(self, x: np.ndarray) -> bool:
        return bool(self.region(x))

    def __repr__(self) -> str:
        return f"{self.name} ({self.problem.source}) from x0 = {np.array2string(self.x0, precision=6)}"


@dataclass(frozen=True)
class AbsValue:
    """f(x) = Σ c_i |x_i − x*_i| — 001's ``scaled_abs`` (5·|x|) with a magnitude and a centre per element:
    ∇f = c·sign(x − x*), of constant magnitude c_i wherever x_i ≠ x*_i."""

    c: np.ndarray
    x_star: np.ndarray
    x0: np.ndarray
    name: str = "abs"
    L: float | None = None
    separable: bool = True

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.c * np.sign(x - self.x_star)

    def __repr__(self) -> str:
        return (f"Σ c_i|x_i − x*_i| with c = {np.array2string(self.c, precision=4)}, x* = "
                f"{np.array2string(self.x_star, precision=4)}, x0 = {np.array2string(self.x0, precision=4)}")


@dataclass(frozen=True)
class Constant:
    """f(x) = constant: every gradient is exactly zero."""

    x0: np.ndarray
    name: str = "constant"
    L: float | None = 0.0
    separable: bool = True

    def grad(self, x: np.ndarray) -> np.ndarray:
        return np.zeros_like(x)

    def __repr__(self) -> str:
        return f"f = constant, x0 = {np.array2string(self.x0, precision=6)}"


@dataclass(frozen=True)
class Doubled:
    """``base`` with element ``k``'s part of a separable f doubled: its gradient times 2 (exact), the others'
    unchanged."""

    base: Problem
    k: int

    @property
    def x0(self) -> np.ndarray:
        return self.base.x0

    @property
    def name(self) -> str:
        return f"{self.base.name} with f_{self.k} doubled"

    L = None
    separable = True

    def grad(self, x: np.ndarray) -> np.ndarray:
        g = self.base.grad(x)
        g[self.k] *= 2.0
        return g


# ---- the documents' problems with their starting points ---------------------------------------------------------
def book_paraboloids() -> list[tuple[Quadratic, float, str]]:
    """002 §8.3.1's paraboloids as (problem, learning rate, what the chapter says happens), from (6, 6) — the start
    the chapter prints for its isotropic example (it prints none for the non-isotropic one)."""
    x0 = np.array([6.0, 6.0])
    iso = Quadratic("002 isotropic paraboloid 0.2x1² + 0.2x2² − 5", np.array([0.4, 0.4]), None, np.zeros(2), x0, -5.0)
    non = Quadratic("002 non-isotropic paraboloid 0.2x1² + 2x2² − 5", np.array([0.4, 4.0]), None, np.zeros(2), x0,
                    -5.0)
    return [
        (iso, 2.5, "lr 2.5 = 1/λ reaches the minimum (0, 0) in a single step"),
        (iso, 0.1, "a small learning rate needs many steps"),
        (non, 0.1, "the lowest learning rate eventually reaches the minimum"),
        (non, 0.5, "lr = 2/L = 0.5: endless zig-zagging in x2 (|1 − lr·4| = 1)"),
        (non, 0.51, "just above 2/L = 0.5, x2 zig-zags off to infinity at rate |1 − 0.51·4| = 1.04"),
    ]


@functools.lru_cache(maxsize=None)
def _document(name: str) -> documents.Problem:
    builders = {"function_2d": documents.function_2d, "pathological_loss": documents.pathological_loss,
                "rosenbrock": documents.rosenbrock, "cosh": lambda: documents.cosh(R=10.0),
                "x_cos": lambda: documents.x_cos(R=30.0), "saddle": documents.saddle,
                **{f"regression_{loss}": functools.partial(documents.regression, loss)
                   for loss in ("mse", "huber", "smooth_l1")}}
    return builders[name]()


def _box(r: float) -> Callable[[np.ndarray], bool]:
    return lambda x: bool(np.all(np.abs(x) <= r))


SURFACES = ("function_2d", "pathological_loss", "regression_mse", "regression_huber", "regression_smooth_l1", "cosh",
            "x_cos", "saddle", "rosenbrock")


@st.composite
def document_surfaces(draw, max_dim: int = MAX_DIM, names: tuple[str, ...] = SURFACES) -> Surface:
    """A smooth surface of the documents from its document's start or one drawn uniformly in a box of the region where
    its L holds (reference/problems.py states each region): function_2d (001, L < 1.87 everywhere, in 1–``max_dim`` dimensions: f is a sum over
    elements), pathological_loss (000, L = 2 on each half-plane w1 > 0, w1 < 0), regression MSE/Huber/SmoothL1 (003,
    everywhere), cosh (004, on |x| ≤ 10), x·cos(cx) (004, on |x| ≤ 30), the saddle x² − y² (001, everywhere) and
    Rosenbrock (on [−2, 2]²)."""
    name = draw(st.sampled_from(names), label="surface")
    problem = _document(name)
    box = {"pathological_loss": 8.0, "x_cos": 30.0, "rosenbrock": 2.0}.get(name, 10.0)
    dim = draw(_DIMS[(1, max_dim)], label="dim") if name == "function_2d" else problem.dim
    start = draw(st.sampled_from(["document's", "drawn"]) if dim == problem.dim else st.just("drawn"), label="start")
    if start == "document's":
        x0 = problem.x0.numpy().copy()
    else:
        x0 = np.random.default_rng(draw(SEEDS, label="seed")).uniform(-box, box, dim)
    region: Callable[[np.ndarray], bool] = lambda x: True  # noqa: E731
    if name == "pathological_loss":
        if x0[1] == 0.0:
            x0[1] = 1.0
        side = np.sign(x0[1])
        region = lambda x: bool(np.sign(x[1]) == side)  # noqa: E731  (the open half-plane of the start)
    elif name in ("cosh", "x_cos", "rosenbrock"):
        region = _box(box)
    return Surface(problem, x0, region, separable=name == "function_2d")


def spectrum(kind: str, n: int, L: float, cond: float, rng: np.random.Generator) -> np.ndarray:
    """n eigenvalues whose largest magnitude is exactly L: geometric from L/κ to L ("geometric"), all L
    ("isotropic"), two clusters {L/κ, L}, in random order; "indefinite": geometric magnitudes with random signs."""
    if kind == "isotropic" or n == 1:
        mags = np.full(n, L)
    elif kind == "two clusters":
        mags = np.where(np.arange(n) % 2 == 0, L, L / cond)
    else:
        mags = np.concatenate([[L, L / cond], L / cond ** rng.uniform(0, 1, n - 2)])
    mags = rng.permutation(mags)
    if kind == "indefinite":
        mags = mags * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return mags


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


@st.composite
def quadratics(draw, min_dim: int = 1, max_dim: int = MAX_DIM, definite: bool = True,
               diagonal: bool = False) -> Quadratic:
    """f(x) = ½ (x − x*)ᵀ Q diag(λ) Qᵀ (x − x*) + c: λ from ``spectrum`` (kind, L, condition number drawn; with
    ``definite=False`` indefinite spectra too), Q random orthogonal (I if ``diagonal``), x* and the start's
    coordinates along each eigenvector (magnitudes 0.1–10 × a drawn scale, random signs: every eigenvector, the top
    one included, has a component), c ∈ {0, −5}."""
    dims = _DIMS[(min_dim, max_dim)] if (min_dim, max_dim) in _DIMS else st.integers(min_dim, max_dim)
    n = draw(dims, label="dim")
    kind = draw(_KINDS[definite], label="spectrum")
    L = draw(_L, label="L")
    cond = draw(_CONDITION, label="condition")
    scale = draw(_SCALE, label="scale")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    lam = spectrum(kind, n, L, cond, rng)
    Q = None if diagonal else random_orthogonal(n, rng)
    x_star = rng.standard_normal(n) * scale
    coords = np.where(rng.random(n) < 0.5, -1.0, 1.0) * 10.0 ** rng.uniform(-1, 1, n) * scale
    x0 = x_star + (coords if Q is None else Q @ coords)
    c = -5.0 if rng.random() < 0.5 else 0.0
    return Quadratic(f"quadratic(n={n}, {kind}, {'diagonal' if diagonal else 'rotated'})", lam, Q, x_star, x0, c)


@functools.lru_cache(maxsize=None)
def smooth_problems(max_dim: int = MAX_DIM) -> st.SearchStrategy:
    """L-smooth problems: quadratics with a drawn spectrum (indefinite ones too), or the documents' surfaces."""
    return st.one_of(quadratics(max_dim=max_dim, definite=False), document_surfaces(max_dim))


@functools.lru_cache(maxsize=None)
def separable_problems(max_dim: int = MAX_DIM) -> st.SearchStrategy:
    """f = Σ f_i(x_i), its gradient computed element by element: diagonal quadratics and 001's function_2d."""
    return st.one_of(quadratics(max_dim=max_dim, diagonal=True), document_surfaces(max_dim, ("function_2d",)))


@st.composite
def abs_problems(draw, max_dim: int = MAX_DIM, max_steps: int = 20, max_lr: float = 1.0) -> AbsValue:
    """f = Σ c_i |x_i − x*_i|, magnitudes c_i in 1e-3..1e3; each element starts either beyond the reach of
    ``max_steps`` steps of size ``max_lr`` (its gradient never changes sign) or near x*_i (it oscillates)."""
    n = draw(_DIMS[(1, max_dim)], label="dim")
    rng = np.random.default_rng(draw(SEEDS, label="seed"))
    c = 10.0 ** rng.uniform(-3, 3, n)
    x_star = rng.standard_normal(n)
    far = draw(st.sampled_from(["all far", "all near", "mixed"]), label="starts")
    reach = 2.0 * max_steps * max_lr
    far_mask = np.full(n, far == "all far") if far != "mixed" else rng.random(n) < 0.5
    offset = np.where(far_mask, reach * (1 + rng.random(n)), max_lr * rng.uniform(0.05, 3, n))
    x0 = x_star + np.where(rng.random(n) < 0.5, -1.0, 1.0) * offset
    return AbsValue(c, x_star, x0)


# ---- hyperparameters -------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _domain_values(domain) -> st.SearchStrategy:
    """``properties.strategies.value(domain)``, built once per domain: Hypothesis validates a strategy the first time
    it is drawn from, and rebuilding these per draw made validation most of the cost of a cheap example."""
    return value(domain)


@st.composite
def rule_hyperparameters(draw, rule: Rule, accepted, **held) -> dict:
    """The rule's hyperparameters drawn from its declaration over the names in ``accepted`` (the rest at the rule's
    defaults), as ``properties.strategies.hyperparameters`` draws them, with ``held`` ones set as a property needs;
    the rule's constraints repair the drawn ones (a held combination the rule does not define is an error of the
    calling test)."""
    drawn = {h.name: draw(_domain_values(h.domain), label=h.name) if h.name in accepted else h.default
             for h in rule.hypers}
    hp = {**drawn, **held}
    for c in rule.constraints:
        if not c.holds(hp):
            hp = {**c.repair(hp), **held}
    if not rule.valid(hp):
        raise ValueError(f"test error: held {held} makes hyperparameters the rule {rule.name!r} does not define")
    return hp


@st.composite
def schedules(draw, runner, lr: float, steps: int) -> list[float] | None:
    """None (lr constant), or — for a runner with param groups to change it through — a learning rate changed
    between steps as a scheduler does (factors 0.5, 0.1, 2 or 0.01–3 per step, cumulated)."""
    if not (runner.param_groups and runner.accepts("lr")) or not draw(st.booleans(), label="scheduled"):
        return None
    factors = draw(st.lists(_LR_FACTOR, min_size=steps - 1, max_size=steps - 1), label="lr factors")
    lrs = [lr]
    for f in factors:
        lrs.append(lrs[-1] * f)
    return lrs


def avoided(runner, hp: dict, ctor_hp: dict | None = None) -> tuple[dict, dict | None]:
    """(hp, ctor_hp) moved off the known deviations of torch that say how (``optimizers/known_deviations.py``,
    ``avoid``), so that a property checks the rest of the rule rather than discarding the case; unchanged for a
    reference rule."""
    subject = getattr(runner, "subject", None)
    if subject is None:
        return hp, ctor_hp
    case = avoiding(subject, sketch(runner.rule, hp, x0=np.zeros(1), ctor_hp=ctor_hp))
    if ctor_hp is None:
        return case.groups[0].hp, None
    return case.groups[1].hp, case.groups[0].hp


@st.composite
def runner_hyperparameters(draw, runner, **held) -> dict:
    """``rule_hyperparameters`` over what ``runner`` accepts, moved off torch's known deviations (``avoided``)."""
    return avoided(runner, draw(rule_hyperparameters(runner.rule, runner.accepted, **held)))[0]


# ---- the driver ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How the flat vector x is stored as parameter tensors: element k of the storage order holds x[perm[k]]; the
    storage order is cut into tensors of ``shapes``; ``groups`` lists the tensors of each param group (None: one
    group, the constructor's)."""

    shapes: tuple[tuple[int, ...], ...]
    perm: tuple[int, ...] | None = None
    groups: tuple[tuple[int, ...], ...] | None = None

    @staticmethod
    def flat(n: int) -> "Layout":
        return Layout(((n,),))

    @property
    def size(self) -> int:
        return int(sum(math.prod(s) for s in self.shapes))

    def fitted(self, ndims: tuple[int, ...] | None) -> "Layout":
        """The layout with each tensor a row matrix (1, m) where its number of dimensions is not one the rule
        takes (``Rule.ndims``: Muon's matrices); the same storage order otherwise."""
        if ndims is None:
            return self
        shapes = tuple(s if len(s) in ndims else (1, math.prod(s)) for s in self.shapes)
        return Layout(shapes, self.perm, self.groups)

    def store(self, x: np.ndarray) -> list[np.ndarray]:
        flat = x if self.perm is None else x[list(self.perm)]
        out, k = [], 0
        for s in self.shapes:
            m = math.prod(s)
            out.append(flat[k:k + m].reshape(s).copy())
            k += m
        return out

    def gather(self, parts) -> np.ndarray:
        flat = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])
        if self.perm is None:
            return flat
        x = np.empty_like(flat)
        x[list(self.perm)] = flat
        return x


@st.composite
def layouts(draw, n: int, max_tensors: int = 3, groups: bool = False, permuted: bool = False) -> Layout:
    """The flat vector of n elements cut into 1–``max_tensors`` tensors (a 1-element piece sometimes 0-d, a piece of
    even size sometimes 2-d); with ``groups``, at least two tensors spread over at least two param groups; with
    ``permuted``, stored in a drawn order."""
    k = draw(st.integers(2 if groups else 1, max(2 if groups else 1, min(max_tensors, n))), label="tensors")
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1, unique=True),
                       label="cuts")) if k > 1 else []
    sizes = np.diff([0, *cuts, n]).tolist()
    shapes = []
    for m in sizes:
        if m == 1 and draw(st.booleans(), label="0-d"):
            shapes.append(())
        elif m % 2 == 0 and m > 2 and draw(st.booleans(), label="2-d"):
            shapes.append((2, m // 2))
        else:
            shapes.append((m,))
    perm = tuple(draw(st.permutations(range(n)), label="permutation")) if permuted else None
    group_of = None
    if groups:
        g = draw(st.integers(2, k), label="groups")
        labels = draw(st.lists(st.integers(0, g - 1), min_size=k, max_size=k), label="group of each tensor")
        labels[:g] = range(g)  # every group has a tensor
        group_of = tuple(tuple(i for i in range(k) if labels[i] == j) for j in range(g))
    return Layout(tuple(shapes), perm, group_of)


@dataclass
class Run:
    """A run: the parameters x_0 … x_T (rows, in the problem's order), the gradient fed before each step, and each
    step's learning rate."""

    xs: np.ndarray
    grads: np.ndarray
    lrs: list[float]

    @property
    def steps(self) -> int:
        return len(self.grads)


Grad = Callable[[np.ndarray, int], np.ndarray]


class Runner(Protocol):
    name: str
    rule: Rule
    param_groups: bool
    accepted: frozenset[str]

    def accepts(self, name: str) -> bool: ...

    def run(self, hp: dict, x0: np.ndarray, grad: Grad, steps: int, lrs: list[float] | None = None,
            layout: Layout | None = None, ctor_hp: dict | None = None) -> Run: ...


def layout_case(rule: Rule, hp: dict, x0: np.ndarray, steps: int, lrs: list[float] | None, layout: Layout,
                ctor_hp: dict | None = None) -> Case:
    """The closed-loop run as a trajectory case: x0 stored as the layout's tensors, one group per layout group (each
    with ``hp``; a group 0 without parameters when the constructor is given other hyperparameters), ``steps`` rows
    whose gradients the run's feedback supplies."""
    n = len(layout.shapes)
    parts = layout.groups if layout.groups is not None else (tuple(range(n)),)
    groups = [Group(tuple(g), dict(hp)) for g in parts]
    if ctor_hp is not None:
        groups = [Group((), dict(ctor_hp)), *groups]
    used = [hp["lr"]] * steps if lrs is None else list(lrs)
    return Case(rule, groups, layout.store(x0), [[None] * n for _ in range(steps)],
                [[lr] * len(groups) for lr in used])


def _driven(run_case, rule: Rule, hp, x0, grad, steps, lrs, layout, ctor_hp) -> Run:
    """A closed-loop run through ``run_case(case, feedback)`` — the one driver of an implementation or of the
    reference (``optimizers.adapters.implementation_trajectory``, ``reference.trajectory.reference_trajectory``)."""
    layout = (layout or Layout.flat(x0.shape[0])).fitted(rule.ndims)
    case = layout_case(rule, hp, x0, steps, lrs, layout, ctor_hp)
    fed = []

    def feedback(parts, t):
        g = np.asarray(grad(layout.gather(parts), t), dtype=np.float64)
        fed.append(g.copy())
        return layout.store(g)

    xs = [x0.copy()] + [layout.gather(row) for row in run_case(case, feedback)]
    return Run(np.array(xs), np.array(fed).reshape(steps, -1), [row[-1] for row in case.lrs])


class ReferenceRunner:
    """A reference rule applied to each parameter tensor of the layout (every group has ``hp``)."""

    param_groups = True

    def __init__(self, rule: Rule):
        self.rule = rule
        self.name = f"reference rule {rule.name!r}"
        self.subject = None
        self.accepted = frozenset(rule.names)

    def accepts(self, name: str) -> bool:
        return name in self.rule.names

    def run(self, hp, x0, grad, steps, lrs=None, layout=None, ctor_hp=None) -> Run:
        return _driven(lambda case, feedback: reference_trajectory(case, feedback=feedback), self.rule, hp, x0, grad,
                       steps, lrs, layout, None)


class SubjectRunner:
    """An implementation under test, built with the hyperparameters it accepts (plus its fixed ones)."""

    def __init__(self, subject: Subject):
        self.subject = subject
        self.rule = subject.rule
        self.name = subject.id

    @property
    def param_groups(self) -> bool:
        return self.subject.caps.param_groups

    @property
    def accepted(self) -> frozenset[str]:
        return self.subject.caps.accepted

    def accepts(self, name: str) -> bool:
        return name in self.subject.caps.accepted

    def own(self, hp: dict) -> dict:
        """The hyperparameters passed to the implementation (``optimizers.adapters.construct``'s choice)."""
        return {k: v for k, v in hp.items() if self.accepts(k)}

    def run(self, hp, x0, grad, steps, lrs=None, layout=None, ctor_hp=None) -> Run:
        if lrs is not None and any(lr != hp["lr"] for lr in lrs) and not (self.param_groups and self.accepts("lr")):
            raise ValueError(f"test error: {self.name} cannot change lr between steps; the test should have skipped")
        if ctor_hp is not None:   # what it reads from the constructor only is the groups' value there too
            ctor_hp = {**ctor_hp, **{n: hp[n] for n in self.subject.constructor_only if n in hp}}
        return _driven(lambda case, feedback: implementation_trajectory(self.subject, case, feedback), self.rule, hp,
                       x0, grad, steps, lrs, layout, ctor_hp)


def closed_loop(runner: Runner, problem: Problem, hp: dict, steps: int, lrs: list[float] | None = None,
                layout: Layout | None = None, ctor_hp: dict | None = None,
                feed: Callable[[np.ndarray, int, np.ndarray], np.ndarray] | None = None) -> Run:
    """Run ``runner`` on ``problem`` from its x0: before step t it is fed ∇f(x_t) (or ``feed(∇f(x_t), t, x_t)``)."""
    def grad(x, t):
        g = problem.grad(x)
        return g if feed is None else feed(g, t, x)

    run = runner.run(hp, problem.x0, grad, steps, lrs, layout, ctor_hp)
    plots.seen(runner, problem, hp, run, feed)  # under --plots DIR: a passing test's picture (properties/plots.py)
    return run


def replay(run: Run, extra: Callable[[np.ndarray, int], np.ndarray] | None = None) -> Grad:
    """Lockstep feeding: step t gets the gradient ``run`` was fed at step t (plus ``extra(x, t)`` of the
    parameters the replaying runner holds now)."""
    if extra is None:
        return lambda x, t: run.grads[t].copy()
    return lambda x, t: run.grads[t] + extra(x, t)


# ---- tolerances of lockstep comparisons ------------------------------------------------------------------------------
def as_case(rule: Rule, hp: dict, run: Run) -> Case:
    """The open-loop trajectory case of a run: its start, the gradients it was fed and its learning rates, as one
    parameter in one group."""
    return Case(rule, [Group((0,), dict(hp))], [run.xs[0].copy()], [[g.copy()] for g in run.grads],
                [[lr] for lr in run.lrs])


def lockstep_tolerance(rule: Rule, hp: dict, run: Run) -> np.ndarray | None:
    """Rows for x_0 … x_T, elementwise: how far a float64 implementation of ``rule`` fed ``run``'s gradients may be
    from the exact rule — the trajectory tolerance of ``properties/tolerances.py`` (the error bound propagated
    through the rule, plus the declared terms). None where the rule is not determined at float64 precision on these
    gradients (the reference leaves the range or is ill-conditioned): such a case is not judged."""
    case = as_case(rule, hp, run)
    expected = reference_trajectory(case)
    if not judgeable(case, expected):
        return None
    tol = tolerances(case, expected)
    if not judgeable(case, expected, tol):
        return None
    return np.vstack([np.zeros_like(run.xs[0])] + [row[0] for row in tol])


def reproducer(runner: Runner, hp: dict, run: Run, upto: int, layout: Layout | None = None) -> str:
    """A script feeding the implementation the gradients ``run`` fed it, steps 0..upto, and printing its
    parameters: the failing run without the suite (empty for a reference rule or a multi-tensor layout)."""
    subject = getattr(runner, "subject", None)
    if subject is None or (layout is not None and layout != Layout.flat(run.xs.shape[1])):
        return ""
    kwargs = {**runner.own(hp), **subject.fixed}
    sched = runner.param_groups and runner.accepts("lr")
    lines = ["import torch", reproducer_import(subject.spec), "",
             f"p = torch.nn.Parameter(torch.tensor({run.xs[0].tolist()!r}, dtype=torch.float64))",
             f"opt = Impl([p], **{kwargs!r})",
             "steps = [  # (learning rate, gradient) per step"]
    lines += [f"    ({run.lrs[t]!r}, {run.grads[t].tolist()!r})," for t in range(upto + 1)]
    lines += ["]", "for t, (lr, g) in enumerate(steps):"]
    if sched:
        lines.append("    opt.param_groups[0]['lr'] = lr")
    lines += ["    p.grad = torch.tensor(g, dtype=torch.float64)", "    opt.step()",
              "    print(t, p.detach().tolist())"]
    return "\n".join(lines)


# ---- for the property tests: what an implementation cannot take, known deviations, failures -------------------------
def heavy(fraction: float = 0.4) -> settings:
    """Settings for a property whose examples are costly — several runs and an error-bound tolerance each — or that
    runs on every one of the 26 torch.optim code paths: ``fraction`` of the profile's examples (0.4: 10 of the dev
    profile's 25, 800 of thorough's 2000), so that the default run stays short while every implementation still
    gets its own search."""
    return settings(max_examples=max(1, round(settings.default.max_examples * fraction)))



def needs(subject: Subject, *names: str, **values) -> None:
    """Skip, saying why, an implementation that cannot take what a property needs: each of ``names`` is one of the
    rule's hyperparameters its constructor must accept, or an API feature (``param_groups``, ...); each of
    ``values`` a hyperparameter value that it must accept unless the value is the rule's default."""
    for name in names:
        if name in subject.rule.names:
            if name not in subject.caps.accepted:
                pytest.skip(f"{subject.id} does not accept {name}, which this property varies")
        else:
            reason = subject.caps.missing(name)
            if reason:
                pytest.skip(f"{reason}; this property needs it")
    for k, v in values.items():
        if k not in subject.caps.accepted and v != subject.rule.hyper(k).default:
            pytest.skip(f"{subject.id} does not accept {k}; this property needs {k}={v!r} "
                        f"(the rule's default is {subject.rule.hyper(k).default!r})")


def sketch(rule: Rule, hp: dict, run: Run | None = None, x0: np.ndarray | None = None,
           ctor_hp: dict | None = None) -> Case:
    """A trajectory case standing for a property's run, to ask ``optimizers/known_deviations.py`` whether a known
    deviation of torch concerns it: one parameter, one group (a constructor with other hyperparameters than the
    group's is a group 0 of its own), the gradients of ``run`` if given."""
    groups = [Group((0,), dict(hp))]
    if ctor_hp is not None:
        groups = [Group((), dict(ctor_hp)), Group((0,), dict(hp))]
    if run is None:
        return Case(rule, groups, [np.asarray(x0)], [], [[g.hp["lr"] for g in groups]])
    return Case(rule, groups, [run.xs[0].copy()], [[g.copy()] for g in run.grads],
                [[lr] * len(groups) for lr in run.lrs])


@contextlib.contextmanager
def known_deviations(runner: Runner, case: Case):
    """Around a run of an implementation: skip (hypothesis.assume) a case on which torch has a known deviation
    without a workaround, enter the workarounds of the others (as the trajectory test does); nothing for a
    reference rule."""
    subject = getattr(runner, "subject", None)
    if subject is None:
        yield
        return
    with under_known_deviations(subject, case):
        yield


def assume_no_known_deviation(runner: Runner, hp: dict, run: Run, ctor_hp: dict | None = None) -> None:
    """After a run: skip it if a known deviation without a workaround concerns the gradients it was fed."""
    subject = getattr(runner, "subject", None)
    if subject is not None:
        assume(all(d.workaround for d in applicable(subject, sketch(runner.rule, hp, run, ctor_hp=ctor_hp))))


def judged_tolerance(runner: Runner, hp: dict, run: Run, ctor_hp: dict | None = None) -> np.ndarray:
    """``lockstep_tolerance`` of a run, after skipping (hypothesis.assume) a run that is not judged: one the rule does
    not determine at float64 precision, or one on whose gradients torch has a known deviation without a
    workaround."""
    assume_no_known_deviation(runner, hp, run, ctor_hp)
    tol = lockstep_tolerance(runner.rule, hp, run)
    assume(tol is not None)
    return tol


def _fmt(v) -> str:
    return repr(float(v))


def failure(runner: Runner, claim: str, hp: dict, problem, run: Run, step: int, element: int, expected, actual,
            tolerance: float | None = None, detail: str = "", layout: Layout | None = None) -> NonConformance:
    """The explanation of a failed property: who, which claim, where (after how many steps, which element),
    expected and actual, the tolerance, the hyperparameters, the problem, the gradients fed to that element, and
    (for an implementation) a script that replays the run without the suite."""
    lines = [f"{runner.name} does not satisfy a property of rule {runner.rule.name!r}: {claim}",
             f"  after step {step} (x_{step}; x_0 is the start), element {element}",
             f"  expected {_fmt(expected)}   actual {_fmt(actual)}"]
    if tolerance is not None:
        err = abs(float(actual) - float(expected))
        lines.append(f"  error {err:.3g}  >  tolerance {tolerance:.3g}" if np.isfinite(err) else
                     f"  actual is not finite (tolerance {tolerance:.3g})")
    if detail:
        lines.append("  " + detail)
    lines += [f"  hyperparameters: {', '.join(f'{k}={v!r}' for k, v in hp.items())}",
              f"  problem: {problem!r}",
              f"  gradient fed to element {element} at steps 0..{max(step - 1, 0)}: "
              f"{[float(g) for g in run.grads[:max(step, 1), element]]!r}",
              f"  learning rates: {run.lrs[:max(step, 1)]!r}"]
    script = reproducer(runner, hp, run, max(step - 1, 0), layout)
    if script:
        lines += ["Reproduce without the suite (replays the gradients this run was fed):", "-" * 72, script, "-" * 72]
    # on a two-coordinate problem: a picture of both rules' closed-loop runs, named in the message
    # the runs are float64; the start and the gradients are what was fed
    details = {"subnormal inputs": any_subnormal([run.xs[0], run.grads[:max(step, 1)]], torch.float64)}
    return plots.pictured(NonConformance("\n".join(lines), details), runner, claim, hp, problem, run, step, element)


def assert_matches(runner: Runner, claim: str, hp: dict, problem, run: Run, expected: np.ndarray,
                   tol: np.ndarray, detail: str = "", layout: Layout | None = None) -> None:
    """Every x_t of ``run`` within ``tol`` of ``expected`` (rows x_0 … x_T); NaN in the actual counts as off."""
    __tracebackhide__ = True
    actual = run.xs
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(actual - np.asarray(expected, dtype=np.float64))
    bad = ~(err <= tol)
    if bad.any():
        t, i = (int(v) for v in np.argwhere(bad)[0])
        raise failure(runner, claim, hp, problem, run, t, i, expected[t, i], actual[t, i], float(tol[t, i]),
                      detail, layout)


def assert_identical(runner: Runner, claim: str, hp: dict, problem, run: Run, other: Run, what: str,
                     layout: Layout | None = None) -> None:
    """Two runs with bit-identical parameters after every step (NaN where the other has NaN counts as equal)."""
    __tracebackhide__ = True
    a, b = run.xs, other.xs
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not same.all():
        t, i = (int(v) for v in np.argwhere(~same)[0])
        raise failure(runner, claim, hp, problem, run, t, i, b[t, i], a[t, i], 0.0,
                      f"expected: {what}; the property is exact (see the test's docstring)", layout)
