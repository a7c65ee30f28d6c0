"""Sharded optimizers across ranks: run across N processes with torch.distributed, every rank given the gradients the
reference sees, every rank's parameters after every step equal the unsharded rule's within the tolerance model.

Only running the implementation differs from ``properties/test_trajectory.py`` (``properties/ranks.py`` runs the
ranks); the judge is the suite's own: ``reference_trajectory``, ``tolerances``, ``judgeable`` and
``assert_trajectory_conforms``, applied to each rank's replica in turn.

* ``--optimizer SPEC --rule RULE --ranks N``: the tests marked ``ranks`` run the implementation SPEC names across
  N ranks — the trajectory property, and a checkpoint restored mid-trajectory — and no other test runs.
* Without ``--ranks``: torch.distributed's ZeroRedundancyOptimizer over Adam, AdamW, SGD and RMSprop (and Adam on
  its bucket-view path) conforms with 2 and 4 ranks, and its ``consolidate_state_dict`` checkpoint round-trips
  mid-trajectory; every planted sharding bug (``optimizers/planted_sharding.py``) is caught, naming the rank, the
  step and the parameter; a rank that raises or hangs fails the example naming the rank and the step and ends its
  pool; the ranks die with their parent; no process outlives the pools; nothing listens beyond 127.0.0.1.

The conformance tests take ``EXAMPLES`` examples per configuration (more in the thorough profile): the property is
the same as the one-process trajectory's, searched there at full depth; here the search is for the sharding.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from optimizers.adapters import ImplementationError, Subject
from properties import ranks
from properties.assertions import NonConformance, assert_trajectory_conforms
from properties.report import exercised
from properties.strategies import cases
from properties.test_trajectory import DTYPES, THOROUGH, under_known_deviations
from properties.tolerances import judgeable, tolerances
from reference.registry import RULES
from reference.trajectory import Case, Group, reference_trajectory

if ranks.available() is not None:
    pytest.skip(ranks.available(), allow_module_level=True)

# after the skip: these import torch.distributed.optim
from optimizers import distributed, planted_sharding  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANKS = (2, 4)
#: the torch.optim classes the issue names, and ZeroRedundancyOptimizer's other code path (bucket views)
ZERO = ("ZeroAdam", "ZeroAdamW", "ZeroSGD", "ZeroRMSprop", "ZeroAdamBuckets")
EXAMPLES = 150 if THOROUGH else 3
#: the sharding is the same whatever the dtype: float32 too in the thorough profile
ZERO_DTYPES = DTYPES if THOROUGH else (torch.float64,)
ROUND_TRIP_EXAMPLES = 100 if THOROUGH else 2
#: examples a planted bug may take to be caught (the search stops at the first failure)
# (200: with 4 ranks and 1–4 parameters the last rank often owns nothing, and a quarter of the cases sit at the
# edges of the dtype's range, where more are not judged; 60 missed SkipsLastRankShard once in CI)
PLANTED_EXAMPLES = int(os.environ.get("PLANTED_MAX_EXAMPLES", "200"))


# ---- the check -------------------------------------------------------------------------------------------------------
def as_rank(subject: Subject, r: int, n: int) -> Subject:
    """``subject`` named as rank ``r`` of ``n`` (for the explanation), with the API its ranks probed."""
    s = dataclasses.replace(subject, id=f"{subject.id} (rank {r} of {n})")
    s.__dict__["caps"] = subject.caps
    return s


def _across_ranks(off: list[tuple[int, NonConformance]], run: ranks.ShardedRun, n: int,
                  restore_at: int | None) -> NonConformance:
    """The first rank's NonConformance, with which ranks are off, the partition, and its reproducer run across the
    ``n`` ranks instead of in one process."""
    r, first = off[0]
    lines = str(first).split("\n")
    facts = [f"  ranks whose parameters leave the rule: {', '.join(str(q) for q, _ in off)} of {n} "
             f"(the others' conform)" if len(off) < n else f"  every rank's parameters leave the rule ({n} ranks)"]
    if run.partition is not None:
        facts.append("  partition (ZeroRedundancyOptimizer's): "
                     + "; ".join(f"rank {q} owns parameters {ps}" for q, ps in enumerate(run.partition)))
        if (judged := re.search(r"parameter (\d+) \(shape", lines[1] if len(lines) > 1 else "")) is not None:
            i = int(judged[1])
            owners = [q for q, ps in enumerate(run.partition) if i in ps]
            facts.append(f"  parameter {i} is owned by "
                         + (f"rank {', '.join(map(str, owners))}" if owners else "no rank")
                         + f"; the copy judged above is rank {r}'s")
    if restore_at is not None:
        facts.append(f"  checkpointed before step {restore_at} (consolidate_state_dict(to=0) where it has one, "
                     "rank 0's state_dict()) and restored into a fresh optimizer on every rank (load_state_dict)")
    dashes = [k for k, line in enumerate(lines) if line == "-" * 72]
    if len(dashes) >= 2 and dashes[0] > 0:
        a, b = dashes[0], dashes[-1]
        script = ranks.distributed_reproducer("\n".join(lines[a + 1:b]), n, restore_at)
        lines = [*lines[:a - 1], *facts,
                 f"Reproduce without the suite (the steps above in every one of {n} processes, gloo on 127.0.0.1):",
                 lines[a], script, lines[b], *lines[b + 1:]]
    else:
        script = None
        lines = [*lines[:1], *facts, *lines[1:]]
    error = NonConformance("\n".join(lines))
    error.details = {**getattr(first, "details", {}), "rank": r, "ranks": n, "partition": run.partition,
                     **({"reproducer": script} if script else {})}
    return error


def check_sharded_trajectory(subject: Subject, case: Case, n: int, restore_at: int | None = None,
                             known_deviations: bool = True) -> None:
    """One example of the property across ``n`` ranks: judge every rank's parameters after every step against the
    reference, unless the rule is undefined for the case at its precision (known deviations of the wrapped class
    are skipped or worked around as in the one-process check; ``known_deviations=False`` judges the case as it
    is). With ``restore_at`` = k, the ranks checkpoint and restore the optimizer before step k, and the trajectory
    must go on as if nothing happened."""
    __tracebackhide__ = True
    expected = reference_trajectory(case)
    tol = tolerances(case, expected)
    if known_deviations:
        assume(judgeable(case, expected, tol))
    exercised(subject, case)
    with under_known_deviations(subject, case) if known_deviations else contextlib.nullcontext():
        run = ranks.sharded_trajectory(subject, case, n, restore_at)
    off = []
    for r, replica in enumerate(run.replicas):
        try:
            assert_trajectory_conforms(as_rank(subject, r, n), case, replica, expected, tol)
        except NonConformance as e:
            off.append((r, e))
    if off:
        raise _across_ranks(off, run, n, restore_at)


@st.composite
def round_trips(draw, subject: Subject, dtype: torch.dtype):
    """A case of two steps or more, and the step before which the optimizer is checkpointed and restored."""
    case = draw(cases(subject, dtype).filter(lambda c: c.steps >= 2), label="case")
    return case, draw(st.integers(1, case.steps - 1), label="restored before step")


# ---- the implementation named by --optimizer, across --ranks N -------------------------------------------------------
@pytest.fixture(scope="session")
def n_ranks(pytestconfig) -> int:
    return pytestconfig.ranks


@pytest.mark.ranks
@pytest.mark.parametrize("dtype", DTYPES, ids=[str(d).replace("torch.", "") for d in DTYPES])
@given(data=st.data())
def test_sharded_trajectory_matches_reference_rule(subject, n_ranks, dtype, data):
    """Run across N ranks, each given the reference's gradients: for the cases the one-process trajectory property
    draws, every rank's parameters after every step equal the reference rule's within tolerance."""
    check_sharded_trajectory(subject, data.draw(cases(subject, dtype), label="case"), n_ranks)


@pytest.mark.ranks
@given(data=st.data())
def test_sharded_checkpoint_restored_mid_trajectory_continues_it(subject, n_ranks, data):
    """Checkpointed before a drawn step (``consolidate_state_dict(to=0)`` where the implementation has it, then
    rank 0's ``state_dict()``) and restored into a fresh optimizer on every rank (``load_state_dict``), the
    implementation goes on along the reference's trajectory."""
    if subject.caps.missing("state_dict"):
        pytest.skip(subject.caps.missing("state_dict"))
    case, k = data.draw(round_trips(subject, torch.float64))
    check_sharded_trajectory(subject, case, n_ranks, restore_at=k)


# ---- torch.distributed's ZeroRedundancyOptimizer ---------------------------------------------------------------------
@functools.cache
def zero_subject(name: str, n: int) -> Subject:
    rule = RULES[distributed.FACTORIES[name]]
    subject = Subject(f"distributed.{name}", getattr(distributed, name), rule, f"optimizers.distributed:{name}")
    return ranks.probe_across(subject, n)


def test_zero_factories_name_the_rule_of_the_class_they_wrap():
    """Every factory of optimizers/distributed.py claims the rule whose torch class it wraps, and is bound under the
    name it reports (the reproducer imports it by that name)."""
    for name, rule in distributed.FACTORIES.items():
        factory = getattr(distributed, name)
        assert factory.__name__ == name
        assert RULES[rule].torch_class == factory.wraps.__name__, f"{name} claims {rule}"


def planted_subject(name: str, n: int) -> Subject:
    subject = Subject(f"planted_sharding.{name}", getattr(planted_sharding, name), RULES["adam"],
                      f"optimizers.planted_sharding:{name}")
    return ranks.probe_across(subject, n)


@pytest.mark.parametrize("n", RANKS, ids=[f"{n}-ranks" for n in RANKS])
@pytest.mark.parametrize("name", ZERO)
@pytest.mark.parametrize("dtype", ZERO_DTYPES, ids=[str(d).replace("torch.", "") for d in ZERO_DTYPES])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_zero_redundancy_optimizer_matches_reference_rule(name, n, dtype, data):
    """ZeroRedundancyOptimizer over the class, across n ranks: every rank's parameters after every step equal the
    wrapped class's rule's within tolerance."""
    subject = zero_subject(name, n)
    check_sharded_trajectory(subject, data.draw(cases(subject, dtype), label="case"), n)


@pytest.mark.parametrize("n", RANKS, ids=[f"{n}-ranks" for n in RANKS])
@pytest.mark.parametrize("name", ZERO)
@settings(max_examples=ROUND_TRIP_EXAMPLES)
@given(data=st.data())
def test_zero_consolidated_state_dict_round_trips_mid_trajectory(name, n, data):
    """``consolidate_state_dict(to=0)`` before a drawn step, rank 0's ``state_dict()`` loaded into a fresh
    ZeroRedundancyOptimizer on fresh parameters on every rank: the run goes on along the reference's trajectory."""
    subject = zero_subject(name, n)
    case, k = data.draw(round_trips(subject, torch.float64))
    check_sharded_trajectory(subject, case, n, restore_at=k)


def search(subject: Subject, n: int, check: str) -> tuple[NonConformance | None, int]:
    """Up to PLANTED_EXAMPLES float64 cases for ``subject`` across ``n`` ranks, stopping at the first
    NonConformance. Returns it (or None) and the examples drawn."""
    caught: list[NonConformance] = []
    drawn = [0]
    strategy = round_trips(subject, torch.float64) if check == "round trip" else \
        cases(subject, torch.float64).map(lambda c: (c, None))

    @settings(max_examples=PLANTED_EXAMPLES, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn_case=strategy)
    def run(drawn_case):
        case, k = drawn_case
        drawn[0] += not caught
        try:
            check_sharded_trajectory(subject, case, n, restore_at=k)
        except NonConformance as e:
            caught.append(e)
            raise

    try:
        run()
    except NonConformance:
        pass
    return (caught[0] if caught else None), drawn[0]


@pytest.mark.seeded
@pytest.mark.parametrize("n", RANKS, ids=[f"{n}-ranks" for n in RANKS])
@pytest.mark.parametrize("name, bug, check", [pytest.param(*p, id=p[0]) for p in planted_sharding.PLANTED])
def test_suite_catches_planted_sharding_bug(name, bug, check, n, record_property):
    """ZeroRedundancyOptimizer over Adam with one sharding mistake is reported as non-conforming within
    PLANTED_EXAMPLES drawn cases, and the report names the rank, the step, the parameter and who owns it."""
    caught, examples = search(planted_subject(name, n), n, check)
    record_property("examples_to_catch", examples)
    assert caught is not None, f"the suite did not catch planted sharding bug {name} ({bug}) across {n} ranks in " \
                               f"{examples} examples"
    message = str(caught)
    assert re.search(rf"planted_sharding\.{name} \(rank \d of {n}\) does not conform to rule 'adam'", message), message
    assert re.search(r"step \d+ of \d+ \(0-based\), parameter \d+", message), message
    assert re.search(r"rank \d owns parameters \[", message), message


def _reproducer_case(name: str) -> tuple[Case, int | None]:
    """A small case on which the bug shows: two parameters (ZeroRedundancyOptimizer gives one to each of 2 ranks),
    gradients that change every step (a restored optimizer with fresh state then moves differently)."""
    rule = RULES["adam"]
    group = Group((0, 1), {**rule.defaults(), "lr": 0.1})
    grads = [[np.full(2, g), np.full(3, -g)] for g in (1.0, 3.0, -2.0)]
    case = Case(rule, [group], [np.ones(2), np.ones(3)], grads, [[0.1]] * len(grads))
    return case, (2 if name == "MergesOnlyFirstShard" else None)


@pytest.mark.skipif(not THOROUGH, reason="starts three Python processes importing torch (~15 s on two shared "
                                         "cores): runs in the thorough profile")
@pytest.mark.parametrize("name", ["NoBroadcastAfterStep", "MergesOnlyFirstShard"])
def test_distributed_reproducer_reproduces_a_planted_bug(name, tmp_path):
    """The reproducer printed for a sharding bug (and for one that shows after a checkpoint round trip) runs without
    the suite, across the ranks, and prints the actual value the suite reported, failing its assertion."""
    subject = planted_subject(name, 2)
    case, k = _reproducer_case(name)
    with pytest.raises(NonConformance) as caught:
        check_sharded_trajectory(subject, case, 2, restore_at=k, known_deviations=False)
    message = str(caught.value)
    script = message.split("-" * 72)[1]
    assert "mp.spawn(" in script and "dist.init_process_group('gloo'" in script
    actual = re.search(r"expected \S+   actual (\S+)", message)[1]
    path = tmp_path / "reproduce.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})   # where the implementation's module imports from
    assert done.returncode != 0 and "AssertionError" in done.stderr, done.stdout + done.stderr
    assert f"actual {actual}," in done.stdout, done.stdout


# ---- failures, hangs and processes -----------------------------------------------------------------------------------
def _case(steps: int = 3) -> Case:
    rule = RULES["adam"]
    group = Group((0, 1), {**rule.defaults(), "lr": 0.1})
    return Case(rule, [group], [np.ones(2), np.ones(3)], [[np.ones(2), np.ones(3)]] * steps, [[0.1]] * steps)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads processes and sockets from /proc")


@linux_only
def test_a_rank_that_raises_fails_naming_rank_and_step_and_ends_its_pool():
    """A rank whose step raises fails the example with its error, its rank and its step; the pool's processes
    (the other ranks wait for it in a collective) are ended."""
    subject = planted_subject("RaisesOnLastRank", 2)
    pids = ranks.pool(2).pids
    with pytest.raises(ImplementationError, match=r"rank 1 of 2: planted_sharding\.RaisesOnLastRank: step\(\) at "
                                                  r"step 1 raised RuntimeError: shard update failed"):
        ranks.sharded_trajectory(subject, _case(), 2)
    assert not any(alive(p) for p in pids), "a rank outlived its failed pool"


@linux_only
def test_a_hung_rank_fails_naming_rank_and_step_and_ends_its_pool(monkeypatch):
    """When a rank never joins a collective, the rank left waiting fails the example after --step-timeout (plus a
    margin), named with its step; the pool's processes are ended."""
    subject = planted_subject("LastRankSkipsBroadcast", 2)
    pids = ranks.pool(2).pids
    monkeypatch.setattr("optimizers.adapters.STEP_TIMEOUT", 2.0)
    monkeypatch.setattr(ranks, "_MARGIN", 2.0)
    start = time.monotonic()
    with pytest.raises(ImplementationError, match=r"rank 0 of 2 did not finish step 0 of 3 \(0-based\) within 4 s"):
        ranks.sharded_trajectory(subject, _case(), 2)
    assert time.monotonic() - start < 30
    assert not any(alive(p) for p in pids), "a rank outlived its hung pool"


@linux_only
def test_ranks_die_with_their_parent():
    """A process that started a pool is killed (SIGKILL: no cleanup of its own runs); its ranks end with it."""
    script = textwrap.dedent("""
        import sys, time
        from properties import ranks
        print(*ranks.pool(2).pids, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), f"ranks {pids} outlived their killed parent"


def _listening(pids: list[int]) -> list[str]:
    """The local addresses of the TCP sockets the processes ``pids`` listen on (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and inode in inodes:   # 0A: LISTEN
                    host = local.split(":")[0]
                    raw = bytes.fromhex(host)
                    # /proc prints each 32-bit word in host (little-endian) order
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    addresses.append(".".join(map(str, words[-4:])) if len(raw) == 4 or
                                     words[:12] == b"\0" * 10 + b"\xff\xff" else words.hex())
    return addresses


@linux_only
def test_nothing_listens_beyond_loopback():
    """The ranks' listening sockets (gloo's; the store is a file) are all bound to 127.0.0.1."""
    pids = ranks.pool(2).pids
    addresses = _listening(pids)
    assert addresses, "the ranks listen on nothing: the check would see nothing to judge"
    assert all(a == "127.0.0.1" for a in addresses), f"ranks {pids} listen on {addresses}"


@linux_only
def test_no_process_outlives_the_pools():
    """After ``shutdown()`` (what conftest runs at the end of the session), no process the pools started is left:
    not the ranks, nor the fork server and resource tracker of the standard library they started."""
    pids = ranks.pool(2).pids + ranks.pool(4).pids
    helpers = ranks.helper_pids()
    assert all(alive(p) for p in pids + helpers)
    ranks.shutdown()
    left = [p for p in pids + helpers if alive(p)]
    assert not left, f"processes left after shutdown(): {left}"
