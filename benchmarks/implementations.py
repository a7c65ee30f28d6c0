"""The implementations a benchmark times, each built on a parameter list as a zero-argument ``step()``.

For a rule with a torch.optim class: torch's for-loop (``foreach=False``), foreach (``foreach=True``) and fused
(``fused=True``, where torch has it) paths, and the class's default path under ``torch.compile`` (as torch's
"Compiling the optimizer" recipe does: the call to ``opt.step()`` compiled, inductor backend). The reference rule
(``reference/rules.py``, tensor by tensor, allocating) is timed for scale: it is written to be read, not to be fast.
Under ``--optimizer SPEC --rule RULE`` the implementation SPEC names is added, built as the conformance tests build it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from benchmarks import harness
from optimizers.adapters import Subject
from optimizers.builtins import code_paths
from reference.declarations import Rule

TORCH_PATHS = ("for-loop", "foreach", "fused")
MAX_COMPILED_COPIES = 4

#: (path, torch.optim class, dtype, device) whose step leaves most parameters unchanged in torch 2.13: strict expected
#: failures of the change check (the time is not a step's); strict, so the fix shows when torch is upgraded.
NO_OP_STEPS = {
    ("fused", "SGD", torch.bfloat16, "cpu"):
        "torch 2.13 fused SGD on CPU skips the full SIMD blocks of bfloat16/float16 parameters: only each tensor's "
        "scalar tail is updated (https://github.com/pytorch/pytorch/issues/191763, fixed by "
        "https://github.com/pytorch/pytorch/pull/192545)",
}


class Unavailable(Exception):
    """The implementation cannot run this case (no such path, a hyperparameter it does not take, a compiler
    missing); the message says why, and the benchmark is skipped with it."""


@dataclass(frozen=True)
class Implementation:
    """One implementation under benchmark: ``name`` as the report shows it, ``kind`` (for-loop, foreach, fused,
    compiled, reference, user)."""

    name: str
    kind: str
    subject: Subject | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Implementation({self.name})"

    def applies(self, rule: Rule) -> bool:
        if rule.sparse_gradients or rule.ndims is not None or rule.closure:
            return False   # the workloads are dense gradients of flat parameters: SparseAdam, Muon, LBFGS not timed
        if self.kind in TORCH_PATHS or self.kind == "compiled":
            if rule.torch_class is None:
                return False
            return self.kind == "compiled" or self.kind in code_paths(rule.torch_class)
        if self.kind == "user":
            return self.subject.rule.name == rule.name
        return True

    def known_no_op(self, rule: Rule, dtype: torch.dtype, device: str) -> str | None:
        return NO_OP_STEPS.get((self.kind, rule.torch_class, dtype, device))

    def max_copies(self) -> int:
        """A compiled step recompiles for every new optimizer, and past dynamo's recompile limit (8) it would run
        eagerly without a word: it rotates among at most 4 copies."""
        return MAX_COMPILED_COPIES if self.kind == "compiled" else harness.MAX_COPIES

    def build(self, rule: Rule, hp: dict, copies: list[list[torch.Tensor]]) -> list["Built"]:
        """One optimizer per copy of the parameters."""
        if self.kind == "compiled":
            # A fresh dynamo cache per case: every case compiles the same code objects anew.
            torch._dynamo.reset()
        return [self._build(rule, hp, params) for params in copies]

    def _build(self, rule: Rule, hp: dict, params: list[torch.Tensor]) -> "Built":
        if self.kind in TORCH_PATHS:
            cls = getattr(torch.optim, rule.torch_class)
            fixed = code_paths(rule.torch_class)[self.kind]
            try:
                opt = cls(params, **hp, **fixed)
            except (RuntimeError, ValueError) as e:   # e.g. a fused kernel torch lacks for this device or dtype
                raise Unavailable(f"torch.optim.{rule.torch_class}({_kw(fixed)}) refused this case: "
                                  f"{str(e).splitlines()[0]}") from None
            return Built(opt.step, f"torch.optim.{rule.torch_class}({_kw(fixed)})")
        if self.kind == "compiled":
            return _compiled(rule, hp, params)
        if self.kind == "reference":
            return Built(ReferenceOptimizer(rule, hp, params).step, f"reference.rules.{rule.update.__name__}")
        return _user(self.subject, hp, params)


@dataclass
class Built:
    step: Callable[[], object]
    description: str
    #: seconds the first step took, when it compiles (the first copy's; later copies hit inductor's cache)
    compile_s: float | None = None
    #: graphs torch.compile made, read again after timing to check nothing recompiled
    graphs: Callable[[], int] | None = None


def _kw(fixed: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in fixed.items())


class ReferenceOptimizer:
    """The reference rule stepped over a parameter list: each tensor's new value computed by ``rule.update`` (a
    pure function) and copied back."""

    def __init__(self, rule: Rule, hp: dict, params: list[torch.Tensor]):
        self.rule, self.hp, self.params = rule, hp, list(params)
        self.state: list[dict] = [{} for _ in self.params]

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            theta, self.state[i] = self.rule.update(p.detach(), p.grad, self.state[i], **self.hp)
            p.copy_(theta)


def _graphs() -> int:
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:   # a private counter: its absence only loses the recompilation check
        return -1


def _compiled(rule: Rule, hp: dict, params: list[torch.Tensor]) -> Built:
    opt = getattr(torch.optim, rule.torch_class)(params, **hp)

    @torch.compile(fullgraph=False)
    def step():
        opt.step()

    started = time.perf_counter()
    try:
        step()
    except Exception as e:   # no C++ compiler / Triton, or a graph inductor cannot lower
        raise Unavailable(f"torch.compile of torch.optim.{rule.torch_class}.step failed on "
                          f"{params[0].device.type}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}") from None
    compile_s = time.perf_counter() - started
    return Built(step, f"torch.compile(torch.optim.{rule.torch_class}.step)", compile_s=compile_s, graphs=_graphs)


def _user(subject: Subject, hp: dict, params: list[torch.Tensor]) -> Built:
    accepted = subject.caps.accepted
    refused = {k: v for k, v in hp.items() if k not in accepted and v != subject.rule.defaults()[k]}
    if refused:
        raise Unavailable(f"{subject.id} does not take {', '.join(f'{k}={v!r}' for k, v in refused.items())}")
    kwargs = {**{k: v for k, v in hp.items() if k in accepted}, **subject.fixed}
    opt = subject.factory(params, **kwargs)
    return Built(opt.step, f"{subject.spec}({_kw(kwargs)})")


def implementations(rule: Rule, user: Subject | None) -> list[Implementation]:
    """What is timed for ``rule``: torch's paths (where it has a class), the reference, and the user's."""
    candidates = [Implementation(kind, kind) for kind in (*TORCH_PATHS, "compiled")]
    candidates.append(Implementation("reference", "reference"))
    if user is not None:
        candidates.append(Implementation(user.id, "user", user))
    return [i for i in candidates if i.applies(rule)]
