"""zero_grad and gradient accumulation (001: "optimizer.zero_grad(): This function sets the gradient of the
parameters to 0 (otherwise it will get accumulated)"; its by-hand loop: "x.grad.zero_()  # Try commenting that line !";
000's template ``OptimizerBase.zero_grad``), on the implementation under test, with a real loss and ``backward()``.

A training loop over one of the documents' problems (or a drawn positive-definite quadratic), its parameter vector
split over one or two tensors:

* with ``opt.zero_grad()`` before each ``loss.backward()``, every parameter's ``.grad`` after backward is this
  step's gradient alone: what ``torch.autograd.grad`` gives for the same loss at the same parameters;
* without it, ``.grad`` is the sum of every backward's gradient so far — backward accumulates, and ``step()`` must
  leave that to the caller (neither clear nor rescale ``.grad``).

Tolerance: none. Both sides run the same autograd kernels on the same float64 values (deterministic on CPU), and
accumulation is one IEEE addition per element per backward, which the expected running sum repeats in the same
order with the same operands: the results are equal bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from optimizers import adapters
from properties.assertions import NonConformance
from reference import problems

DTYPE = torch.float64
#: smooth problems of the documents (∇f defined at and around x0), and drawn quadratics
PROBLEMS = {
    "pathological_loss": problems.pathological_loss, "function_2d": problems.function_2d,
    "paraboloid_nonisotropic": problems.paraboloid_nonisotropic, "regression_mse": lambda: problems.regression("mse"),
    "regression_huber": lambda: problems.regression("huber"), "ellipse": problems.ellipse,
    "cosh": problems.cosh, "x_cos": problems.x_cos, "rosenbrock": problems.rosenbrock,
}


def _constructor_args(subject) -> dict:
    accepted = subject.caps.accepted
    return {**{k: v for k, v in subject.rule.defaults().items() if k in accepted}, **subject.fixed}


def _split(x0: torch.Tensor, cut: int, ndims: tuple[int, ...] | None) -> list[torch.nn.Parameter]:
    """x0 cut at ``cut`` into vectors, or row matrices for a rule of matrices (``Rule.ndims``)."""
    pieces = [x0[:cut], x0[cut:]] if 0 < cut < x0.shape[0] else [x0]
    if ndims is not None and 1 not in ndims:
        pieces = [p.reshape(1, -1) for p in pieces]
    return [torch.nn.Parameter(p.clone().to(DTYPE)) for p in pieces]


def check_zero_grad_and_accumulation(subject, problem, x0: torch.Tensor, cut: int, steps: int,
                                     zero_grad: bool) -> None:
    """Run ``steps`` iterations of ``[opt.zero_grad();] loss = f(x); loss.backward(); opt.step()`` with x split into
    parameters at ``cut``; after each backward, each parameter's .grad must equal this step's gradient (with
    zero_grad) or the running sum of all of them (without). Raises NonConformance."""
    __tracebackhide__ = True
    params = _split(x0, cut, subject.rule.ndims)
    kwargs = _constructor_args(subject)
    opt = adapters.constructed(subject, f"the constructor, given {kwargs}", list(params), **kwargs)
    running = [None] * len(params)
    for t in range(steps):
        if zero_grad:
            opt.zero_grad()
        fresh = torch.autograd.grad(problem.f(torch.cat([p.reshape(-1) for p in params])), params)
        loss = problem.f(torch.cat([p.reshape(-1) for p in params]))
        loss.backward()
        for i, (p, g) in enumerate(zip(params, fresh)):
            running[i] = g.clone() if running[i] is None or zero_grad else running[i] + g
            want = running[i]
            if p.grad is None or not torch.equal(p.grad, want):
                got = None if p.grad is None else p.grad.tolist()
                raise NonConformance(
                    f"{subject.id} on {problem.name}, step {t}, {'with' if zero_grad else 'without'} zero_grad() "
                    f"before backward(): parameter {i}'s .grad is {got}, but should be {want.tolist()} — "
                    + ("this step's gradient alone: zero_grad() must clear every parameter's gradient"
                       if zero_grad else
                       "the sum of the gradients of all backward() calls so far: without zero_grad(), gradients "
                       "accumulate, and step() must not clear or change .grad"))
        adapters.step(subject, opt, t)
        if not all(torch.isfinite(p).all() for p in params):
            return  # the rule diverged on this problem: nothing more to compare


@st.composite
def training_problems(draw):
    """One of the documents' smooth problems from near its x0 (shifted by up to 10% of |x0| + 0.1), or a drawn
    positive-definite quadratic (dimension 1–5, condition ≤ 100); the parameter vector split at a drawn index."""
    name = draw(st.sampled_from(sorted(PROBLEMS) + ["pd_quadratic"]), label="problem")
    if name == "pd_quadratic":
        n = draw(st.integers(1, 5), label="dimension")
        seed = draw(st.integers(0, 2**32 - 1), label="seed")
        rng = np.random.default_rng(seed)
        problem = problems.random_pd_quadratic(problems.spectrum(n, 10.0 ** draw(st.floats(0.0, 2.0)), 1.0),
                                               seed=seed, center=torch.from_numpy(rng.standard_normal(n)))
        x0 = torch.from_numpy(rng.standard_normal(n))
    else:
        problem = PROBLEMS[name]()
        shift = draw(st.lists(st.floats(-1.0, 1.0), min_size=problem.dim, max_size=problem.dim), label="shift")
        x0 = problem.x0 + torch.tensor(shift, dtype=DTYPE) * (0.1 * torch.abs(problem.x0) + 0.1)
    cut = draw(st.integers(0, problem.dim), label="split index")
    return problem, x0, cut


#: zero_grad and accumulation are API behaviour, not arithmetic: a deviation shows on any example with a nonzero
#: gradient, so a quarter of the profile's examples per implementation suffice (the default run checks ~26
#: implementations: 6 examples each instead of 25 saves ~8 s of the suite's budget, not coverage of the API).
EXAMPLES = max(1, settings().max_examples // 4)


def _require_zero_grad(subject):
    reason = subject.caps.missing("zero_grad")
    if subject.rule.sparse_gradients:
        reason = (f"rule {subject.rule.name!r} takes sparse gradients; these losses' backward() gives dense ones "
                  "(its zero_grad is checked by test_contract.py with sparse gradients)")
    if reason:
        pytest.skip(reason)


@settings(max_examples=EXAMPLES)
@given(drawn=training_problems(), steps=st.integers(1, 4))
def test_zero_grad_leaves_only_the_new_gradient(subject, drawn, steps):
    """With zero_grad() before each backward(), a parameter's .grad after backward is exactly that backward's
    gradient, at every step of a training loop on a real loss (001's "sets the gradient … to 0")."""
    _require_zero_grad(subject)
    problem, x0, cut = drawn
    check_zero_grad_and_accumulation(subject, problem, x0, cut, steps, zero_grad=True)


@settings(max_examples=EXAMPLES)
@given(drawn=training_problems(), steps=st.integers(2, 4))
def test_without_zero_grad_gradients_accumulate(subject, drawn, steps):
    """Without zero_grad(), .grad after the k-th backward() is the sum of the k gradients (001: "otherwise it will get
    accumulated"; "Try commenting that line!"): step() neither clears nor rescales .grad."""
    _require_zero_grad(subject)
    problem, x0, cut = drawn
    assume(problem.grad(x0).abs().max() > 0)
    check_zero_grad_and_accumulation(subject, problem, x0, cut, steps, zero_grad=False)
