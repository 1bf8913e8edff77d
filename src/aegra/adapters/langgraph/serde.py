"""LangGraph/LangChain objects -> plain JSON-able builtins for the wire and JSONB.

Messages become their dict form (``type``, ``content``, ``id``, ``additional_kwargs``,
``response_metadata``, ``tool_calls``, ...), interrupts ``{value, id}``, pydantic models
and dataclasses their fields; anything unknown its ``str``. Iterative over containers
only as deep as the data is; no recursion beyond the data's own nesting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from langchain_core.messages import BaseMessage
from langgraph.types import Command, Interrupt, Send
from pydantic import BaseModel

_PRIMITIVE = (str, int, float, bool, type(None))


def to_json(obj: object) -> Any:  # noqa: ANN401  any JSON value: callers know what they passed
    if isinstance(obj, _PRIMITIVE):
        return obj
    if isinstance(obj, Mapping):
        return {str(k) if not isinstance(k, str) else k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_json(v) for v in obj]
    if isinstance(obj, BaseMessage):
        return to_json(obj.model_dump())
    if isinstance(obj, Interrupt):
        return {"value": to_json(obj.value), "id": obj.id}
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": to_json(obj.arg)}
    if isinstance(obj, Command):
        return {k: to_json(v) for k, v in dataclasses.asdict(obj).items() if v is not None}
    if isinstance(obj, BaseModel):
        return to_json(obj.model_dump(mode="python"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_json(obj.value)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if hasattr(obj, "to_json") and callable(obj.to_json):
        try:
            return to_json(obj.to_json())
        except Exception:  # noqa: BLE001  fall through to str()
            pass
    return str(obj)


def _enc_hook(obj: object) -> object:
    if isinstance(obj, BaseMessage | BaseModel):
        return obj.model_dump()
    if isinstance(obj, set | frozenset):
        return list(obj)
    return to_json(obj)


_encoder: msgspec.json.Encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode(obj: object) -> bytes:
    """JSON bytes straight from LangGraph objects: msgspec walks the data natively and
    calls back only for the types it does not know (messages, pydantic models)."""
    return _encoder.encode(obj)
