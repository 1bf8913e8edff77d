"""The run service: the one path every run takes, whatever endpoint or cron made it.

create: validate -> write the run with its execution params (one transaction, multitask
rules applied) -> cancel what the strategy displaced -> queue the id. Workers execute it;
``after_finish`` publishes the end of the stream, wakes the thread's next run, deletes a
stateless run's thread and delivers the webhook. Waiters are pushed the result by the
broker, never polled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio

from aegra import logs
from aegra.adapters.postgres.runs import ASSISTANT_FOR_RUN, AssistantLookup, NewRun, PgRuns
from aegra.domain.errors import Draining, Invalid
from aegra.domain.ports import ClaimedRun, Outcome
from aegra.domain.runs import STREAM_MODES, TERMINAL
from aegra.runtime.registry import RunRegistry

log = logs.get_logger("aegra.runs")


class RunService:
    def __init__(self, *, runs: PgRuns, queue: Any, broker: Any, registry: RunRegistry,
                 pg: Any, graphs: Any, cancel_bus: Any = None,
                 delete_thread: Callable[[str], Awaitable[None]] | None = None,
                 webhook: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
                 spawn: Callable[..., None] | None = None,
                 intake_stopped: Any = None, poll_s: float = 5.0) -> None:
        self.runs = runs
        self.queue = queue
        self.broker = broker
        self.registry = registry
        self.pg = pg
        self.graphs = graphs
        self.cancel_bus = cancel_bus
        self.delete_thread = delete_thread
        self.webhook = webhook
        self.spawn = spawn
        self.intake_stopped = intake_stopped
        self.poll_s = poll_s

    # -- creation -------------------------------------------------------------------------
    def _lookup(self, value: str, build: Any = None) -> AssistantLookup:
        """How to find the assistant a run names (an assistant id or a graph id)."""
        from aegra.adapters.postgres.assistants import canonical_id, not_found

        return AssistantLookup(assistant_id=canonical_id(self.graphs, value),
                               graph_ids=self.graphs.ids(), missing=not_found(value),
                               build=build)

    async def assistant(self, value: str) -> dict[str, Any]:
        """The assistant a run names: one query (the create path reads it inside its
        own transaction instead)."""
        lookup = self._lookup(value)
        row = await self.pg.fetchrow(ASSISTANT_FOR_RUN, lookup.assistant_id,
                                     lookup.graph_ids)
        if row is None:
            raise lookup.missing
        return row

    async def create(self, body: dict[str, Any], *, thread_id: str | None,
                     user_id: str | None = None, cron_id: str | None = None) -> dict[str, Any]:
        if self.intake_stopped is not None and self.intake_stopped.is_set():
            raise Draining("this instance is draining; retry on another instance")
        threaded = thread_id is not None
        lookup = self._lookup(body["assistant_id"],
                              lambda assistant: build_params(body, assistant, threaded))
        created = await self.runs.create(NewRun(
            thread_id=thread_id, assistant_id="", graph_id="", params={},  # from lookup
            metadata=body.get("metadata") or {},
            multitask_strategy=body.get("multitask_strategy") or "reject",
            if_not_exists=body.get("if_not_exists") or "reject",
            after_seconds=float(body.get("after_seconds") or 0), user_id=user_id,
            stateless=thread_id is None, cron_id=cron_id,
        ), lookup)
        await self._apply(created.cancelled)
        run = created.run
        await self.queue.put(run["run_id"], delay_s=float(body.get("after_seconds") or 0))
        return run

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

    async def _apply(self, cancelled: Any) -> None:
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
        result = {"status": outcome.status, "values": outcome.values, "error": outcome.error}
        final: list[tuple[str, bytes]] = []
        if outcome.status == "timeout" and outcome.error:
            final.append(("error", _json(outcome.error)))  # the graph never saw it
        final.append(("end", b'{"status":"%s"}' % outcome.status.encode()))
        await self.broker.finish(claimed.run_id, result, tuple(final))
        if next_run is not None:
            await self.queue.put(next_run)
        params = claimed.params
        hook = params.get("webhook") if self.webhook and self.spawn else None
        # Read before a stateless thread (and its runs) is deleted.
        row = await self.runs.find(claimed.run_id) if hook else None
        if claimed.stateless and params.get("on_completion", "delete") == "delete":
            if self.delete_thread is not None:
                await self.delete_thread(claimed.thread_id)
        if hook and self.webhook is not None and self.spawn is not None:
            self.spawn(self.webhook, hook, webhook_payload(claimed, outcome, row))

    async def settled(self, run: Any, status: str) -> None:
        """The reaper finalized a run whose workers kept dying: end its stream, wake the
        thread's next run."""
        error = None
        if status == "error":
            from aegra.domain.leases import exhausted_message

            error = {"error": "RetriesExhausted", "message": exhausted_message(run.retries)}
        row = await self.runs.find(run.run_id)
        final = (("error", _json(error)),) if error else ()
        final += (("end", b'{"status":"%s"}' % status.encode()),)
        await self.broker.finish(run.run_id, {"status": status,
                                              "values": row["output"] if row else None,
                                              "error": error}, final)
        next_run = await self.runs.next_pending(run.thread_id)
        if next_run is not None:
            await self.queue.put(next_run)

    async def _refresh_thread(self, claimed: ClaimedRun) -> Any:
        """A run stopped from outside (cancel, timeout) wrote no thread view at finish; as
        on the platform the thread then shows its latest checkpoint, and is
        ``interrupted`` when that checkpoint has nodes left to run. Done before waiters
        and streams are released, so they read the settled thread."""
        from aegra.adapters.langgraph.runner import LangGraphRunner

        try:
            values, interrupts, paused = await LangGraphRunner(self.graphs).thread_view(
                claimed.params["graph_id"], claimed.thread_id)
            await self.runs.refresh_thread(claimed.thread_id, values, interrupts, paused)
        except Exception as exc:  # the run's outcome stands; the thread view is a cache
            log.warning("thread.refresh_failed", thread_id=claimed.thread_id, error=repr(exc))
            return None
        return values

    async def result(self, run_id: str, row: dict[str, Any] | None) -> dict[str, Any]:
        """Block until the run ends; its final status, values and error."""
        while True:
            if row is not None and row["status"] in TERMINAL:
                done, result = await self.broker.result(run_id)
                if done:
                    return result  # type: ignore[no-any-return]
                return {"status": row["status"], "values": row["output"],
                        "error": row["error"]}
            # Pushed: the broker wakes us when the run ends. The database check every
            # poll interval is only a safety net (Redis down, a lost completion marker).
            with trio.move_on_after(self.poll_s):
                result = await self.broker.wait_done(run_id)
                if result is not None:
                    return result  # type: ignore[no-any-return]
            row = await self.runs.find(run_id)
            if row is None:
                done, result = await self.broker.result(run_id)
                return result if done else {"status": "interrupted", "values": None,
                                            "error": None}


def _json(value: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def webhook_payload(claimed: ClaimedRun, outcome: Outcome, row: dict[str, Any] | None
                    ) -> dict[str, Any]:
    """The platform's webhook body: the Run, its final values and error, timestamps."""
    row = row or {}
    iso = _iso
    return {
        "run_id": claimed.run_id, "thread_id": claimed.thread_id,
        "assistant_id": claimed.assistant_id, "created_at": iso(row.get("created_at")),
        "updated_at": iso(row.get("updated_at")), "status": outcome.status,
        "metadata": claimed.metadata, "multitask_strategy": row.get("multitask_strategy"),
        "kwargs": claimed.params, "values": outcome.values, "error": outcome.error,
        "run_ended_at": iso(row.get("updated_at")),
        "webhook_sent_at": datetime.now(UTC).isoformat(),
    }


def wait_payload(result: dict[str, Any]) -> Any:
    """What /wait and /join return: the final values, or ``__error__`` (HTTP 200)."""
    if result.get("status") in ("error", "timeout") and result.get("error"):
        return {"__error__": result["error"]}
    values = result.get("values")
    return values if values is not None else {}


def stream_modes(value: Any) -> list[str]:
    if value is None:
        return ["values"]
    modes = [value] if isinstance(value, str) else list(value)
    for mode in modes:
        if mode not in STREAM_MODES:
            raise Invalid(f"invalid field 'stream_mode': unknown stream mode {mode!r}; "
                          f"expected one of {sorted(STREAM_MODES)}", field="stream_mode")
    return modes or ["values"]


def _merge_config(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(base or {})
    for key, value in (over or {}).items():
        if key == "configurable":
            if not isinstance(value, dict):
                raise Invalid("invalid field 'config.configurable': expected an object",
                              field="config.configurable")
            merged["configurable"] = {**(merged.get("configurable") or {}), **value}
        else:
            merged[key] = value
    return merged


def build_params(body: dict[str, Any], assistant: dict[str, Any], threaded: bool
                 ) -> dict[str, Any]:
    """Everything a worker on any instance needs to run it from the id alone."""
    config = _merge_config(assistant.get("config"), body.get("config"))
    context = {**(assistant.get("context") or {}), **(body.get("context") or {})}
    checkpoint = dict(body.get("checkpoint") or {}) if threaded else {}
    if threaded and body.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = body["checkpoint_id"]
    checkpoint.pop("thread_id", None)  # the path's thread wins, always
    durability = body.get("durability")
    if durability is None and body.get("checkpoint_during") is not None:
        durability = "async" if body["checkpoint_during"] else "exit"
    command = body.get("command")
    run_input = body.get("input")
    if command is not None and run_input == {}:
        run_input = None
    return {
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
        "input": run_input,
        "command": command,
        "config": config,
        "context": context,
        "stream_mode": stream_modes(body.get("stream_mode")),
        "stream_subgraphs": bool(body.get("stream_subgraphs")),
        "stream_resumable": bool(body.get("stream_resumable")),
        "interrupt_before": body.get("interrupt_before"),
        "interrupt_after": body.get("interrupt_after"),
        "checkpoint": checkpoint or None,
        "durability": durability,
        "webhook": body.get("webhook"),
        "on_completion": body.get("on_completion") or "delete",
        "on_disconnect": body.get("on_disconnect") or "continue",
        "multitask_strategy": body.get("multitask_strategy") or "reject",
        "metadata": body.get("metadata") or {},
    }
