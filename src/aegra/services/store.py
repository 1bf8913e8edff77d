"""The long-term memory store: put, get, delete, search, list namespaces.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query.
"""

from __future__ import annotations

from typing import Any


class StoreService:
    """Placeholder until the handlers' use cases move here."""

    def __init__(self, items: Any) -> None:
        self.items = items
