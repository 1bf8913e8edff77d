"""Agent Protocol v2 events from a run's v1 stream: one pure converter per run.

A run's events are stored once, in the v1 shape the run streams use (``values``,
``updates``, ``messages`` (messages-tuple), ``custom``, with ``|ns`` suffixes for
subgraphs, and the closing ``error``/``end``). A v2 subscriber reads the same replay
buffer and turns each v1 event into protocol events here, at the edge, so both
protocols see one source of truth, wherever the run executes.

The conversion is deterministic: the same tape always gives the same protocol events in
the same order, so the k-th protocol event of a run has the same ``seq`` and
``event_id`` on every connection and instance (see ``protocol_filter.seq_of``).

Mapping (v1 name -> protocol ``method``, ``data``):

* ``metadata`` (first) -> ``lifecycle`` ``{event: "started"}`` at the root;
* ``values`` -> ``values`` (the state, ``__interrupt__`` removed);
* ``updates`` -> one ``updates`` ``{node, values}`` per node; ``__interrupt__`` entries
  (in ``updates`` or ``values``) are kept for the end of the run; in a node's
  ``messages`` update, an AI message's ``tool_calls`` -> ``tools`` ``tool-started``, a
  tool message -> ``tool-finished`` (``tool-error`` when its status is ``error``);
* ``messages`` ``[chunk, metadata]`` -> the content-block stream: ``message-start``,
  ``content-block-start``, ``content-block-delta`` (text), and on the last chunk (or a
  whole message) ``content-block-finish`` + ``message-finish``;
* ``custom`` -> ``custom`` ``{payload}``;
* ``tasks`` -> ``tasks`` as LangGraph shapes it: a task's start ``{id, name, input,
  triggers}``, then its result ``{id, name, error, result, interrupts}``;
* ``checkpoints`` -> ``checkpoints`` ``{id, parent_id?, step, source}`` (the state it
  carries is already on ``values``);
* a subgraph namespace (``sub:<task id>``) gets ``lifecycle`` ``started`` before its first
  event and ``completed`` when its parent reports the node's update (``updates`` with
  ``node: "sub"`` in the parent namespace), as the platform does;
* ``error`` + ``end`` -> open messages finished, subgraph namespaces still open closed
  (``completed``, or ``failed`` with the run), then
  at the root either ``input.requested`` ``{interrupt_id, payload, value}`` per pending
  interrupt and ``lifecycle`` ``interrupted`` (a paused run), or ``lifecycle``
  ``completed`` / ``failed`` (with the error). Interrupts are announced at the end, not
  when the graph raised them: by then the thread row shows them, so a client answering
  at once finds them (and the run no longer holds the thread).

Events the protocol has no channel for (``debug``, ``events``, ``messages/*``,
``events_dropped``) are skipped.
"""

from __future__ import annotations

from typing import Any

ProtocolEvent = tuple[str, list[str], Any]  # (method, namespace, data)

_ROLES = {"ai": "ai", "AIMessageChunk": "ai", "human": "human", "HumanMessageChunk": "human",
          "system": "system", "SystemMessageChunk": "system"}
# Scalars of the chunk metadata a client can use (MessageMetadata allows extra scalars).
_META_KEYS = ("langgraph_node", "langgraph_step", "ls_provider", "ls_model_name", "run_id")


def split_name(name: str) -> tuple[str, list[str]]:
    """``"values|sub:1|inner:2"`` -> ``("values", ["sub:1", "inner:2"])``."""
    mode, *namespace = name.split("|")
    return mode, namespace


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b if isinstance(b, str) else b.get("text", "") for b in content
                 if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


class _Message:
    __slots__ = ("namespace", "text")

    def __init__(self, namespace: list[str]) -> None:
        self.namespace = namespace
        self.text = ""


class RunConverter:
    """The protocol view of one run's v1 stream; feed it the events in order."""

    def __init__(self, graph_name: str | None = None) -> None:
        self.graph_name = graph_name
        self.started = False
        self.ended = False
        self.interrupted = False
        self.error: str | None = None
        self._interrupts: dict[str, Any] = {}  # pending interrupt id -> value
        self._messages: dict[str, _Message] = {}
        self._tool_calls: set[str] = set()
        self._namespaces: set[tuple[str, ...]] = set()  # every subgraph seen
        self._open: dict[tuple[str, ...], None] = {}  # not yet closed, in start order

    def feed(self, name: str, data: object) -> list[ProtocolEvent]:
        """The protocol events one v1 event makes (none for what has no channel)."""
        if self.ended:
            return []
        mode, namespace = split_name(name)
        out: list[ProtocolEvent] = []
        if mode == "metadata":
            if not self.started:
                self.started = True
                out.append(("lifecycle", [], self._lifecycle("started")))
            return out
        if mode == "end":
            return self._end(data)
        if mode == "error":
            if isinstance(data, dict):
                self.error = str(data.get("message") or data.get("error") or "error")
            return out
        if namespace and tuple(namespace) not in self._namespaces:
            self._namespaces.add(tuple(namespace))
            self._open[tuple(namespace)] = None
            out.append(("lifecycle", namespace, {"event": "started",
                                                 "graph_name": _graph_of(namespace)}))
        if mode == "values":
            out.extend(self._values(namespace, data))
        elif mode == "updates":
            out.extend(self._updates(namespace, data))
        elif mode == "messages":
            out.extend(self._message(namespace, data))
        elif mode == "custom":
            out.append(("custom", namespace, {"payload": data}))
        elif mode == "tasks" and isinstance(data, dict):
            out.append(("tasks", namespace, data))
        elif mode == "checkpoints" and isinstance(data, dict):
            out.append(("checkpoints", namespace, _checkpoint(data)))
        return out

    def _lifecycle(self, event: str, error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"event": event}
        if self.graph_name:
            data["graph_name"] = self.graph_name
        if error is not None:
            data["error"] = error
        return data

    def _note_interrupts(self, entries: object) -> None:
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                self._interrupts.setdefault(entry["id"], entry.get("value"))

    def _interrupt_events(self) -> list[ProtocolEvent]:
        # ``payload`` is the protocol's field; the pinned SDK reads ``value``.
        out: list[ProtocolEvent] = [
            ("input.requested", [], {"interrupt_id": iid, "payload": value, "value": value})
            for iid, value in self._interrupts.items()]
        self.interrupted = True
        return out + [("lifecycle", [], self._lifecycle("interrupted"))]

    def _values(self, namespace: list[str], data: object) -> list[ProtocolEvent]:
        if not isinstance(data, dict):
            return [("values", namespace, data)]
        if "__interrupt__" in data:
            self._note_interrupts(data["__interrupt__"])
            state = {k: v for k, v in data.items() if k != "__interrupt__"}
            return [("values", namespace, state)] if state else []
        return [("values", namespace, data)]

    def _updates(self, namespace: list[str], data: object) -> list[ProtocolEvent]:
        out: list[ProtocolEvent] = []
        if not isinstance(data, dict):
            return out
        for node, values in data.items():
            if node == "__interrupt__":
                self._note_interrupts(values)
            else:
                out.append(("updates", namespace, {"node": node, "values": values}))
                out.extend(self._tools(namespace, values))
                out.extend(self._close_child(namespace, node))
        return out

    def _close_child(self, parent: list[str], node: str) -> list[ProtocolEvent]:
        """The parent reported ``node``'s update: its oldest open subgraph run is done
        (parallel runs of one node each report once)."""
        for ns in self._open:
            if len(ns) == len(parent) + 1 and list(ns[:-1]) == parent \
                    and ns[-1].split(":", 1)[0] == node:
                del self._open[ns]
                return [("lifecycle", list(ns), {"event": "completed",
                                                 "graph_name": _graph_of(ns)})]
        return []

    def _tools(self, namespace: list[str], values: object) -> list[ProtocolEvent]:
        """Tool calls from a node's ``messages`` update: an AI message's calls start,
        a tool message with their id finishes (or fails) one."""
        found = values.get("messages") if isinstance(values, dict) else None
        out: list[ProtocolEvent] = []
        for msg in found if isinstance(found, list) else [found]:
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "ai":
                for call in msg.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("id"), str) \
                            and call["id"] not in self._tool_calls:
                        self._tool_calls.add(call["id"])
                        out.append(("tools", namespace, {
                            "event": "tool-started", "tool_call_id": call["id"],
                            "tool_name": str(call.get("name") or ""),
                            "input": call.get("args")}))
            elif msg.get("type") == "tool" and isinstance(msg.get("tool_call_id"), str):
                if msg.get("status") == "error":
                    out.append(("tools", namespace, {
                        "event": "tool-error", "tool_call_id": msg["tool_call_id"],
                        "message": _text(msg.get("content")) or "tool error"}))
                else:
                    out.append(("tools", namespace, {
                        "event": "tool-finished", "tool_call_id": msg["tool_call_id"],
                        "output": msg.get("content")}))
        return out

    def _message(self, namespace: list[str], data: object) -> list[ProtocolEvent]:
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], dict)):
            return []
        chunk, meta = data[0], data[1] if isinstance(data[1], dict) else {}
        kind = str(chunk.get("type") or "")
        role = _ROLES.get(kind)
        msg_id = chunk.get("id")
        if role is None or not isinstance(msg_id, str):
            return []  # tool messages and id-less chunks have no message stream
        out: list[ProtocolEvent] = []
        msg = self._messages.get(msg_id)
        if msg is None:
            msg = self._messages[msg_id] = _Message(namespace)
            metadata = {k: meta[k] for k in _META_KEYS
                        if isinstance(meta.get(k), (str, int, float, bool))}
            out.append(("messages", namespace, {"event": "message-start", "role": role,
                                                "id": msg_id, "metadata": metadata}))
            out.append(("messages", namespace, {"event": "content-block-start", "index": 0,
                                                "content": {"type": "text", "text": ""}}))
        whole = not kind.endswith("Chunk")
        text = _text(chunk.get("content"))
        if whole:  # a whole message: only what the chunks did not already say
            text = text[len(msg.text):] if text.startswith(msg.text) else text
        if text:
            msg.text += text
            out.append(("messages", namespace, {"event": "content-block-delta", "index": 0,
                                                "delta": {"type": "text-delta", "text": text}}))
        if whole or chunk.get("chunk_position") == "last":
            out.extend(self._finish_message(msg_id, chunk.get("usage_metadata")))
        return out

    def _finish_message(self, msg_id: str, usage: object = None) -> list[ProtocolEvent]:
        msg = self._messages.pop(msg_id)
        finish: dict[str, Any] = {"event": "message-finish"}
        if isinstance(usage, dict):
            finish["usage"] = {k: usage[k] for k in ("input_tokens", "output_tokens",
                                                      "total_tokens") if k in usage}
        return [("messages", msg.namespace, {"event": "content-block-finish", "index": 0,
                                             "content": {"type": "text", "text": msg.text}}),
                ("messages", msg.namespace, finish)]

    def _end(self, data: object) -> list[ProtocolEvent]:
        self.ended = True
        status = data.get("status") if isinstance(data, dict) else None
        out: list[ProtocolEvent] = []
        for msg_id in list(self._messages):
            out.extend(self._finish_message(msg_id))
        paused = bool(self._interrupts) and status in ("success", "interrupted")
        failed = status != "success" and not paused
        for ns in reversed(self._open):  # the deepest (latest started) first
            out.append(("lifecycle", list(ns),
                        {"event": "failed" if failed else "completed",
                         "graph_name": _graph_of(ns)}))
        self._open.clear()
        if paused:
            return out + self._interrupt_events()
        if status == "success":
            return out + [("lifecycle", [], self._lifecycle("completed"))]
        error = self.error or _ended_as(status)
        return out + [("lifecycle", [], self._lifecycle("failed", error))]

    def synthetic(self, status: str) -> list[ProtocolEvent]:
        """The end of a run whose events are gone (its buffer expired, or the broker lost
        its end), from the status its row shows."""
        out: list[ProtocolEvent] = []
        if not self.started:
            self.started = True
            out.append(("lifecycle", [], self._lifecycle("started")))
        if status == "interrupted" and not self._interrupts:
            # A paused run (the thread shows its interrupts) or a cancelled one: without
            # its events they look alike; a paused thread is not an error.
            self.ended = True
            return out + [("lifecycle", [], self._lifecycle("interrupted"))]
        return out + self._end({"status": status})


def _graph_of(namespace: list[str] | tuple[str, ...]) -> str:
    return namespace[-1].split(":", 1)[0]


def _checkpoint_id(config: object) -> object:
    conf = config.get("configurable") if isinstance(config, dict) else None
    return conf.get("checkpoint_id") if isinstance(conf, dict) else None


def _checkpoint(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 checkpoint (``{config, parent_config, values, metadata, next, tasks}``) as
    the protocol's ``{id, parent_id?, step, source}``."""
    found = data.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    out: dict[str, Any] = {"id": _checkpoint_id(data.get("config"))}
    parent = _checkpoint_id(data.get("parent_config"))
    if parent is not None:
        out["parent_id"] = parent
    out["step"] = meta.get("step")
    out["source"] = meta.get("source")
    return out


def _ended_as(status: object) -> str:
    if status == "interrupted":
        return "run cancelled"
    if status == "timeout":
        return "run timed out"
    return f"run ended with status {status}"
