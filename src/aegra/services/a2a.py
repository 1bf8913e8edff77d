"""A2A use cases on the run machinery: an assistant is an agent, a task is one run, the
task's context is the run's thread (spec: /tmp/oracle ``api/a2a.py``, platform 0.16.7).

Everything goes through the run, thread and assistant services with the request's
caller, so a task on a thread the caller may not see is "task not found" and runs are
created as the caller. Every failure becomes a JSON-RPC error object (``RpcError``);
domain errors are mapped here, unknown ones logged and answered as internal errors.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import trio

from aegra import logs
from aegra.domain import a2a
from aegra.domain import a2a_messages as msgs
from aegra.domain.a2a import Call, RpcError
from aegra.domain.auth import Caller
from aegra.domain.errors import Conflict, DomainError, Invalid, NotFound
from aegra.domain.ports import StreamEvent
from aegra.services import a2a_tasks as tasks
from aegra.services.a2a_tasks import CANCEL_SETTLE_S
from aegra.services.container import Services

log = logs.get_logger("aegra.a2a")


class A2AService:
    def __init__(self, services: Services, *, keepalive_s: float,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.s = services
        self.keepalive_s = keepalive_s
        # the request's, for http.configurable_headers of the runs it starts
        self.headers = headers or []

    # -- the card -------------------------------------------------------------------------
    async def card(self, caller: Caller, assistant_id: str, base_url: str, version: str
                   ) -> dict[str, Any]:
        """The agent card of an assistant the caller may read; RpcError otherwise."""
        assistant = await self._assistant(caller, assistant_id)
        schemas = await self.s.assistants.schemas(caller, str(assistant["assistant_id"]))
        return msgs.agent_card(assistant, schemas, base_url, version)

    # -- JSON-RPC ---------------------------------------------------------------------------
    async def call(self, caller: Caller, assistant_id: str, call: Call) -> dict[str, Any]:
        """Answer one non-streaming call: the JSON-RPC response body, result or error."""
        try:
            aid = self._uuid(assistant_id)
            if call.method == a2a.SEND:
                return call.result(await self._send(caller, aid, call.params))
            if call.method == a2a.GET:
                return call.result(await self._get(caller, aid, call.params))
            return call.result(await self._cancel(caller, aid, call.params))
        except RpcError as exc:
            return exc.body(call.rpc_id)
        except DomainError as exc:
            return a2a.mapped(exc).body(call.rpc_id)
        except Exception as exc:
            log.error("a2a.call_failed", method=call.method, error=repr(exc), exc_info=exc)
            return RpcError(a2a.INTERNAL_ERROR, "Internal server error").body(call.rpc_id)

    async def stream(self, caller: Caller, assistant_id: str, call: Call
                     ) -> AsyncIterator[bytes]:
        """SendStreamingMessage as SSE: the submitted task, ``working``, then (when the
        run ends) the response artifact and the final status. Errors, before or after
        the run started, are a JSON-RPC error event. Leaving early leaves the run going."""
        def result(kind: str, value: dict[str, Any]) -> bytes:
            return a2a.frame(call.result(a2a.stream_result(kind, value)))

        try:
            aid = self._uuid(assistant_id)
            message, length = self._message(call.params)
            run, tid = await self._start(caller, aid, message, call.params, streaming=True)
            ctx, rid = str(run["thread_id"]), str(run["run_id"])
            echoed = {**message, "kind": "message", "role": msgs.role_of(message) or a2a.USER,
                      "taskId": tid, "contextId": ctx}
            yield result("task", a2a.task(tid, ctx, a2a.status(a2a.SUBMITTED),
                                          history=[echoed]))
            yield result("statusUpdate", a2a.status_update(tid, ctx, a2a.status(a2a.WORKING),
                                                          final=False))
            async with aclosing(self._progress(rid, tid, ctx)) as progress:
                async for update in progress:
                    yield update if isinstance(update, bytes) else result("statusUpdate", update)
            outcome: dict[str, Any] | None = None  # at once, unless the reader lagged
            while outcome is None:
                with trio.move_on_after(self.keepalive_s):
                    outcome = dict(await self.s.runs.result(rid, None))
                if outcome is None:
                    yield a2a.KEEPALIVE
            done = await self._finished(caller, aid, tid, ctx, outcome, length)
            for item in done.get("artifacts", []):
                yield result("artifactUpdate", a2a.artifact_update(tid, ctx, item))
            yield result("statusUpdate", a2a.status_update(tid, ctx, done["status"],
                                                          final=True))
        except RpcError as exc:
            yield a2a.frame(exc.body(call.rpc_id))
        except DomainError as exc:
            yield a2a.frame(a2a.mapped(exc).body(call.rpc_id))
        except Exception as exc:
            log.error("a2a.stream_failed", error=repr(exc), exc_info=exc)
            yield a2a.frame(RpcError(a2a.INTERNAL_ERROR, "Internal server error").body(call.rpc_id))

    async def _progress(self, rid: str, tid: str, ctx: str
                        ) -> AsyncGenerator[dict[str, Any] | bytes, None]:
        """Until the run ends: a ``working`` status update with the agent's text so far
        for each of its message events, KEEPALIVE when it is quiet. A reader cut off for
        lagging just stops here; the final answer comes from the run's result."""
        sub = await self.s.runs.broker.subscribe(rid, 0)
        try:
            while True:
                event: StreamEvent | None = None
                with trio.move_on_after(self.keepalive_s):
                    try:
                        event = await sub.__anext__()
                    except StopAsyncIteration:
                        return
                if event is None:
                    yield a2a.KEEPALIVE
                    continue
                text = msgs.progress(event.name, event.frame)
                if text is not None:
                    message = a2a.text_message(text, tid, ctx)
                    yield a2a.status_update(tid, ctx, a2a.status(a2a.WORKING, message),
                                            final=False)
        finally:
            with trio.move_on_after(5, shield=True):
                await sub.aclose()

    # -- methods ----------------------------------------------------------------------------
    async def _send(self, caller: Caller, aid: str, params: dict[str, Any]) -> dict[str, Any]:
        message, length = self._message(params)
        run, tid = await self._start(caller, aid, message, params)
        ctx, rid = str(run["thread_id"]), str(run["run_id"])
        outcome = dict(await self.s.runs.result(rid, None))
        return {"task": await self._finished(caller, aid, tid, ctx, outcome, length)}

    async def _get(self, caller: Caller, aid: str, params: dict[str, Any]) -> dict[str, Any]:
        tid = a2a.task_param(params)
        length = a2a.history_length(params.get("historyLength"))
        task = await tasks.resolve(self.s, caller, aid, tid, params.get("contextId"))
        row, ctx, state = task.run, task.context_id, task.state
        message = None
        if state == a2a.COMPLETED:
            message = a2a.text_message("Task completed successfully", tid, ctx)
        elif state == a2a.FAILED:
            message = a2a.text_message(f"Task failed with status: {row['status']}", tid, ctx)
        history = None
        if length != 0:
            output = row.get("output")
            found = output.get("messages") if isinstance(output, dict) else None
            history = a2a.clip(msgs.history(found, tid, ctx), length)
        return a2a.task(tid, ctx, a2a.status(state, message), history=history)

    async def _cancel(self, caller: Caller, aid: str, params: dict[str, Any]
                      ) -> dict[str, Any]:
        tid = a2a.task_param(params)
        task = await tasks.resolve(self.s, caller, aid, tid, params.get("contextId"))
        ctx, rid = task.context_id, str(task.run["run_id"])
        if task.state in a2a.TERMINAL:
            raise RpcError(a2a.TASK_NOT_CANCELABLE, "Task is not cancelable in its current state")
        if task.state == a2a.INPUT_REQUIRED:  # no run left to stop: end the wait
            await tasks.end_input_required(self.s, caller, aid, task, self.headers)
        else:
            before = await self.s.runs.cancel_run(caller, ctx, rid, "interrupt")
            if a2a.run_state(before["status"]) in a2a.TERMINAL:  # it ended meanwhile
                raise RpcError(a2a.TASK_NOT_CANCELABLE, "Task has no active run to cancel")
            with trio.move_on_after(CANCEL_SETTLE_S):
                await self.s.runs.result(rid, None)
        return a2a.task(tid, ctx, a2a.status(a2a.CANCELED,
                                             a2a.text_message("Task was canceled", tid, ctx)))

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _uuid(assistant_id: str) -> str:
        try:
            return str(uuid.UUID(assistant_id))
        except ValueError:
            raise RpcError(a2a.INVALID_PARAMS, "Invalid assistant ID: must be a UUID") from None

    @staticmethod
    def _message(params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        message = msgs.incoming(params)
        configuration = params.get("configuration") or {}
        return message, a2a.history_length(configuration.get("historyLength"))

    async def _assistant(self, caller: Caller, assistant_id: str) -> dict[str, Any]:
        try:
            return dict(await self.s.assistants.get(caller, assistant_id))
        except (NotFound, Invalid):
            raise RpcError(a2a.INVALID_PARAMS,
                           f"Assistant '{assistant_id}' not found") from None

    async def _start(self, caller: Caller, aid: str, message: dict[str, Any],
                     params: dict[str, Any], *, streaming: bool = False
                     ) -> tuple[dict[str, Any], str]:
        """Check the message fits the graph and start its run on the context's thread
        (made when new, as the platform's ``if_not_exists="create"``); the run and its
        task id. A message naming a task continues it: a task waiting for input gets
        the message as ``Command(resume=...)``; a finished one refuses it."""
        assistant = await self._assistant(caller, aid)
        if msgs.has_text(message):
            msgs.require_messages(assistant, await self.s.assistants.schemas(caller, aid))
        run_input = msgs.graph_input(message)
        if not run_input:
            raise RpcError(a2a.CONTENT_TYPE_NOT_SUPPORTED,
                           "Message must contain at least one valid text or data part")
        tid = message.get("taskId")
        ctx, command, run_input = await tasks.continuation(self.s, caller, aid, message,
                                                           run_input)
        ctx = ctx or message.get("contextId") or str(uuid.uuid4())
        try:
            ctx = str(uuid.UUID(ctx))
        except ValueError:
            raise RpcError(a2a.INVALID_PARAMS, "contextId must be a UUID") from None
        body: dict[str, Any] = {
            "assistant_id": aid, "input": run_input, "if_not_exists": "create",
            "metadata": {"a2a": {"message_id": message["messageId"],
                                 **({"task_id": tid} if tid is not None else {})}}}
        if command is not None:
            body["command"] = command
        if streaming:  # the agent's text as it grows, for ``working`` updates
            body["stream_mode"] = ["messages"]
        if isinstance(params.get("context"), dict):
            body["context"] = params["context"]
        try:
            run = await self.s.runs.create(caller, body, thread_id=ctx, headers=self.headers)
        except NotFound:
            raise RpcError(a2a.INVALID_PARAMS, f"Thread '{ctx}' not found") from None
        except (Conflict, Invalid) as exc:
            raise RpcError(a2a.INVALID_PARAMS, f"Failed to create run: {exc.message}") from None
        return run, tid if tid is not None else a2a.task_id(ctx, str(run["run_id"]))

    async def _finished(self, caller: Caller, aid: str, tid: str, ctx: str,
                        outcome: dict[str, Any], length: int | None) -> dict[str, Any]:
        """The task of a run that ended, from its result (values, error)."""
        values = outcome.get("values")
        found = values.get("messages") if isinstance(values, dict) else None
        history = None if length == 0 else a2a.clip(msgs.history(found, tid, ctx), length)
        status = outcome.get("status")
        if status in ("error", "timeout"):
            error = outcome.get("error") or {}
            if isinstance(error, dict):  # {"error": "ValueError", "message": "..."}
                error = ": ".join(str(error[k]) for k in ("error", "message") if error.get(k))
            text = error or status
            message = a2a.text_message(f"Error executing assistant: {text}", tid, ctx)
            return a2a.task(tid, ctx, a2a.status(a2a.FAILED, message), history=history)
        if status != "success":
            return a2a.task(tid, ctx, a2a.status(a2a.run_state(str(status))), history=history)
        thread = await self.s.threads.get(caller, ctx)
        if thread.get("status") == "interrupted":
            return a2a.task(tid, ctx, a2a.status(a2a.INPUT_REQUIRED), history=history,
                            artifacts=[msgs.interrupts_artifact(thread.get("interrupts"))])
        return a2a.task(tid, ctx, a2a.status(a2a.COMPLETED), history=history,
                        artifacts=[msgs.reply(values, aid)])

