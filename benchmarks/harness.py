"""How a step is timed: warm-up outside the timing, each round on data that is not in a cache, the device
synchronised around the timed call, and every timed step checked to have changed the parameters.

A case's data (parameters, gradients, optimizer state) exists in several copies, enough that rotating among them
pushes ~256 MiB (or 4x the last-level cache) through the caches between two uses of one copy; each round steps the
next copy (``rotation``). One round is ``setup()`` (untimed: on a GPU, flush L2 where copies would be too many;
wait for the device), ``target()`` (timed: one step, then wait for the device: the wall time of a synchronised
step, launch overheads included) and ``teardown()`` (untimed: check the step changed every parameter tensor and
most elements). pytest-benchmark's ``pedantic`` runs the rounds and times ``target`` with ``time.perf_counter``;
``measure`` runs the same rounds without it (for a roofline a selected test needs and no copy benchmark measured).
The copy that defines the roofline and the empty step that shows the harness's own overhead go through the same
rounds.
"""
from __future__ import annotations

import functools
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

#: used when the cache size cannot be read (a CPU's sysfs missing): larger than most last-level caches
DEFAULT_CACHE_BYTES = 64 * 2**20


@functools.cache
def cache_bytes(device: str) -> int:
    """The last-level cache: a GPU's L2, or the largest CPU cache sysfs lists."""
    if device == "cuda":
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size) or DEFAULT_CACHE_BYTES
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        m = re.fullmatch(r"(\d+)([KMG]?)", f.read_text().strip())
        if m:
            sizes.append(int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)])
    return max(sizes, default=DEFAULT_CACHE_BYTES)


#: how many bytes must pass between two uses of a case's data for it to have left the caches. A VM's sysfs may
#: report less cache than it gets: here (2 vCPUs, "32 MiB" L3) an in-place pass over 64 MB still ran at ~60 GB/s
#: against ~35 GB/s from DRAM, and re-touching a 64 MB buffer took 2 ms against 8 ms for 128 MB.
MIN_COLD_BYTES = 256 * 2**20
#: the most copies of a case's data to rotate among (a 1e3-element case would otherwise want thousands)
MAX_COPIES = 64


def cold_bytes(device: str) -> int:
    return max(4 * cache_bytes(device), MIN_COLD_BYTES)


def rotation(footprint: int, device: str, max_copies: int = MAX_COPIES) -> tuple[int, bool]:
    """How many copies of a case's data (each ``footprint`` bytes) to rotate among, so that each round works on data
    the rounds in between have pushed out of the caches; and whether to flush before each round as well.

    Where MAX_COPIES copies fall short (tiny cases), a GPU keeps one copy and flushes its L2 before each round:
    cheap, and the host is untouched. A CPU does not flush: that would also evict the interpreter's and torch's own
    state, a cold start no training loop sees (it tripled the time of a 1e3-element step here). It rotates while the
    copies still exceed twice the last-level cache; below that the data sits in cache whatever is done, and the
    step is per-tensor overhead (its memory time under 1%), so it keeps one copy."""
    cold = cold_bytes(device)
    k = max(1, min(max_copies, math.ceil(cold / max(footprint, 1))))
    if k * footprint >= cold:
        return k, False
    if device == "cuda":
        return 1, True
    return (k, False) if k * footprint >= 2 * cache_bytes(device) else (1, False)


def available_bytes(device: str) -> int:
    if device == "cuda":   # free, plus what torch's caching allocator holds unused
        return torch.cuda.mem_get_info()[0] + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


_SCRATCH: dict[str, torch.Tensor] = {}


def flush(device: str) -> None:
    """Evict the caches: read and write ``cold_bytes`` (a read-modify-write, so no streaming store bypasses the
    cache)."""
    if device not in _SCRATCH:
        _SCRATCH[device] = torch.zeros(cold_bytes(device) // 4, dtype=torch.float32, device=device)
    _SCRATCH[device].add_(1.0)


@dataclass(frozen=True)
class Budget:
    """How many timed rounds a case gets: enough for ``seconds`` of rounds (setup included), within
    [``min_rounds``, ``max_rounds``]."""

    seconds: float
    min_rounds: int
    max_rounds: int

    def rounds(self, round_s: float) -> int:
        return max(self.min_rounds, min(self.max_rounds, math.ceil(self.seconds / max(round_s, 1e-9))))


QUICK = Budget(seconds=0.04, min_rounds=3, max_rounds=10)
FULL = Budget(seconds=0.25, min_rounds=3, max_rounds=40)


class StepsNotUpdated(AssertionError):
    """Timed steps left parameters unchanged (``ChangeCheck``): the time measured is not that of a step."""


class ChangeCheck:
    """Each timed step must change every parameter tensor, and most of their elements: compared with a copy taken
    before the step. (Not every element: where |update| is below half an ulp of θ, bfloat16 rightly rounds it away;
    the workload keeps that rare. A step that skips whole tensors, or whole vector blocks of each, fails.)"""

    #: the least fraction of all elements each step must change
    MIN_CHANGED = 0.5

    def __init__(self, params: list[torch.Tensor]):
        self.params = [p.detach() for p in params]
        self.before = [p.clone() for p in self.params]
        self.total = sum(p.numel() for p in self.params)
        self.rounds = 0
        self.failed_rounds = 0
        self.least_changed = 1.0
        self.first_failure: str | None = None

    def after_step(self) -> None:
        self.rounds += 1
        changed = [int(torch.ne(p, b).sum()) for p, b in zip(self.params, self.before)]
        fraction = sum(changed) / self.total
        self.least_changed = min(self.least_changed, fraction)
        same = [i for i, c in enumerate(changed) if c == 0]
        if same or fraction < self.MIN_CHANGED:
            self.failed_rounds += 1
            if self.first_failure is None:
                self.first_failure = (f"timed step {self.rounds} changed {fraction:.1%} of the elements"
                                      + (f"; {len(same)} of {len(self.params)} tensors not at all, e.g. #{same[0]} "
                                         f"of shape {tuple(self.params[same[0]].shape)}" if same else ""))
        for p, b in zip(self.params, self.before):
            b.copy_(p)


@dataclass
class Rounds:
    """One case's rounds, rotating among copies of its data: round i steps copy i mod len(steps). ``target`` is what
    is timed; ``checks`` (one per copy) are run after each round."""

    steps: list[Callable[[], object]]
    device: str
    flush: bool = False
    checks: list[ChangeCheck] | None = None
    setup_s: float = field(default=0.0, init=False)
    _next: int = field(default=0, init=False)

    def setup(self) -> None:
        started = time.perf_counter()
        if self.flush:
            flush(self.device)
        synchronize(self.device)
        self.setup_s = time.perf_counter() - started

    def target(self) -> None:
        self.steps[self._next % len(self.steps)]()
        synchronize(self.device)

    def teardown(self) -> None:
        if self.checks is not None:
            self.checks[self._next % len(self.steps)].after_step()
        self._next += 1

    def warm_up(self) -> float:
        """Untimed: every copy's first step (lazy state, compilation, first-touch allocation), then one more round,
        whose time (setup included) sizes the rounds."""
        for _ in range(len(self.steps)):
            self.setup()
            self.target()
            self._next += 1
        self.setup()
        started = time.perf_counter()
        self.target()
        elapsed = time.perf_counter() - started + self.setup_s
        self._next += 1
        return elapsed

    @property
    def checked(self) -> int:
        return sum(c.rounds for c in self.checks or ())

    @property
    def failed(self) -> int:
        return sum(c.failed_rounds for c in self.checks or ())

    @property
    def least_changed(self) -> float:
        return min((c.least_changed for c in self.checks or ()), default=1.0)

    @property
    def first_failure(self) -> str | None:
        return next((f"copy {i}: {c.first_failure}" for i, c in enumerate(self.checks or ()) if c.first_failure), None)


@dataclass(frozen=True)
class Timing:
    median_s: float
    best_s: float     # the fastest round: interference from other work only ever slows a round down


def run(benchmark, rounds: Rounds, n: int) -> Timing | None:
    """Time ``n`` rounds through pytest-benchmark (None when benchmarking is disabled and the target ran once,
    untimed)."""
    benchmark.pedantic(rounds.target, setup=rounds.setup, teardown=rounds.teardown, rounds=n, iterations=1)
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else Timing(stats.stats.median, stats.stats.min)


def measure(rounds: Rounds, n: int) -> Timing:
    """The same rounds as ``run``, timed here."""
    times = []
    for _ in range(n):
        rounds.setup()
        started = time.perf_counter()
        rounds.target()
        times.append(time.perf_counter() - started)
        rounds.teardown()
    return Timing(statistics.median(times), min(times))


# ---- the two reference points: copy bandwidth (the practical roofline) and the empty step -------------------------
def copy_rounds(nbytes: int, dtype: torch.dtype, device: str) -> tuple[Rounds, int]:
    """A contiguous copy that reads nbytes/2 and writes nbytes/2 (rotating among copies as a step does): its fastest
    round is the bandwidth a simple kernel moving that many bytes of that dtype gets here. Returns its rounds and
    the exact bytes one copy moves."""
    n = max(1, math.ceil(nbytes / (2 * dtype.itemsize)))
    moved = 2 * n * dtype.itemsize
    k, flush_first = rotation(moved, device)
    pairs = [(torch.randn(n, device=device).to(dtype), torch.empty(n, dtype=dtype, device=device)) for _ in range(k)]
    steps = [lambda src=src, dst=dst: dst.copy_(src) for src, dst in pairs]
    return Rounds(steps, device, flush=flush_first), moved


def empty_rounds(device: str) -> Rounds:
    """A step that does nothing, through the same rounds: the harness's floor (a Python call; on a GPU, a
    synchronisation)."""
    return Rounds([lambda: None], device)
