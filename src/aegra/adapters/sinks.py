"""The local sinks of one shared subscription connection, by channel.

The Redis fanout (``redis/fanout.py``) and the PostgreSQL listener (``postgres/listen.py``)
each hold one pub/sub connection per instance and hand every message to the callbacks
registered for its channel. Both follow the rule kept here: a sink is registered *before*
its subscription is confirmed, so nothing sent after the confirmation is missed; it is
forgotten when confirming fails or its caller is cancelled, since a sink left behind would
outlive its caller (and every retry would add one); the last sink leaving a channel drops
the channel, which its owner then unsubscribes.

Sinks are plain callbacks, called in Trio's thread by the owner's reader.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)  # channel name
P = TypeVar("P")  # payload


def _nothing(_channel: object) -> None:
    pass


class SinkRegistry(Generic[C, P]):
    def __init__(self, on_drop: Callable[[C], object] = _nothing) -> None:
        self._sinks: dict[C, set[Callable[[P], None]]] = {}
        self._on_drop = on_drop  # called when a channel's last sink left

    def __contains__(self, channel: object) -> bool:
        return channel in self._sinks

    def __len__(self) -> int:
        return len(self._sinks)

    def channels(self) -> list[C]:
        return list(self._sinks)

    @contextmanager
    def registering(self, channel: C, sink: Callable[[P], None]) -> Iterator[bool]:
        """Register ``sink``; yields whether the channel had no sink before. When the block
        raises (the subscription failed, the caller was cancelled) ``sink`` is forgotten."""
        sinks = self._sinks.setdefault(channel, set())
        first = not sinks
        sinks.add(sink)
        registered = False
        try:
            yield first
            registered = True
        finally:
            if not registered:
                self.forget(channel, sink)

    def forget(self, channel: C, sink: Callable[[P], None]) -> bool:
        """Drop ``sink``; True when it was the channel's last one (the channel is gone)."""
        sinks = self._sinks.get(channel)
        if sinks is None:
            return False
        sinks.discard(sink)
        if sinks:
            return False
        del self._sinks[channel]
        self._on_drop(channel)
        return True

    def deliver(self, channel: C, payload: P) -> None:
        for sink in list(self._sinks.get(channel, ())):
            sink(payload)

    def broadcast(self, payload: P) -> None:
        for sinks in list(self._sinks.values()):
            for sink in list(sinks):
                sink(payload)
