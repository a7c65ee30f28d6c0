"""Run docs/examples/conformance.yml's steps here, as a user's CI would: outside the checkout, in a fresh virtual
environment, on docs/examples/my_adam.py.

    python -m benchmarks.ci_recipe [--keep]

A temporary directory holds the user's repository (my_adam.py alone), a new virtual environment (what
``actions/setup-python`` gives) and the steps' work. The workflow's ``env`` values are used as written, except
``SUITE`` (this checkout's path, which pip installs as it would the repository's URL) and ``TORCH_INDEX`` (this
machine's package index), with torch held at the version this machine has on disk (``PIP_CONSTRAINT``: a newer one
from the registry would bring several GB of CUDA packages). Each ``run:`` block runs with bash in the user's
repository with ``GITHUB_WORKSPACE`` set to it. Prints each step's time and exit status and the verdict the report
gives; exits 1 unless every step passed and report.json names a verdict.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "conformance.yml"
EXAMPLE = ROOT / "docs" / "examples" / "my_adam.py"
LOCAL_INDEX = "file:///opt/pypi/simple"
TORCH_HERE = "2.13.0"   # requirements.txt's pin: the CPU wheel on disk


def workflow(text: str) -> tuple[dict, list[tuple[str, str]]]:
    """The workflow's top-level env (NAME: value) and its run steps (name, script), read from its own lines."""
    env, steps, name = {}, [], None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"^  ([A-Z_]+): (\S+)", line):
            env[m[1]] = m[2]
        elif m := re.match(r"^\s+- name: (.+)", line):
            name = m[1]
        elif re.match(r"^\s+run: \|", line):
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            body = []
            while i + 1 < len(lines) and (not lines[i + 1].strip() or lines[i + 1].startswith(" " * indent)):
                i += 1
                body.append(lines[i][indent:])
            steps.append((name or "run", "\n".join(body).strip()))
            name = None
        i += 1
    return env, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ci_recipe", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    env_values, steps = workflow(WORKFLOW.read_text())
    tmp = Path(tempfile.mkdtemp(prefix="conformance-ci-"))
    user = tmp / "repository"
    user.mkdir()
    shutil.copy(EXAMPLE, user / EXAMPLE.name)
    start = time.perf_counter()
    venv.create(tmp / "venv", with_pip=True)
    print(f"virtual environment: {time.perf_counter() - start:.1f} s")
    constraints = tmp / "constraints.txt"
    constraints.write_text(f"torch=={TORCH_HERE}\n")
    env = {**os.environ, **env_values, "SUITE": str(ROOT), "TORCH_INDEX": LOCAL_INDEX, "GITHUB_WORKSPACE": str(user),
           "PATH": f"{tmp / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(tmp / "venv"),
           "PIP_CONSTRAINT": str(constraints)}
    env.pop("PYTHONPATH", None)
    ok = True
    for name, script in steps:
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-e", "-c", script], cwd=user, env=env, capture_output=True, text=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        print(f"{name}: exit {proc.returncode}, {time.perf_counter() - t0:.1f} s" + "".join(f"\n    {t}" for t in tail))
        ok &= proc.returncode == 0
    report = user / "report.json"
    verdicts = {}
    if report.exists():
        data = json.loads(report.read_text())
        verdicts = {i.get("id"): i.get("verdict") for i in data.get("implementations", [])}
    print(f"verdict: {verdicts or 'no report.json'}; in all {time.perf_counter() - start:.1f} s (directory {tmp})")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok and verdicts else 1


if __name__ == "__main__":
    sys.exit(main())
