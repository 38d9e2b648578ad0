"""The Prometheus back end's settings and expressions, without a Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from workplane.metrics.promql import RECIPES, Pods, window_expression
from workplane.metrics.types import WorkloadMetricType as T
from workplane.settings import Settings


@pytest.mark.parametrize(
    ("values", "mention"),
    [
        ({"metrics_backend": "prometheus"}, "needs prometheus_url"),
        ({"metrics_backend": "graphite", "prometheus_url": "http://p:9090"}, "metrics_backend"),
        ({"prometheus_url": "ftp://p:9090"}, "http(s) URL"),
        ({"prometheus_url": "http://p:9090/?x=1"}, "http(s) URL"),
        ({"prometheus_url": "prometheus:9090"}, "http(s) URL"),
        ({"prometheus_url": "http://p:9090", "prometheus_password": "s"}, "needs prometheus_username"),
        (
            {"prometheus_url": "http://p", "prometheus_username": "u", "prometheus_bearer_token": "t"},
            "not both",
        ),
        ({"prometheus_url": "https://p", "prometheus_ca_file": "/nonexistent/ca.pem"}, "prometheus_ca_file"),
        ({"prometheus_url": "http://p", "prometheus_timeout_s": 0}, "prometheus_timeout_s"),
        ({"prometheus_url": "http://p", "prometheus_timeout_s": 600}, "prometheus_timeout_s"),
    ],
)
def test_settings_refused(tmp_path: Path, values: dict[str, Any], mention: str) -> None:
    with pytest.raises(ValidationError, match=mention.replace("(", r"\(").replace(")", r"\)")):
        Settings(data_dir=tmp_path, **values)


def test_settings_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(
        data_dir=tmp_path,
        metrics_backend="prometheus",
        prometheus_url=" https://prometheus.monitoring:9090/ ",
        prometheus_username="reader",
        prometheus_password="secret",
        prometheus_ca_file=ca,
    )
    assert settings.prometheus_url == "https://prometheus.monitoring:9090"
    assert settings.prometheus_password is not None
    assert "secret" not in repr(settings)
    assert Settings(data_dir=tmp_path).metrics_backend == "embedded"


def test_pod_names_match_only_themselves() -> None:
    pods = Pods('team "a"', ("job.1-pod+0", "job-2"))
    expression = window_expression(RECIPES[T.GPU_UTILIZATION], pods, "59999ms")
    # Regex metacharacters escaped (doubled backslash inside the PromQL string), quotes escaped.
    assert 'pod=~"job-2|job\\\\.1-pod\\\\+0"' in expression
    assert 'namespace="team \\"a\\""' in expression
    # DCGM behind honor_labels: false names the pod exported_pod: both forms are matched.
    assert "exported_pod=~" in expression
    assert "exported_namespace=" in expression


def test_expressions_per_type() -> None:
    pods = Pods("ns", ("p",))
    cpu = window_expression(RECIPES[T.CPU_USAGE_CORES], pods, "299999ms")
    selector = '{namespace="ns",pod=~"p",container!="",container!="POD"}'
    assert cpu == f"sum(rate(container_cpu_usage_seconds_total{selector}[299999ms]))"
    memory = window_expression(RECIPES[T.GPU_MEMORY_USAGE_BYTES], pods, "1m")
    assert memory.startswith("sum((avg_over_time(DCGM_FI_DEV_FB_USED{")
    assert memory.endswith(" * 1048576")
    nvlink = window_expression(RECIPES[T.NVLINK_BANDWIDTH_TOTAL], pods, "1m")
    assert "DCGM_FI_PROF_NVLINK_TX_BYTES" in nvlink
    assert ") + sum(" in nvlink
    ttft = window_expression(RECIPES[T.NIM_TIME_TO_FIRST_TOKEN_SECONDS], pods, "1m")
    assert ttft == (
        'sum(increase(time_to_first_token_seconds_sum{namespace="ns",pod=~"p"}[1m])) / '
        'sum(increase(time_to_first_token_seconds_count{namespace="ns",pod=~"p"}[1m]))'
    )
