"""A Kubernetes event about a workload or one of its pods, as an agent reports it and the API serves it
(Run:ai ``Event``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workplane.domain.timefmt import format_ms, to_ms


class InvolvedObject(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    uid: uuid.UUID
    kind: str = Field(min_length=1, max_length=253)
    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(max_length=253)


class EventObservation(BaseModel):
    """One event; ``revision`` orders the observations of the same event (Kubernetes updates an event's
    count and time when it repeats)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    id: uuid.UUID
    workload_id: uuid.UUID = Field(alias="workloadId")
    revision: int = Field(ge=0, le=2**62)
    created_at: datetime = Field(alias="createdAt")
    type: str = Field(min_length=1, max_length=32)
    message: str = Field(max_length=8192)
    reason: str | None = Field(default=None, max_length=253)
    source: str | None = Field(default=None, max_length=253)
    involved_object: InvolvedObject | None = Field(default=None, alias="involvedObject")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps need a UTC offset or Z")
        return value

    @field_validator("type", "message", "reason", "source")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


def event_document(event: EventObservation, cluster_id: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(event.id),
        "createdAt": format_ms(to_ms(event.created_at)),
        "type": event.type,
        "clusterId": cluster_id,
        "message": event.message,
        "reason": event.reason,
        "source": event.source,
    }
    if event.involved_object is not None:
        document["involvedObject"] = event.involved_object.model_dump(mode="json")
    return document
