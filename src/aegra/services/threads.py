"""Threads and their state: create, read, update, delete, search, count, copy, prune,
state, history.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query.
"""

from __future__ import annotations


class ThreadService:
    """Placeholder until the handlers' use cases move here."""
