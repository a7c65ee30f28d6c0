"""Newton's method (004, "Newton's method"; ``reference/newton.py``): what the document claims, as properties over
drawn problems.

x⁺ = x − [∇²f(x)]⁻¹ ∇f(x):

* on a positive-definite quadratic ½(x − x*)ᵀA(x − x*) one step lands on x*, for any dimension and spectrum;
* on f(x) = cosh(cx) the step is x⁺ = x − tanh(cx)/c: it never overshoots (0 ≤ x⁺/x < 1), converges cubically,
  |x⁺| ≤ (c²/3)|x|³, since 0 ≤ z − tanh z ≤ z³/3 for z ≥ 0 (the difference z³/3 − z + tanh z vanishes at 0 and
  has derivative z² − tanh²z ≥ 0), and far from 0 it moves by about 1/c per step: 1 − 2e^{−2|z|} ≤ tanh|z| ≤ 1.
  From 004's x = 10, c = 0.5 the first step lands at 10 − 2 tanh 5 ∈ [8, 8 + 4e^{−10}] = [8, 8.00018]: not at
  the minimum, as the text's "one Newton step finds the minimum" says — that holds for quadratics only;
* without a positive-definite Hessian Newton is not a descent method: on f(x) = x·cos(cx), where f'' < 0 the step
  points uphill (f'(x)·(x⁺ − x) = −f'²/f'' > 0), and from 004's x = 10 it climbs to a local maximum.

Each property is a ``check_*`` function of the Newton step (``step(x, grad, hessian, eta) -> x⁺``) and the drawn
problem, raising AssertionError; ``properties/test_problem_self_checks.py`` shows each fails on a broken step.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from properties.tolerances import unit_roundoff
from reference import problems
from reference.newton import newton, newton_step

U = unit_roundoff(torch.float64)
#: Roundings in one float64 Newton step on cosh(cx), relative to |x|, to first order: c·x (1), sinh and cosh
#: (≤ 2 ulp = 4u each, glibc's documented bound; SLEEF's u10 kernels that torch uses: 1 ulp), c·sinh (1), c·c and
#: c²·cosh (2), the division (1) — 13u relative on the step d = tanh(cx)/c, |d| ≤ |x| (an error u in the argument
#: moves tanh(z) by ≤ u relative, as z·tanh'(z)/tanh(z) ≤ 1) — and the subtraction x − d (u|x⁺| ≤ u|x|): 14; one
#: more absorbs the second-order terms (≤ 14²u²).
COSH_ROUNDINGS = 15
#: On x·cos(cx) the signs of f' and f'' are trusted where |f'| > SIGN_MARGIN·(1 + |z|)² and
#: |f''| > SIGN_MARGIN·c·(1 + |z|)², z = cx: each is a sum of ≤ 3 terms of size ≤ (1 + |z|)² (times c for f''),
#: each off by ≤ 10u relative (argument, cos/sin, products), so 30u·(1 + |z|)² ≈ 7e-15·(1 + |z|)² bounds their
#: rounding; the margin 1e-8 also keeps x⁺ − x (relative error ≤ 2u/|d|·|x|) clear of 0.
SIGN_MARGIN = 1e-8


# ---- positive-definite quadratics ------------------------------------------------------------------------------------
def gamma(k: int, u: float = U) -> float:
    """Higham's γ_k = k·u / (1 − k·u): the relative error bound of k roundings."""
    return k * u / (1 - k * u)


def quadratic_step_tolerance(problem, x: torch.Tensor, x_new: torch.Tensor) -> float:
    """Bound on ‖x̂⁺ − x*‖₂ for one float64 Newton step on ½(x − x*)ᵀA(x − x*), from standard error analysis
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.):

    * the gradient ĝ = fl(A fl(x − x*)) is off by e_g ≤ γ_{n+1}·‖|A|·|fl(x − x*)|‖₂ (n products and sums, one
      subtraction);
    * LU with partial pivoting and the two triangular solves give (A + ΔA) d̂ = ĝ, |ΔA| ≤ γ_{3n}·P|L̂||Û| (Thm 9.4),
      measured on the computed factors, so ‖d̂ − A⁻¹ĝ‖₂ ≤ ‖A⁻¹‖₂ ‖ΔA‖₂ ‖d̂‖₂ and ‖A⁻¹ĝ − A⁻¹g‖₂ ≤ ‖A⁻¹‖₂ e_g;
    * x̂⁺ = fl(x − d̂): ‖d̂‖₂ ≤ ‖x − x̂⁺‖₂ + u‖x̂⁺‖₂, and the subtraction adds u‖x̂⁺‖₂.
    ‖A⁻¹‖₂ = 1/λ_min(A) (eigvalsh; A is drawn with λ_min ≥ 1e-11·λ_max, far from rounding it to singular).
    """
    A = problem.hessian(x)
    n = A.shape[0]
    center = problem.minimizer
    s = x - center
    e_g = gamma(n + 1) * float(torch.linalg.vector_norm(torch.abs(A) @ torch.abs(s)))
    _, L, Uf = torch.linalg.lu(A)
    delta_a = gamma(3 * n) * float(torch.linalg.matrix_norm(torch.abs(L) @ torch.abs(Uf), ord=2))
    inv_norm = 1.0 / float(torch.linalg.eigvalsh(A).min())
    norm_new = float(torch.linalg.vector_norm(x_new))
    d_norm = float(torch.linalg.vector_norm(x - x_new)) + U * norm_new
    return inv_norm * (e_g + delta_a * d_norm) + U * norm_new


def check_newton_exact_on_quadratic(step, problem, x: torch.Tensor) -> None:
    """One Newton step (η = 1) from x lands on the minimiser x* of a positive-definite quadratic, within the rounding
    bound of ``quadratic_step_tolerance``."""
    __tracebackhide__ = True
    x_new = step(x, problem.grad, problem.hessian, 1.0)
    err = float(torch.linalg.vector_norm(x_new - problem.minimizer))
    tol = quadratic_step_tolerance(problem, x, x_new)
    assert err <= tol, (
        f"Newton step on {problem.name} from x = {x.tolist()} gave {x_new.tolist()}, but should land on the "
        f"minimiser {problem.minimizer.tolist()}: ‖x⁺ − x*‖ = {err:.3g} > rounding bound {tol:.3g} "
        f"(distance before the step {float(torch.linalg.vector_norm(x - problem.minimizer)):.3g})")


@st.composite
def pd_quadratics(draw, max_dim: int = 6):
    """A positive-definite quadratic ½(x − x*)ᵀA(x − x*) (``problems.random_pd_quadratic``): dimension 1–6,
    eigenvalues geometric from λ_max/κ to λ_max with κ in 1..1e10 and λ_max in 1e-3..1e3, random eigenvectors;
    x* and the starting point x with entries of magnitude 1e-2..1e2 and distances 1e-3..1e3."""
    n = draw(st.integers(1, max_dim), label="dimension")
    cond = 10.0 ** draw(st.floats(0.0, 10.0), label="log10 condition number")
    lam_max = 10.0 ** draw(st.floats(-3.0, 3.0), label="log10 λ_max")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    center = torch.from_numpy(rng.standard_normal(n) * 10.0 ** draw(st.floats(-2.0, 2.0), label="log10 |x*|"))
    direction = rng.standard_normal(n)
    direction /= np.linalg.norm(direction)
    x = center + torch.from_numpy(direction * 10.0 ** draw(st.floats(-3.0, 3.0), label="log10 distance"))
    return problems.random_pd_quadratic(problems.spectrum(n, cond, lam_max), seed=seed, center=center), x


@given(drawn=pd_quadratics())
def test_newton_step_is_exact_on_positive_definite_quadratics(drawn):
    """On f(x) = ½(x − x*)ᵀA(x − x*) with A positive definite (dimension 1–6, condition number up to 1e10), one
    Newton step from any x lands on x*, within the float64 rounding bound of the gradient, the LU solve and the
    update."""
    problem, x = drawn
    check_newton_exact_on_quadratic(newton_step, problem, x)


# ---- cosh(cx) -------------------------------------------------------------------------------------------------------
def _cosh_step(step, c: float, x: float) -> float:
    p = problems.cosh(c)
    return float(step(torch.tensor([x], dtype=torch.float64), p.grad, p.hessian, 1.0)[0])


def check_newton_on_cosh_never_overshoots(step, c: float, x: float) -> None:
    """On cosh(cx), x ≠ 0: |x⁺| < |x| and x⁺ keeps x's sign (x⁺ = (z − tanh z)/c with z = cx), up to the rounding
    r = 15u|x| of ``COSH_ROUNDINGS``."""
    __tracebackhide__ = True
    x_new = _cosh_step(step, c, x)
    r = COSH_ROUNDINGS * U * abs(x)
    assert abs(x_new) < abs(x), (
        f"Newton on cosh({c!r}·x) from x = {x!r} went to {x_new!r}: |x⁺| should be < |x| (x⁺ = x − tanh(cx)/c)")
    assert x_new * math.copysign(1.0, x) >= -r, (
        f"Newton on cosh({c!r}·x) from x = {x!r} overshot the minimum 0 to {x_new!r}: x − tanh(cx)/c keeps the sign "
        f"of x (beyond rounding {r:.3g})")


def check_newton_on_cosh_converges_cubically(step, c: float, x: float) -> None:
    """On cosh(cx): |x⁺| ≤ (c²/3)|x|³ + 15u|x| — cubic convergence, with the analytic constant c²/3."""
    __tracebackhide__ = True
    x_new = _cosh_step(step, c, x)
    bound = c * c / 3 * abs(x) ** 3 + COSH_ROUNDINGS * U * abs(x)
    assert abs(x_new) <= bound, (
        f"Newton on cosh({c!r}·x) from x = {x!r} went to {x_new!r}: |x⁺| should be ≤ (c²/3)|x|³ + rounding = "
        f"{bound:.6g} (z − tanh z ≤ z³/3)")


def check_newton_on_cosh_moves_about_one_over_c(step, c: float, x: float) -> None:
    """On cosh(cx): the step length |x − x⁺| = tanh|cx|/c lies in [(1 − 2e^{−2|cx|})/c, 1/c], up to rounding
    15u|x|: far from the minimum Newton advances by 1/c per step, linearly."""
    __tracebackhide__ = True
    x_new = _cosh_step(step, c, x)
    r = COSH_ROUNDINGS * U * abs(x)
    lo, hi = (1 - 2 * math.exp(-2 * abs(c * x))) / c, 1 / c
    moved = abs(x - x_new)
    assert lo - r <= moved <= hi + r, (
        f"Newton on cosh({c!r}·x) from x = {x!r} moved by {moved!r} to {x_new!r}; tanh|cx|/c lies in "
        f"[{lo!r}, {hi!r}] (rounding {r:.3g})")


@st.composite
def cosh_points(draw):
    """c in 0.05..20 and x = z/c with |z| = |cx| in 1e-8..50 (log-uniform), either sign: cosh(cx) and sinh(cx)
    stay far from overflow, and the step tanh(cx)/c ≥ |x|/50 is far above the rounding of x."""
    c = 10.0 ** draw(st.floats(math.log10(0.05), math.log10(20.0)), label="log10 c")
    z = 10.0 ** draw(st.floats(-8.0, math.log10(50.0)), label="log10 |cx|")
    sign = draw(st.sampled_from([1.0, -1.0]), label="sign of x")
    return c, sign * z / c


@example(drawn=(0.5, 10.0))
@given(drawn=cosh_points())
def test_newton_on_cosh_never_overshoots(drawn):
    """On cosh(cx) (004; c and x drawn), every Newton step moves strictly toward the minimum 0 without crossing it:
    |x⁺| < |x| and sign(x⁺) = sign(x)."""
    check_newton_on_cosh_never_overshoots(newton_step, *drawn)


@given(drawn=cosh_points())
def test_newton_on_cosh_converges_cubically(drawn):
    """On cosh(cx): |x⁺| ≤ (c²/3)|x|³ — the constant from tanh z ≥ z − z³/3 — for every drawn c and x, not only
    near 0."""
    check_newton_on_cosh_converges_cubically(newton_step, *drawn)


@example(drawn=(0.5, 10.0))
@given(drawn=cosh_points())
def test_newton_on_cosh_moves_about_one_over_c_far_from_minimum(drawn):
    """On cosh(cx): a Newton step moves by tanh|cx|/c ∈ [(1 − 2e^{−2|cx|})/c, 1/c]. From 004's x = 10, c = 0.5
    (the explicit example), the first step lands in [8, 8.00018] (at 8.000182), not on the minimum."""
    check_newton_on_cosh_moves_about_one_over_c(newton_step, *drawn)


# ---- x·cos(cx): no positive-definite Hessian -----------------------------------------------------------------------
def check_newton_direction_sign_follows_curvature(step, c: float, x: float) -> None:
    """On x·cos(cx): the Newton step d = x⁺ − x is a descent direction (f'(x)·d < 0) where f''(x) > 0 and an ascent
    direction (f'(x)·d > 0) where f''(x) < 0: f'·d = −f'²/f''. Points where the computed signs of f' or f'' could be
    rounding are not judged (``SIGN_MARGIN``)."""
    __tracebackhide__ = True
    p = problems.x_cos(c)
    xt = torch.tensor([x], dtype=torch.float64)
    g, h = float(p.grad(xt)[0]), float(p.hessian(xt)[0, 0])
    size = (1 + abs(c * x)) ** 2
    if abs(g) <= SIGN_MARGIN * size or abs(h) <= SIGN_MARGIN * c * size:
        return
    d = float(step(xt, p.grad, p.hessian, 1.0)[0]) - x
    slope = g * d
    kind = "ascent" if h < 0 else "descent"
    assert (slope > 0) == (h < 0), (
        f"Newton on x·cos({c!r}·x) at x = {x!r}: f' = {g:.6g}, f'' = {h:.6g}, step d = {d:.6g}, f'·d = {slope:.3g}; "
        f"with f'' {'< 0' if h < 0 else '> 0'} the Newton step is an {kind} direction (f'·d = −f'²/f'')")


@st.composite
def x_cos_points(draw):
    """c in 0.05..5 and x = z/c with z = cx in −20..20."""
    c = 10.0 ** draw(st.floats(math.log10(0.05), math.log10(5.0)), label="log10 c")
    z = draw(st.floats(-20.0, 20.0), label="cx")
    return c, z / c


@given(drawn=x_cos_points())
def test_newton_ascends_where_the_hessian_is_negative(drawn):
    """On x·cos(cx) (004) with c, x drawn: the Newton step goes downhill exactly where f'' > 0 and uphill where
    f'' < 0 — without a positive-definite Hessian Newton's method is not a descent method."""
    c, x = drawn
    p = problems.x_cos(c)
    h = float(p.hessian(torch.tensor([x], dtype=torch.float64))[0, 0])
    assume(abs(h) > SIGN_MARGIN * c * (1 + abs(c * x)) ** 2)
    check_newton_direction_sign_follows_curvature(newton_step, c, x)


def check_newton_on_x_cos_climbs_to_a_maximum(step) -> None:
    """004: Newton (η = 1) on x·cos(cx), c = 0.15π, from x = 10, "happily steps to a maximum": after 10 steps
    f'' < 0 there and f has increased, from f(10) = 10 cos(1.5π) ≈ 0 to about 26.75."""
    __tracebackhide__ = True
    p = problems.x_cos()
    xs = newton(p, 10, step=step)
    x0, x10 = p.x0, xs[-1]
    f0, f10 = float(p.f(x0)), float(p.f(x10))
    h10 = float(p.hessian(x10)[0, 0])
    assert h10 < 0 and f10 > f0, (
        f"004's Newton run on x·cos(cx) from x = 10 ended at x = {float(x10[0])!r} with f = {f10:.6g} "
        f"(f(10) = {f0:.3g}) and f'' = {h10:.3g}; the document shows it climbing to a local maximum (f'' < 0, "
        "f increased)")


def test_newton_on_x_cos_from_10_climbs_to_a_local_maximum():
    """004's example: Newton's 10 steps on x·cos(0.15πx) from x = 10 end at a local maximum (26.834133, f'' < 0),
    with f increased from ≈ 0 to ≈ 26.75."""
    check_newton_on_x_cos_climbs_to_a_maximum(newton_step)
