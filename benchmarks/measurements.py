"""The suite's own measurements, in one generated place: ``docs/measurements.md``.

    python -m benchmarks.measurements run [NAME ...]    # run the measurements (all, or those named), then render
    python -m benchmarks.measurements render             # rewrite docs/measurements.md from docs/measurements/*.json

Each measurement is a command a reader can re-run; ``run`` executes it on this checkout, records the commit (and
whether the tree had uncommitted changes), the date, the machine, the command and what it printed or measured in
``docs/measurements/NAME.json``; ``render`` turns those files into the page. Names:

* ``quick`` — ``python -m pytest --optimizer torch.optim:Adam --rule adam``: wall time, start-up included.
* ``adafactor``, ``sparse_adam``, ``muon``, ``lion`` — the same for torch.optim.Adafactor, SparseAdam and Muon, and
  for docs/your-own-rule.md's Lion (a user's rule).
* ``suite`` — ``python -m pytest -n auto`` (the README's command, what CI runs): wall and CPU time, the summary line.
* ``oracle`` — ``pytest benchmarks/test_oracle.py``: the tolerance of one 20-step, four-parameter example per rule.
* ``catch`` — ``python -m benchmarks.catch_times``: the time to catch each planted bug with ``-x``.
* ``tightness`` — ``python -m benchmarks.tightness``: the bound against the earlier model and torch's errors.
* ``false-alarms`` — ``python -m properties.false_alarms --jobs 2``: the default suite's seeded tests under 20 seeds.
* ``false-alarms-new-rules`` — the same, restricted to the tests of Adafactor, SparseAdam and Muon and to every
  correct variant of the self-tests (``-k``): what a change to those rules, or to the planted bases, must pass.
* ``false-alarms-low-precision`` — the same, restricted to the bfloat16 and float16 trajectory tests (judged step by
  step): what a change to the step-by-step judgement must pass.
* ``false-alarms-layouts`` — the same, restricted to the declared precision layouts' self-tests (compensated,
  quantized state, stochastic rounding, float32 state): correct implementations pass and planted bugs are caught under every seed.
* ``false-alarms-modern-rules`` — the same, restricted to the self-tests of lion, adopt, ademamix, adan and lamb
  (their correct implementations pass, their planted bugs are caught, under every seed).
* ``false-alarms-group-conventions`` — the same, restricted to the parameter-group self-tests (group step counts,
  constructor-only hyperparameters, refused values held out), the modern rules' planted bugs and correct
  implementations (the group-step Adan among them) and the contract tests of the built-ins.
* ``ci-recipe`` — ``python -m benchmarks.ci_recipe``: docs/examples/conformance.yml's steps in a fresh virtual
  environment outside the checkout, on docs/examples/my_adam.py (a user's own Adam): install, run, verdict.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "docs" / "measurements"
PAGE = ROOT / "docs" / "measurements.md"
PY = [sys.executable]

COMMANDS = {
    "quick": ["-m", "pytest", "-p", "no:warnings", "--optimizer", "torch.optim:Adam", "--rule", "adam"],
    "adafactor": ["-m", "pytest", "-p", "no:warnings", "--optimizer", "torch.optim:Adafactor", "--rule", "adafactor"],
    "lion": ["-m", "pytest", "-p", "no:warnings", "--optimizer", "docs/examples/lion.py:Lion", "--rule",
             "docs/examples/lion_rule.py:LION"],
    "sparse_adam": ["-m", "pytest", "-p", "no:warnings", "--optimizer", "torch.optim:SparseAdam", "--rule",
                    "sparse_adam"],
    "muon": ["-m", "pytest", "-p", "no:warnings", "--optimizer", "torch.optim:Muon", "--rule", "muon"],
    "suite": ["-m", "pytest", "-n", "auto", "-q", "-p", "no:warnings"],
    "oracle": ["-m", "pytest", "-q", "-p", "no:warnings", "benchmarks/test_oracle.py", "--benchmark-only",
               "--benchmark-json", "{tmp}/oracle.json"],
    "catch": ["-m", "benchmarks.catch_times", "--out", "{tmp}/catch.json"],
    "tightness": ["-m", "benchmarks.tightness", "--cases", "1000", "--jobs", "2", "--out", "{tmp}/tightness.json"],
    "false-alarms": ["-m", "properties.false_alarms", "--jobs", "2"],
    "false-alarms-new-rules": ["-m", "properties.false_alarms", "--jobs", "2", "--", "-m", "hypothesis or seeded",
                               "-k", "SparseAdam or sparse_adam or Muon or muon or Adafactor or adafactor or "
                                     "correct_variant"],
    "false-alarms-low-precision": ["-m", "properties.false_alarms", "--jobs", "2", "--", "-m", "hypothesis",
                                   "properties/test_trajectory.py", "-k", "steps"],
    "false-alarms-layouts": ["-m", "properties.false_alarms", "--jobs", "2", "--", "-m", "hypothesis or seeded",
                             "properties/test_compensated.py", "properties/test_quantized.py",
                             "properties/test_stochastic_rounding.py", "properties/test_mixed_precision.py"],
    "false-alarms-modern-rules": ["-m", "properties.false_alarms", "--jobs", "2", "--", "-m", "hypothesis or seeded",
                                  "properties/test_planted_bugs.py", "-k", "modern"],
    "false-alarms-group-conventions": ["-m", "properties.false_alarms", "--jobs", "2", "--", "-m",
                                       "hypothesis or seeded", "properties/test_group_conventions.py",
                                       "properties/test_planted_bugs.py", "properties/test_contract.py", "-k",
                                       "group_conventions or modern or test_contract"],
    "ci-recipe": ["-m", "benchmarks.ci_recipe"],
}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(name: str) -> dict:
    tmp = ROOT / ".measurements-tmp"
    tmp.mkdir(exist_ok=True)
    args = [a.replace("{tmp}", str(tmp)) for a in COMMANDS[name]]
    cpu0, start = _cpu_seconds(), time.perf_counter()
    proc = subprocess.run(PY + args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CI": ""})
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    record = {"name": name, "command": "python " + " ".join(COMMANDS[name]).replace("{tmp}/", ""),
              "commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain", "--", ".", ":!docs/measurements")),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                         f"Python {platform.python_version()}",
              "exit": proc.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "summary": [line for line in lines if re.search(r"passed|failed|seeds passed|bugs:|verdict:", line)][-3:]}
    if name == "oracle":
        data = json.loads((tmp / "oracle.json").read_text())
        record["rows"] = [{"rule": b["extra_info"]["rule"], "dtype": b["extra_info"]["dtype"],
                           "median_ms": round(1e3 * b["stats"]["median"], 2),
                           "mean_ms": round(1e3 * b["stats"]["mean"], 2),
                           "reference_ms": round(1e3 * b["extra_info"]["reference_s"], 2),
                           "judged": b["extra_info"].get("judged")} for b in data["benchmarks"]]
    elif name in ("catch", "tightness"):
        record["rows"] = json.loads((tmp / f"{name}.json").read_text())
    elif name in ("false-alarms", "false-alarms-new-rules", "false-alarms-low-precision", "false-alarms-layouts",
                  "false-alarms-modern-rules", "false-alarms-group-conventions", "quick", "adafactor", "lion",
                  "sparse_adam", "muon", "suite", "ci-recipe"):
        record["output_tail"] = lines[-25:]
    DIR.mkdir(parents=True, exist_ok=True)
    (DIR / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return record


def _head(r: dict) -> list[str]:
    dirty = " (with uncommitted changes)" if r["dirty"] else ""
    return [f"`{r['command']}` — commit {r['commit']}{dirty}, {r['date']}, {r['machine']}: exit {r['exit']}, "
            f"{r['wall_s']} s wall, {r['cpu_s']} s CPU.", ""]


def render() -> str:
    out = ["# Measurements", "",
           "Generated by `python -m benchmarks.measurements render` from `docs/measurements/*.json`; each section "
           "names the command that produced it (re-run it with `python -m benchmarks.measurements run NAME`), the "
           "commit and the machine. Do not edit by hand.", ""]
    for name in COMMANDS:
        path = DIR / f"{name}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        out += [f"## {name}", "", *_head(r)]
        if r.get("summary"):
            out += ["```", *r["summary"], "```", ""]
        if name == "oracle":
            out += ["| rule | dtype | tolerance, median | mean | reference run | judged |", "|---|---|---:|---:|---:|---|"]
            out += [f"| {x['rule']} | {x['dtype']} | {x['median_ms']} ms | {x['mean_ms']} ms | {x['reference_ms']} ms | "
                    f"{'yes' if x.get('judged') else 'no'} |" for x in sorted(r["rows"], key=lambda x: (x["dtype"], x["rule"]))]
            out.append("")
        elif name == "catch":
            out += ["| bug | seconds | exit | first failing test |", "|---|---:|---:|---|"]
            out += [f"| {x['bug']} | {x['seconds']:.1f} | {x['exit']} | `{x['test']}` |" for x in r["rows"]]
            out.append("")
        elif name == "tightness":
            keys = sorted({k for x in r["rows"] for k in x if k not in ("rule",) and not k.endswith(" worst")})
            out += ["| rule | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
            out += ["| " + x["rule"] + " | " + " | ".join(str(x.get(k, "")) for k in keys) + " |" for x in r["rows"]]
            out.append("")
        elif r.get("output_tail"):
            out += ["```", *r["output_tail"][-12:], "```", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("run", "render"):
        print("usage: python -m benchmarks.measurements run [NAME ...] | render  (names: "
              + ", ".join(COMMANDS) + ")", file=sys.stderr)
        return 2
    if argv[0] == "run":
        names = argv[1:] or list(COMMANDS)
        unknown = [n for n in names if n not in COMMANDS]
        if unknown:
            print(f"unknown measurement {', '.join(unknown)}; known: {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        for name in names:
            r = run(name)
            print(f"{name}: exit {r['exit']}, {r['wall_s']} s wall")
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
