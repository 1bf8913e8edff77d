"""A2A messages <-> LangGraph ``messages`` state, and the agent card. Pure, no I/O.

An A2A message becomes the graph's input: each text part one human message, data parts
merged into top-level input keys (the platform's mapping). Back out, the graph's
messages become A2A history (human -> user, ai -> agent; system and tool messages are
not conversation and are left out), and the last agent message of the turn becomes the
task's response artifact.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aegra.domain.a2a import (
    AGENT,
    CONTENT_TYPE_NOT_SUPPORTED,
    INVALID_PARAMS,
    USER,
    RpcError,
    artifact,
)

_USER_TYPES = {"human", "humanmessage", "humanmessagechunk"}
_AGENT_TYPES = {"ai", "aimessage", "aimessagechunk"}
_ROLES = {"user": USER, "human": USER, USER: USER,
          "agent": AGENT, "assistant": AGENT, "ai": AGENT, AGENT: AGENT}


def _invalid(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


def incoming(params: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` of SendMessage params, checked as the platform checks it."""
    message = params.get("message")
    if not message or not isinstance(message, dict):
        raise _invalid("Missing or invalid 'message' in params")
    if not message.get("messageId") or not isinstance(message["messageId"], str):
        raise _invalid("Missing required 'messageId' in message")
    if not message.get("role"):
        raise _invalid("Missing required 'role' in message")
    if message["role"] not in _ROLES:
        raise _invalid(f"Unknown role: {message['role']!r}")
    parts = message.get("parts", [])
    if not isinstance(parts, list):
        raise _invalid("Invalid params: 'parts' must be an array")
    if not parts:
        raise _invalid("Message must contain at least one part")
    for key in ("contextId", "taskId"):
        if message.get(key) is not None and not isinstance(message[key], str):
            raise _invalid(f"{key} must be a string")
    configuration = params.get("configuration")
    if configuration is not None and not isinstance(configuration, dict):
        raise _invalid("Invalid params: 'configuration' must be an object")
    return message


def has_text(message: dict[str, Any]) -> bool:
    """Text (or file) parts need a graph whose input has ``messages``; data parts do not."""
    return any(isinstance(p, dict) and ("text" in p or "file" in p or "raw" in p
                                        or "url" in p) for p in message["parts"])


def graph_input(message: dict[str, Any]) -> dict[str, Any]:
    """The run's input: text parts as messages (role from the A2A role), data parts
    merged in as top-level keys."""
    role = "human" if _ROLES[message["role"]] == USER else "assistant"
    messages: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for part in message["parts"]:
        if not isinstance(part, dict):
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, "Each message part must be an object. "
                           "A2A agents support 'text' and 'data' parts only.")
        present = [k for k in ("text", "data", "file", "raw", "url") if k in part]
        if len(present) > 1:
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, "Each message part must contain "
                           f"exactly one of 'text' or 'data'. Got multiple: {present}.")
        if "text" in part and isinstance(part["text"], str):
            messages.append({"role": role, "content": part["text"],
                             "id": message["messageId"]})
        elif "data" in part and isinstance(part["data"], dict):
            data.update(part["data"])
        elif "data" in part:
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED,
                           "DataPart must contain a JSON object in the 'data' field")
        else:
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, "Unsupported part type. "
                           "A2A agents here support 'text' and 'data' parts only.")
    return {**data, **({"messages": messages} if messages else {})}


def data_resume(message: dict[str, Any]) -> tuple[bool, object]:
    """Whether a data part carries an explicit ``resume`` value, and that value (one at
    most: the platform refuses two)."""
    found = [part["data"]["resume"] for part in message["parts"]
             if isinstance(part, dict) and isinstance(part.get("data"), dict)
             and "resume" in part["data"]]
    if len(found) > 1:
        raise _invalid("Only one resume value is allowed in data parts")
    return (True, found[0]) if found else (False, None)


def resume(message: dict[str, Any], run_input: dict[str, Any]
           ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The ``Command(resume=...)`` answering an interrupt, and what is left of the input:
    a data part's ``resume`` value, else the text parts joined by newlines (which then
    are not also added as messages). None when the message has neither."""
    explicit, value = data_resume(message)
    if explicit:
        return {"resume": value}, {k: v for k, v in run_input.items() if k != "resume"}
    text = [part["text"] for part in message["parts"]
            if isinstance(part, dict) and isinstance(part.get("text"), str)]
    if not text:
        return None, run_input
    return {"resume": "\n".join(text)}, {k: v for k, v in run_input.items()
                                          if k != "messages"}


def require_messages(assistant: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A conversational (text) message needs a ``messages`` key in the graph's input."""
    schema = schemas.get("input_schema") or schemas.get("state_schema")
    aid, graph = assistant["assistant_id"], assistant["graph_id"]
    if not schema:
        raise _invalid(f"Assistant '{aid}' has no input schema defined. A2A conversational "
                       "agents using text or file parts must have an input schema with a "
                       "'messages' field.")
    properties = schema.get("properties") or {}
    if "messages" not in properties:
        raise _invalid(f"Assistant '{aid}' (graph '{graph}') does not support A2A "
                       "conversational messages. Graph input schema must include a "
                       "'messages' field to accept text or file parts. Available input "
                       f"fields: {list(properties)}")


# -- graph messages -> A2A -------------------------------------------------------------------
def role_of(message: object) -> str | None:
    if not isinstance(message, dict):
        return None
    kind = str(message.get("type") or "").lower()
    if kind in _USER_TYPES:
        return USER
    if kind in _AGENT_TYPES:
        return AGENT
    role = message.get("role")
    if kind in ("", "chat", "chatmessage") and isinstance(role, str):
        return _ROLES.get(role) or _ROLES.get(role.lower())
    return None


def content_parts(content: object) -> list[dict[str, Any]]:
    """A message's content as A2A text parts (content blocks: their text ones)."""
    if isinstance(content, str):
        return [{"kind": "text", "text": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str) and block:
                parts.append({"kind": "text", "text": block})
            elif isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
                parts.append({"kind": "text", "text": block["text"]})
    return parts


def history(messages: object, task: str, context_id: str) -> list[dict[str, Any]]:
    """The conversation as A2A messages (user and agent turns with content)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        role = role_of(message)
        if role is None:
            continue
        assert isinstance(message, dict)
        parts = content_parts(message.get("content"))
        if not parts:
            if role == AGENT:
                continue  # a tool call with no prose is not a turn
            parts = [{"kind": "text", "text": ""}]
        out.append({"kind": "message", "role": role, "parts": parts,
                    "messageId": str(message.get("id") or f"{task}:{index}"),
                    "taskId": task, "contextId": context_id})
    return out


def progress(name: str, frame: bytes) -> str | None:
    """The agent's text so far, from a run's ``messages/partial`` (accumulated chunks) or
    ``messages/complete`` event, which the platform forwards as ``working`` updates;
    None for other events and for messages without agent prose."""
    if name not in ("messages/partial", "messages/complete"):
        return None
    for line in frame.split(b"\n"):
        if line.startswith(b"data: "):
            try:
                items = msgspec.json.decode(line[6:])
            except msgspec.DecodeError:
                return None
            texts = [part["text"] for item in (items if isinstance(items, list) else [])
                     if role_of(item) == AGENT
                     for part in content_parts(item.get("content"))]
            return "".join(texts) or None
    return None


def reply(values: object, assistant_id: str) -> dict[str, Any]:
    """The response artifact: the last agent message after the last user one; a graph
    without ``messages`` output answers with its values as a data part."""
    messages = values.get("messages") if isinstance(values, dict) else None
    parts: list[dict[str, Any]] = []
    if isinstance(messages, list) and messages:
        turn = messages
        for index in range(len(messages) - 1, -1, -1):
            if role_of(messages[index]) == USER:
                turn = messages[index + 1:]
                break
        for message in reversed(turn):
            if role_of(message) == AGENT and isinstance(message, dict):
                parts = content_parts(message.get("content"))
                if parts:
                    break
        parts = parts or [{"kind": "text", "text": ""}]
    else:
        parts = [{"kind": "data", "data": values if isinstance(values, dict) else {}}]
    return artifact("Assistant Response", f"Response from assistant {assistant_id}", parts)


def interrupts_artifact(interrupts: object) -> dict[str, Any]:
    """A thread's pending interrupts (task id -> [{id, value}]) as data parts."""
    found: list[object] = []
    if isinstance(interrupts, dict):
        for items in interrupts.values():
            found.extend(items if isinstance(items, list) else [items])
    parts = [{"kind": "data", "data": {"id": i.get("id"), "value": i.get("value")}}
             for i in found if isinstance(i, dict)]
    return artifact("Interrupt", "Agent requires input to continue", parts)


# -- the agent card ------------------------------------------------------------------------
def agent_card(assistant: dict[str, Any], schemas: dict[str, Any], base_url: str,
               version: str) -> dict[str, Any]:
    """The card of one assistant: its A2A URL is ``{base_url}/a2a/{assistant_id}``."""
    aid = str(assistant["assistant_id"])
    name = assistant.get("name") or aid
    description = assistant.get("description") or f"{name} assistant"
    schema = schemas.get("input_schema") or schemas.get("state_schema") or {}
    properties = schema.get("properties") or {}
    modes = ["application/json", "text/plain"]
    url = f"{base_url.rstrip('/')}/a2a/{aid}"
    return {
        "name": name, "description": description, "url": url,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {
            "streaming": True, "pushNotifications": False, "stateTransitionHistory": False},
        "defaultInputModes": modes, "defaultOutputModes": modes,
        "skills": [{
            "id": f"{aid}-main", "name": f"{name} Capabilities", "description": description,
            "tags": ["assistant", "langgraph"], "examples": [], "inputModes": modes,
            "outputModes": modes,
            "metadata": {"inputSchema": {"required": schema.get("required") or [],
                                         "properties": sorted(properties),
                                         "supportsA2A": "messages" in properties}}}],
        "version": version,
    }
