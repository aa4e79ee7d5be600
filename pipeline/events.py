"""The event payload the database emits on every stage change (Standard Webhooks shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

EVENT_PREFIX = "import."


class StageEventData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: UUID
    user_id: UUID
    stage: str
    reason: Literal["stage_changed", "sweep", "released", "transient", "retry", "replay"] | str = (
        "stage_changed"
    )


class StageEvent(BaseModel):
    """Body of POST /webhooks/supabase. `type` is ``import.<stage>``."""

    model_config = ConfigDict(extra="ignore")

    type: str
    timestamp: datetime | None = None
    data: StageEventData

    @property
    def is_import_event(self) -> bool:
        return self.type.startswith(EVENT_PREFIX)
