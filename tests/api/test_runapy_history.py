"""runapy's ``get_workload_history`` against a real server: records the client's own model accepts."""

from __future__ import annotations

import pytest
from runai import models
from runai.runai_client import RunaiClient

from tests.api.test_sync import CLUSTER_A, obs, wid
from tests.server import Server

pytestmark = pytest.mark.server


def test_the_client_reads_a_workloads_history(runai: RunaiClient, server: Server) -> None:
    with server.client() as admin:
        for revision, phase, at in (
            (1, "Pending", "2024-05-01T10:00:00Z"),
            (2, "Running", "2024-05-01T10:02:00Z"),
        ):
            item = obs(1, revision, phase, phaseUpdatedAt=at)
            answer = admin.post(f"/api/v1/clusters/{CLUSTER_A}/sync", json={"workloads": [item]})
            assert answer.status_code == 200, answer.text
    page = runai.workloads.events.get_workload_history(wid(1), limit=50).data
    records = [models.HistoryRecord1.from_dict(r) for r in page["records"]]
    assert [r.spec.phase_update.phase for r in records] == ["Pending", "Running"]
    assert records[0].meta.type == "PhaseUpdate"
