"""Admin endpoints (spec operations.md §3-§5): /admin/stats, /admin/maintenance,
/admin/log-level, behind ``AEGRA_ADMIN_TOKEN``.

Fail closed: without a configured token every ``/admin/*`` path is 404, as if the
endpoints did not exist (an open admin surface would let anyone pause the deployment).
With one, a request without ``Authorization: Bearer <token>`` or with another token is
401 before its body is read, so a refused request has no effect. These paths are outside
the custom auth handler (``api/auth.py``): the token is their credential.
"""

from __future__ import annotations

import hmac

import msgspec
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import deps, services
from aegra.api.errors import error_response
from aegra.api.openapi import documented
from aegra.api.wire import body, json
from aegra.services.admin import AdminService

bp = Blueprint("admin", __name__, url_prefix="/admin")


class _Maintenance(msgspec.Struct):
    enabled: bool


class _Level(msgspec.Struct):
    level: str


def refusal(token: str, header: str | None) -> Response | None:
    """The answer to a request that may not use /admin/*, or None when it may."""
    if not token:
        return error_response(404, "not found: the admin endpoints are off "
                                   "(set AEGRA_ADMIN_TOKEN to turn them on)")
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                          token.encode()):
        return None
    response = error_response(401, "admin token required: Authorization: Bearer <token>",
                              "unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="aegra-admin"'
    return response


@bp.before_request
async def _token() -> Response | None:
    return refusal(deps().config.auth.admin_token, request.headers.get("Authorization"))


def _admin() -> AdminService:
    found = services().admin
    if found is None:
        raise RuntimeError("the admin service is not wired on this app")
    return found


@bp.get("/stats")
@documented(tag="admin")
async def stats() -> Response:
    """Deployment-wide run and cron counts, and this instance's workers."""
    return json(await _admin().stats(caller()))


@bp.get("/maintenance")
@documented(tag="admin")
async def get_maintenance() -> Response:
    return json(await _admin().get_maintenance(caller()))


@bp.post("/maintenance")
@documented(body=_Maintenance, tag="admin")
async def set_maintenance() -> Response:
    """Pause (or restore) run intake and cron firing on every instance, within 5 s."""
    decoded = await body(_Maintenance)
    return json(await _admin().set_maintenance(caller(), decoded.enabled))


@bp.get("/log-level")
@documented(tag="admin")
async def get_log_level() -> Response:
    return json(await _admin().get_log_level(caller()))


@bp.put("/log-level")
@documented(body=_Level, tag="admin")
async def set_log_level() -> Response:
    """This instance's log level, at once (not the deployment's)."""
    decoded = await body(_Level)
    return json(await _admin().set_log_level(caller(), decoded.level))
