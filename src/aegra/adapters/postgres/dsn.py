"""Reading a PostgreSQL URL without connecting: libpq's parser, through psycopg.

``aegra.localdb`` asks here whether a configured URL can address PostgreSQL at all, so a
typo is one line for the operator instead of a driver error quoting the URL.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict


def libpq_dsn(dsn: str) -> str:
    """``postgresql+driver://`` (SQLAlchemy style) -> ``postgresql://`` for libpq."""
    return re.sub(r"^postgres(ql)?\+[a-z0-9_]+://", "postgresql://", dsn)


def url_problem(dsn: str) -> str | None:
    """Why ``dsn`` cannot address PostgreSQL, else None. Never echoes the URL: it may hold
    a password, and the drivers' own parse errors quote it whole."""
    scheme, sep, _ = dsn.partition("://")
    if sep and not re.fullmatch(r"postgres(ql)?(\+[a-z0-9_]+)?", scheme):
        return f"the database URL has scheme {scheme!r}; expected postgresql://"
    try:
        params = conninfo_to_dict(libpq_dsn(dsn))
    except psycopg.Error:
        return "the database URL cannot be parsed; expected postgresql://user:password@host:port/db"
    port = str(params.get("port") or "")
    if port and not all(p.isdigit() for p in port.split(",")):
        return f"the database URL's port {port!r} is not a number"
    return None
