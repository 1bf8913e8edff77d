"""CancelBus on PostgreSQL NOTIFY ``aegra_cancel`` (payload ``<run_id> <action>``).

The Redis-less twin of ``RedisCancelBus`` (issue 11): the request is persisted in
``runs.cancel_action`` before it is published, so a listener that (re)connects re-reads
it (``on_resync``) and the heartbeater sees it in its lease statement; a lost
notification costs latency, never the cancel.
"""

from __future__ import annotations

from collections.abc import Callable

from aegra import logs
from aegra.adapters.postgres.listen import RESYNC, PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.errors import StoreUnavailable

log = logs.get_logger("aegra.postgres.cancel")
CHANNEL = "aegra_cancel"


class PgCancelBus:
    def __init__(self, pg: PgPool, listener: PgListener) -> None:
        self.pg = pg
        self.listener = listener

    async def publish(self, run_id: str, action: str) -> None:
        try:
            await self.pg.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{run_id} {action}")
        except StoreUnavailable as exc:  # persisted already: the heartbeater delivers it
            log.warning("cancel.publish_failed", run_id=run_id, error=exc.message)

    async def listen(self, on_cancel: Callable[[str, str], None],
                     on_resync: Callable[[], None]) -> Callable[[str], None]:
        """Returns the sink (pass it to ``stop``); ``StoreUnavailable`` when the LISTEN
        connection is down."""
        def sink(payload: str) -> None:
            if payload == RESYNC:
                on_resync()
                return
            run_id, _, action = payload.partition(" ")
            on_cancel(run_id, action or "interrupt")
        await self.listener.listen(CHANNEL, sink)
        return sink

    async def stop(self, sink: Callable[[str], None]) -> None:
        await self.listener.unlisten(CHANNEL, sink)
