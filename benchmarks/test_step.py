"""One optimizer step, timed: each rule in each configuration, size, dtype and device, for each implementation.

Each result's ``extra_info`` holds what the report reads: the rule's minimum traffic (``bytes_per_step``, from
``rule.buffers``), the bandwidth achieved at the median time (``gbps``), and that bandwidth over the copy
bandwidth (fastest round) measured for the same bytes in this run (``roofline_fraction``); with the harness's own
overhead per round (``harness_overhead_s``) to read small sizes against.
"""
from __future__ import annotations

import pytest
import torch

from benchmarks import harness, traffic, workload
from benchmarks.conftest import device_name
from benchmarks.implementations import Unavailable


def _memory_needed(step_case, implementation, n_copies: int) -> int:
    """The copies' data and the change check's copies of θ, the drawn values they are cloned from, and (the
    reference) its temporaries."""
    theta = step_case.dtype.itemsize * step_case.elements
    return n_copies * (step_case.footprint + theta) + 2 * theta + (8 * theta if implementation.kind == "reference" else 0)


def _assert_steps_updated(rounds, implementation, built, case) -> None:
    __tracebackhide__ = True
    if rounds.failed:
        raise harness.StepsNotUpdated(
            f"{implementation.name} ({built.description}) on {case.id}: {rounds.failed} of {rounds.checked} timed "
            f"steps did not update the parameters ({rounds.first_failure}); the time is not that of a step")


def test_step(benchmark, step_case, implementation, settings, rooflines):
    """Time one step; then check every timed step changed every parameter tensor and most elements."""
    case, device = step_case, step_case.device
    n_copies, flush = harness.rotation(case.footprint, device, implementation.max_copies())
    needed, free = _memory_needed(case, implementation, n_copies), harness.available_bytes(device)
    if needed > 0.8 * free:
        pytest.skip(f"needs about {needed / 2**30:.1f} GiB of {device} memory; {free / 2**30:.1f} GiB available")
    try:
        data = [workload.make(case.size, case.dtype, device) for _ in range(n_copies)]
        built = implementation.build(case.rule, case.hp, [d.params for d in data])
        rounds = harness.Rounds([b.step for b in built], device, flush=flush)
        estimate = rounds.warm_up()
    except Unavailable as e:
        pytest.skip(str(e))
    except RuntimeError as e:
        if implementation.kind == "fused" and "fused=True" in str(e):   # torch checks device and dtype at step 1
            pytest.skip(f"{built[0].description} refused this case: {str(e).splitlines()[0]}")
        raise
    except torch.OutOfMemoryError:
        pytest.skip(f"out of {device} memory at {workload.label(case.size)} elements")
    rounds.checks = [harness.ChangeCheck(d.params) for d in data]
    graphs = built[0].graphs() if built[0].graphs else None
    n = settings.budget.rounds(estimate)
    benchmark.group = f"{case.rule.name}/{case.configuration} {workload.label(case.size)} {case.dtype_name} {device}"
    timing = harness.run(benchmark, rounds, n)
    if timing is None:   # --benchmark-disable: the step ran once, untimed; check it all the same
        rounds.teardown()
        _assert_steps_updated(rounds, implementation, built[0], case)
        return
    median = timing.median_s

    copy_s, copy_bytes, source = rooflines.copy(case)
    gbps = case.bytes_per_step / median / 1e9
    roofline_gbps = copy_bytes / copy_s / 1e9
    overrides = {k: v for k, v in case.hp.items() if v != case.rule.defaults()[k]}
    benchmark.extra_info.update(
        kind="step", rule=case.rule.name, configuration=case.configuration,
        hyperparameters={k: repr(v) for k, v in overrides.items()},
        implementation=implementation.name, implementation_kind=implementation.kind, built=built[0].description,
        size=case.size, size_label=workload.label(case.size), elements=data[0].elements, tensors=len(data[0].params),
        dtype=case.dtype_name, device=device, device_name=device_name(device), threads=torch.get_num_threads(),
        torch=torch.__version__,
        buffers=list(traffic.buffers(case.rule, case.hp)),
        bytes_per_element=traffic.bytes_per_element(case.rule, case.hp, case.dtype),
        bytes_per_step=case.bytes_per_step, median_s=median, ns_per_element=median / data[0].elements * 1e9,
        gbps=gbps, roofline_gbps=roofline_gbps, roofline_fraction=gbps / roofline_gbps, roofline_source=source,
        harness_overhead_s=rooflines.empty.get(device), copies=n_copies, rotated_bytes=n_copies * case.footprint,
        flushed=rounds.flush, rounds=n, compile_s=built[0].compile_s, steps_checked=rounds.checked,
        steps_failed=rounds.failed, least_changed_fraction=rounds.least_changed)

    _assert_steps_updated(rounds, implementation, built[0], case)
    if graphs is not None and graphs >= 0:
        assert built[0].graphs() == graphs, (
            f"torch.compile recompiled during timing ({graphs} -> {built[0].graphs()} graphs) on {case.id}: the "
            "timed rounds include compilation")
