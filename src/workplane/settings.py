"""One typed settings tree for the whole server.

Values come from, in rising precedence: defaults, a TOML config file (``WORKPLANE_CONFIG`` or
``<data_dir>/workplane.toml``), and ``WORKPLANE_*`` environment variables. Nothing here is built at
import time: ``load_settings()`` is called by the CLI and by ``create_app``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKPLANE_", extra="forbid")

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory for the embedded SQLite database, the token signing key and the "
        "administrator credential file.",
    )
    signing_key_dir: Path | None = Field(
        default=None,
        description="A read-only key ring instead of the data directory's, e.g. a Kubernetes Secret "
        "mounted as a directory: the file signing-key is the current token signing key, and "
        "signing-key.<until> a key it replaced, still verifying tokens until that Unix time.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db. "
        "Default: SQLite file <data_dir>/workplane.db.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port the HTTP server listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Number of server processes.")
    pin_cpus: bool = Field(
        default=True,
        description="Keep each server process on one CPU (worker i on the i-th allowed CPU): faster than "
        "letting its threads bounce between cores.",
    )
    tenant_id: int = Field(default=1, ge=0, description="Tenant id reported on every workload.")
    token_lifetime_s: int = Field(
        default=3600, ge=120, le=86400, description="Lifetime of issued access tokens, seconds."
    )
    access_cache_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a server process keeps a caller's access rules before reading them again: "
        "a key revoked or a rule changed through another process takes effect within this time.",
    )
    deleted_retention_days: float = Field(
        default=14.0, gt=0, description="How long deleted workloads stay listable before purge."
    )
    retention_interval_s: float = Field(
        default=600.0,
        ge=0,
        description="How often deleted workloads past retention are purged, and metric samples compacted "
        "and purged (0: never).",
    )
    metrics_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="How long metric samples are kept (workload history is kept with the workload).",
    )
    db_pool_size: int = Field(default=8, ge=1, le=256, description="Connections per process.")
    db_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long a request waits for a locked SQLite before 503."
    )
    migrate_on_start: bool = Field(default=True, description="Upgrade the schema when serving.")
    sqlite_checkpoint_interval_s: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="SQLite: how often each server process copies the write-ahead log into the database "
        "file from a thread of its own, so that no writer waits for it (0: the writer that commits past "
        "64 MiB of log does it).",
    )
    sqlite_writer_cache_mib: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="SQLite: page cache of each sync worker process's connection, in MiB. A sync batch "
        "updates the pods' table and its indexes at pages spread over the whole file; with 16 MiB (the "
        "server's own connections) a 100,000-pod first sync reads many of them again from the operating "
        "system. The memory is taken as pages are read and given back when the worker stops.",
    )
    sync_processes: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes per server process that apply agents' sync batches (validation, "
        "rows, SQL), so that concurrent batches use several cores; 0: in the server process itself. "
        "They start with the first batch and stop after a minute without one. Default: the machine's "
        "CPUs divided among the server processes, at most 4 (none on a single-CPU machine).",
    )

    metrics_backend: Literal["embedded", "prometheus"] = Field(
        default="embedded",
        description="Where measured workload metrics (GPU and CPU utilisation, memory, NVLink, NIM) come "
        "from: the samples agents push (embedded) or a Prometheus that scrapes DCGM, cAdvisor and NIM "
        "(prometheus, at prometheus_url). Derived series (allocation, requests, limits, pods) always "
        "come from the store.",
    )
    prometheus_url: str | None = Field(
        default=None, description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090."
    )
    prometheus_bearer_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to Prometheus (not with a username)."
    )
    prometheus_username: str | None = Field(default=None, description="Basic auth user for Prometheus.")
    prometheus_password: SecretStr | None = Field(
        default=None, description="Basic auth password for Prometheus (needs prometheus_username)."
    )
    prometheus_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed Prometheus' certificate (https)."
    )
    prometheus_insecure: bool = Field(
        default=False, description="Do not verify Prometheus' TLS certificate (testing only)."
    )
    prometheus_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Longest wait for one Prometheus query; past it the metrics request gets 503 with "
        "Retry-After.",
    )

    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest request body accepted, bytes, except agents' sync batches (400 beyond it).",
    )
    max_sync_body_bytes: int = Field(
        default=64 << 20,
        ge=1024,
        description="Largest sync batch body accepted, bytes (400 beyond it); a batch of 20,000 workloads "
        "as the trace replay sends them is about 15 MB.",
    )
    query_timeout_ms: int = Field(
        default=10_000,
        ge=100,
        le=600_000,
        description="Longest a read query may run; past it the database cancels it and the request gets "
        "503 (PostgreSQL's statement_timeout, SQLite's progress handler). A query is also cancelled when "
        "its client disconnects.",
    )
    max_expensive_reads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Reads with 8 or more contains terms and search words that one server process runs at "
        "once; another one meanwhile is answered 429 with Retry-After, so that one caller cannot take "
        "every database connection and core.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed. Empty (default): the peer address is the client, whatever "
        "the headers say.",
    )

    server_metrics: Literal["loopback", "token", "off"] = Field(
        default="loopback",
        description="Who may read the server's own metrics at /metrics (Prometheus' format): loopback: "
        "clients on this machine only; token: those, and anyone with a bearer token of the "
        "administrator role (access:admin); off: not served, nothing counted.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        # The environment gives "10.0.0.1, 10.1.0.0/16"; the config file a list. Each must parse.
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        for item in items or ():
            ipaddress.ip_network(str(item), strict=False)
        return items

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an http(s) URL without query (e.g. http://prometheus:9090)")
        return value.strip().rstrip("/")

    @field_validator("prometheus_ca_file")
    @classmethod
    def _expand_ca(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _prometheus_settings(self) -> Settings:
        if self.metrics_backend == "prometheus" and self.prometheus_url is None:
            raise ValueError("metrics_backend = prometheus needs prometheus_url")
        if self.prometheus_password is not None and self.prometheus_username is None:
            raise ValueError("prometheus_password needs prometheus_username")
        if self.prometheus_username is not None and self.prometheus_bearer_token is not None:
            raise ValueError("give Prometheus either a bearer token or a username, not both")
        if self.prometheus_ca_file is not None and not self.prometheus_ca_file.is_file():
            raise ValueError(f"prometheus_ca_file {str(self.prometheus_ca_file)!r} is not a readable file")
        return self

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'workplane.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def checkpoints_in_background(self) -> bool:
        """SQLite: the server copies the log into the database file from a task of its own."""
        return self.is_sqlite and self.sqlite_checkpoint_interval_s > 0

    @property
    def sync_process_count(self) -> int:
        """``sync_processes``, or by default the machine's CPUs shared among the server processes."""
        if self.sync_processes is not None:
            return self.sync_processes
        cpus = os.cpu_count() or 1
        return min(cpus // self.workers, 4) if cpus > 1 else 0


def _config_file_values(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    with path.open("rb") as handle:
        values = tomllib.load(handle)
    section = values.get("workplane", values)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: expected a table of settings")
    return dict(section)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the config file, then the environment, then explicit overrides (CLI flags)."""
    explicit = os.environ.get("WORKPLANE_CONFIG")
    data_dir = Path(overrides.get("data_dir") or os.environ.get("WORKPLANE_DATA_DIR") or "data")
    config_path = Path(explicit) if explicit else data_dir / "workplane.toml"
    file_values = _config_file_values(config_path)
    env_settings = Settings()
    merged: dict[str, Any] = dict(file_values)
    # Environment variables win over the file: keep only fields the environment actually set.
    for name in env_settings.model_fields_set:
        merged[name] = getattr(env_settings, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(merged) if merged else env_settings
