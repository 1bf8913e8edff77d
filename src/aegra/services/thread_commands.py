"""Agent Protocol v2 thread commands: ``run.start`` and ``input.respond``.

Both create a run through ``RunService.create`` (the one path: authorization as
``create_run``, multitask rules, the queue, the workers), with the stream modes the
protocol converter reads (``values``, ``updates``, ``messages-tuple``, ``custom``, with
subgraphs). ``run.start`` creates the thread when the client minted its id; on a thread
paused on an interrupt its input is the resume value. ``input.respond`` resumes the
pending interrupts it names with a new run on the assistant of the thread's last run.

Each answer carries ``applied_through_seq``: the cursor just before the new run's first
event, so a client opening its event stream with it as ``since`` sees that run whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aegra.domain.auth import Caller
from aegra.domain.errors import Invalid, NotFound
from aegra.domain.protocol_filter import seq_of
from aegra.services.runs import RunService
from aegra.services.thread_events import EPOCH
from aegra.services.threads import ThreadService

# Fixed for every run: the events are numbered per v1 event (see thread_events), so all
# subscribers must read the same tape. ``tasks`` and ``checkpoints`` feed their channels
# and the SDK's subgraph discovery (a few events per step, none per token).
RUN_MODES = ["values", "updates", "messages-tuple", "custom", "tasks", "checkpoints"]


# A request's headers (or a WebSocket handshake's): http.configurable_headers picks from them.
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class NoSuchInterrupt(Exception):
    """``input.respond`` named no interrupt the thread is waiting on."""


class ThreadCommands:
    def __init__(self, runs: RunService, threads: ThreadService) -> None:
        self.runs = runs
        self.threads = threads

    async def _pending(self, caller: Caller, thread_id: str) -> dict[str, Any] | None:
        """The interrupts the thread waits on (id -> value); None when it is not paused
        or does not exist yet."""
        try:
            thread = await self.threads.get(caller, thread_id)
        except NotFound:
            if await self.runs.runs.thread_visible(thread_id):
                raise
            return None
        if thread.get("status") != "interrupted":
            return None
        pending: dict[str, Any] = {}
        for entries in (thread.get("interrupts") or {}).values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    pending[entry["id"]] = entry.get("value")
        return pending

    async def _create(self, caller: Caller, thread_id: str, body: dict[str, Any],
                      headers: Headers) -> tuple[str, int]:
        run = await self.runs.create(caller, {
            **body, "stream_mode": RUN_MODES, "stream_subgraphs": True,
            "if_not_exists": "create"}, thread_id=thread_id, headers=headers)
        run_id = str(run["run_id"])
        ids = [str(r["run_id"]) for r in await self.runs.next_runs(thread_id, None, EPOCH)]
        pos = ids.index(run_id) if run_id in ids else len(ids)
        return run_id, seq_of(pos, 0)

    async def start(self, caller: Caller, thread_id: str, body: dict[str, Any], *,
                    headers: Headers = ()) -> tuple[str, int]:
        """``body``: a validated run body. Returns (run id, applied_through_seq)."""
        body = {"multitask_strategy": "enqueue", **body}
        if body.get("input") is not None and body.get("command") is None:
            pending = await self._pending(caller, thread_id)
            if pending:
                body["command"] = {"resume": body.pop("input")}
        return await self._create(caller, thread_id, body, headers)

    async def respond(self, caller: Caller, thread_id: str, answers: dict[str, Any],
                      extra: dict[str, Any], *, headers: Headers = ()) -> tuple[str, int]:
        """``answers``: interrupt id -> response; ``extra``: ``update``, ``goto``,
        ``config``, ``metadata`` of the resume. NoSuchInterrupt when one is not pending."""
        pending = await self._pending(caller, thread_id) or {}
        missing = [iid for iid in answers if iid not in pending]
        if missing:
            raise NoSuchInterrupt(f"no pending interrupt {missing[0]!r} on thread {thread_id}")
        last = await self.runs.list_runs(caller, thread_id, limit=1, offset=0, status=None)
        if not last:
            raise Invalid("the thread has no run to resume", field="params.interrupt_id")
        command: dict[str, Any] = {"resume": answers}
        for key in ("update", "goto"):
            if extra.get(key) is not None:
                command[key] = extra[key]
        body: dict[str, Any] = {"assistant_id": str(last[0]["assistant_id"]),
                                "command": command, "multitask_strategy": "enqueue"}
        for key in ("config", "metadata"):
            if extra.get(key) is not None:
                body[key] = extra[key]
        return await self._create(caller, thread_id, body, headers)
