"""Agent Protocol v2 thread event streams: every run of a thread, as protocol events.

A stream follows the thread's runs in order and reads each from the same broker and
replay buffer as the v1 run streams (``EventBroker.subscribe``), converting at the edge
(``domain.protocol_events``): a subscriber on one instance sees a run executing on
another. Each run is read from its first event so the conversion, and with it every
``seq`` and ``event_id``, is the same on every connection; ``since`` then only decides
what is sent.

Which runs: with ``since``, the run its cursor points into and every later one (finished
runs replay from their buffers). Without, the runs in flight or created up to
``RECENT_S`` before the client connected (a run started just before its watcher
connected must not be missed) and every later one; a thread that does not exist yet
(clients mint the id) is followed from its first run. The stream ends after ``idle_s``
with nothing left to follow. Opening it is a ``read`` of the thread; one the caller may
not see is NotFound, one that does not exist is accepted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import trio

from aegra.domain.auth import Caller
from aegra.domain.errors import NotFound
from aegra.domain.ports import StreamEvent, Subscription
from aegra.domain.protocol_events import ProtocolEvent, RunConverter
from aegra.domain.protocol_filter import Filter, envelope, matches, position_of, seq_of
from aegra.domain.runs import TERMINAL
from aegra.services.runs import RunService

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECENT_S = 30.0
MAX_BATCH = 256  # v1 events converted per write when a reader is behind
Batch = list[dict[str, Any]]


def frame_data(frame: bytes) -> bytes:
    """The ``data:`` payload of one stored SSE frame (``event/data/id`` lines)."""
    start = frame.index(b"\ndata: ") + 7
    return frame[start:frame.index(b"\nid: ", start)]


class ThreadEvents:
    def __init__(self, runs: RunService, *, idle_s: float = 30.0, poll_s: float = 0.25
                 ) -> None:
        self.runs = runs
        self.idle_s = idle_s
        self.poll_s = poll_s

    async def open(self, caller: Caller, thread_id: str) -> datetime | None:
        """Authorize the stream (``read``): the database time it starts at, or None for
        a thread that does not exist yet. NotFound for one the caller may not see."""
        try:
            return await self.runs.thread_stream_start(caller, thread_id)
        except NotFound:
            if await self.runs.runs.thread_visible(thread_id):
                raise  # it exists: hidden from this caller
            return None

    async def positions(self, thread_id: str) -> list[dict[str, Any]]:
        """Every run of the thread, oldest first: a run's index is its position."""
        return await self.runs.next_runs(thread_id, None, EPOCH)

    async def _listed(self, thread_id: str, after: tuple[datetime, str] | None,
                      after_pos: int) -> tuple[list[dict[str, Any]], int]:
        """The runs to look at next and the position of the first: all of them until
        one was followed, then only those from its creation time on (runs created in
        one statement share it), so a long thread is not read whole on every poll."""
        if after is None:
            return await self.positions(thread_id), 0
        listed = await self.runs.next_runs(thread_id, after[0] - timedelta(microseconds=1),
                                           EPOCH)
        upto = sum(1 for r in listed if (r["created_at"], str(r["run_id"])) <= after)
        return listed, after_pos + 1 - upto

    async def events(self, thread_id: str, flt: Filter, start: datetime | None, *,
                     keepalive_s: float) -> AsyncGenerator[Batch | None, None]:
        """Batches of event envelopes for the filter; None when ``keepalive_s`` passed
        with nothing to send (the transport's cue for a keepalive)."""
        cutoff = None
        if flt.since is None and start is not None:
            cutoff = start - timedelta(seconds=RECENT_S)
        min_pos = position_of(flt.since) if flt.since is not None else 0
        after: tuple[datetime, str] | None = None
        after_pos = -1
        waited = since_beat = 0.0
        while True:
            runs, base = await self._listed(thread_id, after, after_pos)
            found = _next_run(runs, base, after, cutoff, min_pos)
            if found is not None:
                pos, run = found
                after, after_pos = (run["created_at"], str(run["run_id"])), pos
                async with aclosing(self._run(pos, run, flt, keepalive_s)) as batches:
                    async for batch in batches:
                        yield batch
                waited = since_beat = 0.0
                continue
            if waited >= self.idle_s:
                return
            await trio.sleep(self.poll_s)
            waited += self.poll_s
            since_beat += self.poll_s
            if since_beat >= keepalive_s:
                since_beat = 0.0
                yield None

    async def _run(self, pos: int, run: dict[str, Any], flt: Filter, keepalive_s: float
                   ) -> AsyncGenerator[Batch | None, None]:
        run_id = str(run["run_id"])
        emit = _Emitter(run_id, pos, flt)
        conv = RunConverter()
        broker = self.runs.broker
        if run["status"] in TERMINAL and not await broker.has(run_id):
            yield emit(conv.synthetic(run["status"]))  # its events expired
            return
        last = 0
        while not conv.ended:
            sub = await broker.subscribe(run_id, last)
            try:
                async with aclosing(_read(sub, conv, emit, keepalive_s)) as read:
                    async for batch in read:
                        if isinstance(batch, int):
                            last = batch
                        else:
                            yield batch
            finally:
                with trio.move_on_after(5, shield=True):
                    await sub.aclose()
            if conv.ended or sub.lagged:
                continue  # a reader cut off for lagging resumes after its last event
            # Ended without ``end`` (the broker lost it): the row says how the run ended.
            row = await self.runs.find(run_id)
            status = row["status"] if row is not None else "error"
            if status in TERMINAL:
                yield emit(conv.synthetic(status))
                return
            await trio.sleep(self.poll_s)  # still running: look again, without spinning


async def _read(sub: Subscription, conv: RunConverter, emit: _Emitter, keepalive_s: float
                ) -> AsyncGenerator[Batch | int | None, None]:
    """Converted batches, None for a keepalive, and after each batch the last v1 seq
    read (an int) so a lagging reader can resubscribe after it."""
    while True:
        event: StreamEvent | None = None
        ended = False
        with trio.move_on_after(keepalive_s):
            try:
                event = await sub.__anext__()
            except StopAsyncIteration:
                ended = True
        if ended:
            return
        if event is None:
            yield None
            continue
        events = [event]
        while len(events) < MAX_BATCH:
            try:
                events.append(sub.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        converted: list[ProtocolEvent] = []
        for ev in events:
            converted.extend(conv.feed(ev.name, _decode(frame_data(ev.frame))))
        batch = emit(converted)
        if batch:
            yield batch
        yield events[-1].seq


def _decode(data: bytes) -> object:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


class _Emitter:
    """Numbers a run's protocol events (all of them: ``seq`` is absolute) and keeps the
    ones the filter wants past ``since``."""

    def __init__(self, run_id: str, pos: int, flt: Filter) -> None:
        self.run_id = run_id
        self.pos = pos
        self.flt = flt
        self.k = 0

    def __call__(self, events: list[ProtocolEvent]) -> Batch:
        out: Batch = []
        now = int(time.time() * 1000)
        since = self.flt.since
        for event in events:
            self.k += 1
            seq = seq_of(self.pos, self.k)
            if since is not None and seq <= since:
                continue
            if matches(self.flt, event):
                out.append(envelope(seq, f"{self.run_id}:{self.k}", event, now))
        return out


def _next_run(runs: list[dict[str, Any]], base: int, after: tuple[datetime, str] | None,
              cutoff: datetime | None, min_pos: int) -> tuple[int, dict[str, Any]] | None:
    """The first run to follow in ``runs`` (the first at position ``base``)."""
    for i, run in enumerate(runs):
        pos = base + i
        key = (run["created_at"], str(run["run_id"]))
        if pos < min_pos or (after is not None and key <= after):
            continue
        if (after is None and cutoff is not None and run["status"] in TERMINAL
                and run["created_at"] < cutoff):
            continue  # finished before this client connected
        return pos, run
    return None
