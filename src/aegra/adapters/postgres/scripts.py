"""Where the migration scripts are, and their head, without importing alembic.

``aegra doctor`` only needs the head revision; alembic (and SQLAlchemy under it) costs
the short command more than all its queries. The scripts are plain files with
``revision = "…"`` / ``down_revision = "…"`` lines: the head is the one revision no other
script revises. Anything this reading cannot settle (a merge, two heads) returns None,
and the caller asks alembic. ``tests/unit/test_doctor.py`` pins it to alembic's answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import aegra

_REVISION = re.compile(r"""^(down_)?revision\s*(?::[^=\n]*)?=\s*["']([^"']+)["']""",
                       re.MULTILINE)


def script_location() -> Path:
    """The installed package's scripts (wheel), else the source tree's (editable
    install); never the working directory."""
    packaged = Path(aegra.__file__).parent / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    source = Path(__file__).resolve().parents[4] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise RuntimeError("aegra migration scripts not found (broken install?)")


def read_head() -> str | None:
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (script_location() / "versions").glob("*.py"):
        for down, rev in _REVISION.findall(path.read_text()):
            (revised if down else revisions).add(rev)
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None
