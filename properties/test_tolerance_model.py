"""The tolerance model's treatment of the edges of arithmetic (``properties/tolerances.py``), checked on cases whose
answer is known: gradual underflow, overflow of a square, a difference whose sign rounding decides, hyperparameters
rounded differently at each use; and the error bound itself (``properties/error_bound.py``) against real float32
arithmetic.

Each test builds its case by hand from the rule's formula: the expectation (judged or not; which value is right)
follows from the arithmetic stated in its docstring, not from running the model.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from optimizers import planted, template
from optimizers.adapters import Subject
from optimizers.known_deviations import _case, applicable
from properties.assertions import NonConformance
from optimizers.adapters import implementation_trajectory
from properties.test_trajectory import check_steps, check_trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.error_bound import Bounded, rounding
from properties.tolerances import (arithmetic, error_bounds, hyperparameter, judgeable, step_tolerances,
                                   subnormal_spacing, tolerances, undetermined_sign, watched_steps)
from reference.registry import RULES
from reference.trajectory import Case, Group, reference_trajectory

F32 = torch.float32
SUBNORMAL_32 = 2.0 ** -149   # float32's smallest subnormal (IEEE 754 binary32)


def judged(case) -> bool:
    expected = reference_trajectory(case)
    return judgeable(case, expected, tolerances(case, expected))


def test_rounding_bound_keeps_exact_zeros_and_covers_gradual_underflow():
    """One product rounds by at most 2u relative plus 2η (the model's two roundings per operation, η = float32's
    smallest subnormal): a product that underflows (1e-40 · 1e-5, far below 2⁻¹²⁶) carries ≥ η; an exact zero
    stays exact (0 · x = 0 in IEEE arithmetic); a sum carries no η (sums are exact in the subnormal range)."""
    assert subnormal_spacing(F32) == SUBNORMAL_32
    with rounding(arithmetic(F32)):
        tiny = Bounded(torch.tensor([1e-40, 0.0], dtype=torch.float64)) * Bounded(torch.tensor([1e-5, 3.0],
                                                                                              dtype=torch.float64))
        summed = Bounded(torch.tensor([1e-40], dtype=torch.float64)) + Bounded(torch.tensor([1e-41],
                                                                                           dtype=torch.float64))
    assert float(tiny.e[0]) >= SUBNORMAL_32 and float(tiny.e[1]) == 0.0
    assert float(summed.e[0]) < SUBNORMAL_32


_F32_VALUES = st.floats(-1e6, 1e6, allow_nan=False, width=32).filter(lambda x: x == 0 or abs(x) > 1e-30)
_OPERATIONS = {
    "a + b": (lambda a, b: a + b), "a - b": (lambda a, b: a - b), "a * b": (lambda a, b: a * b),
    "a / (|b| + 1)": (lambda a, b: a / (abs(b) + 1)), "sqrt(|a|) * b": (lambda a, b: torch.sqrt(abs(a)) * b),
    "(a - b)**3": (lambda a, b: (a - b) ** 3), "max(a, b) * a": (lambda a, b: torch.maximum(a, b) * a),
    "where(a > b, a*b, a-b)": (lambda a, b: torch.where(a > b, a * b, a - b)),
}


_WITH_SCALARS = {   # tensor op Python number: torch holds the number in float32 (opmath) beside 16-bit tensors
    "a * 0.1 + 1e-8": (lambda a, b: a * 0.1 + 1e-8), "(|a| + 3e-8) / 0.7": (lambda a, b: (abs(a) + 3e-8) / 0.7),
    "0.999 * a + 0.001 * b": (lambda a, b: 0.999 * a + 0.001 * b),
    "a * 2⁻²⁰ + 2⁻²⁴": (lambda a, b: a * 2.0**-20 + 2.0**-24),   # a number of each dtype (float16's least subnormal)
}
LOW = (torch.bfloat16, torch.float16)


@pytest.mark.parametrize("dtype", [F32, *LOW], ids=["float32", "bfloat16", "float16"])
@settings(max_examples=300, deadline=None)
@given(a=st.lists(_F32_VALUES, min_size=3, max_size=3), b=st.lists(_F32_VALUES, min_size=3, max_size=3),
       op=st.sampled_from(sorted(_OPERATIONS) + sorted(_WITH_SCALARS)))
def test_error_bound_contains_the_dtypes_arithmetic(dtype, a, b, op):
    """For operands in the dtype and each operation the bound covers (sums, products, quotients, roots, powers, max,
    branches; with Python numbers, which an implementation holds in float32 beside 16-bit tensors), the result of the
    same expression computed by torch in the dtype lies within the float64 value's bound: the bound is a bound on
    real arithmetic, not an estimate."""
    f = {**_OPERATIONS, **_WITH_SCALARS}[op]
    x, y = (torch.tensor(v, dtype=torch.float64).to(dtype).to(torch.float64) for v in (a, b))
    with rounding(arithmetic(dtype)):
        bounded = f(Bounded(x), Bounded(y))
    actual = f(x.to(dtype), y.to(dtype)).to(torch.float64).numpy()
    finite = np.isfinite(actual) & np.isfinite(bounded.v)
    with np.errstate(invalid="ignore"):   # ∞ − ∞ where neither is finite: those are not compared
        error = np.abs(actual - bounded.v)
    assert np.all(error[finite] <= bounded.error()[finite]), (actual, bounded)


def test_hyperparameters_beside_16_bit_tensors_are_float32_numbers():
    """Adam's β2 = 0.9999 is 1.0 in bfloat16 (spacing 2⁻⁸ below 1), so 1 − β2^t would be 0 and the rule undefined;
    torch holds it as a Python number, used in float32 (opmath). The model holds scalars in float32 beside 16-bit
    tensors: a one-step bfloat16 Adam case with β2 = 0.9999 has a finite step bound below the step itself (γ = 0.1:
    a θ that did not move fails), and torch's Adam is within it."""
    case = _case("adam", [{"lr": 0.1, "betas": (0.9, 0.9999)}], [[1.0, -2.0]], [[[0.5, 3.0]]], torch.bfloat16)
    subject = Subject("torch.optim.Adam", torch.optim.Adam, RULES["adam"], "torch.optim:Adam", {"foreach": False})
    expected, tol = step_tolerances(case, implementation_trajectory(subject, case))
    assert len(expected) == 1 and np.all(tol[0][0] < 0.1)
    check_steps(subject, case, known_deviations=False)


def test_a_scalar_below_the_dtypes_subnormals_added_to_a_tensor_is_not_a_number_of_it():
    """In float16 (smallest subnormal 6e-8), 0 + ε with ε = 1e-8 is 0: a sum of a tensor and a float32 scalar rounds
    below the smallest normal number too, so √v + ε with v = 0 carries ≥ ε and a division by it is unbounded — Adam on
    a zero gradient is 0/0 in float16 (torch gives NaN) and its step is not judged. In float32 ε is a number of the
    dtype and the same case is judged."""
    with rounding(arithmetic(torch.float16)):
        s = Bounded(np.zeros(1)) + 1e-8
    assert float(s.e[0]) >= 1e-8
    case = _case("adam", [{"lr": 0.1}], [[1.0]], [[[0.0]]], torch.float16)
    subject = Subject("torch.optim.Adam", torch.optim.Adam, RULES["adam"], "torch.optim:Adam", {"foreach": False})
    assert step_tolerances(case, implementation_trajectory(subject, case))[0] == []
    assert judged(_case("adam", [{"lr": 0.1}], [[1.0]], [[[0.0]]], F32))


def test_a_clamps_scalar_bound_is_rounded_to_the_tensors_dtype():
    """torch rounds a clamp's (or maximum's) scalar bound to the tensor's dtype: ε = 1e-12 is 0 in float16, so
    max(√0, ε) may be 0 and g / max(√v, ε) is 0/0 — the bound of max(0, 1e-12) beside a float16 tensor reaches 0 and
    the quotient is not bounded. Beside a float32 tensor 1e-12 is a normal number: bounded."""
    for dtype, reaches_zero in ((torch.float16, True), (torch.float32, False)):
        with rounding(arithmetic(dtype)):
            m = torch.clamp(Bounded(np.zeros(2)), min=1e-12)
            q = Bounded(np.ones(2)) / m
        assert bool(np.all(m.error() >= 1e-12)) == reaches_zero
        assert bool(np.all(np.isinf(q.error()))) == reaches_zero


def test_a_scalar_that_is_a_number_of_the_dtype_added_to_a_tensor_is_exact_below_its_smallest_normal():
    """A sum of two numbers of the dtype is exact below its smallest normal number, also when one is a float32 scalar
    that happens to be a number of the dtype: 0 + 2⁻²⁴ (float16's smallest subnormal) is 2⁻²⁴, bound u·2⁻²⁴ (no η). So Muon with
    ε = 2⁻²⁴ on a zero momentum buffer, X/(‖X‖ + ε) = 0/2⁻²⁴, is judged in float16; with ε = 1e-8, not a number of
    float16, the denominator carries ε and the step is not judged (the test above)."""
    with rounding(arithmetic(torch.float16)):
        s = Bounded(np.zeros(1)) + 2.0**-24
        held = Bounded(np.zeros(1)) + Bounded(2.0**-24, 1e-30)   # a scalar known only within a bound: not exact
    assert float(s.e[0]) < 2.0**-30 and float(held.e[0]) >= 2.0**-24
    hp = {"lr": 0.1, "momentum": 0.0, "nesterov": False, "eps": 2.0**-24, "weight_decay": 0.0}
    case = _case("muon", [hp], [[[1.0, 2.0]]], [[[[0.0, 0.0]]]], torch.float16)
    subject = Subject("torch.optim.Muon", torch.optim.Muon, RULES["muon"], "torch.optim:Muon")
    expected, tol = step_tolerances(case, implementation_trajectory(subject, case))
    assert len(expected) == 1 and np.all(np.isfinite(tol[0][0]))
    check_steps(subject, case, known_deviations=False)


def test_a_products_overflow_check_takes_out_only_the_factors_it_holds():
    """float16 (largest 65504): (1 − β2)·g·g with 1 − β2 = 1e-3 and g = 300 is 90, but g·g first is 9e4: another order
    overflows, so the case is not judged. γ·x with γ = 0.1 and x = 600 (60) has no order beyond 600, whatever the
    smallest hyperparameter of the case (β2 = 0.999 here): judged — the factor taken out is the product's own."""
    with rounding(arithmetic(torch.float16)) as r:
        g = Bounded(np.array([300.0]))
        _ = hyperparameter(1e-3, torch.float32) * g * g
    assert r.overflow
    with rounding(arithmetic(torch.float16)) as r:
        _ = hyperparameter(0.1, torch.float32) * Bounded(np.array([600.0]))
    assert not r.overflow


def test_a_scalar_divided_by_a_tensor_whose_reciprocal_overflows_is_not_judged():
    """torch computes ``scalar / tensor`` as scalar·(1/tensor): in float16, γ/(ε + √s) with ε + √s = 1e-5 forms
    1/1e-5 = 1e5 > 65504, inf, and γ = 0 makes it NaN (002's Adagrad template did), where γ/(ε + √s) is 0. A case
    whose exact run divides a scalar by such a tensor is not judged; tensor / tensor is computed directly."""
    with rounding(arithmetic(torch.float16)) as r:
        _ = hyperparameter(0.0, torch.float32) / Bounded(np.array([1e-5]))
    assert r.overflow
    with rounding(arithmetic(torch.float16)) as r:
        _ = Bounded(np.array([1e-3])) / Bounded(np.array([1e-5]))
    assert not r.overflow


def test_state_beyond_the_dtypes_range_is_not_judged():
    """Adagrad's Σg² in float16: g = 200 for two steps gives 8e4 > 65504, inf in any float16 implementation (θ then
    stops moving), where the float64 rule's state is finite: the step that forms it, and those after, are not
    judged; the first step (4e4) is."""
    case = _case("adagrad", [{"lr": 0.01}], [[1.0]], [[[200.0]], [[200.0]], [[200.0]]], torch.float16)
    subject = Subject("torch.optim.Adagrad", torch.optim.Adagrad, RULES["adagrad"], "torch.optim:Adagrad",
                      {"foreach": False})
    expected, _ = step_tolerances(case, implementation_trajectory(subject, case))
    assert len(expected) == 1


def test_judged_step_by_step_a_deviation_does_not_compound():
    """SGD in bfloat16, γ = 0.5, g = 1 twice from θ = 1: the rule's steps are 0.5 then 0. An implementation at 0.625
    after the first step (off by 0.125, far beyond one step's bound) is judged at the second from its own 0.625: the
    expected value there is 0.125, and a second step taken correctly conforms — each step is judged alone."""
    case = _case("sgd", [{"lr": 0.5}], [[1.0]], [[[1.0]], [[1.0]]], torch.bfloat16)
    expected, tol = step_tolerances(case, [[np.array([0.625])], [np.array([0.125])]])
    assert expected[0][0][0] == 0.5 and abs(0.625 - 0.5) > tol[0][0][0]
    assert expected[1][0][0] == 0.125 and tol[1][0][0] < 0.125 / 4


def test_square_that_underflows_leaves_adam_without_eps_undetermined_in_float32():
    """Adam with ε = 0 on a subnormal float32 gradient g = 1e-40: g² (1e-80) underflows to 0 in float32, so v̂ = 0
    and m̂/√v̂ is 0/0 at that precision while the float64 rule gives ±lr: not judged. With ε = 1e-8 the update is
    ≈ lr·g/ε either way (√v̂ ≪ ε): judged."""
    g = [[[1e-40]]]
    assert not judged(_case("adam", [{"eps": 0.0}], [[1.0]], g, F32))
    assert judged(_case("adam", [{"eps": 1e-8}], [[1.0]], g, F32))


def test_square_that_overflows_leaves_adam_undetermined_but_not_sgd():
    """A float32 gradient of 1e30 on θ = 0: Adam's g² (1e60) overflows float32 (max ≈ 3.4e38), so a float32
    implementation gets v̂ = inf and a step of 0 where the rule steps by lr: the rule is not determined at that
    precision, not judged. SGD never squares it: θ − lr·g = −1e27 is representable: judged, and torch's SGD
    conforms."""
    g = [[[1e30]]]
    assert not judged(_case("adam", [{}], [[0.0]], g, F32))
    sgd = _case("sgd", [{"lr": 1e-3}], [[0.0]], g, F32)
    assert judged(sgd)
    check_trajectory(Subject("torch.optim.SGD", torch.optim.SGD, RULES["sgd"], "torch.optim:SGD"), sgd)


def test_subnormal_gradients_are_judged_where_they_carry_precision():
    """SGD with momentum on subnormal float32 gradients of about 10⁵ spacings (2⁻¹⁴⁹·10⁵ ≈ 1.4e-40 < 2⁻¹²⁶: relative
    spacing 1e-5) and lr = 1, so θ and the buffer stay subnormal: gradual underflow keeps 5 digits, the case is
    judged, and torch's SGD follows it. With gradients of a few spacings every result is uncertain by tens of
    percent at float32 precision: not judged (ill-conditioned)."""
    s = 1e5 * SUBNORMAL_32
    case = _case("sgd", [{"lr": 1.0, "momentum": 0.9}], [[3 * s, 0.0]], [[[5 * s, -s]], [[7 * s, 2 * s]]], F32)
    assert judged(case)
    check_trajectory(Subject("torch.optim.SGD", torch.optim.SGD, RULES["sgd"], "torch.optim:SGD"), case)
    few = SUBNORMAL_32
    assert not judged(_case("sgd", [{"lr": 1.0, "momentum": 0.9}], [[3 * few]], [[[5 * few]], [[7 * few]]], F32))


CONSTANT_GRADIENT = _case("rmsprop", [{"lr": 0.1, "alpha": 0.0, "centered": True}], [[1.0]], [[[-1.7782794100389228]]])


def test_cancelling_variance_is_detected_deterministically():
    """Centered RMSprop with α = 0: v = g² and ḡ = g, so ṽ = v − ḡ² is 0 exactly and rounding of an
    implementation decides its sign — every time, not by chance of the Monte Carlo samples. With α = 0.5 and
    gradients 1, −1: v = 0.5, 0.75; ḡ = 0.5, −0.25; ṽ = 0.25, 0.6875, far from rounding: determined."""
    assert undetermined_sign(CONSTANT_GRADIENT)
    steady = _case("rmsprop", [{"alpha": 0.5, "centered": True}], [[1.0]], [[[1.0]], [[-1.0]]])
    assert not undetermined_sign(steady)
    assert judged(CONSTANT_GRADIENT) and judged(steady)


def test_a_centered_step_after_the_bound_stopped_counts_as_possibly_cancelling():
    """The bound stops at an undetermined branch (a momentum of 2e-119 is 0 in float32: a buffer or none), and steps
    after it are judged for finiteness only — unwatched. A centered group whose first gradient comes after the stop
    (α = 0: ṽ = g² − g², rounding's residue) may have cancelled there, so torch's unclamped RMSprop is under its
    known deviation on such a case, as on one whose cancellation the bound saw."""
    hp = {"lr": 0.0, "eps": 1e-8}
    case = Case(RULES["rmsprop"], [Group((0,), {**RULES["rmsprop"].defaults(), **hp, "momentum": 2e-119}),
                                   Group((1,), {**RULES["rmsprop"].defaults(), **hp, "alpha": 0.0, "weight_decay": 1.0,
                                                "centered": True})],
                [np.ones(5), np.array(-31.62277603149414)],
                [[np.array([1.0, -1, 1, -1, 1]), None], [np.array([-1.0, -1, 1, 1, -1]), np.array(1.0)]],
                [[0.0, 0.0], [0.0, 0.0]], F32)
    assert watched_steps(case) == 1 and not undetermined_sign(case)
    subject = Subject("torch.optim.RMSprop", torch.optim.RMSprop, RULES["rmsprop"], "torch.optim:RMSprop",
                      {"foreach": True})
    assert "rmsprop-centered-negative-variance" in [d.name for d in applicable(subject, case)]


def test_cancelling_variance_is_judged_for_finiteness_only():
    """Where the sign of ṽ is undetermined, any finite θ is accepted (√ṽ of a residue is as right as 0), but NaN —
    which the rule, taking the root of a variance, never produces — fails: the clamping correct variant passes,
    torch's unclamped RMSprop (a known deviation, judged here as it is) does not."""
    clamped = Subject("planted.RMSpropAddcmul", planted.RMSpropAddcmul, RULES["rmsprop"],
                      "optimizers.planted:RMSpropAddcmul")
    check_trajectory(clamped, CONSTANT_GRADIENT)
    torch_rmsprop = Subject("torch.optim.RMSprop", torch.optim.RMSprop, RULES["rmsprop"], "torch.optim:RMSprop",
                            {"foreach": False})
    with pytest.raises(NonConformance, match=r"actual nan"):
        check_trajectory(torch_rmsprop, CONSTANT_GRADIENT, known_deviations=False)


def test_underflow_in_a_product_whose_order_the_implementation_chooses():
    """RMSprop on a subnormal float32 gradient g = −1e-38 with γ = 1e-3, ε = 1e-10: an implementation forming γ·g
    first gets a subnormal 1e-41 (spacing 1.4e-45: relative error up to 7e-5) that the division by ε carries into a
    normal θ ≈ 1e-31; the reference's order (g/(√v + ε), then γ) never underflows. torch's RMSprop forms γ·g first
    (addcdiv with value −γ) and is 3.3e-5 off, six times the tolerance of a model that perturbs only the reference's
    own operations; the model's ±η/γ on g covers it, and the case is still judged (≪ 1%)."""
    case = _case("rmsprop", [{"lr": 1e-3, "eps": 1e-10}], [[0.0]], [[[-1e-38]]], F32)
    assert judged(case)
    check_trajectory(Subject("torch.optim.RMSprop", torch.optim.RMSprop, RULES["rmsprop"], "torch.optim:RMSprop",
                             {"foreach": False}), case)


def test_an_overflowing_intermediate_of_the_reference_leaves_the_case_undetermined():
    """Adam in float64 on a gradient of 1e155: the reference's g² (1e310) overflows to inf, so its v is inf and its
    step 0, where (1 − β2)·g·g formed in that order (1e306) stays finite and steps by lr: the result depends on the
    order of the operations, and the case is not judged. A gradient of 1e150 overflows nothing: judged."""
    assert not judged(_case("adam", [{}], [[0.0]], [[[1e155]]]))
    assert judged(_case("adam", [{}], [[0.0]], [[[1e150]]]))


def test_a_product_another_order_overflows_in_the_dtype_leaves_the_case_undetermined():
    """RMSProp as 002 writes it (s = γs + (1 − γ)g²) in float32, γ = 0.5, lr 1e-4, on g = −2.37e19. The
    reference forms (1 − γ)·g·g = 2.8e38, a float32 number; g·g first is 5.6e38, past float32's
    3.4e38, and the suite's own template (``p.grad**2``) got s = inf and left θ at −1 where the rule moves it by
    lr·√2 = 1.4e-4. The result depends on the order, and the case is not judged. At g = −1e17 (g² = 1e34, and
    (1 − γ)·g² / lr = 5e37 below 3.4e38) no order overflows: judged, and the template conforms."""
    hp = {"lr": 1e-4, "gamma": 0.5, "eps": 1e-8}
    assert not judged(_case("book_rmsprop", [hp], [[-1.0]], [[[-2.371373682326818e19]]], F32))
    near = _case("book_rmsprop", [hp], [[-1.0]], [[[-1e17]]], F32)
    assert judged(near)
    check_trajectory(Subject("template.RMSProp", template.RMSProp, RULES["book_rmsprop"], "optimizers.template:RMSProp"),
                     near)


def _adamw_float32_mixed(case) -> list[float]:
    """AdamW on one float32 scalar as optax computes it with Python-number hyperparameters: 1 − β1 and 1 − β2 formed
    from the Python numbers (then rounded to float32 once), β1·m, β2·v and the bias corrections 1 − β^t from β
    rounded to float32 — each operation rounded to float32 (NumPy float32 arithmetic)."""
    f = np.float32
    hp = case.groups[0].hp
    (b1, b2), lr, wd, eps = hp["betas"], hp["lr"], hp["weight_decay"], hp["eps"]
    theta, m, v, out, t = f(case.params[0]), f(0), f(0), [], 0
    for row in case.grads:
        if row[0] is None:   # no gradient: θ and the state stay, the step count too
            out.append(float(theta))
            continue
        t, g = t + 1, f(row[0])
        m = f(1 - b1) * g + f(b1) * m
        v = f(1 - b2) * g * g + f(b2) * v
        m_hat, v_hat = m / (f(1) - f(b1) ** f(t)), v / (f(1) - f(b2) ** f(t))
        theta = theta - f(lr) * (m_hat / (np.sqrt(v_hat) + f(eps)) + f(wd) * theta)
        out.append(float(theta))
    return out


def test_a_hyperparameter_rounded_differently_at_two_uses_is_within_tolerance():
    """optax's float32 AdamW (lr 1, β = (0.9, 0.999), λ = 0.01) from θ = −1 on gradients −1, 0 — found by the
    ecosystem matrix. It takes 1 − β2 = 0.001 from the Python number but β2^t from β2 rounded to float32
    (0.99900001287): 1 − β2² is then 2.57e-8 too small, 1.3e-5 relative, where taking both from the same rounded β2
    would cancel (v̂ = (1 − β2)g²β2/(1 − β2²)). θ_2 lands 1.32e-5 from the exact 0.6799582347581131. A model whose
    hyperparameter noise is one random sign per use, shared by its samples, gave 1.18e-5 on this case when its signs
    happened to cancel. The bound adds the magnitudes of both uses' errors, so no pattern of roundings cancels in it:
    the same implementation is judged."""
    hp = {**RULES["adamw"].defaults(), "lr": 1.0, "weight_decay": 0.01}
    case = Case(RULES["adamw"], [Group((0, 1, 2), hp)], [np.array(-1.0)] * 3,
                [[np.array(-1.0)] * 3, [np.array(0.0), np.array(-1.0), np.array(-1.0)]], [[1.0], [1.0]], F32)
    expected = [float(row[0]) for row in reference_trajectory(case)]
    tol = [float(row[0]) for row in tolerances(case, reference_trajectory(case))]
    actual = _adamw_float32_mixed(case)
    assert expected[1] == pytest.approx(0.6799582347581131, abs=1e-15)
    assert abs(actual[1] - expected[1]) > 1.3e-5   # the mixed rounding is really there
    for t, a in enumerate(actual):
        assert abs(a - expected[t]) <= tol[t], (t, a, expected[t], tol[t])


def test_a_hyperparameter_rounded_differently_is_within_tolerance_over_many_steps():
    """The same float32 AdamW over 11 steps, on two parameters of five elements in two groups, from the optax
    float32 run. Parameter 1 (lr 1, β = (0.9, 0.999), λ = 0, no gradient
    at step 1): the mixed rounding of β2 builds up in v, and θ ends 5.8e-5 from the exact −6.873459436975478.
    Alternating the sign over all uses in one sequence made the pattern depend on how many uses came before (three
    per hyperparameter and step, two parameters): the decay β2·v took +δ and −δ on alternate steps, the build-up
    cancelled, and the tolerance was 4.74e-5. Each hyperparameter of a step now alternates over its own uses, the
    same pattern every step, and the case is judged with room."""
    one, alt = [1.0] * 5, [-1.0, 1.0, -1.0, 1.0, -1.0]
    first = [None, one, one, one, None, one, one, one, one, one, one]
    second = [one, None, [0.009999999776482582] * 5, one, one, one, one, alt, one, one, one]
    defaults = RULES["adamw"].defaults()
    groups = [Group((0,), {**defaults, "lr": 1.0, "betas": (0.0, 0.999), "weight_decay": 0.01}),
              Group((1,), {**defaults, "lr": 1.0, "weight_decay": 0.0})]
    case = Case(RULES["adamw"], groups, [np.array(one), np.array(one)],
                [[None if a is None else np.array(a), None if b is None else np.array(b)] for a, b in zip(first, second)],
                [[1.0, 1.0]] * len(first), F32)
    expected = reference_trajectory(case)
    tol = tolerances(case, expected)
    alone = Case(RULES["adamw"], [groups[1]], [np.array(1.0)],
                 [[None if b is None else np.array(b[0])] for b in second], [[1.0]] * len(first), F32)
    actual = _adamw_float32_mixed(alone)   # element 0 of parameter 1: the groups do not interact
    assert float(expected[-1][1][0]) == pytest.approx(-6.873459436975478, abs=1e-14)
    assert abs(actual[-1] - float(expected[-1][1][0])) > 5e-5
    for t, a in enumerate(actual):
        assert abs(a - float(expected[t][1][0])) <= float(tol[t][1][0]), (t, a, float(tol[t][1][0]))


def test_a_hyperparameter_whose_uses_one_shared_sign_cancels_is_within_tolerance():
    """NAdam in float32 (lr 0.002, β = (0.001, 0), ψ = 0.004) from θ = −1 on gradients −1, −1000, −1e-6.
    m_2 = β1·m_1 + (1 − β1)g ≈ β1·(−999) carries a thousand times β1's rounding: torch's lerp weight
    1 − β1, rounded to float32 (0.99900001287), moves β1 by 1.3e-5 relative in m_2 alone, and θ_2 lands 1.27e-5
    from the exact −0.0042630732770119195. The model moves β1 in m_2 and in μ_3 = β1(1 − ½·0.96^{3ψ}); with one sign
    per use shared by the batch, the two moved together in all fifteen samples and cancelled in μ_3·m_2 (tolerance
    7.2e-6). With a sign per sample where β1 meets the batch's tensors, the case is judged with room."""
    g = 9.999999974752427e-07   # 1e-6 in float32
    case = _case("nadam", [{"lr": 0.002, "betas": (0.001, 0.0), "eps": 1e-8, "momentum_decay": 0.004}],
                 [[-1.0, -1.0]], [[[-1.0, -1.0]], [[-1000.0, -1000.0]], [[-g, -g]]], F32)
    expected = reference_trajectory(case)
    assert float(expected[2][0][0]) == pytest.approx(-0.0042630732770119195, abs=1e-15)
    theta = torch.nn.Parameter(torch.tensor([-1.0, -1.0]))
    opt = torch.optim.NAdam([theta], lr=0.002, betas=(0.001, 0.0), eps=1e-8, momentum_decay=0.004, foreach=False)
    for row in case.grads:
        theta.grad = torch.tensor(row[0], dtype=F32)
        opt.step()
    assert abs(float(theta.detach()[0]) - float(expected[2][0][0])) > 1.2e-5   # the rounding of 1 − β1 is really there
    for foreach in (False, True):
        check_trajectory(Subject("torch.optim.NAdam", torch.optim.NAdam, RULES["nadam"], "torch.optim:NAdam",
                                 {"foreach": foreach}), case)


def _rmsprop_tf_case() -> Case:
    hp = {**RULES["rmsprop_tf"].defaults(), "lr": 0.01, "alpha": 0.0, "eps": 1e-8, "weight_decay": 1.0}
    return Case(RULES["rmsprop_tf"], [Group((0,), hp), Group((1,), hp, True)], [np.zeros(5), np.array(-1.0)],
                [[np.full(5, 9.999999999999999e-06), np.array(-1.0)]], [[0.01, 0.01]])


def test_a_rounding_of_the_reference_form_that_the_samples_cancel_is_within_tolerance():
    """rmsprop_tf (TensorFlow's form v + (1 − α)(g² − v), v₀ = 1) with α = 0, λ = 1, lr 0.01, ε = 1e-8 on θ = 0 (five
    elements), g = 1e-5: the reference rounds g² − 1 (v = 1.0000000827e-10 instead of g² = 1e-10), an implementation
    forming α·v + (1 − α)g² gets g² exactly, and θ differs by 4.1e-13 (−0.000995037190209989 against
    −0.000995037189802416). A Monte Carlo model with four runs gave element 4 a tolerance of
    7.4e-14, its perturbations of g² − v and of (1 − α)·(g² − v) having cancelled in every run; the bound has no
    runs to cancel, and every element's tolerance covers the difference."""
    case = _rmsprop_tf_case()
    expected = reference_trajectory(case)[0][0]
    tol = tolerances(case, reference_trajectory(case))[0][0]
    g = torch.full((5,), 9.999999999999999e-06, dtype=torch.float64)
    v = torch.ones(5, dtype=torch.float64).mul_(0.0).addcmul_(g, g, value=1.0)   # α·v + (1 − α)g², g² exact
    actual = (-0.01 * g / torch.sqrt(v + 1e-8)).numpy()
    assert np.all(np.abs(actual - expected) <= tol), (actual - expected, tol)


def test_a_float64_reference_that_underflows_where_another_order_does_not_is_not_judged():
    """float64 RAdam (lr 1e-4, β = (0, 0.999), λ = 1) from θ = 0 on gradients of −1e-320 (subnormal), 13 steps:
    the reference forms lr·m̂ = 1e-324 first, which underflows to 0, and θ stays 0; torch's foreach path forms
    m̂·(lr·r_t·l_t) and gets 2e-319 at the first rectified step, which weight decay (g + λθ, then ·lr·r_t/ε ≈ 200)
    multiplies at every step to −7.7e-308 at step 12. Neither is wrong at float64 precision: the bound keeps the
    underflowed product's η (a product of nonzero factors that rounds to 0 is not exact, and an error below
    float64's range is floored at its smallest subnormal), carries it through the amplification, and the case is
    ill-conditioned, not judged."""
    hp = {"lr": 1e-4, "betas": (0.0, 0.999), "eps": 1e-8, "weight_decay": 1.0}
    case = _case("radam", [hp], [0.0], [[-1e-320]] * 13)
    bounds = error_bounds_of(case)
    assert bounds[-1] > 7.7e-308 and not judged(case)


def test_a_state_update_that_cancels_in_lerp_form_is_within_tolerance():
    """float64 AdamW (lr 1e-3, β = (0.0055, 0), λ = 0) from θ = −1 on gradients −1 (four steps), none, then −1e-7:
    torch forms m = lerp(m, g, 1 − β1) = m + (1 − β1)(g − m) = −1 + 0.9945·(1 − 1e-7), which cancels to −0.0055
    with a rounding relative to the previous |m| = 1, 180 times its own size; the last step divides by
    √v̂ + ε ≈ 1.1e-7 and θ lands at 49.03, 4.76e-13 from the reference in every torch path. The state-form term
    (two roundings of |m_{t−1}| + |m_t|) bounds it."""
    hp = {"lr": 1e-3, "betas": (0.00550317315678767, 0.0), "weight_decay": 0.0}
    full = {**RULES["adamw"].defaults(), **hp}
    grads = [[np.array(-1.0)]] * 4 + [[None], [np.array(-1e-7)]]
    case = Case(RULES["adamw"], [Group((0,), full)], [np.array(-1.0)], grads, [[1e-3]] * 6)
    for fused, foreach in ((True, None), (False, False), (False, True)):
        check_trajectory(Subject("torch.optim.AdamW", torch.optim.AdamW, RULES["adamw"], "torch.optim:AdamW",
                                 {"fused": True} if fused else {"foreach": foreach}), case)


def test_a_fraction_held_as_its_complement_in_float64_is_within_tolerance():
    """float64 NAdam with β1 = 1e-5: torch's lerp weight 1 − β1 = 0.99999 is rounded in float64 (Python), so β1 is
    effectively 1 − fl(1 − β1), 1.1e-16 away — 1e-11 relative; a zero gradient after two steps of −1 makes
    m = β1·m, which ε = 1e-8 then divides, and θ lands 2.3e-14 from the reference (under the workaround of torch's
    known float32 μ-product deviation: default dtype float64). The fraction's bound is the larger of |fl(β) − β| and
    |fl(1 − β) − (1 − β)|, computed exactly: tolerance 6.1e-14 (with |fl(β) − β| alone, 0 in float64, it was 6e-15)."""
    hp = {"lr": 1.0, "betas": (1e-05, 0.0), "eps": 1e-8}
    case = _case("nadam", [hp], [-1.0], [[-1.0], [-1.0], [0.0]])
    check_trajectory(Subject("torch.optim.NAdam", torch.optim.NAdam, RULES["nadam"], "torch.optim:NAdam",
                             {"foreach": False}), case)


def error_bounds_of(case) -> list[float]:
    return [float(np.max(row[0])) for row in error_bounds(case)["bounds"]]


def test_square_root_of_a_value_within_its_bound_of_zero_reaches_up_to_the_root_of_the_bound():
    """√ of 0 ± e may be anywhere in [0, √e]: a state that cancels to 0 in the reference (SparseAdam's
    v + (1 − β2)(g² − v) with g = 0 and 1 − β2 rounding to 1) while an implementation keeps β2·v > 0."""
    with rounding(arithmetic(torch.float64)):
        root = torch.sqrt(Bounded(torch.tensor([0.0, 1.0], dtype=torch.float64),
                                 torch.tensor([1e-16, 1e-16], dtype=torch.float64)))
    assert root.e[0] >= 1e-8 and root.e[1] >= 0.5e-16

    case = _case("sparse_adam", [{"lr": 0.001, "betas": (0.95, 3.096072875664915e-18), "eps": 0.0005}],
                 [[0.06, 0.5]], [[[1.0, -2.0]], [[0.0, 0.0]]])
    check_trajectory(Subject("planted._SparseAdam", planted._SparseAdam, RULES["sparse_adam"],
                             "optimizers.planted:_SparseAdam"), case)


class _FlushingSGD(torch.optim.SGD):
    """torch's SGD as a flush-to-zero machine runs it: subnormal gradients read as 0 (DAZ), subnormal results
    written as 0 (FTZ)."""

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        for p in params:
            if p.grad is not None:
                p.grad[p.grad.abs() < torch.finfo(p.dtype).tiny] = 0
        super().step(closure)
        for p in params:
            p[p.abs() < torch.finfo(p.dtype).tiny] = 0


def test_flush_to_zero_is_a_declared_mode_and_a_failure_it_explains_says_so():
    """SGD in float64, γ = 10, on a subnormal gradient g = −1e-308 from θ = 1e-300: the IEEE rule moves θ by
    1e-307, five times float64's smallest normal number; an implementation that reads g as 0 does not move it. By
    default (IEEE) that is a deviation, and its message says in its first lines that flushing subnormals explains
    it; declared as ``--subnormals=flush`` (``Subject.subnormals``, the case's note), it conforms — and so does
    torch's SGD, which does not flush."""
    case = _case("sgd", [{"lr": 10.0}], [[1e-300]], [[[-1e-308]]])
    ieee = Subject("FlushingSGD", _FlushingSGD, RULES["sgd"], "properties.test_tolerance_model:_FlushingSGD")
    with pytest.raises(NonConformance) as failure:
        check_trajectory(ieee, case)
    assert "subnormal numbers:" in str(failure.value).splitlines()[1]
    assert "--subnormals=flush" in str(failure.value).splitlines()[1]
    flushed = dataclasses.replace(case, notes={"subnormals": "flush"})
    check_trajectory(dataclasses.replace(ieee, subnormals="flush"), flushed)
    check_trajectory(Subject("torch.optim.SGD", torch.optim.SGD, RULES["sgd"], "torch.optim:SGD"), flushed)
