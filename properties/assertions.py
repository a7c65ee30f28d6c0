"""Assertions that explain a failure in the reader's terms — rule, hyperparameters, step, parameter, element,
expected, actual, error, tolerance — and print a reproducer that runs without the suite."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from optimizers.adapters import Subject
from optimizers.known_deviations import shared_with_torch
from optimizers.loading import reproducer_import
from reference.sparse import SparseGrad
from reference.trajectory import Case


class NonConformance(AssertionError):
    """The implementation left the rule; the message is the whole explanation. ``details`` holds the same facts as
    data (step, parameter, expected, actual, error, tolerance, hyperparameters, reproducer) for the JSON report."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


def any_subnormal(values, dtype: torch.dtype) -> bool:
    """Whether any of the arrays ``values`` holds a number subnormal in ``dtype`` (nonzero, below its smallest normal
    number): where an implementation that flushes subnormals to zero (FTZ/DAZ, XLA on CPU) parts from the rule."""
    tiny = torch.finfo(dtype).tiny
    return any(bool(np.any((v != 0) & (np.abs(v) < tiny))) for v in values)


def _subnormal_inputs(case, step: int) -> bool:
    """Whether a parameter's start or a gradient up to ``step`` is subnormal in the case's dtype."""
    return any_subnormal([*case.params, *(_values(g) for row in case.grads[:step + 1] for g in row if g is not None)],
                         case.dtype)


def _fmt(x: float) -> str:
    return repr(float(x))


def _hp(hp: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in hp.items())


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def _lit(a) -> str:
    if isinstance(a, SparseGrad):
        return f"sparse({a.index.tolist()!r}, {a.values.tolist()!r}, {a.shape!r})"
    return "None" if a is None else repr(np.asarray(a).tolist())


def _values(a) -> np.ndarray:
    return a.values if isinstance(a, SparseGrad) else a


def _replay(subject: Subject, case: Case, upto: int) -> list[str]:
    """Script lines that rebuild the case's parameters, groups and optimizer and run its steps 0..upto with the same
    learning rates and gradients (``grads`` is left holding the last step's)."""
    dt = str(case.dtype)
    accepted = subject.caps.accepted
    kwargs = {k: v for k, v in case.groups[0].hp.items() if k in accepted}
    kwargs.update(subject.fixed)
    lines = ["import math", "import torch", reproducer_import(subject.spec), ""]
    if case.rule.sparse_gradients:
        lines += ["def sparse(index, values, shape):  # a gradient in sparse COO layout: values[k] at index[:, k]",
                  f"    values = torch.tensor(values, dtype={dt}, device={subject.device!r})",
                  "    values = values.reshape(-1, *shape[len(index):])",
                  f"    index = torch.tensor(index, dtype=torch.int64, device={subject.device!r})",
                  "    return torch.sparse_coo_tensor(index.reshape(len(index), len(values)), values, shape)",
                  ""]
    lines += [f"params = [torch.nn.Parameter(torch.tensor(v, dtype={dt}, device={subject.device!r})) for v in ["]
    lines += [f"    {_lit(p)}," for p in case.params] + ["]]"]
    if subject.caps.param_groups:
        lines.append("groups = [")
        for g in case.groups:
            own = "" if g.inherits else "".join(f", {k!r}: {v!r}" for k, v in g.hp.items() if k in accepted)
            lines.append(f"    {{'params': [{', '.join(f'params[{j}]' for j in g.indices)}]{own}}},")
        lines += ["]", f"opt = Impl(groups, **{kwargs!r})"]
    else:
        lines.append(f"opt = Impl(params, **{kwargs!r})")
    sched = subject.caps.param_groups and "lr" in accepted and case.rule.hyper("lr").scheduled
    lines.append("steps = [  # per step: (learning rate per group, gradient per parameter)")
    for t in range(upto + 1):
        lrs = case.lrs[t] if sched else None
        lines.append(f"    ({lrs!r}, [{', '.join(_lit(g) for g in case.grads[t])}]),")
    lines += [
        "]",
        "for lrs, grads in steps:",
        "    for group, lr in zip(getattr(opt, 'param_groups', []), lrs or []):",
        "        group['lr'] = lr",
        "    for p, g in zip(params, grads):",
        f"        p.grad = None if g is None else g.clone() if isinstance(g, torch.Tensor) else torch.tensor(g, "
        f"dtype={dt}, device=p.device)",
        "    opt.step()",
    ]
    return lines


def reproducer(subject: Subject, case: Case, upto: int, i: int, index: tuple, expected: float, tol: float) -> str:
    """A self-contained script: the same parameters, groups, learning rates and gradients, steps 0..upto, and the
    reference's value for the failing element with the tolerance, as literals."""
    compensated = subject.compensation is not None and case.notes.get("judged") == "step by step"
    lines = _replay(subject, case, upto) + [
        f"actual = (params[{i}].detach().double() + opt.state[params[{i}]][{subject.compensation!r}].double()).cpu()"
        f"[{index!r}].item()  # the parameter plus its compensation" if compensated else
        f"actual = params[{i}].detach().double().cpu()[{index!r}].item()",
        f"expected = {_fmt(expected)}  # reference rule {case.rule.name!r}, float64",
        f"print(f'actual {{actual!r}}, expected {{expected!r}}, error {{abs(actual - expected):.3g}}, "
        f"tolerance {tol:.3g}')",
        f"assert abs(actual - expected) <= {tol!r}" if np.isfinite(tol) else
        "assert math.isfinite(actual)  # judged for finiteness only: rounding decides the sign of a cancelling term",
    ]
    return "\n".join(lines)


def grad_reproducer(subject: Subject, case: Case, upto: int, i: int) -> str:
    """A self-contained script: the case's steps 0..upto as in ``reproducer``, then the check that parameter ``i``'s
    .grad still holds the gradient it was given (step() must only read it)."""
    if case.rule.sparse_gradients:
        check = ["held = lambda g: (g._indices().tolist(), g._values().tolist())  # a sparse gradient's entries",
                 "print('given', held(given), '; p.grad after step():', None if after is None else held(after))",
                 "assert after is not None and held(after) == held(given), 'step() changed p.grad'"]
    else:
        check = ["print('given', given, '; p.grad after step():', None if after is None else after.tolist())",
                 "assert after is not None and after.tolist() == given, 'step() changed p.grad'"]
    return "\n".join([*_replay(subject, case, upto),
                      f"given = grads[{i}]  # the gradient set before the last step",
                      f"after = params[{i}].grad",
                      *check])


def _judged_again(case: Case, actual, t: int, notes: dict | None = None, **changes) -> tuple[list, list, Case]:
    """``case`` up to its step ``t``, with ``changes`` (its fields) and ``notes`` added, judged as ``case`` was
    (over the trajectory, or step by step from ``actual``): (expected, tolerance, the case judged)."""
    from properties.tolerances import step_tolerances, tolerances
    from reference.trajectory import reference_trajectory
    kept = {k: v for k, v in case.notes.items() if k != "error bounds"}
    again = dataclasses.replace(case, grads=case.grads[:t + 1], lrs=case.lrs[:t + 1], notes={**kept, **(notes or {})},
                                **changes)
    if case.notes.get("judged") == "step by step":
        return (*step_tolerances(again, actual[:t + 1]), again)
    expected = reference_trajectory(again)
    return expected, tolerances(again, expected), again


def _flushing_explains(case: Case, actual, t: int, i: int, index: tuple, err: float) -> bool:
    """Whether an IEEE case's deviation at step ``t`` is within the bound of an implementation that flushes subnormal
    inputs and results to zero (or one the rule does not determine then): judged as that, it would not fail."""
    from properties.tolerances import flushes
    if flushes(case):
        return False
    _, tol, _ = _judged_again(case, actual, t, notes={"subnormals": "flush"})
    return len(tol) <= t or bool(err <= tol[t][i][index])


def _is_torch(subject: Subject) -> bool:
    factory = getattr(subject.factory, "wraps", subject.factory)
    return getattr(factory, "__module__", "").startswith("torch.optim")


def _within(actual, expected, tol) -> bool:
    with np.errstate(invalid="ignore"):
        return all(bool(np.all(np.abs(np.asarray(a) - e) <= tl)) for a_t, e_t, tl_t in zip(actual, expected, tol)
                   for a, e, tl in zip(a_t, e_t, tl_t))


def ignored_group_values(case: Case, actual, t: int) -> list[str]:
    """The hyperparameters (other than the scheduled learning rate) that some parameter group sets apart from the
    constructor's and that the implementation ignores: with the constructor's value in every group instead, its
    trajectory up to the failing step ``t`` conforms, every step determined (a finite bound: a case the rule leaves
    undetermined explains nothing). Tried one name at a time; judged as the case was."""
    from properties.tolerances import judgeable
    from reference.trajectory import Group
    first = case.groups[0].hp
    names = [n for n in first if not (n == "lr" and case.rule.hyper(n).scheduled)
             and any(not g.inherits and g.hp.get(n) != first[n] for g in case.groups[1:])]
    out = []
    for n in names:
        groups = [Group(g.indices, {**g.hp, n: first[n]}, g.inherits) for g in case.groups]
        expected, tol, alt = _judged_again(case, actual, t, groups=groups)
        determined = len(expected) == t + 1 and judgeable(alt, expected, tol) and all(
            np.all(np.isfinite(tl)) for row in tol for tl in row)
        if determined and _within(actual[:t + 1], expected, tol):
            out.append(n)
    return out


def assert_trajectory_conforms(subject: Subject, case: Case, actual, expected, tol) -> None:
    """Every parameter after every step within tolerance of the reference; the first deviation explained."""
    __tracebackhide__ = True
    for t, (act_t, exp_t, tol_t) in enumerate(zip(actual, expected, tol, strict=True)):
        for i, (a, e, tl) in enumerate(zip(act_t, exp_t, tol_t, strict=True)):
            if a.shape != e.shape:
                raise NonConformance(f"{subject.id}: after step {t} parameter {i} has shape {a.shape}, "
                                     f"but should keep its shape {e.shape}")
            with np.errstate(invalid="ignore"):
                err = np.abs(a - e)
            # NaN in the actual counts as a deviation, and so does ±inf where the reference is finite (even where
            # the tolerance is infinite: a case judged for finiteness only)
            bad = ~(err <= tl) | (~np.isfinite(a) & np.isfinite(e))
            if not bad.any():
                continue
            flat = int(np.argmax(np.where(bad, np.nan_to_num(err / np.maximum(tl, 1e-300), nan=np.inf), -1)))
            index = tuple(int(x) for x in np.unravel_index(flat, e.shape)) if e.shape else ()
            k = case.group_of(i)
            hp = case.hp_at(i, t)
            held = subject.held()
            script = reproducer(subject, case, t, i, index, float(e[index]), float(tl[index]))
            details = {"kind": "trajectory", "step": t, "steps": case.steps, "parameter": i, "element": list(index),
                       "dtype": str(case.dtype).replace("torch.", ""), "expected": float(e[index]),
                       "actual": float(a[index]), "error": float(err[index]), "tolerance": float(tl[index]),
                       "max_error": float(np.nanmax(np.where(np.isnan(err), np.inf, err))),
                       "hyperparameters": {k: _jsonable(v) for k, v in hp.items()}, "reproducer": script,
                       "subnormal inputs": _subnormal_inputs(case, t),
                       "judged": case.notes.get("judged", "over the trajectory")}
            flushing = _flushing_explains(case, actual, t, i, index, float(err[index]))
            details["subnormals"] = "flushing explains it" if flushing else "IEEE"
            ignored = ignored_group_values(case, actual, t) if len(case.groups) > 1 else []
            details["ignored group hyperparameters"] = ignored
            shared = [] if _is_torch(subject) else [d.name for d in shared_with_torch(case)]
            details["torch's known deviations"] = shared
            constructor = case.groups[0].hp
            tiny = torch.finfo(case.dtype).tiny
            raise NonConformance("\n".join([
                f"{subject.id} does not conform to rule {case.rule.name!r} ({case.rule.source}).",
                *([f"  subnormal numbers: this case feeds or forms numbers below {str(case.dtype).replace('torch.', '')}"
                   f"'s smallest normal ({tiny:.3g}), and the implementation is within the bound of one that flushes "
                   "them to zero (FTZ/DAZ: GPU fast math, Triton, XLA on CPU); if it flushes by design, judge it "
                   "with --subnormals=flush"] if flushing else []),
                *([f"  parameter groups: {', '.join(ignored)} set in a param group is ignored: every step is the "
                   f"rule's with the constructor's {_hp({n: constructor[n] for n in ignored})} in every group (the "
                   "torch.optim contract reads each group's own value from param_groups)"] if ignored else []),
                *([f"  torch.optim has this case's deviation too, named (optimizers/known_deviations.py): "
                   f"{', '.join(shared)}"] if shared else []),
                f"  step {t} of {case.steps} (0-based), parameter {i} (shape {tuple(e.shape)}, group {k}), "
                f"element {index}, dtype {str(case.dtype).replace('torch.', '')}",
                f"  expected {_fmt(e[index])}   actual {_fmt(a[index])}",
                f"  error {float(err[index]):.3g}  >  tolerance {float(tl[index]):.3g}"
                f"   ({int(bad.sum())} of {bad.size} elements off at this step)",
                f"  hyperparameters of group {k} at this step: {_hp(hp)}",
                *([f"  held at the rule's defaults (not accepted by the constructor): {_hp(held)}"] if held else []),
                f"  gradient of parameter {i} at this step: "
                f"{_lit(case.grads[t][i]) if case.grads[t][i] is not None else 'None (no gradient)'}",
                f"  rule: {case.rule.formula.splitlines()[0]}",
                *([f"  judged step by step: expected is the rule's step {t} taken from the implementation's own "
                   "parameters before it, with the reference's state"] if case.notes.get("judged") == "step by step"
                  else []),
                "Reproduce without the suite:",
                "-" * 72,
                script,
                "-" * 72,
            ]), details)



def assert_compensation_bounded(subject: Subject, case: Case, actual, compensations) -> None:
    """A compensated implementation's parameter is its parameter plus compensation rounded to the dtype (with master
    weights: the master rounded, c = master − θ): the compensation is at most θ's spacing (|c| ≤ 2u|θ| + η, η the
    smallest subnormal). A larger one means θ itself has left the rule, however closely θ + c follows it."""
    __tracebackhide__ = True
    info = torch.finfo(case.dtype)
    u, eta = info.eps / 2, info.smallest_normal * info.eps
    for t, (row, comps) in enumerate(zip(actual, compensations)):
        for i, (effective, c) in enumerate(zip(row, comps, strict=True)):
            theta = effective - c
            bad = ~(np.abs(c) <= 2 * u * np.abs(theta) + eta)
            if not bad.any():
                continue
            index = tuple(int(x) for x in np.unravel_index(int(np.argmax(bad)), np.shape(c))) if np.ndim(c) else ()
            what, of = (("compensation", f"parameter + state[{subject.compensation!r}], and has left the rule however "
                                          "closely their sum follows it") if subject.compensation is not None else
                        ("distance from the master", f"master state[{subject.master!r}], and has left the rule however "
                                                     "closely the master follows it"))
            raise NonConformance(
                f"{subject.id}: after step {t} the {what} of parameter {i} (element {index}, dtype "
                f"{str(case.dtype).replace('torch.', '')}) is {float(np.asarray(c)[index])!r}, more than the spacing of "
                f"the parameter {float(np.asarray(theta)[index])!r} (|c| ≤ 2u|θ| + η = "
                f"{float(2 * u * abs(np.asarray(theta)[index]) + eta):.3g}): the parameter is not the rounding of "
                f"{of} ({int(bad.sum())} of {bad.size} elements)",
                {"kind": "compensation", "step": t, "parameter": i, "element": list(index)})


def assert_state_conforms(subject: Subject, case: Case, held: list[list[dict]], steps: int) -> None:
    """An implementation's buffers after each of the first ``steps`` steps (``held``; a quantized one dequantized)
    within one step's bound of the rule's buffers from its state before (``error_bounds``' ``states``), plus, for a
    quantized-state layout, its quantization bound: |held − reference| ≤ bound + ``quantization_error`` + the
    computing dtype's smallest normal number. A buffer the implementation does not keep is a deviation too."""
    __tracebackhide__ = True
    from properties.quantization import quantization_error
    from properties.tolerances import computing_dtype
    layout, tiny = subject.quantization, torch.finfo(computing_dtype(case)).tiny
    for t, row in enumerate(case.notes["error bounds"]["states"][:steps]):
        for i, reference in enumerate(row):
            for name, (value, bound) in reference.items():
                actual = held[t][i].get(name)
                if actual is None:
                    raise NonConformance(f"{subject.id}: after step {t} parameter {i} has no state[{name!r}], a buffer "
                                         f"of rule {case.rule.name!r} its declared layout keeps",
                                         {"kind": "state", "step": t, "parameter": i, "buffer": name})
                quantized = np.zeros(np.shape(value)) if layout is None else quantization_error(value, bound, layout,
                                                                                                 name)
                tol = bound + quantized + tiny
                with np.errstate(invalid="ignore"):
                    err = np.abs(actual - value)
                bad = ~(err <= tol)
                if not bad.any():
                    continue
                flat = int(np.argmax(np.where(bad, np.nan_to_num(err / tol, nan=np.inf), -1)))
                index = tuple(int(x) for x in np.unravel_index(flat, np.shape(value))) if np.ndim(value) else ()
                block = flat // layout.block if layout is not None and np.any(quantized) else None
                raise NonConformance("\n".join([
                    f"{subject.id} does not conform to rule {case.rule.name!r} ({case.rule.source}): its state is not "
                    f"the rule's.",
                    f"  state[{name!r}] of parameter {i} (shape {tuple(np.shape(value))}) after step {t} of "
                    f"{case.steps} (0-based), element {index}"
                    + (f", block {block} ({layout.block} elements each)" if block is not None else ""),
                    f"  expected {float(np.asarray(value)[index])!r}   actual {float(np.asarray(actual)[index])!r}",
                    f"  error {float(err[index]):.3g}  >  tolerance {float(tol[index]):.3g} (the rule's bound "
                    f"{float(np.asarray(bound)[index]):.3g}"
                    + (f" + quantization {float(quantized[index]):.3g}" if layout is not None else "")
                    + f")   ({int(bad.sum())} of {bad.size} elements off)",
                    f"  {layout.describe() if layout is not None else 'state kept in ' + str(computing_dtype(case))}",
                    f"  expected is the rule's buffer after step {t}, from the implementation's parameters and "
                    f"{'(dequantized) ' if layout is not None else ''}state before it",
                ]), {"kind": "state", "step": t, "parameter": i, "buffer": name, "element": list(index),
                     "expected": float(np.asarray(value)[index]), "actual": float(np.asarray(actual)[index]),
                     "tolerance": float(tol[index])})
