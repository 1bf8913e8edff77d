"""CORS policy from ``aegra.json`` ``http.cors`` (Starlette CORSMiddleware's keys), else
the ``http.cors_allow_origins`` setting. Pure: ``app.py`` asks, this module answers.

Starlette's rules, with one change (spec auth.md item 18): credentials are only ever
allowed for an origin named in ``allow_origins`` or matched by ``allow_origin_regex``,
echoed back. An origin let in by ``*`` gets ``*`` and no credentials, whatever
``allow_credentials`` says: Starlette echoes *any* origin with credentials there, which
hands every web page the user's cookies. An origin that is not allowed gets no
``Access-Control-Allow-Origin`` at all, and its preflight a 400.

With no ``http.cors``: the setting's origins (``*`` by default), every method and header,
and credentials only when the origins are named (not ``*``), as LangGraph Platform does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from aegra.project import CorsCfg

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
SAFELISTED_HEADERS = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
# What the SDKs read from our responses: stream reconnects follow Location; pagination.
EXPOSE = ("Content-Location", "Location", "X-Request-ID", "X-Pagination-Next",
          "X-Pagination-Total")


class _Headers(Protocol):
    def __contains__(self, key: str, /) -> bool: ...


class RequestLike(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def headers(self) -> _Headers: ...


def is_preflight(request: RequestLike) -> bool:
    """A CORS preflight: browsers send it without credentials, so auth must let it by."""
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    named: frozenset[str]  # origins written out: echoed, may get credentials
    any_origin: bool
    regex: re.Pattern[str] | None
    credentials: bool
    methods: frozenset[str] | None  # None: any
    headers: frozenset[str] | None  # lower-case; None: any
    methods_value: str
    headers_value: str
    expose_value: str
    max_age: str

    @classmethod
    def build(cls, cfg: CorsCfg | None, fallback_origins: Iterable[str]) -> CorsPolicy:
        given = cfg is not None
        cfg = cfg or CorsCfg()
        origins = tuple(fallback_origins if cfg.allow_origins is None else cfg.allow_origins)
        named = frozenset(o for o in origins if o != "*")
        regex = re.compile(cfg.allow_origin_regex) if cfg.allow_origin_regex else None
        # No http.cors at all: credentials exactly when the origins are named.
        credentials = cfg.allow_credentials if given else "*" not in origins
        any_method = "*" in cfg.allow_methods
        methods = ALL_METHODS if any_method else tuple(m.upper() for m in cfg.allow_methods)
        any_header = "*" in cfg.allow_headers
        headers = sorted({*SAFELISTED_HEADERS, *cfg.allow_headers} - {"*"})
        expose = list(dict.fromkeys((*EXPOSE, *cfg.expose_headers)))
        return cls(
            named=named, any_origin="*" in origins, regex=regex, credentials=credentials,
            methods=None if any_method else frozenset(methods),
            headers=None if any_header else frozenset(h.lower() for h in headers),
            methods_value=", ".join(methods), headers_value=", ".join(headers),
            expose_value=", ".join(expose), max_age=str(cfg.max_age))

    @property
    def credentials_unusable(self) -> bool:
        """allow_credentials asked for, but no origin is named that could receive them."""
        return self.credentials and not self.named and self.regex is None

    def _named(self, origin: str) -> bool:
        return origin in self.named or (
            self.regex is not None and self.regex.fullmatch(origin) is not None)

    def _origin(self, origin: str) -> dict[str, str] | None:
        """The origin headers for an allowed origin, None for one that is not."""
        if self._named(origin):
            out = {"Access-Control-Allow-Origin": origin}
            if self.credentials:
                out["Access-Control-Allow-Credentials"] = "true"
            return out
        if self.any_origin:
            return {"Access-Control-Allow-Origin": "*"}
        return None

    @property
    def varies(self) -> bool:
        """Whether answers depend on Origin (caches must key on it)."""
        return not self.any_origin or bool(self.named) or self.regex is not None

    def simple(self, origin: str | None) -> dict[str, str]:
        """Headers for an actual (non-preflight) response."""
        if origin is None:
            return {}
        out = self._origin(origin)
        if out is None:
            return {}
        out["Access-Control-Expose-Headers"] = self.expose_value
        return out

    def preflight(self, origin: str, method: str, requested: str | None
                  ) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) answering a preflight: 200, or 400 naming what failed."""
        failures = []
        out = self._origin(origin)
        if out is None:
            failures.append("origin")
            out = {}
        if self.methods is not None and method.upper() not in self.methods:
            failures.append("method")
        out["Access-Control-Allow-Methods"] = self.methods_value
        out["Access-Control-Max-Age"] = self.max_age
        out["Access-Control-Expose-Headers"] = self.expose_value
        wanted = [h.strip() for h in (requested or "").split(",") if h.strip()]
        if self.headers is None:
            out["Access-Control-Allow-Headers"] = ", ".join(wanted) or self.headers_value
        else:
            out["Access-Control-Allow-Headers"] = self.headers_value
            if any(h.lower() not in self.headers for h in wanted):
                failures.append("headers")
        if failures:
            return 400, out, "Disallowed CORS " + ", ".join(failures)
        return 200, out, "OK"
