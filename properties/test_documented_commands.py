"""Every pytest command in the README's and docs/'s fenced shell blocks runs as written: each one whose names all
exist in this checkout (not a placeholder such as ``my_pkg`` or ``path/to``) is collected by the suite in-process,
and must exit 0 — the command line, the SPEC and the rule file all accepted, where a mistake would exit 4 with one
line. Collection, not the whole run: the runs themselves are measured in docs/measurements.md."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from properties.test_bad_input import _torch_imported, run_suite  # noqa: F401 (the fixture pytester runs need)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "measurements.md")]
#: words that mark a command as a template for the reader's own names, not one to run here
PLACEHOLDERS = ("my_pkg", "path/to", "ssh=", "MyAdam", "FILE", "SPEC", "RULE")


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for each pytest command line in a fenced bash block, comments and continuations joined."""
    out = []
    for doc in DOCUMENTS:
        fenced = False
        for line in doc.read_text().replace("\\\n", " ").splitlines():
            if line.startswith("```"):
                fenced = not fenced
                continue
            line = line.split(" #")[0].strip()
            if fenced and re.match(r"(python -m )?pytest\b", line):
                out.append((doc.relative_to(ROOT).as_posix(), line))
    return out


COMMANDS = documented_commands()


def test_the_documents_have_pytest_commands():
    assert len(COMMANDS) >= 8 and any(doc == "README.md" for doc, _ in COMMANDS), COMMANDS


@pytest.mark.parametrize("doc, command", [c for c in COMMANDS if not any(w in c[1] for w in PLACEHOLDERS)],
                         ids=lambda x: x if "/" not in x or " " in x else x.split("/")[-1])
def test_documented_command_runs_as_written(pytester, monkeypatch, tmp_path, doc, command):
    """Collected as written, but with ``-n auto`` as ``-n 0`` (no worker processes to start for a collection) and
    the files it would write (``*.json``) in a temporary directory."""
    args = shlex.split(command)
    args = args[3:] if args[0] == "python" else args[1:]
    args = ["0" if a == "auto" else re.sub(r"[\w./-]+\.json$", lambda m: str(tmp_path / Path(m[0]).name), a)
            for a in args]
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)   # the command runs as a reader runs it, not in a worker
    result = run_suite(pytester, monkeypatch, [*args, "--collect-only", "-q"])
    assert result.ret == 0, (f"{doc}: `{command}` exits {result.ret} when collected:\n"
                             + "\n".join(result.errlines[-5:] + result.outlines[-5:]))
