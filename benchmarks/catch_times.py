"""Time to catch each planted bug as a user would run the suite on it: one ``pytest -x`` command per bug, from
start-up to the first failure.

    python -m benchmarks.catch_times [--jobs J] [--out FILE.json]

The bugs are ``optimizers/planted.py``'s (``--optimizer optimizers.planted:NAME --rule RULE``),
``optimizers/planted_properties.py``'s, ``optimizers/planted_sharding.py``'s (``--ranks 2``),
``optimizers/planted_lion.py``'s (against the user's rule of ``docs/your-own-rule.md``),
``optimizers/planted_precision.py``'s (``--compensation kahan_comp``) and ``optimizers/planted_modern.py``'s (the
rules torch.optim does not ship). Each command must
exit 1 (a deviation found); prints a table (bug, seconds, exit status) and the median and worst time; exits 1 if a
bug was not caught.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[tuple[str, list[str]]]:
    from optimizers import (planted, planted_lion, planted_modern, planted_precision, planted_properties,
                            planted_sharding)
    out = [(f"planted.{name}", ["--optimizer", f"optimizers.planted:{name}", "--rule", rule])
           for name, rule, _ in planted.PLANTED]
    out += [(f"planted_properties.{name}", ["--optimizer", f"optimizers.planted_properties:{name}", "--rule", rule])
            for name, rule, _ in planted_properties.BROKEN]
    out += [(f"planted_sharding.{name}", ["--optimizer", f"optimizers.planted_sharding:{name}", "--rule",
                                          "adam", "--ranks", "2"])
            for name, *_ in planted_sharding.PLANTED]
    out += [(f"planted_lion.{name}", ["--optimizer", f"optimizers.planted_lion:{name}", "--rule",
                                      "docs/examples/lion_rule.py:LION"])
            for name, _ in planted_lion.PLANTED]
    out += [(f"planted_precision.{name}", ["--optimizer", f"optimizers.planted_precision:{name}", "--rule", "sgd",
                                           "--compensation", planted_precision.COMPENSATION])
            for name, _ in planted_precision.PLANTED]
    out += [(f"planted_modern.{name}", ["--optimizer", f"optimizers.planted_modern:{name}", "--rule", rule])
            for name, rule, _ in planted_modern.PLANTED]
    return out


def catch(name: str, args: list[str]) -> tuple[str, float, int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-x", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    return name, time.perf_counter() - start, proc.returncode, failed[0][7:] if failed else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catch_times", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="commands at once (default 1: times as a user sees them)")
    parser.add_argument("--only", default=None, help="comma-separated substrings of the bugs' names to run")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    todo = commands()
    if args.only:
        todo = [(n, a) for n, a in todo if any(s in n for s in args.only.split(","))]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: catch(*c), todo))
    print("| bug | seconds | exit | first failing test |\n|---|---:|---:|---|")
    for name, seconds, rc, test in rows:
        print(f"| {name} | {seconds:.1f} | {rc} | {test} |")
    times = [r[1] for r in rows]
    missed = [r[0] for r in rows if r[2] != 1]
    print(f"\n{len(rows)} bugs: median {statistics.median(times):.1f} s, worst {max(times):.1f} s; "
          f"not caught: {', '.join(missed) or 'none'}")
    if args.out:
        Path(args.out).write_text(json.dumps([dict(zip(("bug", "seconds", "exit", "test"), r)) for r in rows],
                                             indent=1))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
