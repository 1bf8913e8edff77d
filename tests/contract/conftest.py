"""Contract suites run real adapters in-process, on the trio-asyncio bridge.

tests/conftest.py imports psycopg before trio_asyncio, so ``psycopg.waiting`` holds
asyncio's original ``get_running_loop``, which cannot see trio-asyncio's loop: every
in-process async psycopg connect fails with "no running event loop" (the server
processes import in the right order, see cli.py). Rebinding the name to the function
trio_asyncio installed fixes it for this directory; it becomes a no-op once the root
conftest imports trio_asyncio first.
"""

import asyncio

import psycopg.waiting
import trio_asyncio  # noqa: F401  installs the loop-aware get_running_loop

psycopg.waiting.get_running_loop = asyncio.get_running_loop  # type: ignore[attr-defined]
