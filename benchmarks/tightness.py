"""How tight the tolerance is: on drawn trajectory cases of each torch.optim rule, the tolerance of the current
model beside that of an earlier commit's model, and beside the actual error of torch's code paths.

    python -m benchmarks.tightness [--cases N] [--old COMMIT] [--jobs J] [--out FILE.json]

For each rule with a torch.optim class, N cases are drawn as the conformance search draws them (float32 or
float64; Hypothesis derandomized, so a rerun draws the same cases); a case is used where both models
judge it (the new one alone where the earlier one cannot take the case: sparse gradients). Per element and step the script records tolerance_new / tolerance_old and |actual − expected| /
tolerance_new for each code path (for-loop, foreach, fused), under the known deviations' workarounds (cases with a
deviation and no workaround are left out). It prints, per rule, the median and worst of each ratio: a worst
actual/new above 1 is a false alarm, a median new/old far above 1 a bound too loose to catch small deviations.
The earlier model is loaded from ``git show COMMIT:properties/tolerances.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OLD_DEFAULT = "0d3bd54"   # the last commit of the Monte Carlo model


def _old_model(commit: str):
    source = subprocess.run(["git", "show", f"{commit}:properties/tolerances.py"], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "old_tolerances.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_tolerances", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draw(subject, n: int) -> list:
    from properties.strategies import cases
    drawn = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data):
        dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
        drawn.append(data.draw(cases(subject, dtype)))

    collect()
    return drawn[:n]


def _ratios(num, den):
    num, den = np.asarray(num, dtype=np.float64).ravel(), np.asarray(den, dtype=np.float64).ravel()
    keep = np.isfinite(num) & np.isfinite(den) & (den > 0)
    return (num[keep] / den[keep]).tolist()


def measure_rule(args) -> dict:
    rule_name, n, commit = args
    warnings.filterwarnings("ignore")
    import dataclasses

    from optimizers.adapters import implementation_trajectory
    from optimizers.builtins import torch_subjects
    from optimizers.known_deviations import applicable
    from properties import tolerances as new
    from reference.trajectory import reference_trajectory
    old = _old_model(commit)
    subjects = [s for s in torch_subjects() if s.rule.name == rule_name]
    out = {"rule": rule_name, "drawn": 0, "judged": 0, "new/old": [], "new_s": 0.0, "old_s": 0.0,
           **{f"actual/new {s.id}": [] for s in subjects}}
    for case in _draw(subjects[0], n):
        out["drawn"] += 1
        expected = reference_trajectory(case)
        if not new.judgeable(case, expected):
            continue
        t0 = time.perf_counter()
        tol_new = new.tolerances(case, expected)
        t1 = time.perf_counter()
        old_case = dataclasses.replace(case, notes={})
        try:
            tol_old = old.tolerances(old_case, expected)
        except Exception:   # a case the earlier model predates (sparse gradients): compared with torch's error only
            tol_old = None
        t2 = time.perf_counter()
        out["new_s"] += t1 - t0
        out["old_s"] += t2 - t1
        if not new.judgeable(case, expected, tol_new):
            continue
        if tol_old is not None and not old.judgeable(old_case, expected, tol_old):
            continue
        out["judged"] += 1
        for a, b in zip(tol_new, tol_old or [], strict=False):
            for x, y in zip(a, b, strict=True):
                out["new/old"] += _ratios(x, y)
        for s in subjects:
            deviations = applicable(s, case)
            if not all(d.workaround for d in deviations):
                continue
            with contextlib.ExitStack() as stack:
                for d in deviations:
                    stack.enter_context(d.workaround(case))
                try:
                    actual = implementation_trajectory(s, case)
                except Exception:   # a path that refuses the case (fused on some dtypes) has no error to compare
                    continue
            for a_row, e_row, t_row in zip(actual, expected, tol_new, strict=True):
                for a, e, t in zip(a_row, e_row, t_row, strict=True):
                    out[f"actual/new {s.id}"] += _ratios(np.abs(np.asarray(a) - e), t)
    return out


def summary(ratios: list[float]) -> str:
    if not ratios:
        return "—"
    r = np.asarray(ratios)
    return f"median {np.median(r):.3g}, worst {np.max(r):.3g} ({len(r)} elements)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tightness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases drawn per rule (default 1000)")
    parser.add_argument("--old", default=OLD_DEFAULT, help=f"commit of the earlier model (default {OLD_DEFAULT})")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--rules", default=None, help="comma-separated rule names (default: every torch rule)")
    parser.add_argument("--out", default=None, help="write the per-rule summary as JSON here")
    args = parser.parse_args(argv)
    from reference.registry import RULES
    names = args.rules.split(",") if args.rules else [r.name for r in RULES.values() if r.torch_class and not r.closure]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(measure_rule, [(name, args.cases, args.old) for name in names])
    rows = []
    for r in results:
        print(f"{r['rule']}: {r['judged']} of {r['drawn']} cases judged by both; tolerance time new "
              f"{r['new_s']:.1f} s, old {r['old_s']:.1f} s")
        print(f"  new/old: {summary(r['new/old'])}")
        row = {"rule": r["rule"], "drawn": r["drawn"], "judged": r["judged"], "new_s": r["new_s"],
               "old_s": r["old_s"], "new/old": summary(r["new/old"])}
        for k, v in r.items():
            if k.startswith("actual/new"):
                print(f"  {k}: {summary(v)}")
                row[k] = summary(v)
                row[k + " worst"] = float(np.max(v)) if v else None
        rows.append(row)
    print(f"{time.perf_counter() - started:.0f} s wall")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0 if all((row.get(k) or 0) <= 1 for row in rows for k in row if k.endswith(" worst")) else 1


if __name__ == "__main__":
    sys.exit(main())
