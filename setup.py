"""How the suite installs (``pip install <checkout or wheel>``): its packages under one top-level package,
``optimizer_conformance``, so that they cannot shadow a user's own ``reference``, ``optimizers``, ``properties`` or
``benchmarks``; the suite's absolute imports of them (and the module names it writes in strings: specs, plugin
names) are rewritten to it as the files are copied. A clone runs the same files from its top level, unchanged.
pyproject.toml holds the metadata and the ``pytest11`` entry point.
"""
import pathlib
import re

from setuptools import setup
from setuptools.command.build_py import build_py

TOP = "optimizer_conformance"
PACKAGES = ("reference", "optimizers", "properties", "benchmarks")
_NAMES = "|".join(PACKAGES)
# a package imported by its name alone: ``from properties import report``, ``import reference``
_IMPORT = re.compile(rf"(?:(?<=\\n)|\b)(from|import)(\s+)({_NAMES})(?=\s)")
# a module path anywhere (imports, SPECs, plugin names, ``-m`` commands), not a part of a longer name or path
_MODULE = re.compile(rf"(?:(?<=\\n)|(?<![\w./-]))({_NAMES})\.(?=[A-Za-z_])")


def rewrite(source: str) -> str:
    """``from reference.x import y`` → ``from optimizer_conformance.reference.x import y``; ``"optimizers.template:GD"``
    → ``"optimizer_conformance.optimizers.template:GD"``; ``from properties import report`` → ``from
    optimizer_conformance.properties import report``. Paths (``properties/test_x.py``) and other names stay."""
    return _MODULE.sub(rf"{TOP}.\1.", _IMPORT.sub(rf"\1\2{TOP}.\3", source))


ROOT = pathlib.Path(__file__).resolve().parent
INIT = f'"""The optimizer conformance suite, installed: python -m pytest --pyargs {TOP}.properties --optimizer SPEC --rule RULE."""\n'


def sources() -> list[pathlib.Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py")) if "__pycache__" not in p.parts]


class BuildPy(build_py):
    """Writes the packages' Python files under ``optimizer_conformance/``, rewritten (setuptools' own build_py would
    look for an ``optimizer_conformance`` directory, which the repository does not have)."""

    def run(self):
        self.written = []
        out = pathlib.Path(self.build_lib) / TOP
        out.mkdir(parents=True, exist_ok=True)
        (out / "__init__.py").write_text(INIT, encoding="utf-8")
        self.written.append(str(out / "__init__.py"))
        for path in sources():
            target = out / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
            self.written.append(str(target))

    def get_outputs(self, include_bytecode=1):
        return list(getattr(self, "written", []))

    def get_source_files(self):
        return [str(p.relative_to(ROOT)) for p in sources()]


if __name__ == "__main__":   # pip's build runs this file as __main__; properties/test_packaging.py imports it
    setup(packages=[TOP], cmdclass={"build_py": BuildPy})
