"""What reading each library's source showed about a row whose updates differ from its rule: the verdict a user can
act on (``optimizers/matrix_report.TAXONOMY``), the one-line reason, and for a *likely bug* the offending upstream
line, at the version pinned in ``requirements-matrix.txt``. Keyed by the row's class (``optimizers/ecosystem.py``)
or its entry's name (``optimizers/ecosystem_modern.py``). Hand-verified: each line was read at that version."""
from __future__ import annotations

ASSESSMENTS: dict[str, dict] = {}
