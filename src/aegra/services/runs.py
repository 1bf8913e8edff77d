"""The run service: the one path every run takes, whatever endpoint or cron made it.

create: validate -> write the run with its execution params (one transaction, multitask
rules applied) -> cancel what the strategy displaced -> queue the id. Workers execute it;
``after_finish`` publishes the end of the stream, wakes the thread's next run, deletes a
stateless run's thread and wakes the webhook dispatcher (the delivery itself is written
with the final status). Waiters are pushed the result by the broker, never polled.

Runs are authorized on the *threads* resource (spec/auth.md item 10): create/stream/wait/
batch ``create_run``; get/join/join stream ``read``; cancel ``update``; delete ``delete``;
list ``search``. The filter a handler returns applies to the parent thread inside the
query; a run it hides is NotFound. Workers, the reaper and crons never come through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import trio

from aegra import logs, tracecontext
from aegra.domain.admin import MaintenanceOn
from aegra.domain.assistants import as_uuid, canonical_id, is_system, not_found
from aegra.domain.auth import Caller, Filter, user_dict
from aegra.domain.errors import Draining, NotFound, StoreUnavailable
from aegra.domain.headers import HeaderRules, run_headers
from aegra.domain.interrupt_admission import Mode
from aegra.domain.leases import Expired, exhausted_message
from aegra.domain.ports import (
    AssistantLookup,
    Authorizer,
    CancelBus,
    ClaimedRun,
    EventBroker,
    GraphIds,
    JobQueue,
    Json,
    Outcome,
    RunResult,
    RunStore,
)
from aegra.domain.run_params import build_params as build_params  # re-exported
from aegra.domain.run_params import reserved_sent
from aegra.domain.run_params import stream_modes as stream_modes  # re-exported
from aegra.domain.run_rows import Cancelled, NewRun
from aegra.domain.runs import DEFAULT_MULTITASK, TERMINAL, new_run_id
from aegra.domain.thread_reports import ThreadReports
from aegra.domain.webhook_outbox import WebhookOutbox
from aegra.runtime.registry import RunRegistry
from aegra.services.admin import Maintenance
from aegra.services.run_admission import admit

log = logs.get_logger("aegra.runs")
# (graph_id, thread_id) -> (latest values, interrupts by task, has nodes left to run)
ThreadView = Callable[[str, str], Awaitable[tuple[object, Json, bool]]]
Webhook = Callable[[str, Json], Awaitable[object]]  # (url, payload)
CREATE_S = 30.0  # bound on one run creation: write, displaced runs, queue
Spawn = Callable[..., None]  # start an async function in a supervised nursery


def _unbuilt(assistant: Json) -> Json:
    raise AssertionError("a lookup that only reads the assistant builds no run")


class RunService:
    def __init__(self, *, runs: RunStore, queue: JobQueue, broker: EventBroker,
                 registry: RunRegistry, graphs: GraphIds, cancel_bus: CancelBus | None = None,
                 delete_thread: Callable[[str], Awaitable[None]] | None = None,
                 webhook: Webhook | None = None, spawn: Spawn | None = None,
                 intake_stopped: trio.Event | None = None, poll_s: float = 5.0,
                 auth: Authorizer | None = None, thread_view: ThreadView | None = None
                 ) -> None:
        self.runs = runs
        # None (no authorizer wired): every caller may do everything, as under noop.
        self.auth = auth
        # The graph's view of a thread (GraphRunner.thread_view), to refresh the thread
        # row after a run stopped from outside; None: the row is left as it is.
        self.thread_view = thread_view
        self.queue = queue
        self.broker = broker
        self.registry = registry
        self.graphs = graphs
        self.cancel_bus = cancel_bus
        self.delete_thread = delete_thread
        self.webhook = webhook
        self.spawn = spawn
        self.intake_stopped = intake_stopped
        self.poll_s = poll_s
        # http.configurable_headers: which request headers a run gets (none by default).
        self.header_rules = HeaderRules()
        # The deployment's maintenance switch (wired by the root); None: never on.
        self.maintenance: Maintenance | None = None
        # The webhook outbox (wired by the runtime): the delivery log and redeliver.
        self.webhooks: WebhookOutbox | None = None
        # runs.interrupt_admission and the thread reads it needs (wired by the root).
        self.interrupt_admission: Mode = "allow"
        self.reports: ThreadReports | None = None

    # -- creation -------------------------------------------------------------------------
    def _lookup(self, value: str, build: Callable[[Json], Json] = _unbuilt
                ) -> AssistantLookup:
        """How to find the assistant a run names (an assistant id or a graph id)."""
        return AssistantLookup(assistant_id=canonical_id(self.graphs, value),
                               graph_ids=self.graphs.ids(), missing=not_found(value),
                               build=build)

    async def assistant(self, value: str) -> dict[str, Any]:
        """The assistant a run names, with its metadata: one query (the create path reads
        it inside its own transaction instead)."""
        return await self.runs.assistant(self._lookup(value))

    async def _threads(self, caller: Caller, action: str, value: dict[str, Any]
                       ) -> Filter | None:
        if self.auth is None:
            return None
        return await self.auth.authorize(caller, "threads", action, value)

    async def _assistant_filter(self, caller: Caller, value: str) -> Filter | None:
        """A system assistant may be run by anyone; a user assistant only through the
        caller's ``assistants.read`` filter (spec/auth.md item 12)."""
        assert self.auth is not None
        row = await self.assistant(value)
        if is_system(row.get("metadata")):
            return None
        return await self.auth.authorize(caller, "assistants", "read",
                                         {"assistant_id": as_uuid(row["assistant_id"]),
                                          "metadata": {}})

    async def create(self, caller: Caller, body: dict[str, Any], *, thread_id: str | None,
                     cron_id: str | None = None,
                     headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
                     ) -> dict[str, Any]:
        """Create a run as ``caller``. The ``create_run`` handler may stamp the metadata,
        which the run stores; on an existing thread its filter must hold (else NotFound);
        a thread made for the run (stateless, ``if_not_exists="create"``) gets that
        metadata, so it is the caller's, as on the platform. ``headers``: the request's,
        of which ``http.configurable_headers`` picks what goes into the run's
        ``config.configurable`` (every run-creating endpoint passes them)."""
        if self.intake_stopped is not None and self.intake_stopped.is_set():
            raise Draining("this instance is draining; retry on another instance")
        if self.maintenance is not None and await self.maintenance.on():
            raise MaintenanceOn()  # every run-creating surface comes through here
        dropped = reserved_sent(body)
        if dropped:
            log.warning("run.reserved_keys_dropped", keys=dropped,
                        hint="the server sets these; a client's values are ignored")
        threaded = thread_id is not None
        strategy = body.get("multitask_strategy") or DEFAULT_MULTITASK
        run_id = new_run_id()
        metadata = dict(body.get("metadata") or {})
        thread_filter: Filter | None = None
        assistant_filter: Filter | None = None
        secured = self.auth is not None and self.auth.enabled
        if secured:
            value = {"thread_id": thread_id, "assistant_id": body["assistant_id"],
                     "run_id": run_id, "status": "pending", "metadata": metadata,
                     "kwargs": body, "multitask_strategy": strategy,
                     "if_not_exists": body.get("if_not_exists") or "reject",
                     "after_seconds": body.get("after_seconds") or 0,
                     "prevent_insert_if_inflight": strategy == "reject"}
            thread_filter = await self._threads(caller, "create_run", value)
            stamped = value.get("metadata")
            metadata = dict(stamped) if isinstance(stamped, dict) else {}
            assistant_filter = await self._assistant_filter(caller, body["assistant_id"])
        body = {**body, "metadata": metadata}
        await admit(self.reports, self.interrupt_admission, thread_id, body, headers,
                    thread_filter)
        user = None
        if caller.identity is not None:
            user = caller.user or user_dict(caller.identity, caller.permissions, {})
        copied = run_headers(headers, self.header_rules)
        request_id = logs.request_id.get() if headers is not None else None
        # Set only when tracing is on: the worker continues this request's trace.
        traced = tracecontext.carrier.get()
        lookup = self._lookup(body["assistant_id"], lambda assistant: build_params(
            body, assistant, threaded, user=user, headers=copied, request_id=request_id)
            | ({tracecontext.PARAM: traced} if traced else {}))
        # Shielded, with a bound: a client that goes away while the COMMIT is on the wire
        # must not leave a committed run unqueued until the reaper's stuck-pending rule.
        with trio.move_on_after(CREATE_S, shield=True) as bound:
            created = await self.runs.create_as(NewRun(
                thread_id=thread_id, assistant_id="", graph_id="", params={},  # from lookup
                metadata=metadata,
                multitask_strategy=strategy,
                if_not_exists=body.get("if_not_exists") or "reject",
                after_seconds=float(body.get("after_seconds") or 0), user_id=caller.identity,
                stateless=thread_id is None, cron_id=cron_id, run_id=run_id,
            ), lookup, thread_filter=thread_filter, assistant_filter=assistant_filter,
                thread_metadata=metadata if secured else None)
            await self._apply(created.cancelled)
            run = created.run
            await self.queue.put(run["run_id"], delay_s=float(body.get("after_seconds") or 0))
        if bound.cancelled_caught:
            raise StoreUnavailable(f"creating run {run_id} took over {CREATE_S:g}s; "
                                   "get it before creating it again")
        return run

    # -- a caller's reads, deletes and cancels --------------------------------------------
    async def get_run(self, caller: Caller, thread_id: str, run_id: str) -> dict[str, Any]:
        flt = await self._threads(caller, "read", {"thread_id": thread_id, "run_id": run_id})
        return await self.runs.get(run_id, thread_id, where=flt)

    async def list_runs(self, caller: Caller, thread_id: str, *, limit: int, offset: int,
                        status: str | None) -> list[dict[str, Any]]:
        """A thread's runs, newest first. A thread the caller may not see lists nothing
        (200 ``[]`` on the platform); one that does not exist is NotFound."""
        flt = await self._threads(caller, "search", {
            "thread_id": thread_id, "metadata": {}, "status": status, "limit": limit,
            "offset": offset})
        rows = await self.runs.list(thread_id, limit=limit, offset=offset, status=status,
                                    where=flt)
        if not rows and not await self.runs.thread_visible(thread_id):
            raise NotFound(f"Thread {thread_id} not found")
        return rows

    async def join_run(self, caller: Caller, thread_id: str | None, run_id: str
                       ) -> dict[str, Any] | None:
        """The run to join (``thread_id`` None: by run id alone), or None for a run only
        the broker still knows (a stateless run whose thread went when it finished: with
        a read filter there is no thread left to check it against, so it is NotFound)."""
        flt = await self._threads(caller, "read", {"thread_id": thread_id, "run_id": run_id})
        row = await self.runs.find(run_id, where=flt)
        if row is not None and thread_id in (None, row["thread_id"]):
            return row
        if row is None and flt is None and await self.broker.has(run_id):
            return None
        raise NotFound(f"Run {run_id} not found")

    async def delete_run(self, caller: Caller, thread_id: str, run_id: str) -> None:
        """Delete a run; an in-flight one is cancelled first."""
        flt = await self._threads(caller, "delete", {"thread_id": thread_id, "run_id": run_id})
        row = await self.runs.get(run_id, thread_id, where=flt)
        if row["status"] not in TERMINAL:
            await self.cancel([run_id], "interrupt")
            # Let it settle (final status, end of stream, thread status) before the row
            # goes; a run that will not stop in time is deleted anyway, waiters released.
            with trio.move_on_after(10):
                await self.result(run_id, None)
        await self.runs.delete(thread_id, run_id, where=flt)
        done, _ = await self.broker.result(run_id)
        if not done:
            await self.broker.finish(run_id, {"status": "interrupted", "values": None,
                                              "error": None})

    async def cancel_run(self, caller: Caller, thread_id: str, run_id: str, action: str
                         ) -> dict[str, Any]:
        """Cancel one run (a finished one is left as it is); the row as it was."""
        flt = await self._threads(caller, "update", {
            "thread_id": thread_id, "action": action,
            "metadata": {"run_ids": [run_id], "status": None}})
        row = await self.runs.get(run_id, thread_id, where=flt)
        if row["status"] not in TERMINAL:
            await self.cancel([run_id], action)
        return row

    async def cancel_many(self, caller: Caller, *, thread_id: str | None,
                          run_ids: list[str] | None, status: str | None, action: str) -> None:
        """Cancel the in-flight runs matching every criterion, among those of threads the
        caller may see (``status`` ``all``/None: pending and running)."""
        flt = await self._threads(caller, "update", {
            "thread_id": thread_id, "action": action,
            "metadata": {"run_ids": run_ids, "status": status}})
        ids = await self.runs.inflight(
            thread_id=thread_id, run_ids=run_ids,
            status=None if status in (None, "all") else status, where=flt)
        if ids:
            await self.cancel(ids, action)

    async def thread_stream_start(self, caller: Caller, thread_id: str) -> datetime:
        """For GET /threads/{id}/stream (``read``): the database time from which new runs
        are followed; NotFound when the thread is not there for the caller."""
        flt = await self._threads(caller, "read", {"thread_id": thread_id})
        return await self.runs.stream_start(thread_id, where=flt)

    async def next_runs(self, thread_id: str, after_created: datetime | None,
                        since: datetime) -> list[dict[str, Any]]:
        """The runs a thread stream the caller was allowed to open follows next."""
        return await self.runs.next_runs(thread_id, after_created, since)

    async def find(self, run_id: str) -> dict[str, Any] | None:
        """A run already authorized (or internal): its row as it is now."""
        return await self.runs.find(run_id)

    # -- cancellation ---------------------------------------------------------------------
    async def signal_cancel(self, run_id: str, action: str) -> None:
        """Reach the run's CancelScope, here or (through the bus) on another instance."""
        if self.registry.cancel(run_id, action):
            return
        if self.cancel_bus is not None:
            await self.cancel_bus.publish(run_id, action)
        if self.spawn is not None:
            self.spawn(self._cancel_soon, run_id, action)

    async def _cancel_soon(self, run_id: str, action: str) -> None:
        """A run claimed here a moment ago may not have opened its scope yet (the claim
        commits first): try again briefly rather than leave it to the next heartbeat."""
        for _ in range(20):
            await trio.sleep(0.05)
            if self.registry.cancel(run_id, action):
                return

    async def cancel(self, run_ids: list[str], action: str) -> None:
        await self._apply(await self.runs.request_cancel(run_ids, action))

    async def _apply(self, cancelled: Cancelled) -> None:
        for run_id in cancelled.running:
            await self.signal_cancel(run_id, cancelled.action)
        # Pending runs were settled in the database: end their (empty) streams and waits.
        for run_id in cancelled.settled:
            await self.broker.finish(run_id, {"status": "interrupted", "values": None,
                                              "error": None})

    # -- completion -----------------------------------------------------------------------
    async def after_finish(self, claimed: ClaimedRun, outcome: Outcome,
                           next_run: str | None) -> None:
        if outcome.status in ("interrupted", "timeout") and outcome.cancel_action != "rollback":
            outcome.values = await self._refresh_thread(claimed)
            await self._webhook_values(claimed, outcome.values)
        result = {"status": outcome.status, "values": outcome.values, "error": outcome.error}
        final: list[tuple[str, bytes]] = []
        if outcome.status == "timeout" and outcome.error:
            final.append(("error", _json(outcome.error)))  # the graph never saw it
        final.append(("end", b'{"status":"%s"}' % outcome.status.encode()))
        await self.broker.finish(claimed.run_id, result, tuple(final))
        if next_run is not None:
            await self.queue.put(next_run)
        params = claimed.params
        if claimed.stateless and params.get("on_completion", "delete") == "delete":
            if self.delete_thread is not None:
                await self.delete_thread(claimed.thread_id)
        hook = params.get("webhook")
        if hook and self.webhook is not None:
            # The delivery was written with the final status (the webhook outbox, issue
            # 13): this only wakes the dispatcher, which posts it from the outbox.
            await self.webhook(hook, {"run_id": claimed.run_id})

    async def _webhook_values(self, claimed: ClaimedRun, values: object) -> None:
        """A run stopped from outside: its webhook body gets the thread's latest values
        (as the platform sends), and its delivery, held for them, is released."""
        if not claimed.params.get("webhook") or self.webhooks is None:
            return
        try:
            await self.webhooks.set_values(claimed.run_id, values)
        except Exception as exc:  # the delivery stands, with the values the run had
            log.warning("webhook.values_failed", run_id=claimed.run_id, error=repr(exc))

    async def settled(self, run: Expired, status: str) -> None:
        """The reaper finalized a run whose workers kept dying: end its stream, wake the
        thread's next run."""
        error = None
        if status == "error":
            error = {"error": "RetriesExhausted", "message": exhausted_message(run.retries)}
        row = await self.runs.find(run.run_id)
        final: tuple[tuple[str, bytes], ...] = (("error", _json(error)),) if error else ()
        final += (("end", b'{"status":"%s"}' % status.encode()),)
        await self.broker.finish(run.run_id, {"status": status,
                                              "values": row["output"] if row else None,
                                              "error": error}, final)
        next_run = await self.runs.next_pending(run.thread_id)
        if next_run is not None:
            await self.queue.put(next_run)

    async def _refresh_thread(self, claimed: ClaimedRun) -> object:
        """A run stopped from outside (cancel, timeout) wrote no thread view at finish; as
        on the platform the thread then shows its latest checkpoint, and is
        ``interrupted`` when that checkpoint has nodes left to run. Done before waiters
        and streams are released, so they read the settled thread."""
        if self.thread_view is None:
            return None
        try:
            values, interrupts, paused = await self.thread_view(
                claimed.params["graph_id"], claimed.thread_id)
            await self.runs.refresh_thread(claimed.thread_id, values, interrupts, paused)
        except Exception as exc:  # the run's outcome stands; the thread view is a cache
            log.warning("thread.refresh_failed", thread_id=claimed.thread_id, error=repr(exc))
            return None
        return values

    async def result(self, run_id: str, row: dict[str, Any] | None) -> RunResult:
        """Block until the run ends; its final status, values and error."""
        if row is None:
            # Called again after each long-poll keepalive (every keepalive_s, which can be
            # <= poll_s): without a look first, the database check below never ran when
            # no broker pushes the end (a run on another process without Redis).
            row = await self.runs.find(run_id)
        while True:
            if row is not None and row["status"] in TERMINAL:
                done, result = await self.broker.result(run_id)
                if done and result is not None:
                    return result
                return {"status": row["status"], "values": row["output"],
                        "error": row["error"]}
            # Pushed: the broker wakes us when the run ends. The database check every
            # poll interval is only a safety net (Redis down, a lost completion marker).
            with trio.move_on_after(self.poll_s):
                result = await self.broker.wait_done(run_id)
                if result is not None:
                    return result
            row = await self.runs.find(run_id)
            if row is None:
                done, result = await self.broker.result(run_id)
                if done and result is not None:
                    return result
                return {"status": "interrupted", "values": None, "error": None}


def _json(value: object) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


def wait_payload(result: dict[str, Any]) -> object:
    """What /wait and /join return: the final values, or ``__error__`` (HTTP 200)."""
    if result.get("status") in ("error", "timeout") and result.get("error"):
        return {"__error__": result["error"]}
    values = result.get("values")
    return values if values is not None else {}
