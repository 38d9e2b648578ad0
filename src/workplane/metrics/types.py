"""The metric types of ``GET /workloads/{id}/metrics`` and where each one's values come from."""

from __future__ import annotations

from enum import StrEnum

from workplane.domain.observation import MeasuredMetric


class WorkloadMetricType(StrEnum):
    GPU_UTILIZATION = "GPU_UTILIZATION"
    GPU_MEMORY_USAGE_BYTES = "GPU_MEMORY_USAGE_BYTES"
    GPU_MEMORY_REQUEST_BYTES = "GPU_MEMORY_REQUEST_BYTES"
    CPU_USAGE_CORES = "CPU_USAGE_CORES"
    CPU_REQUEST_CORES = "CPU_REQUEST_CORES"
    CPU_LIMIT_CORES = "CPU_LIMIT_CORES"
    CPU_MEMORY_USAGE_BYTES = "CPU_MEMORY_USAGE_BYTES"
    CPU_MEMORY_REQUEST_BYTES = "CPU_MEMORY_REQUEST_BYTES"
    CPU_MEMORY_LIMIT_BYTES = "CPU_MEMORY_LIMIT_BYTES"
    POD_COUNT = "POD_COUNT"
    RUNNING_POD_COUNT = "RUNNING_POD_COUNT"
    GPU_ALLOCATION = "GPU_ALLOCATION"
    NIM_NUM_REQUESTS_RUNNING = "NIM_NUM_REQUESTS_RUNNING"
    NIM_NUM_REQUESTS_WAITING = "NIM_NUM_REQUESTS_WAITING"
    NIM_NUM_REQUEST_MAX = "NIM_NUM_REQUEST_MAX"
    NIM_REQUEST_SUCCESS_TOTAL = "NIM_REQUEST_SUCCESS_TOTAL"
    NIM_REQUEST_FAILURE_TOTAL = "NIM_REQUEST_FAILURE_TOTAL"
    NIM_GPU_CACHE_USAGE_PERC = "NIM_GPU_CACHE_USAGE_PERC"
    NIM_TIME_TO_FIRST_TOKEN_SECONDS = "NIM_TIME_TO_FIRST_TOKEN_SECONDS"  # noqa: S105 (a metric name)
    NIM_E2E_REQUEST_LATENCY_SECONDS = "NIM_E2E_REQUEST_LATENCY_SECONDS"
    NIM_TIME_TO_FIRST_TOKEN_SECONDS_PERCENTILES = "NIM_TIME_TO_FIRST_TOKEN_SECONDS_PERCENTILES"  # noqa: S105
    NIM_E2E_REQUEST_LATENCY_SECONDS_PERCENTILES = "NIM_E2E_REQUEST_LATENCY_SECONDS_PERCENTILES"
    NVLINK_BANDWIDTH_TOTAL = "NVLINK_BANDWIDTH_TOTAL"


class PodMetricType(StrEnum):
    """The types of ``GET /workloads/{id}/pods/{podId}/metrics``. Those named like a measured workload
    type mean the same for the one pod; the per-GPU and advanced GPU types are not served (207)."""

    GPU_UTILIZATION_PER_GPU = "GPU_UTILIZATION_PER_GPU"
    GPU_UTILIZATION = "GPU_UTILIZATION"
    GPU_MEMORY_USAGE_BYTES_PER_GPU = "GPU_MEMORY_USAGE_BYTES_PER_GPU"
    GPU_MEMORY_USAGE_BYTES = "GPU_MEMORY_USAGE_BYTES"
    CPU_USAGE_CORES = "CPU_USAGE_CORES"
    CPU_MEMORY_USAGE_BYTES = "CPU_MEMORY_USAGE_BYTES"
    GPU_GRAPHICS_ENGINE_ACTIVITY_PER_GPU = "GPU_GRAPHICS_ENGINE_ACTIVITY_PER_GPU"
    GPU_SM_ACTIVITY_PER_GPU = "GPU_SM_ACTIVITY_PER_GPU"
    GPU_SM_OCCUPANCY_PER_GPU = "GPU_SM_OCCUPANCY_PER_GPU"
    GPU_TENSOR_ACTIVITY_PER_GPU = "GPU_TENSOR_ACTIVITY_PER_GPU"
    GPU_FP64_ENGINE_ACTIVITY_PER_GPU = "GPU_FP64_ENGINE_ACTIVITY_PER_GPU"
    GPU_FP32_ENGINE_ACTIVITY_PER_GPU = "GPU_FP32_ENGINE_ACTIVITY_PER_GPU"
    GPU_FP16_ENGINE_ACTIVITY_PER_GPU = "GPU_FP16_ENGINE_ACTIVITY_PER_GPU"
    GPU_MEMORY_BANDWIDTH_UTILIZATION_PER_GPU = "GPU_MEMORY_BANDWIDTH_UTILIZATION_PER_GPU"
    GPU_NVLINK_TRANSMITTED_BANDWIDTH_PER_GPU = "GPU_NVLINK_TRANSMITTED_BANDWIDTH_PER_GPU"
    GPU_NVLINK_RECEIVED_BANDWIDTH_PER_GPU = "GPU_NVLINK_RECEIVED_BANDWIDTH_PER_GPU"
    GPU_PCIE_TRANSMITTED_BANDWIDTH_PER_GPU = "GPU_PCIE_TRANSMITTED_BANDWIDTH_PER_GPU"
    GPU_PCIE_RECEIVED_BANDWIDTH_PER_GPU = "GPU_PCIE_RECEIVED_BANDWIDTH_PER_GPU"
    GPU_SWAP_MEMORY_BYTES_PER_GPU = "GPU_SWAP_MEMORY_BYTES_PER_GPU"
    NIM_NUM_REQUESTS_RUNNING = "NIM_NUM_REQUESTS_RUNNING"
    NIM_NUM_REQUESTS_WAITING = "NIM_NUM_REQUESTS_WAITING"
    NIM_NUM_REQUEST_MAX = "NIM_NUM_REQUEST_MAX"
    NIM_REQUEST_SUCCESS_TOTAL = "NIM_REQUEST_SUCCESS_TOTAL"
    NIM_REQUEST_FAILURE_TOTAL = "NIM_REQUEST_FAILURE_TOTAL"
    NIM_GPU_CACHE_USAGE_PERC = "NIM_GPU_CACHE_USAGE_PERC"
    NIM_TIME_TO_FIRST_TOKEN_SECONDS = "NIM_TIME_TO_FIRST_TOKEN_SECONDS"  # noqa: S105 (a metric name)
    NIM_E2E_REQUEST_LATENCY_SECONDS = "NIM_E2E_REQUEST_LATENCY_SECONDS"
    NIM_TIME_TO_FIRST_TOKEN_SECONDS_PERCENTILES = "NIM_TIME_TO_FIRST_TOKEN_SECONDS_PERCENTILES"  # noqa: S105
    NIM_E2E_REQUEST_LATENCY_SECONDS_PERCENTILES = "NIM_E2E_REQUEST_LATENCY_SECONDS_PERCENTILES"
    NVLINK_BANDWIDTH_TOTAL = "NVLINK_BANDWIDTH_TOTAL"
    NVLINK_BANDWIDTH_TOTAL_PER_GPU = "NVLINK_BANDWIDTH_TOTAL_PER_GPU"


def as_workload_type(metric: PodMetricType) -> WorkloadMetricType | None:
    """The measured workload type a pod type means for one pod (None: not one of them)."""
    try:
        found = WorkloadMetricType(metric.value)
    except ValueError:
        return None
    return found if found not in DERIVED and measured(found) is not None else None


# From the workload's own history (``domain.observation.derived_values`` names the same keys).
DERIVED = frozenset(
    {
        WorkloadMetricType.GPU_ALLOCATION,
        WorkloadMetricType.GPU_MEMORY_REQUEST_BYTES,
        WorkloadMetricType.CPU_REQUEST_CORES,
        WorkloadMetricType.CPU_LIMIT_CORES,
        WorkloadMetricType.CPU_MEMORY_REQUEST_BYTES,
        WorkloadMetricType.CPU_MEMORY_LIMIT_BYTES,
        WorkloadMetricType.POD_COUNT,
        WorkloadMetricType.RUNNING_POD_COUNT,
    }
)

# Workload types that serve inference, the only ones NIM_* series are answered for.
INFERENCE_TYPES = frozenset({"Inference", "DistributedInference", "NIMService", "InferenceService"})


def measured(metric: WorkloadMetricType) -> MeasuredMetric | None:
    """The sample series behind a measured type; None for derived types and for the percentile types,
    which are histograms no agent reports as samples."""
    try:
        return MeasuredMetric(metric.value)
    except ValueError:
        return None


def servable(metric: WorkloadMetricType, workload_type: str) -> bool:
    """Whether this type can be answered for a workload of this type at all (else: 207)."""
    if metric in DERIVED:
        return True
    if measured(metric) is None:
        return False
    return not metric.value.startswith("NIM_") or workload_type in INFERENCE_TYPES
