"""Benchmark options and cases: ``pytest benchmarks [--bench-quick] [--bench-compile none|sample|all]``.

Cases are generated here from the declarations: every rule with a torch.optim class (or, under ``--optimizer SPEC
--rule RULE``, that rule), each of its configurations (``configurations.py``), each size, dtype and device, each
implementation that applies (``implementations.py``). The copy benchmarks that define the roofline are generated
for exactly the (device, size, dtype, bytes) the selected step cases need and run just before them; the empty
step runs first.

Benchmark tests take the fixture ``implementation`` on purpose: under ``--optimizer`` the root conftest keeps only
tests that drive an implementation, and these do.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from benchmarks import harness, traffic, workload
from benchmarks.configurations import configurations
from benchmarks.implementations import implementations
from reference.declarations import Rule
from reference.rules import TORCH_RULES

DTYPES = (torch.float32, torch.bfloat16)
DEVICES = ("cpu", "cuda")
SIZES = {
    ("cpu", False): (10**3, 10**4, 10**5, 10**6, 10**7),
    ("cpu", True): (10**3, 10**5, 10**6),
    ("cuda", False): (10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9),   # 1e9 is skipped where memory is short
    ("cuda", True): (10**4, 10**6, 10**8),
}
COMPILE_POLICIES = ("none", "sample", "all")
#: --bench-compile sample compiles at the largest size up to this (1e9 on a GPU may not fit twice over)
COMPILE_SAMPLE_MAX = 10**8
NO_CUDA = "no CUDA device here (torch.cuda.is_available() is False)"


def pytest_addoption(parser):
    group = parser.getgroup("optimizer benchmarks")
    group.addoption("--bench-quick", action="store_true", default=False,
                    help="a few sizes, each rule's first configuration, few rounds, no torch.compile (< 1 min on 2 "
                         "cores)")
    group.addoption("--bench-compile", choices=COMPILE_POLICIES, default=None,
                    help="which cases time the torch.compile'd step: none (the default with --bench-quick); "
                         "sample (each rule's first configuration, float32, at the largest size up to 1e8; the "
                         "default otherwise); all")
    group.addoption("--bench-threads", metavar="N", type=int, default=1,
                    help="torch intra-op threads for the benchmarks (default 1: steady on a machine shared with "
                         "other work; 0: torch's default, one per core)")
    group.addoption("--bench-sizes", metavar="N,N,...", default=None,
                    help="total parameter elements per case, e.g. 1e3,1e5 (default: 1e3..1e7 on cpu, 1e3..1e9 "
                         "on cuda; with --bench-quick 1e3,1e5,1e6 and 1e4,1e6,1e8)")


@dataclass(frozen=True)
class StepCase:
    """What one step benchmark runs: a rule in one configuration on a parameter list of one size, dtype, device."""

    rule: Rule
    configuration: str
    hp: dict
    size: int
    dtype: torch.dtype
    device: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def id(self) -> str:
        return f"{self.device}-{workload.label(self.size)}-{self.dtype_name}-{self.rule.name}-{self.configuration}"

    @property
    def elements(self) -> int:
        return workload.elements(self.size)

    @property
    def bytes_per_step(self) -> int:
        return traffic.bytes_per_step(self.rule, self.hp, self.dtype, self.elements)

    @property
    def footprint(self) -> int:
        return traffic.footprint(self.rule, self.hp, self.dtype, self.elements)


@dataclass(frozen=True)
class CopyCase:
    """The roofline for step cases moving ``nbytes`` of ``dtype`` on ``device`` (at nominal ``size``)."""

    size: int
    dtype: torch.dtype
    device: str
    nbytes: int

    @property
    def id(self) -> str:
        streams = self.nbytes // (self.dtype.itemsize * workload.elements(self.size))
        return f"{self.device}-{workload.label(self.size)}-{str(self.dtype).removeprefix('torch.')}-{streams}streams"


class Settings:
    def __init__(self, config):
        self.quick = config.getoption("bench_quick")
        self.compile = config.getoption("bench_compile") or ("none" if self.quick else "sample")
        self.budget = harness.QUICK if self.quick else harness.FULL
        self.threads = config.getoption("bench_threads") or torch.get_num_threads()
        if self.threads < 0:
            raise pytest.UsageError(f"--bench-threads {self.threads}: give a number of threads >= 1, or 0 for "
                                    "torch's default")
        self.user = config.subjects[0] if config.getoption("optimizer") else None
        self.rules: tuple[Rule, ...] = (self.user.rule,) if self.user else TORCH_RULES
        raw = config.getoption("bench_sizes")
        try:
            self.sizes_override = tuple(int(float(s)) for s in raw.split(",")) if raw else None
        except ValueError:
            raise pytest.UsageError(f"--bench-sizes {raw!r}: give element counts separated by commas, e.g. 1e3,1e5")
        if self.sizes_override is not None and any(s < 100 for s in self.sizes_override):
            raise pytest.UsageError(f"--bench-sizes {raw!r}: each size must be at least 100 elements")

    def sizes(self, device: str) -> tuple[int, ...]:
        return self.sizes_override or SIZES[(device, self.quick)]

    def compiles(self, case: StepCase) -> str | None:
        """Why the compiled step is not timed for ``case``, or None when it is."""
        if self.compile == "all":
            return None
        if self.compile == "none":
            return ("torch.compile is not timed under --bench-quick (compiling takes 3-25 s per case on 2 CPU "
                    "cores); run without it, or pass --bench-compile sample|all" if self.quick else
                    "torch.compile is not timed under --bench-compile none")
        first = configurations(case.rule)[0][0]
        if case.configuration == first and case.dtype == DTYPES[0] and case.size == self.compile_size(case.device):
            return None
        return ("--bench-compile sample times torch.compile only for each rule's first configuration in float32 at "
                "the largest size up to 1e8 (compiling takes 3-25 s per case on 2 CPU cores); --bench-compile all "
                "for every case")

    def compile_size(self, device: str) -> int:
        sizes = self.sizes(device)
        return max([s for s in sizes if s <= COMPILE_SAMPLE_MAX] or sizes)

    def step_cases(self, device: str) -> list[StepCase]:
        return [StepCase(rule, name, hp, size, dtype, device)
                for size in self.sizes(device) for dtype in DTYPES for rule in self.rules
                for name, hp in configurations(rule, quick=self.quick)]


def pytest_ignore_collect(collection_path, config):
    """Benchmarks are opt-in: collected only when the command line names benchmarks/ or a file in it (``pytest``
    alone collects testpaths, ``properties``; ``pytest .`` skips them too)."""
    here = Path(__file__).parent.resolve()
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    if not any(n == here or here in n.parents for n in named):
        return True
    return None


@pytest.hookimpl(trylast=True)   # after the root conftest's, which resolves --optimizer into config.subjects
def pytest_configure(config):
    config.bench = Settings(config)
    # raised inside torch.compile's own machinery, not by anything here
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def pytest_report_header(config):
    s: Settings = config.bench
    devices = ", ".join(f"{d} ({device_name(d)})" if d == "cpu" or torch.cuda.is_available() else f"{d} (absent)"
                        for d in DEVICES)
    return [
        f"optimizer benchmarks: {'quick' if s.quick else 'full'}; rules: {', '.join(r.name for r in s.rules)}"
        + (f"; and {s.user.id}" if s.user else ""),
        f"  devices: {devices}; torch threads: {s.threads}",
        f"  sizes: cpu {', '.join(map(workload.label, s.sizes('cpu')))}; cuda "
        f"{', '.join(map(workload.label, s.sizes('cuda')))} (elements over {len(workload.shapes(1000))} tensors); "
        f"dtypes: {', '.join(str(d).removeprefix('torch.') for d in DTYPES)}; torch.compile: {s.compile}",
        f"  rounds: {s.budget.min_rounds}..{s.budget.max_rounds} per case (~{s.budget.seconds:g} s), rotating among up "
        f"to {harness.MAX_COPIES} copies of a case's data so that {harness.cold_bytes('cpu') / 2**20:g} MiB pass "
        f"between two uses of one (cpu last-level cache: {harness.cache_bytes('cpu') / 2**20:g} MiB)",
    ]


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_generate_tests(metafunc):
    s: Settings = metafunc.config.bench
    names = set(metafunc.fixturenames)
    if "step_case" in names:
        params = []
        for device in DEVICES:
            if device == "cuda" and not torch.cuda.is_available():
                params.append(pytest.param(None, None, marks=pytest.mark.skip(reason=NO_CUDA), id="cuda"))
                continue
            for case in s.step_cases(device):
                for impl in implementations(case.rule, s.user):
                    marks = []
                    if impl.kind == "compiled" and (why := s.compiles(case)):
                        marks.append(pytest.mark.skip(reason=why))
                    if why := impl.known_no_op(case.rule, case.dtype, device):
                        marks.append(pytest.mark.xfail(reason=why, strict=True, raises=harness.StepsNotUpdated))
                    params.append(pytest.param(case, impl, marks=marks, id=f"{case.id}-{impl.name}"))
        metafunc.parametrize(["step_case", "implementation"], params)
    elif "copy_case" in names:
        params = []
        for device in DEVICES:
            if device == "cuda" and not torch.cuda.is_available():
                params.append(pytest.param(None, None, marks=pytest.mark.skip(reason=NO_CUDA), id="cuda"))
                continue
            seen = {}
            for case in s.step_cases(device):
                c = CopyCase(case.size, case.dtype, device, case.bytes_per_step)
                seen.setdefault(c, None)
            params += [pytest.param(c, "copy", id=c.id) for c in seen]
        metafunc.parametrize(["copy_case", "implementation"], params)
    elif "empty_device" in names:
        params = [pytest.param(d, "empty step", id=d) if d == "cpu" or torch.cuda.is_available()
                  else pytest.param(None, None, marks=pytest.mark.skip(reason=NO_CUDA), id=d) for d in DEVICES]
        metafunc.parametrize(["empty_device", "implementation"], params)


def pytest_collection_modifyitems(config, items):
    """The empty steps run first; then, for each (device, size, dtype), its copies and right after them its step
    cases, so that a step is read against a copy measured minutes, not the whole run, apart (on a shared machine
    the bandwidth available drifts). Within that, the generated order (rule, configuration, implementation)."""
    order = {d: i for i, d in enumerate(DEVICES)}
    dtypes = {d: i for i, d in enumerate(DTYPES)}

    def rank(item):
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("step_case") or params.get("copy_case")
        if "empty_device" in params or case is None:
            return (0,)
        return (1, order[case.device], case.size, dtypes[case.dtype], 0 if "copy_case" in params else 1)
    items[:] = sorted(items, key=rank)


class Rooflines:
    """The copies' fastest rounds and the empty steps' medians of this run, by case; a roofline no copy benchmark
    measured (the copies were deselected) is measured on demand with the same rounds."""

    def __init__(self, budget: harness.Budget):
        self.budget = budget
        self.copies: dict[tuple, tuple[float, int, str]] = {}
        self.empty: dict[str, float] = {}

    def record_copy(self, case: CopyCase, best_s: float, moved: int) -> None:
        self.copies[(case.device, case.dtype, case.nbytes)] = (best_s, moved, "copy benchmark")

    def copy(self, case: StepCase) -> tuple[float, int, str]:
        key = (case.device, case.dtype, case.bytes_per_step)
        if key not in self.copies:
            rounds, moved = harness.copy_rounds(case.bytes_per_step, case.dtype, case.device)
            n = self.budget.rounds(rounds.warm_up())
            self.copies[key] = (harness.measure(rounds, n).best_s, moved, "measured for this case")
        return self.copies[key]


@pytest.fixture(scope="session")
def rooflines(request) -> Rooflines:
    return Rooflines(request.config.bench.budget)


@pytest.fixture(scope="session")
def settings(request) -> Settings:
    return request.config.bench


@pytest.fixture(autouse=True)
def _threads(request):
    """--bench-threads for every benchmark; the root conftest's isolation restores torch's own count after it."""
    torch.set_num_threads(request.config.bench.threads)
    yield
