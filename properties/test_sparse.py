"""Rules with sparse gradients (SparseAdam): what the layout itself promises, beside the trajectory check.

* A dense gradient is rejected: step() raises RuntimeError, as torch.optim.SparseAdam does ("SparseAdam does not
  support dense gradients, please consider Adam instead"), rather than updating every element.
* Where a step's gradient holds no entry, that step changes nothing: θ and every state tensor of θ's shape keep
  their values bit for bit (the trajectory check sees θ; this sees the moments too, which a lazy update must not
  decay).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optimizers.adapters import construct, make_params, set_grads, set_lrs, step
from properties.assertions import NonConformance
from properties.strategies import cases
from reference.sparse import as_sparse

DTYPE = torch.float64


def _require_sparse(subject):
    if not subject.rule.sparse_gradients:
        pytest.skip(f"rule {subject.rule.name!r} takes dense gradients")


def test_dense_gradients_are_rejected(subject):
    """step() with a dense .grad raises RuntimeError (torch.optim.SparseAdam's error)."""
    _require_sparse(subject)
    p = torch.nn.Parameter(torch.ones(3, dtype=DTYPE, device=subject.device))
    opt = subject.factory([p], **subject.fixed)
    p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError):
        opt.step()
        raise NonConformance(f"{subject.id}: step() accepted a dense gradient and returned; a rule with sparse "
                             f"gradients should raise RuntimeError, as torch.optim.SparseAdam does (θ now {p.tolist()})")


def _state_tensors(opt, p) -> dict:
    return {k: v.detach().to("cpu", torch.float64).numpy().copy() for k, v in opt.state.get(p, {}).items()
            if isinstance(v, torch.Tensor) and v.shape == p.shape}


@given(data=st.data())
def test_absent_indices_leave_parameter_and_state_untouched(subject, data):
    """Where a step's sparse gradient holds no entry, θ and its state tensors keep their values exactly."""
    _require_sparse(subject)
    case = data.draw(cases(subject, DTYPE), label="case")
    params = make_params(case, subject.device)
    opt = construct(subject, case, params)
    for t in range(case.steps):
        set_lrs(subject, case, opt, t)
        set_grads(case, params, t)
        before = [(p.detach().to("cpu", torch.float64).numpy().copy(), _state_tensors(opt, p)) for p in params]
        step(subject, opt, t)
        for i, (p, (θ, state)) in enumerate(zip(params, before, strict=True)):
            g = case.grads[t][i]
            absent = np.ones(np.shape(θ), dtype=bool) if g is None else ~as_sparse(g).present()
            now = {"θ": p.detach().to("cpu", torch.float64).numpy(), **_state_tensors(opt, p)}
            for name, was in {"θ": θ, **state}.items():
                if not np.array_equal(now[name][absent], was[absent], equal_nan=True):
                    where = tuple(int(x) for x in np.argwhere(absent & ~((now[name] == was) | np.isnan(was)))[0])
                    raise NonConformance(
                        f"{subject.id}: step {t} changed {name if name == 'θ' else f'state {name!r}'} of parameter "
                        f"{i} at element {where} ({was[where]!r} → {now[name][where]!r}), where the step's "
                        f"sparse gradient holds no entry: a lazy update leaves those elements as they were "
                        f"({case!r})")
