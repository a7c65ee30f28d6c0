"""Zero false alarms: run the default suite's tests whose outcome the seed decides — every Hypothesis test (the
built-in implementations, which conform, and the reference rules) and every test that runs Hypothesis searches
inside it (the self-tests' correct variants and planted bugs: marker ``seeded``) — under many distinct
``--hypothesis-seed`` values; every run must pass. The other tests draw nothing: one run of the suite covers them.

    python -m properties.false_alarms                 # seeds 1..20, one run at a time
    python -m properties.false_alarms --seeds 10 --jobs 2 -- properties/test_trajectory.py

A failure here is a bug in the tolerance model or the strategies (or a new torch deviation to record), never a
reason to widen a tolerance by trial. Prints one line per seed and a summary; exits 1 if any seed failed.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time


#: the tests whose outcome depends on the seed: Hypothesis marks its @given tests; ``seeded`` marks the others
SEEDED = ["-m", "hypothesis or seeded"]


def run_seed(seed: int, pytest_args: list[str], logs: str) -> tuple[int, int, float, list[str], str]:
    """One run of the suite under ``seed``; a failing run's whole output is kept in ``logs``/seed-N.txt (with a
    forced seed the examples a test draws depend on the whole session, so the run itself is the reproducer)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", f"--hypothesis-seed={seed}", *pytest_args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        os.makedirs(logs, exist_ok=True)
        with open(os.path.join(logs, f"seed-{seed}.txt"), "w") as f:
            f.write(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
    return seed, proc.returncode, elapsed, failed, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m properties.false_alarms", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--first", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--list", help="these seeds, comma-separated (instead of --first and --seeds)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (default 1)")
    parser.add_argument("--logs", default="false-alarms", help="where a failing seed's output is kept "
                        "(default false-alarms/seed-N.txt)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after -- (default: " + " ".join(SEEDED) + ")")
    args = parser.parse_args(argv)
    args.pytest_args = args.pytest_args or SEEDED
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be at least 1")
    if args.list:
        try:
            seeds = [int(x) for x in args.list.split(",")]
        except ValueError:
            parser.error(f"--list takes comma-separated integers, not {args.list!r}")
    else:
        seeds = list(range(args.first, args.first + args.seeds))
    start = time.perf_counter()
    bad = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for seed, rc, elapsed, failed, summary in pool.map(lambda s: run_seed(s, args.pytest_args, args.logs), seeds):
            print(f"seed {seed:>4}: exit {rc}  {elapsed:6.0f} s  {summary}", flush=True)
            for test in failed:
                print(f"            FAILED {test}")
            if rc != 0:
                print(f"            output: {os.path.join(args.logs, f'seed-{seed}.txt')}")
                bad.append(seed)
    total = time.perf_counter() - start
    print(f"{len(seeds) - len(bad)}/{len(seeds)} seeds passed in {total / 60:.1f} min"
          + (f"; failing seeds: {', '.join(map(str, bad))}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
