"""A sync batch as its agent sends it (docs/sync-protocol.md): the one validated model of a batch's
body, which the ingestion service parses once and the store writes from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workplane.domain.events import EventObservation
from workplane.domain.observation import FullResync, Observation, SampleSeries
from workplane.domain.pods import PodObservation

MAX_ITEMS = 20_000
MAX_PODS = 50_000


class SyncBatch(BaseModel):
    """A batch of observations from one cluster's agent. ``workloads`` items are Run:ai workload
    records (camelCase) plus ``revision`` and optionally ``observedAt`` / ``deletedAt``; ``clusterId``
    may be left out and defaults to the path's."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    cluster_name: str | None = Field(default=None, alias="clusterName", max_length=253)
    full_resync: FullResync | None = Field(default=None, alias="fullResync")
    workloads: list[Observation] = Field(default_factory=list, max_length=MAX_ITEMS)
    samples: list[SampleSeries] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[PodObservation] = Field(default_factory=list, max_length=MAX_PODS)
    events: list[EventObservation] = Field(default_factory=list, max_length=MAX_PODS)

    @field_validator("cluster_name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value
