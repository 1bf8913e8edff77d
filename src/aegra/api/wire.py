"""JSON in and out with msgspec; request bodies decoded into wire Structs.

Bodies are parsed whatever the Content-Type (Studio sends JSON as ``text/plain``). A body
that does not fit its Struct is a 422 naming the field (``$.config.configurable`` ->
``config.configurable``); malformed JSON is a 422 too; NUL characters never reach a 500.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from quart import Response, request

from aegra.domain.errors import Invalid

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_FIELD = re.compile(r" - at `\$((?:\.[^`\[]+|\[\d+\])*)`")
MAX_DEPTH = 64


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(value), status=status, headers=headers,
                    content_type="application/json")


_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def field_of(message: str) -> str | None:
    """The dotted path of the offending field in a msgspec error message."""
    match = _FIELD.search(message)
    path = match.group(1).lstrip(".") if match else ""
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None


def _depth(value: object, limit: int = MAX_DEPTH) -> bool:
    """True when nesting stays within ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def strip_nul(value: object) -> object:
    """Drop NUL characters from every string and key: PostgreSQL text and JSONB cannot
    hold them. Recursion is bounded: callers check the depth first."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


def decode(data: bytes, model: type[T]) -> T:
    if not data.strip():
        data = b"{}"
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise Invalid("request body is nested too deeply", field="body") from None
    if not _depth(raw):
        raise Invalid(f"request body is nested deeper than {MAX_DEPTH} levels", field="body")
    if b"\\u0000" in data:
        raw = strip_nul(raw)
    try:
        return msgspec.convert(raw, model, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = field_of(message)
        reason = message.split(" - at ")[0]
        if field:
            raise Invalid(f"invalid field '{field}': {reason}", field=field) from None
        raise Invalid(f"invalid request body: {reason}", field="body") from None


async def body(model: type[T]) -> T:
    return decode(await request.get_data(cache=False, as_text=False,
                                          parse_form_data=False), model)


def query_list(name: str) -> list[str]:
    """A list-valued query parameter in any of the clients' spellings: repeated keys
    (Python SDK, httpx), a JSON array (the JS SDK JSON-encodes non-string values), or a
    comma-separated string. Empty values are dropped."""
    out: list[str] = []
    for raw in request.args.getlist(name):
        raw = raw.strip()
        if raw.startswith("["):
            try:
                items = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                raise Invalid(f"invalid query parameter '{name}': {raw!r}", field=name) from None
            out.extend(str(i) for i in items if i not in (None, ""))
        else:
            out.extend(part.strip() for part in raw.split(",") if part.strip())
    return out


class _ConfigShape(msgspec.Struct):
    """The typed keys of a RunnableConfig, bounded; other keys pass through untouched."""

    tags: list[str] | None = None
    recursion_limit: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    run_name: str | None = None
    configurable: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def check_config(config: dict[str, Any] | None, prefix: str = "config") -> dict[str, Any]:
    """A copy of ``config`` when its typed keys are well-formed; 422 naming the key
    otherwise (a bad ``tags`` or ``recursion_limit`` would only fail the run later)."""
    config = dict(config or {})
    try:
        msgspec.convert(config, _ConfigShape)
    except msgspec.ValidationError as exc:
        path = field_of(str(exc))
        field = f"{prefix}.{path}" if path else prefix
        raise Invalid(f"invalid field '{field}': {str(exc).split(' - at ')[0]}",
                      field=field) from None
    return config
