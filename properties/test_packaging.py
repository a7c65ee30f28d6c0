"""The installed layout (``setup.py``): every module of the four packages, rewritten as ``pip install`` writes it,
names the suite's modules only under ``optimizer_conformance`` — in its imports and in the module names it writes as
strings (SPECs, plugin names) — so that an installed suite neither shadows nor imports a user's own ``reference``,
``optimizers``, ``properties`` or ``benchmarks``. (Installing it into a fresh environment and running it from an
empty directory is ``python -m benchmarks.ci_recipe``, in docs/measurements.md.)"""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup():
    spec = importlib.util.spec_from_file_location("suite_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # defines rewrite() and sources(); builds nothing (not run as __main__)
    return module


SETUP = _setup()


def _top_level_names(tree: ast.AST) -> list[str]:
    """The top-level names of the modules the code imports, and of the module paths its strings hold (a word such
    as ``optimizers.template:GD`` or ``-m benchmarks.report``; not a path, nor a sentence's last word)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out += re.findall(r"(?<![\w./-])(\w+)\.[A-Za-z_]", node.value)
    return [n.split(".")[0] for n in out]


@pytest.mark.parametrize("path", SETUP.sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_installed_module_names_the_suite_only_under_its_package(path):
    tree = ast.parse(SETUP.rewrite(path.read_text(encoding="utf-8")))
    clashing = sorted({n for n in _top_level_names(tree) if n in SETUP.PACKAGES})
    assert not clashing, f"{path.relative_to(ROOT)}, installed, still names {clashing} at the top level"


def test_rewrite_keeps_other_names_and_paths():
    assert SETUP.rewrite("from reference.rules import ADAM") == "from optimizer_conformance.reference.rules import ADAM"
    assert SETUP.rewrite('"optimizers.template:GD"') == '"optimizer_conformance.optimizers.template:GD"'
    for unchanged in ("import referenced", '"properties/test_trajectory.py"', "from reference_impl import x",
                      "the reference rule"):
        assert SETUP.rewrite(unchanged) == unchanged
