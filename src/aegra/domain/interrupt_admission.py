"""Interrupt-safe admission: may a run start on a thread that waits on ``interrupt()``? Pure.

On LangGraph Platform a plain run (new ``input``, no ``command``) on an ``interrupted``
thread is accepted and silently drops the pending question. With asynchronous approvals
(an email answered an hour later, on another replica) the answer then reaches a thread
that has moved on (issue #13 item 3). Two modes:

- ``allow`` (the default, the platform's behaviour): every run is admitted.
- ``require_resume``: a run on a thread with pending interrupts must answer them (carry a
  ``command``) or leave them alone (no ``input``: the interrupted node runs again and asks
  again); anything else is ``InterruptPending`` (409) naming the interrupts.

The server setting is ``runs.interrupt_admission``; one request overrides it with the
``x-aegra-interrupt-admission`` header (``allow`` is how a client explicitly discards the
question). Static breakpoints (``interrupt_before``/``after``) carry no question and are
not covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from aegra.domain.errors import Conflict, Invalid

Mode = Literal["allow", "require_resume"]
MODES: tuple[Mode, ...] = ("allow", "require_resume")
HEADER = "x-aegra-interrupt-admission"
Headers = Mapping[str, str] | Iterable[tuple[str, str]] | None


class InterruptPending(Conflict):
    """409: the thread waits on interrupts this run would discard. ``body`` is merged into
    the error response, so a client can show the question it has to answer."""

    kind = "interrupt_pending"

    def __init__(self, thread_id: str, interrupts: list[dict[str, Any]]) -> None:
        shown = ", ".join(f"{i.get('id')} ({_short(i.get('value'))})" for i in interrupts)
        super().__init__(
            f"Thread {thread_id} is waiting on interrupt {shown}: resume it with "
            f"command={{'resume': ...}}, or send the header '{HEADER}: allow' to discard it")
        self.body = {"thread_id": thread_id, "interrupts": interrupts}


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def mode(default: Mode, headers: Headers) -> Mode:
    """The mode for one request: the header when sent, else the server's setting."""
    if headers is None:
        return default
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key.lower() == HEADER:
            wanted = value.strip().lower()
            if wanted not in MODES:
                raise Invalid(f"header {HEADER} must be one of {', '.join(MODES)}, "
                              f"not {value!r}", field=HEADER)
            return wanted
    return default


def leaves_interrupts_alone(body: Mapping[str, Any]) -> bool:
    """A run that answers the question (any ``command``: resume, goto, update) or sends
    no new input (the interrupted node re-runs and asks again) cannot discard it."""
    return body.get("command") is not None or body.get("input") is None


def pending(by_task: object) -> list[dict[str, Any]]:
    """The thread row's interrupts (task id -> ``[{id, value}]``) as one list."""
    out: list[dict[str, Any]] = []
    if not isinstance(by_task, Mapping):
        return out
    for entries in by_task.values():
        if isinstance(entries, list):
            out.extend(e for e in entries if isinstance(e, dict))
    return out


def check(thread_id: str, status: str, by_task: object) -> None:
    """Refuse (``require_resume`` already decided) when the thread waits on interrupts."""
    waiting = pending(by_task) if status == "interrupted" else []
    if waiting:
        raise InterruptPending(thread_id, [{"id": i.get("id"), "value": i.get("value")}
                                           for i in waiting])
