"""Assistants: create, read, update, delete, search, count, versions, graph introspection.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query.
"""

from __future__ import annotations


class AssistantService:
    """Placeholder until the handlers' use cases move here."""
