"""SQL and connections of the logical backup (``aegra export`` / ``aegra import``),
synchronous psycopg.

Rows travel as PostgreSQL's own ``to_jsonb(row)`` text and come back through
``jsonb_populate_record``, so every column type round-trips through its own text form
(timestamps at full precision, jsonb untouched, pgvector as ``[..]``) and a column a
later migration adds is carried without code here. ``bytea`` is the exception: base64,
a third smaller than ``to_jsonb``'s hex. Python never parses a row: export writes the
text it reads, import sends a batch of lines as one jsonb array.

Export reads in one REPEATABLE READ READ ONLY transaction (one snapshot, safe next to
a running deployment) through server-side cursors, so memory stays flat.
Import runs in one transaction: a failure leaves the target as it was.

Driver errors leave this module as ``DatabaseError`` (same message) and alembic's
refusals as ``CannotMigrate``, so ``aegra.backup`` never imports a driver.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

OnConflict = Literal["error", "skip", "overwrite"]
FETCH_ROWS = 500


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    # An owner's children follow its fate: skipped with it, replaced with it.
    children: tuple[tuple[str, str], ...] = ()  # (child table, column naming the owner)
    owner: tuple[str, str] | None = None  # (owner table, column), on a child
    optional: bool = False  # may be missing on either side (pgvector's table)
    # Rows that may already exist without being a conflict: made again by every boot.
    boot_made: str | None = None


# Export order is import order: owners before children, FK targets before referrers.
TABLES: tuple[Table, ...] = (
    Table("assistant", ("assistant_id",),
          children=(("assistant_versions", "assistant_id"),),
          boot_made="""metadata @> '{"created_by": "system"}'"""),
    Table("assistant_versions", ("assistant_id", "version"),
          owner=("assistant", "assistant_id")),
    Table("thread", ("thread_id",), children=(
        ("checkpoints", "thread_id"), ("checkpoint_blobs", "thread_id"),
        ("checkpoint_writes", "thread_id"))),
    Table("checkpoints", ("thread_id", "checkpoint_ns", "checkpoint_id"),
          owner=("thread", "thread_id")),
    Table("checkpoint_blobs", ("thread_id", "checkpoint_ns", "channel", "version"),
          owner=("thread", "thread_id")),
    Table("checkpoint_writes", ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id",
                                "idx"), owner=("thread", "thread_id")),
    Table("store", ("prefix", "key")),
    Table("store_vectors", ("prefix", "key", "field_name"), optional=True),
    Table("crons", ("cron_id",)),
)
BY_NAME = {t.name: t for t in TABLES}

# Runs are not carried, so a thread caught mid-run would stay "busy" for ever.
_ROW_FIXUP = {"thread": "|| jsonb_build_object('status', CASE WHEN t.status = 'busy' "
                        "THEN 'idle' ELSE t.status END)"}


class Conflict(Exception):
    """A row of the file already exists in the target (on_conflict="error")."""


class DatabaseError(Exception):
    """The database refused or failed; ``str()`` is psycopg's message."""


class CannotMigrate(Exception):
    """alembic refused to migrate the target (e.g. it is ahead of this aegra)."""


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseError(str(exc)) from exc


@contextmanager
def snapshot(dsn: str) -> Iterator[Snapshot]:
    """A ``Snapshot`` of the database at ``dsn``, closed on exit."""
    with _mapped(), Snapshot(dsn) as snap:
        yield snap


def migrate(dsn: str) -> tuple[str, bool]:
    """Migrate ours and LangGraph's tables as a booting server would: (our head revision,
    whether anything ran)."""
    from alembic.util import CommandError

    from aegra.adapters.langgraph.schema import ensure_langgraph_tables
    from aegra.adapters.postgres import migrate as ours

    try:
        with _mapped():
            _, head, ran = ours.ensure_migrated(dsn)
            return head, ensure_langgraph_tables(dsn) or ran
    except CommandError as exc:
        raise CannotMigrate(str(exc)) from exc


@contextmanager
def loading(dsn: str, on_conflict: OnConflict) -> Iterator[Loader]:
    """A ``Loader`` in one transaction: committed when the block ends, rolled back when it
    raises."""
    with _mapped(), psycopg.connect(dsn, autocommit=False) as conn:
        yield Loader(conn, on_conflict)
        conn.commit()


def columns(conn: psycopg.Connection[Any], table: str) -> dict[str, str] | None:
    """Column name -> type name, in table order; None when the table does not exist."""
    rows = conn.execute(
        """SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (table,)).fetchall()
    return {r[0]: r[1] for r in rows} or None


def revisions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Our alembic revision and LangGraph's migration counters, for the file's header."""
    out: dict[str, Any] = {}
    for name, query in (("schema_revision", "SELECT version_num FROM alembic_version"),
                        ("checkpoint_migrations", "SELECT max(v) FROM checkpoint_migrations"),
                        ("store_migrations", "SELECT max(v) FROM store_migrations")):
        row = conn.execute(query).fetchone()
        out[name] = row[0] if row else None
    return out


class Snapshot:
    """One consistent read of every table: a REPEATABLE READ READ ONLY transaction."""

    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=False)
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self._conn.read_only = True

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.rollback()  # read only: nothing to keep
        self._conn.close()

    def header(self) -> dict[str, Any]:
        return revisions(self._conn)  # the transaction's first statement fixes the snapshot

    def tables(self) -> list[tuple[Table, dict[str, str]]]:
        found = [(t, columns(self._conn, t.name)) for t in TABLES]
        return [(t, cols) for t, cols in found if cols is not None]

    def count(self, table: Table) -> int:
        row = self._conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))).fetchone()
        return int(row[0]) if row else 0

    def rows(self, table: Table, cols: dict[str, str]) -> Iterator[str]:
        """Each row as one line of JSON text, in primary-key order (stable files)."""
        extra = [sql.SQL("|| jsonb_build_object({}, translate(encode(t.{}, 'base64'), "
                         "E'\\n', ''))").format(sql.Literal(c), sql.Identifier(c))
                 for c, typ in cols.items() if typ == "bytea"]
        if table.name in _ROW_FIXUP:
            extra.append(sql.SQL(_ROW_FIXUP[table.name]))  # type: ignore[arg-type]
        query = sql.SQL("SELECT (to_jsonb(t) {})::text FROM {} t ORDER BY {}").format(
            sql.SQL(" ").join(extra), sql.Identifier(table.name),
            sql.SQL(", ").join(sql.Identifier("t", k) for k in table.key))
        with self._conn.cursor(name=f"export_{table.name}") as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(query)
            for (line,) in cur:
                yield line


@dataclass
class Loader:
    """Inserts batches of row lines inside one transaction; the caller commits."""

    conn: psycopg.Connection[Any]
    on_conflict: OnConflict
    skipped: dict[str, set[str]] = field(default_factory=dict)  # owner table -> ids

    def prepare(self, table: Table, file_cols: Sequence[str]) -> sql.Composed | None:
        """The statement loading ``table``; None when an optional table is missing here."""
        target = columns(self.conn, table.name)
        if target is None:
            if table.optional:
                return None
            raise ValueError(f"table {table.name} is missing: is the database migrated?")
        unknown = [c for c in file_cols if c not in target]
        if unknown:
            raise ValueError(f"table {table.name} here has no column {', '.join(unknown)} "
                             "(the file was made by a newer aegra?)")
        picks = [sql.SQL("decode(e.j->>{}, 'base64') AS {}").format(
                    sql.Literal(c), sql.Identifier(c)) if target[c] == "bytea"
                 else sql.Identifier("p", c) for c in file_cols]
        src = sql.SQL("SELECT {} FROM jsonb_array_elements(%(rows)s::jsonb) e(j) "
                      "CROSS JOIN LATERAL jsonb_populate_record(NULL::{}, e.j) p").format(
            sql.SQL(", ").join(picks), sql.Identifier(table.name))
        if table.owner:
            src += sql.SQL(" WHERE NOT (p.{} = ANY(%(skip)s))").format(
                sql.Identifier(table.owner[1]))
        names = sql.SQL(", ").join(sql.Identifier(c) for c in file_cols)
        insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM src").format(
            sql.Identifier(table.name), names, names)
        return sql.SQL("WITH src AS ({}) ").format(src) + insert + self._tail(table, file_cols)

    def _tail(self, table: Table, file_cols: Sequence[str]) -> sql.Composable:
        key = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
        rest = [c for c in file_cols if c not in table.key]
        if self.on_conflict == "overwrite" and rest:
            sets = sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(
                sql.Identifier(c), sql.Identifier(c)) for c in rest)
            tail: sql.Composable = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                key, sets)
        elif self.on_conflict != "error" or table.children:
            tail = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(key)
        else:
            return sql.SQL("")
        if table.children:  # report what went in: the rest was skipped
            tail += sql.SQL(" RETURNING {}").format(sql.Identifier(table.key[0]))
        return tail

    def load(self, table: Table, statement: sql.Composed, lines: list[str]) -> int:
        """Insert one batch; returns the rows written (skipped ones excluded)."""
        rows = "[" + ",".join(lines) + "]"
        if table.children:
            return self._load_owners(table, statement, rows)
        params: dict[str, Any] = {"rows": rows}
        if table.owner:
            params["skip"] = list(self.skipped.get(table.owner[0], ()))
        try:
            cur = self.conn.execute(statement, params)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(_detail(exc)) from None
        return max(cur.rowcount, 0)

    def _load_owners(self, table: Table, statement: sql.Composed, rows: str) -> int:
        ids = [r[0] for r in self.conn.execute(sql.SQL(
            "SELECT e.j->>{} FROM jsonb_array_elements(%s::jsonb) e(j)").format(
                sql.Literal(table.key[0])), (rows,))]
        if self.on_conflict == "error":
            self._refuse_existing(table, ids)
        if self.on_conflict == "overwrite":
            for child, col in table.children:
                self.conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                    sql.Identifier(child), sql.Identifier(col)), (ids,))
        written = {r[0] for r in self.conn.execute(statement, {"rows": rows})}
        self.skipped.setdefault(table.name, set()).update(set(ids) - written)
        return len(written)

    def _refuse_existing(self, table: Table, ids: list[str]) -> None:
        query = sql.SQL("SELECT {k} FROM {t} x WHERE {k} = ANY(%s)").format(
            k=sql.Identifier(table.key[0]), t=sql.Identifier(table.name))
        if table.boot_made:
            query += sql.SQL(" AND NOT ({})").format(sql.SQL(table.boot_made))
        found = [r[0] for r in self.conn.execute(query + sql.SQL(" LIMIT 1"), (ids,))]
        if found:
            raise Conflict(f"{table.name} {found[0]} already exists")


def _detail(exc: psycopg.errors.UniqueViolation) -> str:
    detail = exc.diag.message_detail or str(exc)
    return f"{exc.diag.table_name or 'a row'}: {' '.join(detail.split())}"
