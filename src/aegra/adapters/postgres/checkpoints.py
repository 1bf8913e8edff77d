"""Direct SQL on LangGraph's checkpoint tables, for what its Postgres saver lacks."""

from __future__ import annotations

import asyncpg


async def delete_run_checkpoints(conn: asyncpg.Connection, thread_id: str, run_id: str
                                 ) -> None:
    """Rollback: the thread's state returns to before the run. LangGraph's Postgres saver
    has no ``adelete_for_runs``; its checkpoints carry the run id in their metadata (we put
    it there, see runner.run_config), and writes hang off those checkpoints. Blobs are
    versioned per checkpoint, so the ones left behind are never read again."""
    await conn.execute(
        """WITH gone AS (
               DELETE FROM checkpoints WHERE thread_id = $1 AND metadata->>'run_id' = $2
               RETURNING checkpoint_ns, checkpoint_id)
           DELETE FROM checkpoint_writes w USING gone
           WHERE w.thread_id = $1 AND w.checkpoint_ns = gone.checkpoint_ns
             AND w.checkpoint_id = gone.checkpoint_id""", thread_id, run_id)
