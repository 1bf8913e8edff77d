"""Run event streams in PostgreSQL (issue 11, no Redis): the writes and reads.

``aegra_run_streams`` holds one row per run: the last sequence number, how many of the
oldest events were trimmed (``dropped``), the bytes kept, and once the run ended its
result. ``aegra_run_events`` holds the kept SSE frames, numbered. Both are UNLOGGED:
replay buffers are worthless after a crash (the run's result stays in ``runs``).

An append is one transaction: bump the stream row (its row lock orders concurrent
appends of one run), insert the numbered frames, trim past the caps (newest
``max_events`` events and ``max_bytes`` bytes, at least the newest event, as the other
brokers), NOTIFY ``aegra_run`` with ``<run_id> <last_seq>`` and the events themselves
where they fit (``notices``: a reader at the batch's start needs no query). NOTIFY is
delivered at commit, so a reader woken by it always finds the rows. A finish adds its
final events, marks the row done with the result and notifies ``<run_id>`` (no sequence
number: every reader must re-read to see the end). Rows of runs untouched for the
retention are deleted a few at a time by later finishes and touches.
"""

from __future__ import annotations

import asyncpg
import msgspec

from aegra.domain.ports import StreamEvent
from aegra.domain.runs import sse_frame

CHANNEL = "aegra_run"
PAGE = 256  # events per read: a subscriber holds at most this many in memory
_ROOM = 7000  # bytes of events per NOTIFY payload (PostgreSQL's limit: 8000 in all)
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(list[tuple[str, str]])

_BUMP = """
INSERT INTO aegra_run_streams AS s (run_id, last_seq) VALUES ($1, $2)
ON CONFLICT (run_id) DO UPDATE SET last_seq = s.last_seq + $2, touched_at = now()
RETURNING last_seq, dropped
"""
_INSERT = """
INSERT INTO aegra_run_events (run_id, seq, name, frame)
SELECT $1, first + i - 1, names[i], frames[i]
FROM (SELECT $2::bigint AS first, $3::text[] AS names, $4::bytea[] AS frames) v,
     generate_subscripts(v.names, 1) AS i
"""
_TRIM = """
WITH ranked AS (
    SELECT seq, row_number() OVER w AS n, sum(octet_length(frame)) OVER w AS tail
    FROM aegra_run_events WHERE run_id = $1 WINDOW w AS (ORDER BY seq DESC)
), gone AS (
    DELETE FROM aegra_run_events e USING ranked r
    WHERE e.run_id = $1 AND e.seq = r.seq AND r.n > 1 AND (r.n > $2 OR r.tail > $3)
    RETURNING e.seq, octet_length(e.frame) AS bytes
)
UPDATE aegra_run_streams SET dropped = greatest(dropped, (SELECT max(seq) FROM gone)),
                             size = size - (SELECT coalesce(sum(bytes), 0) FROM gone)
WHERE run_id = $1 AND EXISTS (SELECT 1 FROM gone)
"""
_DONE = """
INSERT INTO aegra_run_streams AS s (run_id, done, result) VALUES ($1, true, $2)
ON CONFLICT (run_id) DO UPDATE SET done = true, result = $2, touched_at = now()
"""
_EXPIRE = """
DELETE FROM aegra_run_streams WHERE run_id IN (
    SELECT run_id FROM aegra_run_streams
    WHERE touched_at < now() - make_interval(secs => $1) LIMIT 20)
RETURNING run_id
"""


async def append(conn: asyncpg.Connection, run_id: str, items: list[tuple[str, bytes]],
                 max_events: int, max_bytes: int) -> int:
    """Number, store and announce ``items`` (inside the caller's transaction, if any);
    returns the last sequence number."""
    async with conn.transaction():
        last, dropped = await conn.fetchrow(_BUMP, run_id, len(items))
        first = last - len(items) + 1
        frames = [sse_frame(run_id, first + i, name, data)
                  for i, (name, data) in enumerate(items)]
        total = await conn.fetchval(
            "UPDATE aegra_run_streams SET size = size + $2 WHERE run_id = $1 RETURNING size",
            run_id, sum(len(f) for f in frames))
        await conn.execute(_INSERT, run_id, first, [n for n, _ in items], frames)
        if last - dropped > max_events or total > max_bytes:
            await conn.execute(_TRIM, run_id, max_events, max_bytes)
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL,
                           notices(run_id, first, items))
    return int(last)


def notices(run_id: str, first: int, items: list[tuple[str, bytes]]) -> list[str]:
    """The NOTIFY payloads announcing events ``first``.. of ``items``: ``<run_id> <last>``,
    then, after a newline, the events themselves as JSON ``[[name, data], ...]`` when they
    fit (chunked under PostgreSQL's 8000-byte limit), so a reader that is at ``first - 1``
    needs no query. An event that fits no payload is announced bare: readers query."""
    out: list[str] = []
    chunk: list[bytes] = []
    size = 0

    def flush(last: int) -> None:
        nonlocal size
        if chunk:
            out.append(f"{run_id} {last}\n[{b','.join(chunk).decode()}]")
            chunk.clear()
            size = 0

    for seq, (name, data) in enumerate(items, first):
        try:
            piece = _ENCODER.encode((name, data.decode()))
        except UnicodeDecodeError:  # NOTIFY payloads are text
            piece = b""
        if not piece or len(piece) > _ROOM:
            flush(seq - 1)
            out.append(f"{run_id} {seq}")
            continue
        if size + len(piece) + 1 > _ROOM:
            flush(seq - 1)
        chunk.append(piece)
        size += len(piece) + 1
    flush(first + len(items) - 1)
    return out


def inline(run_id: str, last: int, body: str) -> list[StreamEvent]:
    """The events a payload of ``notices`` carries (``body``: the part after the newline)."""
    pairs = _DECODER.decode(body)
    first = last - len(pairs) + 1
    return [StreamEvent(seq, name, sse_frame(run_id, seq, name, data.encode()))
            for seq, (name, data) in enumerate(pairs, first)]


async def finish(conn: asyncpg.Connection, run_id: str, result: bytes,
                 final: list[tuple[str, bytes]], max_events: int, max_bytes: int) -> None:
    async with conn.transaction():
        if final:
            await append(conn, run_id, final, max_events, max_bytes)
        await conn.execute(_DONE, run_id, result)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, run_id)


async def expire(conn: asyncpg.Connection, retention_s: float) -> int:
    """Delete a few streams untouched for the retention, with their events."""
    gone = [r["run_id"] for r in await conn.fetch(_EXPIRE, retention_s)]
    if gone:
        await conn.execute("DELETE FROM aegra_run_events WHERE run_id = ANY($1)", gone)
    return len(gone)


async def read(conn: asyncpg.Connection, run_id: str, after_seq: int
               ) -> tuple[int, bool, list[StreamEvent]]:
    """(events dropped from the front, run done, up to ``PAGE`` events after
    ``after_seq``). The stream row is read first: a done seen there means the final
    events were committed before the second statement's snapshot."""
    row = await conn.fetchrow(
        "SELECT dropped, done FROM aegra_run_streams WHERE run_id = $1", run_id)
    if row is None:
        return 0, False, []
    rows = await conn.fetch(
        "SELECT seq, name, frame FROM aegra_run_events WHERE run_id = $1 AND seq > $2"
        " ORDER BY seq LIMIT $3", run_id, after_seq, PAGE)
    events = [StreamEvent(r["seq"], r["name"], bytes(r["frame"])) for r in rows]
    # A full page: more may follow, so the end is not reached yet.
    return int(row["dropped"]), bool(row["done"]) and len(rows) < PAGE, events
