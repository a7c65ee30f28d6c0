"""Test problems: the documents' loss surfaces, with their gradients and (where they exist) Hessians.

    from reference import problems
    p = problems.square()                 # f(x) = x², from x0 = 10 (004)
    p.f(x), p.grad(x), p.hessian(x)       # x: a 1-D float64 tensor of shape (p.dim,); f returns a 0-d tensor
    p.L, p.region                         # a Lipschitz constant of ∇f (an upper bound) and where it holds
    q = problems.random_pd_quadratic(problems.spectrum(4, cond=100.0), seed=0)   # f(x) = ½ (x − x*)ᵀ A (x − x*)

Every problem is a ``Problem``: ``f``, ``grad`` and ``hessian`` (None where f is not twice differentiable) map a
1-D tensor of shape ``(dim,)`` to a 0-d tensor, a ``(dim,)`` tensor and a ``(dim, dim)`` tensor. They are written
with torch operations only, so they run in any floating dtype (the golden tests replay the documents' float32
arithmetic with them) and under autograd (``f`` is a real loss whose ``backward()`` gives ``grad``). Scalars of the
documents (x ∈ ℝ) are shape ``(1,)``. The documents' problems are float64 unless said otherwise.

``L`` bounds the Lipschitz constant of ∇f, i.e. ‖∇f(x) − ∇f(y)‖₂ ≤ L‖x − y‖₂ (= sup ‖∇²f‖₂) on ``region``; it is an
upper bound, tight where ``notes`` says so, None where ∇f is not Lipschitz there. ``mu`` is a strong-convexity
constant (∇²f ⪰ μI on ``region``) where f has one. ``minimizer`` is a global minimiser where known.
``source`` names the document: "000" … "004" (``/work/shared/seeds/README.md``), or the literature.

Problems: ``pathological_loss`` (000); ``function_2d``, ``saddle``, ``cubic_difference``, ``ripple``, ``valley``
and ``scaled_abs`` (001); ``paraboloid_nonisotropic``, ``paraboloid_isotropic`` (002); ``regression`` with MSE, L1,
Huber and SmoothL1 losses (003); ``square``, ``ellipse``, ``cosh``, ``x_cos`` (004); ``rosenbrock``; and
``quadratic`` / ``random_pd_quadratic`` / ``spectrum`` / ``pd_matrix`` for drawn positive-definite quadratics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

Tensor = torch.Tensor
DTYPE = torch.float64


@dataclass(frozen=True)
class Problem:
    name: str
    f: Callable[[Tensor], Tensor]
    grad: Callable[[Tensor], Tensor]
    hessian: Callable[[Tensor], Tensor] | None
    x0: Tensor
    L: float | None = None
    region: str = "everywhere"
    mu: float | None = None
    minimizer: Tensor | None = None
    source: str = ""
    notes: str = ""

    @property
    def dim(self) -> int:
        return int(self.x0.shape[0])

    def __repr__(self) -> str:
        return f"Problem({self.name}, dim {self.dim}, source {self.source})"


def _vec(*values: float) -> Tensor:
    return torch.tensor(values, dtype=DTYPE)


def _stack(*parts: Tensor) -> Tensor:
    return torch.stack(parts)


# ---- 000: "Gradient Optimization" chapter ---------------------------------------------------------------------------
def pathological_loss(x0=(5.0, 5.0)) -> Problem:
    """000's synthetic surface (from the UvA DL tutorial 4): f(w0, w1) = tanh(w0)² + 0.01·|w1| + σ(w1).

    ∇f = (2 tanh(w0) sech²(w0),  0.01 sign(w1) + σ(w1)(1 − σ(w1)))
    ∇²f = diag(2 sech²(w0) (sech²(w0) − 2 tanh²(w0)),  σ(1 − σ)(1 − 2σ))   for w1 ≠ 0
    With s = sech²(w0) ∈ (0, 1], ∂²f/∂w0² = 2s(3s − 2) ∈ [−2/3, 2], and |σ''| ≤ 1/(6√3): L = 2, exact (at w0 = 0),
    on each half-plane w1 > 0 and w1 < 0; across w1 = 0 the |w1| term makes ∇f jump by 0.02 (not Lipschitz).
    x0 = (5, 5) is ``train_curve``'s default ``w_init``; the chapter's plots start at (−3, 5.0 … 5.2).
    """
    def f(x):
        return torch.tanh(x[0]) ** 2 + 0.01 * torch.abs(x[1]) + torch.sigmoid(x[1])

    def grad(x):
        t, s = torch.tanh(x[0]), torch.sigmoid(x[1])
        return _stack(2 * t * (1 - t * t), 0.01 * torch.sign(x[1]) + s * (1 - s))

    def hessian(x):
        t, s = torch.tanh(x[0]), torch.sigmoid(x[1])
        sech2 = 1 - t * t
        zero = torch.zeros_like(t)
        return torch.stack([_stack(2 * sech2 * (sech2 - 2 * t * t), zero), _stack(zero, s * (1 - s) * (1 - 2 * s))])

    return Problem("pathological_loss", f, grad, hessian, _vec(*x0), L=2.0, region="w1 > 0 or w1 < 0 (not across)",
                   source="000", notes="L exact; f has no minimiser (infimum as w1 → −∞)")


# ---- 001: "Appendix F: Optimization" notebook ---------------------------------------------------------------------
def scaled_abs(a: float = 5.0, x0: float = 8.0) -> Problem:
    """001's ExponentialLR example: f(x) = a·|x| (a = 5), from x0 = 8.

    ∇f = a·sign(x) (torch's subgradient, 0 at x = 0); no Hessian; ∇f not Lipschitz across 0.
    """
    return Problem("scaled_abs", lambda x: a * torch.abs(x).sum(), lambda x: a * torch.sign(x), None, _vec(x0),
                   L=None, region="everywhere (∇f jumps by 2a at 0)", minimizer=_vec(0.0), source="001")


def function_2d(x0: float = 8.0) -> Problem:
    """001's "2D plot" function: f(x) = x²/20 + tanh(sin x), from x0 = 8 (Adam, lr 3 in the notebook).

    f'(x) = x/10 + cos x · sech²(sin x)
    f''(x) = 1/10 − sin x · sech²(sin x) − 2 cos²x · sech²(sin x) tanh(sin x)
    |f''| ≤ 1/10 + 1 + 2·max_s sech²(s) tanh(s) = 1/10 + 1 + 2·(2/3)(1/√3) < 1.87 =: L (a bound, not tight).
    """
    def f(x):
        return (x**2 / 20 + torch.tanh(torch.sin(x))).sum()

    def grad(x):
        s = torch.sin(x)
        return x / 10 + torch.cos(x) * (1 - torch.tanh(s) ** 2)

    def hessian(x):
        s, c = torch.sin(x), torch.cos(x)
        t = torch.tanh(s)
        sech2 = 1 - t * t
        return torch.diag(0.1 - s * sech2 - 2 * c * c * sech2 * t)

    return Problem("function_2d", f, grad, hessian, _vec(x0), L=0.1 + 1.0 + 4.0 / (3.0 * math.sqrt(3.0)),
                   source="001", notes="L an upper bound; several local minima")


def saddle(x0=(6.0, 0.0)) -> Problem:
    """001's first 3-D function: f(x, y) = x² − y², from (6, 0). ∇f = (2x, −2y), ∇²f = diag(2, −2): L = 2, exact;
    a saddle at 0, unbounded below."""
    return Problem("saddle", lambda v: v[0] ** 2 - v[1] ** 2, lambda v: _stack(2 * v[0], -2 * v[1]),
                   lambda v: torch.diag(torch.tensor([2.0, -2.0], dtype=v.dtype)), _vec(*x0), L=2.0,
                   source="001", notes="L exact")


def cubic_difference(x0=(10.0, -4.0)) -> Problem:
    """001's second 3-D function: f(x, y) = x³ − y³, from (10, −4). ∇f = (3x², −3y²), ∇²f = diag(6x, −6y):
    L = 90 on the notebook's plotted box x ∈ [−10, 15), y ∈ [−15, 10) (max 6·15), exact there; unbounded outside."""
    return Problem("cubic_difference", lambda v: v[0] ** 3 - v[1] ** 3, lambda v: _stack(3 * v[0] ** 2, -3 * v[1] ** 2),
                   lambda v: torch.diag(_stack(6 * v[0], -6 * v[1])), _vec(*x0), L=90.0,
                   region="x ∈ [−10, 15], y ∈ [−15, 10]", source="001", notes="L exact on the region")


def ripple(x0=(4.0, -5.0)) -> Problem:
    """001's third 3-D function: f(x, y) = sin(√(x² + y²)), from (4, −5).

    ∇f = cos(r)·(x, y)/r with r = √(x² + y²), undefined at the origin (a cone point); no Hessian given, and ∇f
    is not Lipschitz near 0.
    """
    def f(v):
        return torch.sin(torch.sqrt(v[0] ** 2 + v[1] ** 2))

    def grad(v):
        r = torch.sqrt(v[0] ** 2 + v[1] ** 2)
        return torch.cos(r) * v / r

    return Problem("ripple", f, grad, None, _vec(*x0), L=None, region="x, y ≠ 0, 0", source="001")


def valley(x0=(6.0, -15.0)) -> Problem:
    """001's fourth 3-D function (notebook: "lr 0.15 momentum 0.5"), from (6, −15):

    f(x, y) = (x²/20 + tanh(sin x))·|y|^1.2 + 5|x| + (y + 7)²/10
    ∇f = ((x/10 + cos x sech²(sin x))·|y|^1.2 + 5 sign(x),  1.2 (x²/20 + tanh(sin x)) |y|^0.2 sign(y) + (y + 7)/5)
    Not differentiable at x = 0 or y = 0; no Hessian given, no global L.
    """
    def f(v):
        x, y = v[0], v[1]
        return (x**2 / 20 + torch.tanh(torch.sin(x))) * torch.abs(y) ** 1.2 + 5 * torch.abs(x) + (y + 7) ** 2 / 10

    def grad(v):
        x, y = v[0], v[1]
        inner = x**2 / 20 + torch.tanh(torch.sin(x))
        d_inner = x / 10 + torch.cos(x) * (1 - torch.tanh(torch.sin(x)) ** 2)
        ay = torch.abs(y)
        return _stack(d_inner * ay**1.2 + 5 * torch.sign(x), 1.2 * inner * ay**0.2 * torch.sign(y) + (y + 7) / 5)

    return Problem("valley", f, grad, None, _vec(*x0), L=None, region="x ≠ 0 and y ≠ 0", source="001")


# ---- 002: "Optimizers" chapter (torch for R) -------------------------------------------------------------------------
def _diag_quadratic(name, coeffs, offset, x0, source, notes=""):
    """f(x) = Σ c_i x_i² + offset;  ∇f = 2c·x;  ∇²f = diag(2c);  L = 2 max c, μ = 2 min c (both exact)."""
    c = _vec(*coeffs)

    def f(x):
        return (x * c.to(x.dtype) * x).sum() + offset

    return Problem(name, f, lambda x: 2 * x * c.to(x.dtype), lambda x: torch.diag(2 * c.to(x.dtype)), _vec(*x0),
                   L=2 * max(coeffs), mu=2 * min(coeffs), minimizer=torch.zeros(len(coeffs), dtype=DTYPE),
                   source=source, notes=notes or "L, mu exact")


def paraboloid_nonisotropic(x0=(6.0, 6.0)) -> Problem:
    """002 §8.3.1: f(x1, x2) = 0.2 x1² + 2 x2² − 5 ("the coefficient for x2 is ten times as big").
    ∇f = (0.4 x1, 4 x2); L = 4, μ = 0.4 (exact): GD converges for lr < 2/L = 0.5 and "zig-zags up right to infinity"
    beyond. The chapter does not print its start; x0 = (6, 6) is its isotropic example's."""
    return _diag_quadratic("paraboloid_nonisotropic", (0.2, 2.0), -5.0, x0, "002")


def paraboloid_isotropic(x0=(6.0, 6.0)) -> Problem:
    """002 §8.3.1: f(x1, x2) = 0.2 x1² + 0.2 x2² − 5, from (6, 6). ∇f = 0.4 x; L = μ = 0.4 (exact): GD with
    lr = 1/0.4 = 2.5 reaches the minimum (0, 0) in one step, as the chapter computes."""
    return _diag_quadratic("paraboloid_isotropic", (0.2, 0.2), -5.0, x0, "002")


# ---- 003: "Visualizing Gradient Descent Parameters in Torch" ---------------------------------------------------------
REGRESSION_SEED = 20240215
REGRESSION_N = 50
REGRESSION_LOSSES = ("mse", "l1", "huber", "smooth_l1")


def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """003's data, exactly as the article draws it (numpy's legacy global RandomState, stream-stable across numpy
    versions): ``np.random.seed(20240215)``; x = randn(50) as float32; y = (0.75x² + x + 2 + 0.3·randn(50)) as
    float32 (the polynomial evaluated in float64 from the float32 x, then rounded). Returns float32 arrays."""
    rng = np.random.RandomState(REGRESSION_SEED)
    x = np.array(rng.randn(REGRESSION_N), dtype=np.float32)
    y = np.array(0.75 * x**2 + 1.0 * x + 2.0 + 0.3 * rng.randn(REGRESSION_N), dtype=np.float32)
    return x, y


def regression(loss: str = "mse", x0=(6.0, -3.0)) -> Problem:
    """003's single-neuron linear regression, θ = (w, b), prediction ŷ_i = w x_i + b, residual r_i = ŷ_i − y_i,
    mean over the n = 50 points of torch.nn's elementwise losses (defaults: Huber δ = 1, SmoothL1 β = 1, for which
    the two coincide):

      mse        ℓ = r²                                  ψ(r) = ℓ'(r) = 2r
      l1         ℓ = |r|                                 ψ(r) = sign(r)   (no Hessian; ∇f not Lipschitz)
      huber      ℓ = r²/2 if |r| < 1 else |r| − 1/2      ψ(r) = clamp(r, −1, 1)
      smooth_l1  the same as huber for β = 1

    f(θ) = (1/n) Σ ℓ(r_i);  ∇f = (1/n) Σ ψ(r_i)·(x_i, 1);  ∇²f = (1/n) Σ ψ'(r_i)·(x_i, 1)(x_i, 1)ᵀ (ψ' ∈ {2; 0, 1})
    L = (c/n)·λ_max(XᵀX) with X = [x 1], c = 2 (mse, exact) or 1 (huber, smooth_l1: a bound, ψ is 1-Lipschitz).
    x0 = (6, −3): the article's initial "guess" y = 6x − 3 (weight 6, bias −3). Data: ``regression_data()``,
    converted exactly to the dtype of θ.
    """
    if loss not in REGRESSION_LOSSES:
        raise ValueError(f"loss {loss!r}; known: {', '.join(REGRESSION_LOSSES)}")
    xs, ys = (torch.from_numpy(a.astype(np.float64)) for a in regression_data())
    n = xs.shape[0]

    def data(θ):
        return xs.to(θ.dtype), ys.to(θ.dtype)

    def residual(θ):
        x, y = data(θ)
        return θ[0] * x + θ[1] - y

    def ell(r):
        if loss == "mse":
            return r * r
        if loss == "l1":
            return torch.abs(r)
        a = torch.abs(r)
        return torch.where(a < 1, 0.5 * r * r, a - 0.5)

    def psi(r):
        if loss == "mse":
            return 2 * r
        if loss == "l1":
            return torch.sign(r)
        return torch.clamp(r, -1.0, 1.0)

    def f(θ):
        return ell(residual(θ)).mean()

    def grad(θ):
        x, _ = data(θ)
        p = psi(residual(θ))
        return _stack((p * x).mean(), p.mean())

    def hessian(θ):
        x, _ = data(θ)
        w = 2 * torch.ones_like(x) if loss == "mse" else (torch.abs(residual(θ)) < 1).to(θ.dtype)
        return torch.stack([_stack((w * x * x).mean(), (w * x).mean()), _stack((w * x).mean(), w.mean())])

    X = torch.stack([xs, torch.ones_like(xs)], dim=1)
    lam = float(torch.linalg.eigvalsh(X.T @ X / n).max())
    L = {"mse": 2 * lam, "l1": None, "huber": lam, "smooth_l1": lam}[loss]
    return Problem(f"regression_{loss}", f, grad, None if loss == "l1" else hessian, _vec(*x0), L=L,
                   source="003", notes="L exact" if loss == "mse" else "L an upper bound")


# ---- 004: gradient descent section (JAX textbook) -------------------------------------------------------------------
def square(x0: float = 10.0) -> Problem:
    """004's (and 001's, from x0 = 8) f(x) = x²: f' = 2x, f'' = 2; L = μ = 2 (exact). GD: x ← (1 − 2η) x."""
    return _diag_quadratic("square", (1.0,), 0.0, (x0,), "004")


def ellipse(x0=(-5.0, -2.0)) -> Problem:
    """004's f(x1, x2) = x1² + 2 x2², from (−5, −2): ∇f = (2x1, 4x2), L = 4, μ = 2 (exact)."""
    return _diag_quadratic("ellipse", (1.0, 2.0), 0.0, x0, "004")


def cosh(c: float = 0.5, x0: float = 10.0, R: float = 10.0) -> Problem:
    """004's f(x) = cosh(cx), c = 0.5, from x = 10: f' = c sinh(cx), f'' = c² cosh(cx) ≥ c² (μ = c², exact);
    L = c² cosh(cR) on |x| ≤ R (exact there). Newton's step is x − tanh(cx)/c."""
    def f(x):
        return torch.cosh(c * x).sum()

    return Problem("cosh", f, lambda x: c * torch.sinh(c * x), lambda x: torch.diag(c * c * torch.cosh(c * x)),
                   _vec(x0), L=c * c * math.cosh(c * R), region=f"|x| ≤ {R:g}", mu=c * c, minimizer=_vec(0.0),
                   source="004", notes="L, mu exact")


#: 004's c for x·cos(cx): ``d2l.tensor(0.15 * np.pi)`` is a JAX array, float32 by default, so the document's c is
#: 0.15π rounded to float32 (0.471238911…, 1.3e-8 above 0.15π).
C_X_COS = float(np.float32(0.15 * np.pi))


def x_cos(c: float = C_X_COS, x0: float = 10.0, R: float = 30.0) -> Problem:
    """004's f(x) = x·cos(cx), c = 0.15π (float32, see ``C_X_COS``), from x = 10; infinitely many local minima.

    f'(x) = cos(cx) − cx sin(cx);   f''(x) = −2c sin(cx) − c²x cos(cx)
    |f''| ≤ 2c + c²R =: L on |x| ≤ R (a bound). f'' changes sign: Newton's method is not a descent method here.
    """
    def f(x):
        return (x * torch.cos(c * x)).sum()

    def grad(x):
        return torch.cos(c * x) - c * x * torch.sin(c * x)

    def hessian(x):
        return torch.diag(-2 * c * torch.sin(c * x) - x * c**2 * torch.cos(c * x))

    return Problem("x_cos", f, grad, hessian, _vec(x0), L=2 * c + c * c * R, region=f"|x| ≤ {R:g}", source="004",
                   notes="L an upper bound; unbounded below")


# ---- from the literature ------------------------------------------------------------------------------------------
def rosenbrock(a: float = 1.0, b: float = 100.0, x0=(-1.2, 1.0)) -> Problem:
    """Rosenbrock (1960) — not in the documents: f(x, y) = (a − x)² + b(y − x²)², minimum (a, a²), from (−1.2, 1).

    ∇f = (−2(a − x) − 4bx(y − x²),  2b(y − x²))
    ∇²f = [[2 − 4b(y − x²) + 8bx², −4bx], [−4bx, 2b]]
    L on [−2, 2]²: Gershgorin bound max(|h11| + |h12|, |h12| + |h22|) ≤ 2 + 4b·6 + 8b·4 + 8b (a bound; 6402 for
    b = 100).
    """
    def f(v):
        x, y = v[0], v[1]
        return (a - x) ** 2 + b * (y - x * x) ** 2

    def grad(v):
        x, y = v[0], v[1]
        return _stack(-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x))

    def hessian(v):
        x, y = v[0], v[1]
        h12 = -4 * b * x
        return torch.stack([_stack(2 - 4 * b * (y - x * x) + 8 * b * x * x, h12), _stack(h12, 2 * b + 0 * x)])

    return Problem("rosenbrock", f, grad, hessian, _vec(*x0), L=2 + 24 * b + 32 * b + 8 * b, region="[−2, 2]²",
                   minimizer=_vec(a, a * a), source="Rosenbrock 1960 (not in the documents)", notes="L an upper bound")


# ---- drawn positive-definite quadratics ------------------------------------------------------------------------------
def spectrum(n: int, cond: float, lam_max: float = 1.0) -> np.ndarray:
    """n eigenvalues spread geometrically from lam_max/cond to lam_max (both ends included; one value if n = 1)."""
    if n == 1:
        return np.array([lam_max])
    return lam_max * np.geomspace(1.0 / cond, 1.0, n)


def pd_matrix(eigenvalues, seed: int = 0) -> Tensor:
    """A = Q diag(λ) Qᵀ with Q orthogonal (QR of a Gaussian matrix from ``numpy.random.default_rng(seed)``), made
    exactly symmetric as (A + Aᵀ)/2. Its eigenvalues are λ up to rounding, ~n·u·max λ."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    n = lam.shape[0]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    a = (q * lam) @ q.T
    return torch.from_numpy((a + a.T) / 2)


def quadratic(A: Tensor, center: Tensor | None = None, x0: Tensor | None = None, name: str = "quadratic",
              source: str = "generated") -> Problem:
    """f(x) = ½ (x − x*)ᵀ A (x − x*), x* = ``center`` (0 if None): ∇f = A(x − x*), ∇²f = A.
    For symmetric positive-definite A: L = λ_max(A), μ = λ_min(A), minimiser x* (computed with eigvalsh)."""
    A = A.to(DTYPE)
    n = A.shape[0]
    center = torch.zeros(n, dtype=DTYPE) if center is None else center.to(DTYPE)
    x0 = torch.ones(n, dtype=DTYPE) if x0 is None else x0.to(DTYPE)
    lam = torch.linalg.eigvalsh(A)

    def f(x):
        d = x - center.to(x.dtype)
        return 0.5 * (d @ (A.to(x.dtype) @ d))

    def grad(x):
        return A.to(x.dtype) @ (x - center.to(x.dtype))

    return Problem(name, f, grad, lambda x: A.to(x.dtype), x0, L=float(lam.max()),
                   mu=float(lam.min()) if float(lam.min()) > 0 else None, minimizer=center, source=source,
                   notes="L = λ_max(A), mu = λ_min(A) as computed by eigvalsh")


def random_pd_quadratic(eigenvalues, seed: int = 0, center: Tensor | None = None,
                        x0: Tensor | None = None) -> Problem:
    """``quadratic(pd_matrix(eigenvalues, seed), center, x0)``: a positive-definite quadratic with a chosen
    spectrum (e.g. ``spectrum(n, cond, lam_max)``) in random eigenvectors."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if not np.all(lam > 0):
        raise ValueError(f"eigenvalues must be positive, got {lam.tolist()}")
    name = f"pd_quadratic(n={lam.size}, cond={lam.max() / lam.min():.3g})"
    return quadratic(pd_matrix(lam, seed), center, x0, name=name)


#: the documents' problems, by name, with their documents' starting points
DOCUMENT_PROBLEMS: dict[str, Callable[[], Problem]] = {
    "pathological_loss": pathological_loss,
    "scaled_abs": scaled_abs, "function_2d": function_2d, "saddle": saddle, "cubic_difference": cubic_difference,
    "ripple": ripple, "valley": valley,
    "paraboloid_nonisotropic": paraboloid_nonisotropic, "paraboloid_isotropic": paraboloid_isotropic,
    **{f"regression_{loss}": (lambda loss=loss: regression(loss)) for loss in REGRESSION_LOSSES},
    "square": square, "ellipse": ellipse, "cosh": cosh, "x_cos": x_cos,
    "rosenbrock": rosenbrock,
}
