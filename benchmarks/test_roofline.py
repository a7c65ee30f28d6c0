"""The two reference points every step result is read against, measured first in the same run with the same rounds.

* The empty step: the harness's own cost per timed round (a Python call, and on a GPU a synchronisation), the floor
  under every small-size time.
* Copy bandwidth: a contiguous ``dst.copy_(src)`` moving the same bytes, of the same dtype, on the same device, as
  the step cases of each size; its fastest round is the practical roofline those steps are measured against (other
  work on the machine only ever slows a round down: here the median of a 200 MB copy fell to 21 GB/s while its
  fastest rounds, like every other size's, ran at 38-41 GB/s).
"""
from __future__ import annotations

import pytest
import torch

from benchmarks import harness, workload
from benchmarks.conftest import device_name


def test_empty_step(benchmark, empty_device, implementation, settings, rooflines):
    """The harness's overhead: a round whose step does nothing."""
    rounds = harness.empty_rounds(empty_device)
    n = settings.budget.rounds(rounds.warm_up())
    benchmark.group = "harness"
    timing = harness.run(benchmark, rounds, n)
    if timing is None:
        return
    median = timing.median_s
    rooflines.empty[empty_device] = median
    benchmark.extra_info.update(kind="empty", implementation="empty step", device=empty_device,
                                device_name=device_name(empty_device), threads=torch.get_num_threads(),
                                torch=torch.__version__, median_s=median, rounds=n)


def test_copy(benchmark, copy_case, implementation, settings, rooflines):
    """Copy bandwidth for the bytes a step of this size moves: the roofline."""
    free = harness.available_bytes(copy_case.device)
    if max(copy_case.nbytes, harness.cold_bytes(copy_case.device)) > 0.8 * free:
        pytest.skip(f"needs about {copy_case.nbytes / 2**30:.1f} GiB of {copy_case.device} memory; "
                    f"{free / 2**30:.1f} GiB available")
    try:
        rounds, moved = harness.copy_rounds(copy_case.nbytes, copy_case.dtype, copy_case.device)
    except torch.OutOfMemoryError:
        pytest.skip(f"out of {copy_case.device} memory for a {copy_case.nbytes / 2**30:.1f} GiB copy")
    n = settings.budget.rounds(rounds.warm_up())
    benchmark.group = "roofline (copy)"
    timing = harness.run(benchmark, rounds, n)
    if timing is None:
        return
    median = timing.median_s
    rooflines.record_copy(copy_case, timing.best_s, moved)
    benchmark.extra_info.update(
        kind="copy", implementation="copy", device=copy_case.device, device_name=device_name(copy_case.device),
        threads=torch.get_num_threads(), torch=torch.__version__, size=copy_case.size,
        size_label=workload.label(copy_case.size), dtype=str(copy_case.dtype).removeprefix("torch."),
        bytes_per_step=moved, median_s=median, gbps=moved / median / 1e9, best_s=timing.best_s,
        best_gbps=moved / timing.best_s / 1e9, copies=len(rounds.steps),
        flushed=rounds.flush, rounds=n)
