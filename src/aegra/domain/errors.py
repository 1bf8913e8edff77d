"""Domain errors. ``api/errors.py`` maps each class to one HTTP status.

::

    DomainError
    ├── NotFound                 404  an id that does not exist (or is not yours)
    ├── Conflict                 409  already exists, busy, not cancellable
    │   ├── ThreadBusy
    │   └── RunNotCancellable
    ├── Invalid                  422  a bad field; ``field`` names it
    ├── BadRequest               400  well-formed but not meaningful now
    ├── Forbidden                403
    ├── TooMany                  429  a quota (e.g. crons per user)
    ├── PayloadTooLarge          413
    └── Unavailable              503
        ├── Draining             the instance is shutting down
        └── StoreUnavailable     PostgreSQL / Redis cannot be reached
"""

from __future__ import annotations


class DomainError(Exception):
    status = 500
    kind = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status = 404
    kind = "not_found"


class Conflict(DomainError):
    status = 409
    kind = "conflict"


class ThreadBusy(Conflict):
    pass


class RunNotCancellable(Conflict):
    pass


class Invalid(DomainError):
    status = 422
    kind = "validation_error"


class BadRequest(DomainError):
    status = 400
    kind = "bad_request"


class Forbidden(DomainError):
    status = 403
    kind = "forbidden"


class TooMany(DomainError):
    status = 429
    kind = "too_many_requests"


class PayloadTooLarge(DomainError):
    status = 413
    kind = "payload_too_large"


class Unavailable(DomainError):
    status = 503
    kind = "service_unavailable"


class Draining(Unavailable):
    pass


class StoreUnavailable(Unavailable):
    pass
