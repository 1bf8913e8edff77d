"""In-memory EventBroker: per-run replay buffer + live fan-out (single instance).

Producers run on the asyncio side of the bridge but in Trio's thread, so ``emit`` appends
and delivers synchronously: a subscriber registers and snapshots the buffer in one step
with no await in between, which makes replay-then-live exact (no gap, no duplicate).
Each subscriber reads through a bounded channel; one that falls ``max_lag`` events behind
is cut off (its iterator ends with ``lagged``) and may resume with Last-Event-ID, so a slow
reader never grows server memory. Finished runs keep their buffer ``retention_s``.
The buffer itself keeps a run's newest ``max_events`` events and ``max_bytes`` bytes
(at least the newest event); a subscriber asking for dropped ones first gets a notice
saying how many (``domain/replay.py``). Thread-level events go straight to the sinks
listening on the thread when published; none is kept.
"""

from __future__ import annotations

import itertools
from collections import deque

import trio

from aegra.domain.ports import Producer, RunResult, StreamEvent, ThreadHandle, ThreadSink
from aegra.domain.replay import dropped_notice
from aegra.domain.runs import sse_frame


class _Log:
    __slots__ = ("events", "dropped", "size", "subscribers", "done", "done_event", "result",
                 "expires")

    def __init__(self) -> None:
        self.events: deque[StreamEvent] = deque()
        self.dropped = 0  # events trimmed off the front: events[0].seq == dropped + 1
        self.size = 0  # bytes of the frames in ``events``
        self.subscribers: set[MemorySubscription] = set()
        self.done = False
        self.done_event = trio.Event()
        self.result: RunResult | None = None
        self.expires: float | None = None


class MemorySubscription:
    def __init__(self, log: _Log, max_lag: int) -> None:
        self._log = log
        self._send, self._recv = trio.open_memory_channel[StreamEvent](max_lag)
        self.lagged = False

    def _deliver(self, event: StreamEvent) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.lagged = True
            self._close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _close(self) -> None:
        self._log.subscribers.discard(self)
        self._send.close()

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> StreamEvent:
        # The channel's own ``__anext__``, not an async generator: ``sse.run_events`` times
        # out each wait for the next event to send keepalives, and a cancelled wait inside
        # a generator's frame finishes the generator, which ended every stream quiet for
        # longer than the keepalive interval without its `end` (and cancelled the run of
        # an on_disconnect=cancel stream). A cancelled ``receive`` loses nothing.
        return await self._recv.__anext__()

    def receive_nowait(self) -> StreamEvent:
        return self._recv.receive_nowait()

    async def aclose(self) -> None:
        self._close()
        await self._recv.aclose()


class MemoryProducer:
    """Asyncio-side handle of one run's stream (sync ``emit``)."""

    def __init__(self, broker: MemoryBroker, run_id: str) -> None:
        self._broker = broker
        self.run_id = run_id

    def emit(self, name: str, data: bytes) -> None:
        self._broker.emit(self.run_id, name, data)

    async def aclose(self) -> None:
        return None


class MemoryBroker:
    def __init__(self, *, max_lag: int = 2048, retention_s: float = 3600.0,
                 max_events: int = 10_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._logs: dict[str, _Log] = {}
        self.max_lag = max_lag
        self.retention_s = retention_s
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._thread_sinks: dict[str, list[ThreadHandle]] = {}

    def _log(self, run_id: str) -> _Log:
        log = self._logs.get(run_id)
        if log is None:
            self._expire()
            log = self._logs[run_id] = _Log()
        return log

    def _expire(self) -> None:
        now = trio.current_time()
        for run_id in [r for r, log in self._logs.items()
                       if log.expires is not None and log.expires < now]:
            del self._logs[run_id]

    def producer(self, run_id: str) -> MemoryProducer:
        return MemoryProducer(self, run_id)

    def emit(self, run_id: str, name: str, data: bytes) -> None:
        log = self._log(run_id)
        seq = log.dropped + len(log.events) + 1
        event = StreamEvent(seq, name, sse_frame(run_id, seq, name, data))
        log.events.append(event)
        log.size += len(event.frame)
        if len(log.events) > self.max_events or log.size > self.max_bytes:
            self._trim(log)
        for sub in list(log.subscribers):
            sub._deliver(event)

    def _trim(self, log: _Log) -> None:
        while len(log.events) > 1 and (len(log.events) > self.max_events
                                       or log.size > self.max_bytes):
            log.size -= len(log.events.popleft().frame)
            log.dropped += 1

    async def subscribe(self, run_id: str, after_seq: int) -> MemorySubscription:
        log = self._log(run_id)
        start = max(0, after_seq - log.dropped)
        sub = MemorySubscription(log, self.max_lag + 1 + max(0, len(log.events) - start))
        notice = dropped_notice(run_id, after_seq, log.dropped + 1)
        if notice is not None:
            sub._deliver(notice)
        for event in itertools.islice(log.events, start, None):
            sub._deliver(event)
        if log.done:
            sub._send.close()
        else:
            log.subscribers.add(sub)
        return sub

    healthy = True  # nothing to lose: the in-memory broker is always reachable

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def touch(self, run_ids: list[str]) -> None:
        """Nothing to keep alive: a live run's buffer never expires here."""

    async def drain(self, producer: Producer) -> None:
        """Wait until everything a producer emitted is published (nothing to wait for)."""

    async def has(self, run_id: str) -> bool:
        """Whether the run published anything or ended, as Redis answers: a log made only
        by a subscriber or a waiter does not count."""
        log = self._logs.get(run_id)
        return log is not None and (log.done or bool(log.events) or log.dropped > 0)

    async def finish(self, run_id: str, result: RunResult,
                     final: tuple[tuple[str, bytes], ...] = ()) -> None:
        """Append ``final`` events, mark the run done with its result; subscribers end."""
        for name, data in final:
            self.emit(run_id, name, data)
        log = self._log(run_id)
        log.done = True
        log.result = result
        log.expires = trio.current_time() + self.retention_s
        for sub in list(log.subscribers):
            sub._close()
        log.done_event.set()

    async def reset(self, run_id: str) -> None:
        """A run about to execute again (requeued): it is live again, events continue."""
        log = self._logs.get(run_id)
        if log is not None and log.done:
            log.done = False
            log.done_event = trio.Event()
            log.expires = None

    async def result(self, run_id: str) -> tuple[bool, RunResult | None]:
        log = self._logs.get(run_id)
        if log is None or not log.done:
            return False, None
        return True, log.result

    async def wait_done(self, run_id: str) -> RunResult | None:
        log = self._log(run_id)
        await log.done_event.wait()
        return log.result

    def known(self, run_id: str) -> bool:
        return run_id in self._logs

    async def publish_thread(self, thread_id: str, name: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()  # a publish is a suspension point, as on Redis
        for sink in list(self._thread_sinks.get(thread_id, ())):
            sink(name, data)

    async def listen_thread(self, thread_id: str, sink: ThreadSink) -> ThreadHandle:
        self._thread_sinks.setdefault(thread_id, []).append(sink)
        return sink

    async def unlisten_thread(self, thread_id: str, handle: ThreadHandle) -> None:
        sinks = self._thread_sinks.get(thread_id, [])
        if handle in sinks:
            sinks.remove(handle)
        if not sinks:
            self._thread_sinks.pop(thread_id, None)
