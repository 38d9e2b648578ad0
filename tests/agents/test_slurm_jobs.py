"""Reading Slurm's rows (as squeue -O and sacct --parsable2 print them) and turning jobs into sync items."""

from __future__ import annotations

from workplane.agents.slurm.jobs import (
    PHASES,
    SQUEUE_FIELDS,
    Organisation,
    accounting_jobs,
    from_squeue,
    gres_gpus,
    item,
    memory_mib,
    squeue_format,
    workload_id,
)
from workplane.agents.slurm.usage import Sampled, cpu_seconds, job_usage, samples
from workplane.domain.observation import Observation

# Lines as Slurm 22.05 printed them (SLURM_TIME_FORMAT=%s).
RUNNING_GPU = (
    "12|12|RUNNING|None|1796513334|1796513335|1828049335|root|team-a|debug|1|1|1|"
    "cpu=1,mem=500M,node=1,billing=1,gres/gpu=1|N/A|gres:gpu:1|N/A|1|0|vm|train | step 1"
)
PENDING_TASK = (
    "13_2|13|PENDING|Resources|1796513334|1828049335|NONE|root|team-a|debug,batch|2|4|4|"
    "cpu=4,mem=2G,node=2|N/A|gres:gpu:2|N/A|1|0||wrap"
)
FAILED = (
    "3|3|FAILED|NonZeroExitCode|1796513007|1796513057|1796513058|root|(null)|debug|1|1|1|"
    "cpu=1,mem=500M,node=1|N/A|N/A|N/A|1|768|vm|wrap"
)
SACCT = [
    "2_0|5|COMPLETED|None|1796513007|1796513008|1796513028|root|team-a|debug|1|1|"
    "billing=1,cpu=1,mem=500M,node=1|billing=1,cpu=1,mem=500M,node=1|0:0|vm|wrap",
    "2_0.batch|5.batch|COMPLETED||1796513008|1796513008|1796513028||||1|1||cpu=1,mem=500M,node=1|0:0|vm|batch",
    "9|9|CANCELLED by 0|None|1796513036|1796513036|1796513036|root|root|debug|1|1|"
    "billing=1,cpu=1,mem=500M,node=1||0:0|None assigned|wrap",
    "20|20|COMPLETED|None|1796513100|1796513101|1796513160|root|team-a|debug|1|2|cpu=2,gres/gpu=1|cpu=2,gres/gpu=1|0:0|vm|interactive",
    "20.0|20.0|COMPLETED||1796513101|1796513101|1796513160||||1|2||cpu=2|0:0|vm|bash",
    # An array cancelled before any task started: one record for its tasks; a placeholder before it.
    "30|30|CANCELLED by 0|None|1796514807|1796514809|1796514809|root|root||0|0|||0:0|"
    "None assigned|allocation",
    "30_[0,2-3%2]|30|CANCELLED by 0|JobHeldUser|1796514807|1796514809|1796514809|root|root|debug|1|1|"
    "billing=1,cpu=1,mem=500M,node=1||0:0|None assigned|held",
]
ORG = Organisation(parents={"team-a": "research", "research": "root"})


def test_squeue_format_ends_with_the_name() -> None:
    assert squeue_format().startswith("JobArrayID:0|,JobID:0|,")
    assert squeue_format().endswith(",Name:0")
    assert SQUEUE_FIELDS[-1] == "Name"


def test_running_gpu_job() -> None:
    job = from_squeue(RUNNING_GPU)
    assert job is not None
    assert (job.key, job.name, job.state) == ("12", "train | step 1", "RUNNING")
    assert (job.start_s, job.end_s) == (1796513335, None)
    assert (job.gpus_requested, job.gpus_allocated, job.memory_mib, job.batch) == (1, 1, 500, True)
    record = item(job, "c1", ORG)
    assert record["id"] == workload_id("c1", "12")
    assert record["name"] == "train | step 1-12"
    assert (record["phase"], record["phaseUpdatedAt"]) == ("Running", "2026-12-05T23:28:55.000Z")
    assert (record["projectName"], record["departmentName"], record["type"]) == (
        "team-a",
        "research",
        "Training",
    )
    assert record["allocatedResources"] == {"gpu": 1, "cpu": 1, "cpuMemory": "500Mi"}
    assert record["totalPendingTimeSeconds"] == 1
    Observation.model_validate({**record, "revision": 1, "clusterId": "5e0c6a2e-3c1d-4f7a-9b2e-0d4f1a2b3c4d"})


def test_pending_array_task_on_two_nodes() -> None:
    job = from_squeue(PENDING_TASK)
    assert job is not None
    record = item(job, "c1", ORG)
    assert (record["phase"], record["phaseMessage"], record["type"]) == (
        "Pending",
        "Resources",
        "Distributed",
    )
    assert record["workloadRequestedResources"] == {
        "gpu": {"request": 4.0},  # gres:gpu:2 per node, two nodes
        "cpu": {"request": 4},
        "cpuMemory": {"request": "2Gi"},
    }
    assert (record["runningPods"], record["requestedPods"]) == (0, {"number": 2})
    assert (record["requestedNodePools"], record["currentNodePools"]) == (["debug", "batch"], [])
    assert "totalRunningTimeSeconds" in record


def test_failed_job_exit_code_and_default_project() -> None:
    job = from_squeue(FAILED)
    assert job is not None
    record = item(job, "c1", ORG)
    assert (record["phase"], record["phaseMessage"]) == ("Failed", "Failed: exit code 3")
    assert (record["projectName"], record["departmentName"]) == ("default", "default")
    assert (record["totalPendingTimeSeconds"], record["totalRunningTimeSeconds"]) == (50, 1)


def test_accounting_rows() -> None:
    jobs = {job.key: job for job in accounting_jobs(SACCT)}
    assert set(jobs) == {"2_0", "9", "20", "30_0", "30_2", "30_3"}
    assert jobs["30_3"].state == "CANCELLED"
    assert jobs["2_0"].batch is True  # it has a batch step
    assert jobs["20"].batch is False  # steps, none of them batch: an interactive allocation
    assert item(jobs["20"], "c", ORG)["type"] == "Workspace"
    assert jobs["20"].gpus_requested == 1
    cancelled = item(jobs["9"], "c", ORG)
    assert (cancelled["phase"], cancelled["phaseMessage"]) == ("Stopped", "Cancelled")
    assert cancelled["currentNodePools"] == []  # never ran
    assert jobs["9"].start_s is None


def test_every_phase_is_a_run_ai_phase() -> None:
    allowed = {"Pending", "Initializing", "Running", "Stopped", "Completed", "Failed"}
    assert {phase for phase, _ in PHASES.values()} <= allowed


def test_gres_and_memory() -> None:
    assert gres_gpus("gres:gpu:a100:2,gres:nic:1") == 2
    assert gres_gpus("gres/gpu=3") == 3
    assert gres_gpus("gres:gpu") == 1
    assert gres_gpus("N/A") == 0
    assert (memory_mib("4G"), memory_mib("512K"), memory_mib("1000")) == (4096, 0.5, 1000)


def test_usage_samples() -> None:
    rows = [
        "11.batch|cpu=00:00:06,energy=0,mem=219668K,pages=0",
        "11.0|cpu=1-00:00:00,mem=1G",
        "12.batch|cpu=00:30.500,mem=0",
    ]
    usage = job_usage(rows)
    assert usage["11"].cpu_seconds == 86_406
    assert usage["11"].memory_bytes == 219668 * 1024 + 2**30
    assert cpu_seconds("00:30.500") == 30.5
    series, remembered = samples(usage, {"11": "w11"}, {"11": Sampled(1000, 86_388)}, 7000)
    assert {(s["metric"], s["values"][0]) for s in series} == {
        ("CPU_MEMORY_USAGE_BYTES", 219668 * 1024 + 2**30),
        ("CPU_USAGE_CORES", 3.0),
    }
    assert remembered == {"11": Sampled(7000, 86_406)}
    # Under MIN_CPU_WINDOW_MS since the baseline: memory only, and the baseline stays.
    series, remembered = samples(usage, {"11": "w11"}, {"11": Sampled(3000, 86_405)}, 3000 + 4999)
    assert [s["metric"] for s in series] == ["CPU_MEMORY_USAGE_BYTES"]
    assert remembered == {"11": Sampled(3000, 86_405)}
    # CPU time that went down (a step started over) is a new baseline, not a negative rate.
    series, remembered = samples(usage, {"11": "w11"}, {"11": Sampled(1000, 90_000)}, 9000)
    assert [s["metric"] for s in series] == ["CPU_MEMORY_USAGE_BYTES"]
    assert remembered == {"11": Sampled(9000, 86_406)}
