"""Events on `care.escalations`: for operators and coordinators, never for hospitals."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict


class TaskOverdue(BaseModel):
    """A coordinator's task passed its deadline without being completed."""

    # Tolerant reader, like every internal event (see contracts.cases.CaseEvent).
    model_config = ConfigDict(frozen=True, extra="ignore")
    ce_type: ClassVar[str] = "carelink.task.overdue.v1"

    task_id: int
    service: str
    case_id: str
    kind: str
    centre_id: str
    priority: str
    due_at: AwareDatetime
    status: str
    detected_at: AwareDatetime
