"""Forgetting what people typed about a case's tasks, when intake destroyed the case's
personal data (contracts.intake.PersonalDataDestroyed, PIPA art. 21).

The notes a coordinator wrote with an exit on a task (task_audit.note) are free text
that may name someone; the audit's facts (who, when, which action and coded reason)
stay. Each service that keeps other free text deletes it beside this, in the same
transaction.
"""

from __future__ import annotations

import asyncpg


async def forget_task_notes(conn: asyncpg.Connection, case_id: str) -> int:
    """Clears the notes of the case's task audit; returns how many were cleared."""
    status: str = await conn.execute(
        """UPDATE task_audit SET note = NULL
           WHERE note IS NOT NULL AND task_id IN (SELECT id FROM tasks WHERE case_id = $1)""",
        case_id,
    )
    return int(status.rsplit(" ", 1)[-1])
