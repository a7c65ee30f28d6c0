"""``optimizer-conformance --optimizer SPEC --rule RULE [pytest options]``: the suite's tests run by pytest from
wherever the suite is, installed or in a clone (``python -m properties.cli`` there)."""
from __future__ import annotations

import sys

import pytest


def main(argv: list[str] | None = None) -> int:
    package = __name__.rpartition(".")[0]
    return int(pytest.main(["--pyargs", package, *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
