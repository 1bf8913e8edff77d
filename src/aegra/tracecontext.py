"""The W3C trace context of the request being handled, for the runs it creates.

Set by the HTTP tracing hooks (``adapters/tracing/http.py``) only when tracing is on;
``RunService.create`` stores it in the run's execution params under ``PARAM``, so the
worker that executes the run, on any instance, continues the client's trace. Left at
None when tracing is off: nothing is stored, nothing costs.
"""

from __future__ import annotations

from contextvars import ContextVar

PARAM = "trace_context"  # key in a run's execution params: {"traceparent": ..., ...}

carrier: ContextVar[dict[str, str] | None] = ContextVar("aegra_trace_carrier", default=None)
