"""Trio-only shared state of one instance: the run registry and the supervisor's board.

Below ``api``, ``services`` and ``supervisor``, so each of them may read it without an
arrow running back up. Nothing here does I/O.
"""
