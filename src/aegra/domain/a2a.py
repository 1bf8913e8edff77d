"""The A2A (Agent2Agent) JSON-RPC protocol as the platform serves it: error codes, the
request envelope, the two wire dialects, task ids and states.

Pure: no I/O. An assistant is an agent at ``/a2a/{assistant_id}``; a task is one run, its
context id the run's thread id. The platform answers both method families: A2A 1.0's
``SendMessage``/``SendStreamingMessage``/``GetTask``/``CancelTask`` (ProtoJSON: roles
``ROLE_AGENT``, states ``TASK_STATE_COMPLETED``, results wrapped by kind) and A2A 0.3's
``message/send``/``message/stream``/``tasks/get``/``tasks/cancel`` (roles ``agent``,
states ``completed``, results bare with a ``kind``). Objects are built once in the 1.0
spelling, each carrying its 0.3 ``kind`` too (1.0 readers ignore it), and ``legacy``
rewrites them for a 0.3 request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from aegra.domain.errors import Conflict, DomainError, Invalid, NotFound

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005

SEND, STREAM, GET, CANCEL = "SendMessage", "SendStreamingMessage", "GetTask", "CancelTask"
# A2A 0.3's names (what a2a-sdk 0.3 clients, and 1.x clients told "0.3", send).
LEGACY_METHODS = {"message/send": SEND, "message/stream": STREAM, "tasks/get": GET,
                  "tasks/cancel": CANCEL}
METHODS = frozenset({SEND, STREAM, GET, CANCEL})
MAX_HISTORY_LENGTH = 10

SUBMITTED = "TASK_STATE_SUBMITTED"
WORKING = "TASK_STATE_WORKING"
COMPLETED = "TASK_STATE_COMPLETED"
FAILED = "TASK_STATE_FAILED"
CANCELED = "TASK_STATE_CANCELED"
INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, "TASK_STATE_REJECTED"})
USER, AGENT = "ROLE_USER", "ROLE_AGENT"
_LEGACY_ROLE = {USER: "user", AGENT: "agent"}
_LEGACY_STATE = {SUBMITTED: "submitted", WORKING: "working", COMPLETED: "completed",
                 FAILED: "failed", CANCELED: "canceled", INPUT_REQUIRED: "input-required",
                 "TASK_STATE_REJECTED": "rejected", "TASK_STATE_AUTH_REQUIRED": "auth-required"}
_RUN_STATE = {"pending": SUBMITTED, "running": WORKING, "success": COMPLETED,
              "interrupted": CANCELED, "error": FAILED, "timeout": FAILED}

RpcId = str | int | float | None


class RpcError(Exception):
    """A JSON-RPC error object: answered with HTTP 200, as JSON-RPC requires."""

    def __init__(self, code: int, message: str, rpc_id: RpcId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rpc_id = rpc_id

    def body(self, rpc_id: RpcId = None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.rpc_id if rpc_id is None else rpc_id,
                "error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded JSON-RPC request: canonical (1.0) method, and which dialect to answer."""

    rpc_id: RpcId
    method: str
    params: dict[str, Any]
    legacy: bool

    @property
    def streaming(self) -> bool:
        return self.method == STREAM

    def result(self, value: dict[str, Any]) -> dict[str, Any]:
        """The response body carrying ``value``, in the request's dialect."""
        body = {"jsonrpc": "2.0", "id": self.rpc_id, "result": value}
        out = legacy(body) if self.legacy else body
        assert isinstance(out, dict)
        return out


def parse_call(data: bytes) -> Call:
    """Decode a POST body into a Call, or raise the JSON-RPC error the platform answers."""
    try:
        message = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise RpcError(PARSE_ERROR, "Invalid JSON payload") from None
    if not isinstance(message, dict):
        raise RpcError(INVALID_REQUEST, "Invalid message format: expected object")
    rpc_id = message.get("id")
    if rpc_id is not None and (isinstance(rpc_id, bool)
                               or not isinstance(rpc_id, str | int | float)):
        raise RpcError(INVALID_REQUEST,
                       "Invalid JSON-RPC request: 'id' must be a string, number, or null")
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST,
                       "Invalid JSON-RPC message: missing or invalid jsonrpc version", rpc_id)
    method = message.get("method")
    if method is None:
        raise RpcError(INVALID_REQUEST, "Invalid JSON-RPC request: missing 'method' field",
                       rpc_id)
    if not isinstance(method, str):
        raise RpcError(METHOD_NOT_FOUND, "Method not found: method must be a string", rpc_id)
    canonical = LEGACY_METHODS.get(method, method)
    if canonical not in METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", rpc_id)
    if rpc_id is None:  # a notification: nothing may answer it, and A2A has none
        raise RpcError(INVALID_REQUEST, "Invalid JSON-RPC request: 'id' is required")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: must be an object", rpc_id)
    return Call(rpc_id, canonical, params, method in LEGACY_METHODS)


def legacy(value: object) -> object:
    """Rewrite a 1.0-spelled object for A2A 0.3: lower-case roles and states, results
    unwrapped from their kind (``{"task": {...}}`` -> ``{...}``)."""
    if isinstance(value, list):
        return [legacy(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "role" and isinstance(item, str):
            out[key] = _LEGACY_ROLE.get(item, item)
        elif key == "state" and isinstance(item, str):
            out[key] = _LEGACY_STATE.get(item, item)
        elif key == "result" and isinstance(item, dict) and len(item) == 1:
            (kind, inner), = item.items()
            out[key] = legacy(inner) if kind in _WRAPPERS else legacy(item)
        else:
            out[key] = legacy(item)
    return out


_WRAPPERS = frozenset({"task", "message", "statusUpdate", "artifactUpdate"})


def stream_result(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """A streamed event as 1.0's StreamResponse (one of task/statusUpdate/artifactUpdate)."""
    return {kind: value}


# -- tasks ---------------------------------------------------------------------------------
def task_id(context_id: str, run_id: str) -> str:
    """The platform's composite id: a task id alone finds its thread and run."""
    return f"{context_id}:{run_id}"


def split_task_id(value: str) -> tuple[str, str] | None:
    context_id, sep, run_id = value.partition(":")
    return (context_id, run_id) if sep and context_id and run_id else None


def run_state(status: str) -> str:
    return _RUN_STATE.get(status, SUBMITTED)


def now() -> str:
    # RFC 3339 with a Z: both 1.0's ProtoJSON Timestamp and 0.3's string accept it.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return str(uuid.uuid4())


def text_message(text: str, task: str, context_id: str) -> dict[str, Any]:
    return {"kind": "message", "role": AGENT, "parts": [{"kind": "text", "text": text}],
            "messageId": new_id(), "taskId": task, "contextId": context_id}


def status(state: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"state": state, "timestamp": now()}
    if message is not None:
        out["message"] = message
    return out


def task(task: str, context_id: str, state_: dict[str, Any], *,
         history: list[dict[str, Any]] | None = None,
         artifacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "task", "id": task, "contextId": context_id,
                           "status": state_}
    if history is not None:
        out["history"] = history
    if artifacts:
        out["artifacts"] = artifacts
    return out


def status_update(task: str, context_id: str, state_: dict[str, Any], *, final: bool
                  ) -> dict[str, Any]:
    return {"kind": "status-update", "taskId": task, "contextId": context_id,
            "status": state_, "final": final}


def artifact_update(task: str, context_id: str, artifact: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "artifact-update", "taskId": task, "contextId": context_id,
            "artifact": artifact, "append": False, "lastChunk": True}


def artifact(name: str, description: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"artifactId": new_id(), "name": name, "description": description,
            "parts": parts}


def history_length(value: object) -> int | None:
    """``historyLength``: absent, or 0..10 (the platform's cap)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RpcError(INVALID_PARAMS, "historyLength must be a non-negative integer")
    if value > MAX_HISTORY_LENGTH:
        raise RpcError(INVALID_PARAMS, f"historyLength cannot exceed {MAX_HISTORY_LENGTH}")
    return value


def clip(history: list[dict[str, Any]], length: int | None) -> list[dict[str, Any]]:
    if length is None:
        return history
    return history[-length:] if length else []


# -- answers ---------------------------------------------------------------------------------
KEEPALIVE = b": heartbeat\n\n"


def frame(body: dict[str, Any]) -> bytes:
    data = msgspec.json.encode(body)
    # Some SSE readers split lines on these too: keep them escaped inside the JSON.
    for raw, escaped in ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"),
                         (b"\xe2\x80\xa9", b"\\u2029")):
        data = data.replace(raw, escaped)
    return b"event: message\ndata: " + data + b"\n\n"


def task_param(params: dict[str, Any]) -> str:
    value = params.get("id")
    if not value:
        raise RpcError(INVALID_PARAMS, "Missing required parameter: id (task_id)")
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, "Task id and contextId must be strings")
    return value


def mapped(exc: DomainError) -> RpcError:
    """A domain error that escaped the methods' own mapping."""
    if isinstance(exc, NotFound | Invalid | Conflict):
        return RpcError(INVALID_PARAMS, exc.message)
    return RpcError(INTERNAL_ERROR, exc.message)
