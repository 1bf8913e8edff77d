"""What a thread occupies and whether it waits on a question: the reads behind
``GET /threads/{id}/storage`` and interrupt-safe admission. Pure: the port and the
response shape.

The storage report is the platform's ``ThreadStorage``: bytes as stored (after
PostgreSQL's compression) of the checkpoint rows, the channel values (one row per channel
version, also per channel) and the pending writes, with their sum. Every namespace of the
thread counts (subgraph checkpoints included), so it is what deleting the thread frees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from aegra.domain.auth import Filter
from aegra.domain.errors import DomainError

Json = dict[str, Any]


class StorageUnreported(DomainError):
    """501, as the platform answers when its checkpointer cannot report storage."""

    status = 501
    kind = "not_implemented"


class ThreadReports(Protocol):
    async def interrupt_state(self, thread_id: str, *, where: Filter | None = None
                              ) -> tuple[str, Json] | None:
        """``(status, interrupts by task)`` of the thread row; None when there is no row
        the caller may see (admission then leaves the verdict to run creation)."""
        ...

    async def storage(self, thread_id: str, *, where: Filter | None = None) -> Json:
        """The ``ThreadStorage`` report; NotFound when the caller may not see the thread."""
        ...


def storage_report(thread_id: str, checkpoints: tuple[int, int],
                   channels: Iterable[tuple[str, int, int]], writes: tuple[int, int]
                   ) -> Json:
    """``checkpoints``/``writes``: (rows, bytes); ``channels``: (channel, versions, bytes)."""
    by_channel = {name: {"versions": versions, "bytes": size}
                  for name, versions, size in channels}
    value_bytes = sum(c["bytes"] for c in by_channel.values())
    values = {"count": sum(c["versions"] for c in by_channel.values()),
              "bytes": value_bytes, "by_channel": by_channel}
    return {
        "thread_id": thread_id,
        "total_bytes": checkpoints[1] + value_bytes + writes[1],
        "checkpoints": {"count": checkpoints[0], "bytes": checkpoints[1]},
        "channel_values": values,
        "pending_writes": {"count": writes[0], "bytes": writes[1]},
    }
