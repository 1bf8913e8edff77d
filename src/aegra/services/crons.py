"""Crons: create (with its first run), read, update, delete, search, count.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query.
"""

from __future__ import annotations


class CronService:
    """Placeholder until the handlers' use cases move here."""
