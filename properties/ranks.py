"""Running an implementation across N processes (ranks) with torch.distributed, for sharded optimizers
(ZeroRedundancyOptimizer, FSDP-style sharded state, a user's own ZeRO): the suite's trajectory cases, driven the way
data-parallel training drives them, with every rank's replica of the parameters sent back after every step.

A pool of N worker processes per N lives for the pytest session, started on first use: the ranks are forked from a
fork server that imported torch once (the first pool of a session takes a few seconds, later ones a fraction of a
second). Worker r joins a gloo process group as rank r of N once, then for each example builds the case's
parameters, constructs the implementation with the suite's ``adapters.construct`` (the factory ``(params, **hp)``
is called inside every rank, after ``init_process_group``), and at every step sets the case's learning rates and
gradients — every rank gets the gradients the reference sees, as data-parallel ranks hold the same gradients after
their all-reduce — steps, and sends its replica of all the parameters back. The parent judges each rank's replica
against the reference with the suite's tolerance model (``properties/test_distributed.py``): a replica that was not
brought up to date is a deviation on that rank. Every rank is assumed to hold all the parameters after ``step()``,
as data-parallel training needs (ZeroRedundancyOptimizer broadcasts them).

Nothing listens beyond 127.0.0.1: the ranks meet through a FileStore in a private temporary directory (torch's
TCPStore listens on every interface, whatever host it is given) and gloo's sockets are bound to the loopback
interface (GLOO_SOCKET_IFNAME).

Processes are always cleaned up. Every wait for a rank has a deadline: ``adapters.STEP_TIMEOUT`` (the
``--step-timeout`` option) per step, ``START_TIMEOUT`` for a pool to start. A rank that raises, hangs or dies fails
the example naming the rank and the step, and the whole pool is ended (its process group may be stuck in a
collective) and started afresh for the next example. The ranks die with the test process: the fork server ends
when the test process does, and each rank is killed when the fork server ends (PR_SET_PDEATHSIG on Linux); an idle
rank also ends when its pipe to the test process closes or its parent changes. ``shutdown()`` ends every pool and
the standard library's helper processes the pools started; the plugin calls it at the end of the session, and
``atexit`` does too.
"""
from __future__ import annotations

import atexit
import copy
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import connection

import numpy as np
import torch
import torch.multiprocessing as mp

from optimizers import adapters
from optimizers.adapters import ImplementationError, NotAnOptimizer, Subject
from reference.trajectory import Case

#: the interface whose address is 127.0.0.1, for gloo's sockets
LOOPBACK = "lo" if sys.platform.startswith("linux") else "lo0"
#: seconds for a pool to start: the session's first pool waits for the fork server to import torch (3-7 s measured
#: on two shared cores); a heavily loaded machine, or the spawn fallback (N torch imports), takes longer
START_TIMEOUT = 180.0
# A slow step is best reported from inside its rank (adapters.call's own deadline names the call); the parent waits
# this much longer before it declares the rank hung — a rank blocked in a collective cannot report anything.
_MARGIN = 5.0


def available() -> str | None:
    """Why the distributed mode cannot run here, or None."""
    import torch.distributed as dist
    if not dist.is_available():
        return "torch.distributed is not available in this build of torch"
    if not dist.is_gloo_available():
        return "torch.distributed has no gloo backend in this build of torch"
    return None


class RankFailure(RuntimeError):
    """The suite's distributed runner failed in a rank for a reason that is not the implementation's (a bug of the
    suite, or a process group that could not be formed); the message names the rank and carries its traceback."""


@dataclass
class ShardedRun:
    """What the ranks sent back for one case."""

    replicas: list[list[list[np.ndarray]]]      # [rank][step][parameter]: each rank's copy after every step
    partition: list[list[int]] | None           # [rank]: the parameters it owns, where the implementation says


# ---- inside a worker -------------------------------------------------------------------------------------------------
def _die_with_parent() -> int:
    """Have the kernel kill this process when its parent dies, so that no rank outlives a killed test run (the
    parent is the fork server, which ends when the test process does). Returns the parent's pid."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    return parent


def _subject(fields: dict, cache: dict) -> Subject:
    import inspect
    from optimizers.loading import resolve
    from reference.registry import RULES
    key = (fields["spec"], fields["rule"], repr(fields["fixed"]), fields["id"])
    if key not in cache:
        rule = RULES[fields["rule"]]
        # resolved here as the plugin resolves it (given the rule, where resolve() adapts to it)
        factory = resolve(fields["spec"], rule) if "rule" in inspect.signature(resolve).parameters \
            else resolve(fields["spec"])
        cache[key] = Subject(fields["id"], factory, rule, fields["spec"], fields["fixed"], "cpu")
    subject = cache[key]
    if fields.get("caps") is not None:
        subject.__dict__["caps"] = fields["caps"]   # the parent's probe: every rank drives the same API
    return subject


def _case(fields: dict) -> Case:
    from reference.registry import RULES
    return Case(RULES[fields["rule"]], fields["groups"], fields["params"], fields["grads"], fields["lrs"],
                fields["dtype"])


def _partition(opt, params) -> list[list[int]] | None:
    """The parameters each rank owns, read from ZeroRedundancyOptimizer's partition (a private API; None for an
    implementation without it)."""
    partition = getattr(opt, "_partition_parameters", None)
    if not callable(partition):
        return None
    try:
        index = {id(p): i for i, p in enumerate(params)}
        return [sorted(index[id(p)] for g in groups for p in g["params"]) for groups in partition()]
    except Exception:
        return None


def _restored(subject: Subject, case: Case, opt, params, rank: int, t: int):
    """The checkpoint round trip before step ``t``: the implementation consolidates its sharded state on rank 0
    (``consolidate_state_dict(to=0)`` on every rank, where it has one), rank 0 takes ``state_dict()``, every rank
    receives that state dict as if loading the checkpoint file, builds a fresh optimizer on fresh copies of the
    parameters and ``load_state_dict``s it. Returns (the fresh optimizer, its parameters)."""
    import torch.distributed as dist
    if callable(getattr(opt, "consolidate_state_dict", None)):
        adapters.call(subject, f"consolidate_state_dict(to=0) before step {t}", opt.consolidate_state_dict, 0)
    state = [adapters.call(subject, f"state_dict() on rank 0 before step {t}", opt.state_dict) if rank == 0 else None]
    dist.broadcast_object_list(state, src=0)   # the suite's own message, standing in for reading the checkpoint
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fresh = adapters.construct(subject, case, twins)
    adapters.call(subject, f"load_state_dict(consolidated state dict) before step {t}", fresh.load_state_dict,
                  copy.deepcopy(state[0]))
    return fresh, twins


def _trajectory(conn, rank: int, job: dict, cache: dict) -> None:
    subject, case = _subject(job["subject"], cache), _case(job["case"])
    adapters.STEP_TIMEOUT = job["step_timeout"]
    torch.set_default_dtype(job["default_dtype"])   # the parent's, as a known deviation's workaround set it
    params = adapters.make_params(case, "cpu")
    opt = adapters.construct(subject, case, params)
    conn.send(("built", _partition(opt, params)))
    for t in range(case.steps):
        if t == job["restore_at"]:
            opt, params = _restored(subject, case, opt, params, rank, t)
        adapters.set_lrs(subject, case, opt, t)
        adapters.set_grads(case, params, t)
        adapters.step(subject, opt, t)
        conn.send(("step", t, adapters.snapshot(params)))


def _probe(conn, rank: int, job: dict, cache: dict) -> None:
    subject = _subject(job["subject"], cache)
    conn.send(("probed", adapters.probe(subject)))


def _worker(rank: int, world: int, store: str, conn, step_timeout: float) -> None:
    """Rank ``rank`` of ``world``: join the process group, then run jobs from ``conn`` until told to stop (None),
    the parent closes the pipe, or the parent is gone."""
    parent = _die_with_parent()
    os.environ["GLOO_SOCKET_IFNAME"] = LOOPBACK
    torch.set_num_threads(1)      # N ranks share the machine's cores; more threads per rank only contend
    adapters.STEP_TIMEOUT = step_timeout
    import torch.distributed as dist
    from properties.isolation import isolated
    try:
        # gloo's own timeout backs the parent's deadline up: a collective never joined ends the rank eventually
        dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world,
                                timeout=timedelta(seconds=2 * step_timeout + 60 if step_timeout else 1800))
    except Exception as e:
        conn.send(("fault", "joining the process group", "".join(traceback.format_exception(e))))
        return
    conn.send(("ready",))
    cache: dict = {}
    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != parent:
                    break
                continue
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        try:
            with isolated():    # whatever the implementation changes in torch's global state stays in its job
                {"trajectory": _trajectory, "probe": _probe}[job["kind"]](conn, rank, job, cache)
            conn.send(("done",))
        except ImplementationError as e:
            conn.send(("error", str(e), "".join(traceback.format_exception(e))))
        except NotAnOptimizer as e:
            conn.send(("error", str(e), ""))
        except Exception as e:
            conn.send(("fault", job["kind"], "".join(traceback.format_exception(e))))
    dist.destroy_process_group()


# ---- in the parent ---------------------------------------------------------------------------------------------------
class _Pool:
    """N ranks in a process group of their own, waiting for jobs."""

    def __init__(self, n: int):
        self.n = n
        self.dir = tempfile.mkdtemp(prefix="conformance-ranks-")   # mode 0700: the store is ours alone
        ctx = _context()
        self.conns, self.procs = [], []
        try:
            for r in range(n):
                ours, theirs = ctx.Pipe()
                p = ctx.Process(target=_worker, name=f"conformance-rank-{r}-of-{n}", daemon=True,
                                args=(r, n, os.path.join(self.dir, "store"), theirs, adapters.STEP_TIMEOUT))
                p.start()
                theirs.close()
                self.conns.append(ours)
                self.procs.append(p)
            self._gather(lambda r, msgs: "joining the process group", "ready", START_TIMEOUT, "the pool's start")
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def run(self, job: dict, subject_id: str, doing, expect: str) -> list[list[tuple]]:
        """Send ``job`` to every rank and collect each rank's messages up to its ``expect`` message. ``doing(r,
        msgs)`` says what rank r is at, given its messages so far, for the message when it fails. On any failure the
        pool is closed and the error raised: ImplementationError (the implementation raised, hung or died in a
        rank), RankFailure (the suite's runner failed)."""
        try:
            for c in self.conns:
                c.send(job)
            limit = adapters.STEP_TIMEOUT + _MARGIN if adapters.STEP_TIMEOUT else None
            return self._gather(doing, expect, limit, subject_id)
        except BaseException:
            self.close()
            raise

    def _gather(self, doing, expect: str, limit: float | None, who: str) -> list[list[tuple]]:
        n = self.n
        got: list[list[tuple]] = [[] for _ in range(n)]
        waiting = set(range(n))
        last = [time.monotonic()] * n
        while waiting:
            timeout = None if limit is None else max(0.0, min(last[r] + limit for r in waiting) - time.monotonic())
            ready = connection.wait([self.conns[r] for r in waiting] + [self.procs[r].sentinel for r in waiting],
                                    timeout)
            now = time.monotonic()
            if not ready:
                late = sorted(r for r in waiting if now - last[r] >= limit)
                if not late:   # woken a hair early
                    continue
                finished = sorted(set(range(n)) - waiting)
                raise ImplementationError(
                    f"{who}: rank {late[0]} of {n} did not finish {doing(late[0], got[late[0]])} within {limit:g} s "
                    f"(--step-timeout {adapters.STEP_TIMEOUT:g} s + {_MARGIN:g} s)"
                    + (f"; ranks {', '.join(map(str, late))} were all stuck" if len(late) > 1 else "")
                    + (f"; rank(s) {', '.join(map(str, finished))} had finished" if finished else "")
                    + " — a collective one rank never joined, or a deadlock in the implementation")
            for r in sorted(waiting):
                if self.conns[r] in ready or self.conns[r].poll():
                    try:
                        msg = self.conns[r].recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        last[r] = now
                        if msg[0] == "error":
                            raise ImplementationError(f"rank {r} of {n}: {msg[1]}"
                                                      + (f"\n--- in rank {r} ---\n{msg[2]}" if msg[2] else ""))
                        if msg[0] == "fault":
                            raise RankFailure(f"{who}: rank {r} of {n} failed in the suite's runner while "
                                              f"{msg[1]}:\n{msg[2]}")
                        got[r].append(msg)
                        if msg[0] == expect:
                            waiting.discard(r)
                        continue
                if self.procs[r].sentinel in ready or not self.procs[r].is_alive():
                    self.procs[r].join(1.0)
                    code = self.procs[r].exitcode
                    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    raise ImplementationError(f"{who}: rank {r} of {n} ended ({how}) during {doing(r, got[r])}")
        return got

    def close(self) -> None:
        """End every rank: ask, then terminate, then kill; remove the store's directory."""
        for c in self.conns:
            try:
                c.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5.0
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
        for c in self.conns:
            c.close()
        for p in self.procs:
            if p.exitcode is not None:
                p.close()
        self.conns, self.procs = [], []
        shutil.rmtree(self.dir, ignore_errors=True)
        if _POOLS.get(self.n) is self:
            del _POOLS[self.n]


_POOLS: dict[int, _Pool] = {}
_STARTED: list = []      # the standard library's helper processes the pools started, to stop with them


def _context():
    """How the ranks are started: from a fork server that imported torch and this module once (each rank is then a
    fork of a single-threaded process that has run no torch op: seconds saved per rank), or, where there is no
    fork server, spawned (each rank imports torch itself). Never forked from this process, whose threads' locks a
    fork would copy."""
    from multiprocessing import forkserver, resource_tracker
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if getattr(resource_tracker._resource_tracker, "_fd", 0) is None:
        _STARTED.append(resource_tracker._resource_tracker)
    if method == "forkserver":
        if getattr(forkserver._forkserver, "_forkserver_pid", 0) is None:
            _STARTED.append(forkserver._forkserver)
        # torch.optim's Optimizer imports torch._dynamo on first construction (~2 s): once here, not in every rank
        ctx.set_forkserver_preload([__name__, "torch._dynamo", "torch.distributed.optim"])
    return ctx


def pool(n: int) -> _Pool:
    """The session's pool of ``n`` ranks, started on first use (and again after a failure ended it)."""
    if n < 2:
        raise ValueError(f"a pool needs 2 ranks or more, not {n}")
    if n not in _POOLS:
        _POOLS[n] = _Pool(n)
    return _POOLS[n]


def shutdown() -> None:
    """End every pool of this process, and the standard library's resource tracker if a pool started it (a spawned
    process needs one; it would otherwise live, idle, as long as this process)."""
    for p in list(_POOLS.values()):
        p.close()
    while _STARTED:   # the fork server first: it holds the resource tracker too
        stop = getattr(_STARTED.pop(), "_stop", None)
        if stop is not None:
            stop()


atexit.register(shutdown)


def helper_pids() -> list[int]:
    """The processes of the standard library's helpers (fork server, resource tracker) the pools started."""
    return [pid for h in _STARTED if (pid := getattr(h, "_forkserver_pid", None) or getattr(h, "_pid", None))]


def _subject_fields(subject: Subject, with_caps: bool = True) -> dict:
    return {"id": subject.id, "spec": subject.spec, "rule": subject.rule.name, "fixed": dict(subject.fixed),
            "caps": subject.caps if with_caps else None}


def probe_across(subject: Subject, n: int) -> Subject:
    """Probe ``subject``'s API (``adapters.probe``) in every one of ``n`` ranks at once — a sharded constructor may
    need its process group, or run collectives — and keep rank 0's answer as ``subject.caps``. Raises
    NotAnOptimizer (one line) when it cannot be built, or when the ranks disagree about its API."""
    if subject.device != "cpu":
        raise NotAnOptimizer(f"{subject.id}: the distributed mode runs on CPU (gloo); not on {subject.device}")
    job = {"kind": "probe", "subject": _subject_fields(subject, with_caps=False)}
    try:
        got = pool(n).run(job, subject.id, lambda r, msgs: "the constructor probe", "done")
    except ImplementationError as e:
        raise NotAnOptimizer(str(e).splitlines()[0]) from None
    caps = [next(m[1] for m in msgs if m[0] == "probed") for msgs in got]
    for r, c in enumerate(caps):
        if c != caps[0]:
            raise NotAnOptimizer(f"{subject.id}: ranks 0 and {r} of {n} disagree about its API ({caps[0]} and {c})")
    subject.__dict__["caps"] = caps[0]   # Subject.caps is a cached property: what probe() would have cached
    return subject


def sharded_trajectory(subject: Subject, case: Case, n: int, restore_at: int | None = None) -> ShardedRun:
    """Run ``case`` through ``subject`` across ``n`` ranks; every rank's parameters after every step. With
    ``restore_at`` = k, the ranks checkpoint and restore the optimizer before step k (``_restored``)."""
    job = {"kind": "trajectory", "subject": _subject_fields(subject), "default_dtype": torch.get_default_dtype(),
           "restore_at": restore_at, "step_timeout": adapters.STEP_TIMEOUT,
           "case": {"rule": case.rule.name, "groups": case.groups, "params": case.params, "grads": case.grads,
                    "lrs": case.lrs, "dtype": case.dtype}}

    def doing(r: int, msgs: list[tuple]) -> str:
        if not any(m[0] == "built" for m in msgs):
            return "the constructor"
        t = sum(m[0] == "step" for m in msgs)
        return (f"the checkpoint round trip before step {t}, or " if t == restore_at else "") + \
            f"step {t} of {case.steps} (0-based)"

    got = pool(n).run(job, subject.id, doing, "done")
    partition = next((m[1] for m in got[0] if m[0] == "built"), None)
    replicas = [[m[2] for m in msgs if m[0] == "step"] for msgs in got]
    return ShardedRun(replicas, partition)


def distributed_reproducer(script: str, n: int, restore_at: int | None = None) -> str:
    """``script`` (the suite's one-process reproducer, ``properties/assertions.py``) run as the body of every one of
    ``n`` ranks, spawned on this machine with gloo on 127.0.0.1 as the suite runs them: a standalone script that
    shows the failure. With ``restore_at`` = k, the body checkpoints and restores the optimizer before step k as
    the suite did (consolidate_state_dict, rank 0's state_dict sent to every rank, a fresh optimizer loading it)."""
    lines = script.split("\n")
    loop = "for lrs, grads in steps:"
    build = next((line for line in lines if line.startswith("opt = Impl(")), None)
    if restore_at is not None and loop in lines and build is not None:
        k = lines.index(loop)
        lines[k:k + 1] = [
            "for t, (lrs, grads) in enumerate(steps):",
            f"    if t == {restore_at}:  # the checkpoint round trip",
            "        if hasattr(opt, 'consolidate_state_dict'):",
            "            opt.consolidate_state_dict(to=0)",
            "        checkpoint = [opt.state_dict() if rank == 0 else None]",
            "        dist.broadcast_object_list(checkpoint, src=0)",
            f"        {build}",
            "        opt.load_state_dict(checkpoint[0])",
        ]
    elif restore_at is not None:
        lines.insert(0, f"# NOTE: the suite checkpointed and restored the optimizer before step {restore_at}; "
                        "this script does not")
    return "\n".join([
        "import os, tempfile",
        "import torch.distributed as dist",
        "import torch.multiprocessing as mp",
        "",
        "",
        "def body(rank):",
        textwrap.indent("\n".join(lines), "    "),
        "",
        "",
        "def rank_main(rank, world_size, store):",
        f"    os.environ['GLOO_SOCKET_IFNAME'] = {LOOPBACK!r}",
        "    dist.init_process_group('gloo', store=dist.FileStore(store, world_size), rank=rank, "
        "world_size=world_size)",
        "    try:",
        "        body(rank)",
        "    finally:",
        "        dist.destroy_process_group()",
        "",
        "",
        "if __name__ == '__main__':",
        "    with tempfile.TemporaryDirectory() as d:",
        f"        mp.spawn(rank_main, args=({n}, os.path.join(d, 'store')), nprocs={n})",
    ])
