"""``aegra export`` / ``aegra import``: the backup file and the progress lines.

The file is JSON lines (gzip when its name ends in ``.gz``; import detects gzip by its
magic bytes), streamed both ways so a large database is never held in memory::

    {"@": "aegra-backup", "version": 1, "schema_revision": "0004", ...}   header
    {"@": "table", "name": "thread", "columns": ["thread_id", ...]}        one per table
    {"thread_id": "...", "status": "idle", ...}                             its rows
    {"@": "end", "counts": {"thread": 3, ...}}                               trailer

No table has a column named ``@``, so control lines and rows never collide. The trailer
makes a truncated file a refusal instead of a partial restore. SQL and connections live
in ``aegra.adapters.postgres.backup``; see docs/backup.md.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aegra.adapters.postgres import backup as pg

FORMAT = "aegra-backup"
VERSION = 1
PROGRESS_EVERY = 10_000  # rows between progress lines of one table
BATCH_ROWS = 500
BATCH_BYTES = 8 << 20  # a batch is one jsonb parameter: bound its size too

Say = Callable[[str], None]
OnConflict = pg.OnConflict


class BackupError(Exception):
    """Export or import refused or failed; the message is one line for the operator."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@contextmanager
def _writer(path: Path, zipped: bool) -> Iterator[IO[str]]:
    if zipped:
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
            yield fh
    else:
        with path.open("w", encoding="utf-8") as fh:
            yield fh


@contextmanager
def _reader(path: Path) -> Iterator[IO[str]]:
    with path.open("rb") as probe:
        zipped = probe.read(2) == b"\x1f\x8b"
    if zipped:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield fh
    else:
        with path.open(encoding="utf-8") as fh:
            yield fh


def _control(kind: str, **fields: object) -> str:
    return json.dumps({"@": kind, **fields}, default=str) + "\n"


def export(dsn: str, out: Path, say: Say) -> dict[str, int]:
    """Write every table of the backup to ``out`` from one snapshot; returns row counts.

    Written next to ``out`` and renamed at the end, so ``out`` is whole or absent.
    """
    partial = out.with_name(out.name + ".partial")
    counts: dict[str, int] = {}
    try:
        with pg.snapshot(dsn) as snap, _writer(partial, out.name.endswith(".gz")) as fh:
            fh.write(_control(kind=FORMAT, version=VERSION, **snap.header(),
                              exported_at=datetime.now(UTC).isoformat()))
            for table, cols in snap.tables():
                total = snap.count(table)
                fh.write(_control(kind="table", name=table.name, columns=list(cols)))
                n = 0
                for line in snap.rows(table, cols):
                    fh.write(line + "\n")
                    n += 1
                    if n % PROGRESS_EVERY == 0:
                        say(f"export {table.name}: {n}/{total} rows")
                counts[table.name] = n
                say(f"export {table.name}: {n} rows")
            fh.write(_control(kind="end", counts=counts))
        partial.replace(out)
    except (pg.DatabaseError, OSError) as exc:
        raise BackupError(f"export failed: {_one_line(exc)}") from None
    finally:  # also on Ctrl-C: no stray partial file
        partial.unlink(missing_ok=True)
    return counts


def read_header(path: Path, fh: IO[str]) -> dict[str, Any]:
    """The header line, or a refusal naming what is wrong with the file."""
    try:
        head = json.loads(fh.readline())
    except (ValueError, UnicodeDecodeError, OSError, EOFError):
        head = None
    if not isinstance(head, dict) or head.get("@") != FORMAT:
        raise BackupError(f"{path} is not an aegra backup file")
    if head.get("version") != VERSION:
        raise BackupError(f"{path} has backup format version {head.get('version')!r}; "
                          f"this aegra reads version {VERSION}")
    return head


def import_(dsn: str, path: Path, on_conflict: OnConflict, say: Say) -> dict[str, int]:
    """Load ``path`` into the database at ``dsn`` in one transaction; returns rows written.

    The database is migrated first (ours and LangGraph's tables), as a booting server
    would. Any refusal or failure rolls the whole import back.
    """
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    with _reader(path) as fh:
        read_header(path, fh)
        try:
            head, ran = pg.migrate(dsn)
            with pg.loading(dsn, on_conflict) as loader:
                written = _load(loader, fh, say)
            if ran:  # said last: a refusal stays one line
                say(f"import: migrated the database to {head} first")
        except pg.CannotMigrate as exc:  # e.g. the database is ahead of this aegra
            raise BackupError(f"cannot migrate the database: {_one_line(exc)}") from None
        except pg.Conflict as exc:
            raise BackupError(f"{exc}: nothing imported (use --skip-existing or "
                              "--overwrite)") from None
        except (pg.DatabaseError, ValueError, KeyError, TypeError, OSError,
                EOFError) as exc:
            raise BackupError(f"import failed, nothing imported: {_one_line(exc)}") from None
    return written


class _Batch:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def add(self, line: str) -> bool:
        """Append; True when the batch is full."""
        self.lines.append(line)
        self.size += len(line)
        return len(self.lines) >= BATCH_ROWS or self.size >= BATCH_BYTES

    def take(self) -> list[str]:
        lines, self.lines, self.size = self.lines, [], 0
        return lines


def _load(loader: pg.Loader, fh: IO[str], say: Say) -> dict[str, int]:
    table: pg.Table | None = None
    statement = None
    seen: dict[str, int] = {}
    written: dict[str, int] = {}
    batch = _Batch()

    def flush() -> None:
        if table is None or not batch.lines:
            return
        lines = batch.take()
        if statement is not None:
            written[table.name] = written.get(table.name, 0) + loader.load(
                table, statement, lines)
        n = seen[table.name]
        if n % PROGRESS_EVERY < len(lines) and n >= PROGRESS_EVERY:
            say(f"import {table.name}: {n} rows")

    for lineno, raw in enumerate(fh, start=2):
        line = raw.rstrip("\n")
        if not line.startswith('{"@"'):
            if table is None:
                raise BackupError(f"line {lineno}: a row before any table header")
            seen[table.name] += 1
            if batch.add(line):
                flush()
            continue
        flush()
        if table is not None:
            _done(table, seen, written, statement is not None, say)
        ctl = json.loads(line)
        if ctl["@"] == "end":
            _check_counts(ctl.get("counts"), seen)
            return written
        if ctl["@"] != "table" or ctl.get("name") not in pg.BY_NAME:
            raise BackupError(f"line {lineno}: unknown section {ctl.get('name', ctl['@'])!r}")
        table = pg.BY_NAME[ctl["name"]]
        statement = loader.prepare(table, ctl["columns"])
        seen[table.name] = 0
    raise BackupError("the file is truncated (no end line): nothing imported")


def _done(table: pg.Table, seen: dict[str, int], written: dict[str, int], loaded: bool,
          say: Say) -> None:
    if not loaded:
        say(f"import {table.name}: {seen[table.name]} rows SKIPPED: no such table here "
            "(boot a server with the same store.index config first to keep them)")
        return
    n, w = seen[table.name], written.get(table.name, 0)
    say(f"import {table.name}: {w} rows" + (f" ({n - w} existing skipped)" if w < n else ""))


def _check_counts(counts: object, seen: dict[str, int]) -> None:
    if counts != seen:
        raise BackupError(f"the file is damaged: row counts {seen} do not match its "
                          f"trailer {counts}; nothing imported")
