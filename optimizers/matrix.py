"""The conformance matrix: the suite run against every class of the optimizer ecosystem that claims a rule it knows
(``optimizers/ecosystem.py``), written as a Markdown table and JSON.

    python -m optimizers.matrix [--jobs 2] [--only TEXT ...] [--out optimizers/results]
    python -m optimizers.matrix --splice matrix-out --reason WHY    # a selection's rows into the committed table

Each row is one pytest run in a subprocess (``--optimizer SPEC --rule RULE --conformance-json``; torch's classes run
as the suite's built-in subjects, one code path each), under a per-run time limit, with a fixed Hypothesis seed and
an empty example database, so that the table is regenerated as committed. The verdict is read from the run's JSON:

* ``conforms`` — every test passed;
* ``differs by convention`` — it does not conform to the rule, and conforms in its updates to a variant of it that
  changes one named convention (``reference/variants.py``); the variant is named;
* ``differs (updates)`` — the parameters leave the rule (or a property of it fails), and no variant explains it;
* ``differs (float64 precision)`` — the updates conform but for float32 rounding inside float64 parameters: every
  update counterexample is float64 and off by at most 1e-5 relative (absolute below 1), and the float32
  trajectories conform;
* ``differs (subnormals)`` — the updates conform but where the case feeds subnormal numbers: every update
  counterexample has a subnormal parameter or gradient (an implementation that flushes them to zero, as XLA does
  on CPU);
* ``differs (side effects)`` — the updates conform, but a contract check fails (writes into .grad, a group's hyperparameter ignored, state lost in a
  state_dict round trip, a replaced parameter, closure, zero_grad);
* ``differs (domain)`` — the class refuses (ValueError) hyperparameter values inside the rule's domain, e.g. lr = 0;
  the cases it accepts conform;
* ``differs (validation)`` — only the check that out-of-domain hyperparameters are rejected fails;
* ``differs (known deviation)`` — torch's rows: the rest conforms, and torch's known deviations
  (``optimizers/known_deviations.py``) concern this class and path;
* ``crashes`` — the class raised while the suite drove it (other than refusing a value), or could not be
  constructed, or the run did not finish within ``--timeout``.

Every difference carries the suite's shrunk counterexample with its error and tolerance; its reproducer is rewritten
to need only the library (``ecosystem.standalone_import``) and run in a directory outside the repository, and the
row records whether it reproduces there.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from optimizers import ecosystem
from optimizers.ecosystem import ENTRIES, Entry, LIBRARIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "optimizers", "results")
COMMAND = "python -m optimizers.matrix"

#: a finding's category, by the test that failed (the rest: the rule's properties, i.e. updates)
SIDE_EFFECT_TESTS = ("test_step_never_writes_grad", "test_state_dict_round_trip", "test_step_with_closure",
                     "test_zero_grad_leaves", "test_without_zero_grad_gradients_accumulate")
VALIDATION_TESTS = ("test_rejects_hyperparameters_outside",)
DOMAIN_TESTS = ("test_accepts_hyperparameters_inside",)
CATEGORIES = ["crash", "updates", "float64 precision", "subnormals", "known deviation", "side effects", "domain",
              "validation"]   # worst first
UPDATE_LEVEL = ("crash", "updates")     # what a variant must not leave for the difference to be its convention
ORDER = ["crashes", "differs (updates)", "differs by convention", "differs (float64 precision)",
         "differs (subnormals)", "differs (known deviation)",
         "differs (side effects)", "differs (domain)", "differs (validation)", "conforms", "not run"]


# ---- running the suite ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    rule: str
    rc: int | None
    seconds: float
    report: dict | None
    output: str


def pytest_command(entry: Entry, rule: str, json_path: str, seed: int) -> list[str]:
    common = ["-q", "-p", "no:warnings", "-p", "no:cacheprovider", "--conformance-json", json_path,
              f"--hypothesis-seed={seed}", "--step-timeout", "300"]
    if entry.library == "torch":
        # the built-in subject: torch's known deviations are avoided or worked around, and listed separately
        return [sys.executable, "-m", "pytest", "properties", "-k", entry.name, *common]
    return [sys.executable, "-m", "pytest", "--optimizer", entry.spec, "--rule", rule, *common]


def run_suite(entry: Entry, rule: str, seed: int, timeout: float, profile: str, retries: int = 2) -> Run:
    """One pytest run; a run ended by a signal from outside (SIGTERM/SIGKILL from another process on a shared
    machine), with no report, is started again, up to ``retries`` times."""
    for _ in range(retries):
        run = _run_suite(entry, rule, seed, timeout, profile)
        if not (run.report is None and run.rc in (-15, -9)):
            return run
    return _run_suite(entry, rule, seed, timeout, profile)


def _run_suite(entry: Entry, rule: str, seed: int, timeout: float, profile: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="matrix-") as tmp:
        path = os.path.join(tmp, "report.json")
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        # a fresh example database: no failure saved by an earlier run is replayed, so runs are comparable
        env.update(HYPOTHESIS_PROFILE=profile, HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(tmp, "hypothesis"))
        start = time.monotonic()
        try:
            proc = subprocess.run(pytest_command(entry, rule, path, seed), cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=timeout)
            rc, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, output = None, f"did not finish within {timeout:g} s (--timeout)\n" + (
                e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
        seconds = time.monotonic() - start
        report = None
        if os.path.exists(path):
            with open(path) as f:
                report = json.load(f)
    return Run(rule, rc, seconds, report, output)


# ---- classifying a run ----------------------------------------------------------------------------------------------
def _refused(message: str) -> bool:
    """Whether an implementation error's message is a refusal (``adapters.REFUSALS``)."""
    from optimizers.adapters import REFUSALS
    return any(f"raised {e.__name__}" in message for e in REFUSALS)


def _error_category(message: str) -> str:
    """An implementation error: its constructor refusing a hyperparameter value inside the rule's domain (a
    ValueError naming what it accepts, or a failed assert: lion-pytorch's ``assert lr > 0``) is a narrower domain;
    anything else it raised is a crash."""
    if "the constructor" in message and _refused(message):
        return "domain"
    return "crash"


def category(failure: dict) -> str:
    """What a failed test says about the implementation: 'crash', 'domain' (refuses valid hyperparameters),
    'updates', 'side effects' or 'validation' (accepts invalid ones). A Hypothesis group of distinct failures is
    its worst member, read from the message."""
    test = failure["test"].split("::")[-1]
    message = failure.get("message") or ""
    if failure.get("kind") == "implementation error":
        return _error_category(message)
    if test.startswith(VALIDATION_TESTS):
        return "validation"
    if test.startswith(DOMAIN_TESTS):
        return "domain"
    if "distinct failures" in message.split("\n", 1)[0]:
        members = []
        if "does not conform" in message or "does not satisfy" in message:
            members.append("updates")
        if "a failure of the implementation under test" in message:
            members.append("crash" if not _refused(message) or "step()" in message else "domain")
        if "wrote into" in message or "load_state_dict" in message or "changed parameter" in message:
            members.append("side effects")
        return min(members, key=CATEGORIES.index) if members else "updates"
    if test.startswith(SIDE_EFFECT_TESTS) and failure.get("kind") != "trajectory":
        return "side effects"
    if failure.get("ignored group hyperparameters"):   # the updates are the rule's with the constructor's value
        return "side effects"
    if failure.get("torch's known deviations"):   # torch deviates on this case the same way
        return "known deviation"
    return "updates"


#: a float64 counterexample off by at most this relative error (absolute below 1), in a run whose float32
#: trajectories conform, is
#: float32 arithmetic inside float64 parameters (float32's unit roundoff is 6e-8; 20 steps may amplify it)
FLOAT32_LEVEL = 1e-5


def subnormals_only(found: list[dict]) -> None:
    """Re-label as 'subnormals' the update findings when every one of them is a trajectory fed a subnormal value."""
    updates = [f for f in found if f["category"] == "updates"]
    if updates and all(f.get("subnormal inputs") for f in updates):
        for f in updates:
            f["category"] = "subnormals"


def precision_only(found: list[dict]) -> None:
    """Re-label as 'float64 precision' the update findings that are float32 rounding inside float64 parameters:
    every update finding is a float64 trajectory off by at most FLOAT32_LEVEL relative (absolute where the value is
    below 1), and no float32 trajectory
    test failed. (A convention that changes float64 and float32 results alike fails the float32 test too.)"""
    updates = [f for f in found if f["category"] == "updates"]
    if not updates or any(f.get("dtype") != "float64" or f.get("error") is None for f in updates):
        return
    # relative to the value, or absolute below 1: a parameter that a step moves to ~0 keeps the rounding of O(1)
    if any(not f["error"] <= FLOAT32_LEVEL * max(abs(f["expected"]), 1.0) for f in updates):   # NaN is not rounding
        return
    for f in updates:
        f["category"] = "float64 precision"


def findings(report: dict | None, rc: int | None, output: str) -> list[dict]:
    """The run's failures as findings: category, test, what (the message's first line), error and tolerance of the
    shrunk counterexample, its reproducer. A run that produced no report is one 'crash' finding."""
    if report is None or not report.get("implementations"):
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        what = next((ln for ln in lines if ln.startswith(("ERROR:", "pytest: error", "usage error"))), None)
        what = what or (lines[-1] if lines else f"pytest exited with {rc}")
        return [{"category": "crash", "test": "(run)", "what": what.removeprefix("ERROR: ").strip(),
                 "error": None, "tolerance": None, "reproducer": None}]
    imp = report["implementations"][0]
    out = []
    # Hypothesis's distinct failures of one test are findings of their own
    failures = [m for f in imp["failures"] for m in (f.get("members") or [f])]
    for f in failures:
        message = (f.get("message") or "").strip()
        what = message.splitlines()[0] if message else ""
        if f.get("kind") == "trajectory" and f.get("expected") is not None:
            what = (f"θ at step {f['step']} ({f['dtype']}): expected {f['expected']!r}, actual {f['actual']!r} "
                    f"with {', '.join(f'{k}={v!r}' for k, v in (f.get('hyperparameters') or {}).items())}")
        test = f["test"].split("::")[-1]
        out.append({"category": category(f), "test": test.split("[")[0] + _dtype_suffix(test),
                    "what": what, "error": f.get("error"),
                    "max_error": f.get("max_error"), "tolerance": f.get("tolerance"),
                    "reproducer": f.get("reproducer"), "message": message, "dtype": f.get("dtype"),
                    "expected": f.get("expected"), "subnormal inputs": f.get("subnormal inputs"),
                    "torch's known deviations": f.get("torch's known deviations") or []})
    subnormals_only(out)
    precision_only(out)
    return out


def _dtype_suffix(test: str) -> str:
    param = test.partition("[")[2].rstrip("]")
    return f"[{param.rsplit('-', 1)[1]}]" if param.endswith(("-float64", "-float32")) else ""


def verdict(base: list[dict], known: list[dict], variant: str | None) -> str:
    """The row's verdict from the base rule's findings, torch's known deviations, and the variant that explains the
    update-level findings (if one does)."""
    cats = {f["category"] for f in base}
    if "crash" in cats:
        return "crashes"
    if "updates" in cats:
        return "differs by convention" if variant else "differs (updates)"
    if "float64 precision" in cats:
        return "differs by convention" if variant else "differs (float64 precision)"
    if "subnormals" in cats:
        return "differs (subnormals)"
    if known or "known deviation" in cats:
        return "differs (known deviation)"
    if "side effects" in cats:
        return "differs (side effects)"
    if "domain" in cats:
        return "differs (domain)"
    if "validation" in cats:
        return "differs (validation)"
    return "conforms"


def known_deviations(entry: Entry) -> list[dict]:
    """torch's known deviations that concern this built-in subject, each shown on its own example with the
    suite's message and reproducer (run here, in-process: a few milliseconds each)."""
    if entry.library != "torch":
        return []
    from optimizers.builtins import torch_subjects
    from optimizers.known_deviations import DEVIATIONS
    from properties.assertions import NonConformance
    from properties.test_known_deviations import CHECKS
    subject = next(s for s in torch_subjects("cpu") if s.id == entry.name)
    out = []
    for d in DEVIATIONS:
        if not d.concerns(subject):
            continue
        finding = {"category": "known deviation", "test": d.name, "what": d.reason, "link": d.link,
                   "error": None, "tolerance": None, "reproducer": None}
        try:
            CHECKS[d.check](subject, d.example())
        except NonConformance as e:
            finding.update(message=str(e), error=e.details.get("error"), tolerance=e.details.get("tolerance"),
                           max_error=e.details.get("max_error"), reproducer=e.details.get("reproducer"))
        except Exception as e:   # the deviation raises (fused SGD's TypeError): the implementation's error
            finding.update(message=f"{type(e).__name__}: {e}")
        out.append(finding)
    return out


def standalone(entry: Entry, script: str | None) -> str | None:
    """The reproducer with its import of the suite's factory replaced by code that needs only the library."""
    if script is None or entry.mapping is None:
        return script
    from optimizers.loading import reproducer_import
    return script.replace(reproducer_import(entry.spec), ecosystem.standalone_import(entry), 1)


def reproduces(script: str, timeout: float = 300) -> str:
    """Run ``script`` with Python in an empty directory outside the repository: 'yes' when it fails its assertion
    (the difference shows without the suite), else what happened."""
    with tempfile.TemporaryDirectory(prefix="repro-") as tmp:
        path = os.path.join(tmp, "reproduce.py")
        with open(path, "w") as f:
            f.write(script + "\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        try:
            proc = subprocess.run([sys.executable, path], cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"no: did not finish within {timeout:g} s"
    last = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0 and last and last[-1].startswith("AssertionError"):
        return "yes: " + (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode == 0:
        return "no: the assertion held outside the suite: " + (last[-1] if last else "")
    return "no: " + (last[-1] if last else f"exit status {proc.returncode}")


# ---- one row --------------------------------------------------------------------------------------------------------
def library_version(library: str) -> str | None:
    module = LIBRARIES[library]
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def evaluate(entry: Entry, seed: int, timeout: float, profile: str, check_reproducers: bool = True) -> dict:
    """Run ``entry`` against its rule, and against each of its variants while none conforms; classify."""
    row = {"name": entry.name, "library": entry.library, "version": library_version(entry.library), "class": entry.cls,
           "path": entry.path or "default", "rule": entry.rule,
           "mapping": "built-in subject" if entry.mapping is None else entry.mapping.describe(),
           "spec": entry.spec if entry.library != "torch" else entry.name, "claim": entry.claim, "note": entry.note}
    if row["version"] is None:
        return {**row, "verdict": "not run", "reason": f"{LIBRARIES[entry.library]} is not installed "
                "(see requirements-matrix.txt)", "findings": [], "seconds": 0.0}
    base = run_suite(entry, entry.rule, seed, timeout, profile)
    found = findings(base.report, base.rc, base.output)
    known = known_deviations(entry)
    runs = [base]
    conforming_variant = None
    # a variant is tried for update-level findings, and for float64-precision ones (a convention that moves results
    # by little, as where ε is added, looks like precision)
    if any(f["category"] in (*UPDATE_LEVEL, "float64 precision") for f in found):
        for variant in entry.variants:
            run = run_suite(entry, variant, seed, timeout, profile)
            runs.append(run)
            vf = findings(run.report, run.rc, run.output)
            # the variant must leave no update-level finding; where the base left only precision ones, none either
            explains = UPDATE_LEVEL if any(f["category"] in UPDATE_LEVEL for f in found) else \
                (*UPDATE_LEVEL, "float64 precision")
            conforms = run.report is not None and not any(f["category"] in explains for f in vf)
            row.setdefault("variant runs", {})[variant] = [
                {k: f.get(k) for k in ("category", "test", "what", "error", "tolerance", "dtype", "expected")}
                for f in vf]
            if conforms:
                conforming_variant = variant
                row["variant findings"] = _slim(entry, vf, check_reproducers)
                break
    imp = (base.report or {}).get("implementations") or [{}]
    row.update(
        verdict=verdict(found, known, conforming_variant), variant=conforming_variant,
        tried_variants=[r.rule for r in runs[1:]], tests=imp[0].get("tests"), examples=imp[0].get("examples"),
        varied=imp[0].get("varied"), held=imp[0].get("held"), refused=imp[0].get("refused"),
        findings=_slim(entry, found + known, check_reproducers),
        seconds=round(sum(r.seconds for r in runs), 1), exit_status=base.rc)
    return row


def _slim(entry: Entry, found: list[dict], check: bool) -> list[dict]:
    out = []
    for f in found:
        f = dict(f)
        f["reproducer"] = standalone(entry, f.get("reproducer"))
        if check and f["reproducer"]:
            f["reproduces"] = reproduces(f["reproducer"])
        out.append(f)
    return out


# ---- writing the table ----------------------------------------------------------------------------------------------
def deviation(row: dict) -> str:
    errors = [(f.get("max_error") or f.get("error"), f.get("tolerance")) for f in row["findings"]
              if f.get("error") is not None]
    if not errors:
        return ""
    err, tol = max(errors, key=lambda e: float("inf") if e[0] != e[0] else e[0])
    return f"{err:.3g} (tol {tol:.3g})"


def _reruns(data: dict) -> list[dict]:
    """The table's re-runs; the first table's form, a list of rows re-run after a signal ended their run, as one."""
    old = [x for x in data.get("reruns") or [] if isinstance(x, str)]
    return ([{"rows": old, "reason": "their first run was ended by a signal from another process on the shared "
              "machine (same code, same seed)"}] if old else []) + \
        [x for x in data.get("reruns") or [] if isinstance(x, dict)]


def _rerun_line(rerun: dict) -> str:
    how = (f" with `{rerun.get('command', '--only')}`" + (f" on {rerun['date']}" if rerun.get("date") else "")
           + (f" at commit {rerun['commit']}" if rerun.get("commit") else ""))
    spliced = f" (`{COMMAND} --splice DIR`)" if rerun.get("date") else ""
    return f"Re-run{how} and spliced in{spliced}, because {rerun['reason']}: {', '.join(rerun['rows'])}."


def _key(row: dict) -> tuple:
    return row["library"], row["class"], row["path"], row["rule"]


def splice(source: str, into: str, reason: str) -> list[str]:
    """Replace the rows of ``into``/matrix.json that ``source``/matrix.json (a selection's run) holds, note the
    re-run (its command, date, commit and ``reason``) in the table's header, and rewrite both files of ``into``."""
    with open(os.path.join(source, "matrix.json")) as f:
        new = json.load(f)
    with open(os.path.join(into, "matrix.json")) as f:
        data = json.load(f)
    index = {_key(r): i for i, r in enumerate(data["rows"])}
    missing = [f"{r['class']} [{r['path']}]" for r in new["rows"] if _key(r) not in index]
    if missing:
        raise SystemExit(f"{COMMAND}: rows not in {into}/matrix.json: {', '.join(missing)}")
    for r in new["rows"]:
        data["rows"][index[_key(r)]] = r
    names = [f"{r['class']} [{r['path']}]" for r in new["rows"]]
    reruns = [x for x in data.get("reruns") or [] if isinstance(x, dict) or x not in names]
    reruns.append({"rows": names, "date": new["generated"], "commit": new.get("commit"), "command": new["command"],
                   "reason": reason, "suite": new["suite"], "libraries": new["libraries"]})
    data["reruns"] = reruns
    write(data, into)
    return reruns[-1]["rows"]


def header(data: dict) -> list[str]:
    s = data["suite"]
    minutes = data["seconds"] / 60
    return [
        f"Generated {data['generated']}" + (f" at commit {data['commit']}" if data.get("commit") else "")
        + f" by `{data['command']}`, in {minutes:.0f} min (Hypothesis profile '{s['profile']}', "
        f"{s['examples_per_test']} examples per test, seed {s['seed']}; torch {s['torch']}, Python {s['python']}, "
        f"{s['machine']}).",
        "",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in data["libraries"].items() if v) + "."
        + (" Not installed: " + ", ".join(k for k, v in data["libraries"].items() if not v) + "."
           if any(not v for v in data["libraries"].values()) else ""),
        *(line for rerun in _reruns(data) for line in ("", _rerun_line(rerun))),
        "",
        "Each verdict links to its row's detail (every failed test, its message, its standalone reproducer); the "
        "verdicts are defined below the table. *Reason*: the hand assessment of the library's source where there is "
        "one (`optimizers/assessments.py`), else the suite's first finding.",
    ]


def write(data: dict, out_dir: str) -> None:
    """matrix.json, matrix.md and rows/*.md of ``data`` into ``out_dir`` (no absolute path of this machine in any)."""
    from optimizers.assessments import ASSESSMENTS
    from optimizers.matrix_report import assessment_of, markdown, row_detail, row_file, scrub
    rows_dir = os.path.join(out_dir, "rows")
    os.makedirs(rows_dir, exist_ok=True)
    for old in os.listdir(rows_dir):
        if old.endswith(".md"):
            os.remove(os.path.join(rows_dir, old))
    with open(os.path.join(out_dir, "matrix.json"), "w") as f:
        f.write(scrub(json.dumps(data, indent=1, default=str), ROOT))
    with open(os.path.join(out_dir, "matrix.md"), "w") as f:
        f.write(markdown(data, ASSESSMENTS, ROOT, header(data)))
    for r in data["rows"]:
        if r.get("findings"):
            a = assessment_of(r, ASSESSMENTS)
            with open(os.path.join(rows_dir, row_file(r)), "w") as f:
                f.write(row_detail(r, a, ROOT))


# ---- the command ----------------------------------------------------------------------------------------------------
def selected(only: list[str] | None, libraries: list[str] | None) -> list[Entry]:
    from optimizers import ecosystem_modern
    entries = ecosystem.torch_entries() + ENTRIES + ecosystem_modern.ENTRIES + ecosystem.optax_entries()
    if libraries:
        entries = [e for e in entries if e.library in libraries]
    if only:
        entries = [e for e in entries if any(o in f"{e.cls}[{e.path}] {e.name} {e.rule}" for o in only)]
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds one pytest run may take (default 1800: heavyball compiles every new shape)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed of every run (default 0)")
    parser.add_argument("--profile", default="dev", help="Hypothesis profile (default dev: 25 examples per test)")
    parser.add_argument("--library", action="append", choices=sorted(LIBRARIES), help="only this library (repeat)")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="only rows whose class, path, factory or rule contains TEXT (repeat)")
    parser.add_argument("--out", default=None, help="directory for matrix.md and matrix.json (default "
                        "optimizers/results for the whole matrix, matrix-out/ for a selection)")
    parser.add_argument("--no-reproduce", action="store_true", help="don't run the reproducers standalone")
    parser.add_argument("--splice", metavar="DIR", help="run nothing: put the rows of DIR/matrix.json (a selection's "
                        "run) into the committed table (or --out), noting the re-run and --reason in its header")
    parser.add_argument("--reason", help="why the rows were re-run (with --splice)")
    args = parser.parse_args(argv)
    if args.splice:
        if not args.reason:
            parser.error("--splice needs --reason: why the rows were re-run")
        if not os.path.exists(os.path.join(args.splice, "matrix.json")):
            parser.error(f"{args.splice}/matrix.json does not exist: run a selection with --only first")
        rows = splice(args.splice, args.out or RESULTS, args.reason)
        print(f"spliced {len(rows)} rows into {args.out or RESULTS}: {', '.join(rows)}")
        return 0
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs must be >= 1 and --timeout > 0")
    entries = selected(args.only, args.library)
    if not entries:
        parser.error("no row matches --only/--library")
    out_dir = args.out or (RESULTS if not (args.only or args.library) else os.path.join(ROOT, "matrix-out"))

    start = time.monotonic()
    rows: list[dict | None] = [None] * len(entries)
    os.makedirs(out_dir, exist_ok=True)
    partial = os.path.join(out_dir, "matrix.partial.json")   # the rows so far, for a long run; removed at the end
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        # the slowest rows first (heavyball compiles every new shape), so that they overlap with the rest
        order = sorted(range(len(entries)), key=lambda i: entries[i].library != "heavyball")
        futures = {pool.submit(evaluate, entries[i], args.seed, args.timeout, args.profile, not args.no_reproduce): i
                   for i in order}
        for fut in concurrent.futures.as_completed(futures):
            i = futures[fut]
            rows[i] = fut.result()
            r = rows[i]
            print(f"[{sum(x is not None for x in rows)}/{len(rows)}] {r['class']} [{r['path']}] {r['rule']}: "
                  f"{r['verdict']}{' ' + r['variant'] if r.get('variant') else ''} ({r.get('seconds', 0):.0f} s)",
                  flush=True)
            with open(partial, "w") as f:
                json.dump([x for x in rows if x is not None], f, indent=1, default=str)
    import torch
    from hypothesis import settings
    from properties import plugin  # noqa: F401  (registers the profiles)
    data = {
        "generated": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip() or None,
        "command": COMMAND + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "seconds": round(time.monotonic() - start, 1),
        "suite": {"torch": torch.__version__, "python": platform.python_version(), "profile": args.profile,
                  "examples_per_test": settings.get_profile(args.profile).max_examples, "seed": args.seed,
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"},
        "libraries": {lib: library_version(lib) for lib in LIBRARIES},
        "rows": rows,
    }
    os.remove(partial)
    write(data, out_dir)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ORDER}
    print(", ".join(f"{n} {v}" for v, n in counts.items() if n) + f"; {data['seconds']:.0f} s; written to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
