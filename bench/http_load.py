"""Over real HTTP: start ``workplane serve`` on the loaded store, get a token through
``POST /api/v1/token`` with the administrator credential, drive one list request with N concurrent
keep-alive clients for a while, and sample the server's resident memory (summed over its processes)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.cases import Case, check_answer
from bench.load import Target
from workplane.auth.credentials import ADMIN_CLIENT_ID, ADMIN_ROLE
from workplane.auth.tokens import TokenSigner, load_or_create_key
from workplane.services.setup import ADMIN_FILE

RETENTION_DAYS = 36_500


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_command() -> list[str]:
    script = Path(sys.executable).parent / "workplane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "workplane.cli"]


class Server:
    """``workplane serve`` as a child process of the benchmark."""

    def __init__(
        self, target: Target, *, workers: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.target = target
        self.workers = workers
        self.env = env or {}
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [*_serve_command(), "serve", "--data-dir", str(self.target.data_dir)]
        if self.target.database_url_flag:
            cmd += ["--database-url", self.target.database_url_flag]
        return [*cmd, "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]

    def start(self, timeout_s: float = 180.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPLANE_")}
        # The inventory's deletions happened in 2021-2023 (the trace's replayed time): with the default
        # 14-day retention the server's purge service would remove them on start. Keep the service
        # running, with a retention that purges none of them.
        env["WORKPLANE_DELETED_RETENTION_DAYS"] = str(RETENTION_DAYS)
        env.update(self.env)
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}); see {self.log_path}")
            try:
                status, _ = request("GET", self.port, "/api/v1/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def request(
    method: str, port: int, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_token(target: Target, port: int) -> tuple[str, str]:
    """(token, how it was obtained). Normally through POST /api/v1/token with the credential the
    loader's first start saved; if that file is gone (the database outlived it), sign one with the
    server's key in the data directory."""
    path = target.data_dir / ADMIN_FILE
    if path.exists():
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        body = orjson.dumps(
            {
                "grantType": "client_credentials",
                "clientId": values["WORKPLANE_CLIENT_ID"],
                "clientSecret": values["WORKPLANE_CLIENT_SECRET"],
            }
        )
        status, answer = request("POST", port, "/api/v1/token", body, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"POST /api/v1/token answered {status}: {answer[:300]!r}")
        return str(orjson.loads(answer)["accessToken"]), "POST /api/v1/token"
    signer = TokenSigner(load_or_create_key(target.data_dir / "signing.key"))
    return signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600), "signed with the data directory's key"


# --- resident memory ------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: the ppid follows the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and its parts: RssAnon (heap), RssFile (mapped files: SQLite's mmap, libraries), RssShmem."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(line.split()[1])
    except OSError:
        pass
    return values


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (stat fields 14, 15)
    return found


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (postmaster and backends)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    found.append(int(entry))
            except OSError:
                continue
    return found


def database_backends(database: str) -> list[int]:
    """The local PostgreSQL server's backends connected to ``database`` (its process title names it:
    ``postgres: <cluster>: <user> <database> <client> <state>``)."""
    found = []
    for pid in postgres_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if len(title) > 3 and title[3] == database.encode():
            found.append(pid)
    return found


class BackendCpu:
    """The CPU seconds PostgreSQL's backends spent for one database since this was made: its
    connections' processes sampled every ``every_s`` in a thread (a backend that ends counts as of its
    last sample), which the client processes' own CPU figures do not include."""

    def __init__(self, database: str, every_s: float = 0.25) -> None:
        self.database = database
        self.every_s = every_s
        self._start = cpu_by_process(database_backends(database))
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        found = cpu_by_process(database_backends(self.database))
        with self._lock:
            self._last.update(found)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def seconds(self) -> float:
        self._sample()
        with self._lock:
            return sum(v - self._start.get(pid, 0.0) for pid, v in self._last.items())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_process(pids).values())


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent outside idle and iowait since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in fields]
    busy = sum(values) - values[3] - values[4]  # minus idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


@dataclass
class RssSample:
    total_mb: float
    anon_mb: float
    file_mb: float
    per_process_mb: dict[int, float]


def sample_rss(pid: int) -> RssSample:
    per = {p: memory_kb(p) for p in process_tree(pid)}
    return RssSample(
        sum(m.get("VmRSS", 0) for m in per.values()) / 1024,
        sum(m.get("RssAnon", 0) for m in per.values()) / 1024,
        sum(m.get("RssFile", 0) + m.get("RssShmem", 0) for m in per.values()) / 1024,
        {p: m.get("VmRSS", 0) / 1024 for p, m in per.items()},
    )


# --- the load ---------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    workers: int
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    rss_idle_mb: float
    rss_peak_mb: float
    rss_peak_anon_mb: float  # heap and other private memory
    rss_peak_file_mb: float  # file-backed pages (SQLite's mmap of the database, shared libraries)
    server_cpu_per_s: float  # CPU seconds the server processes used per second of load
    client_cpu_per_s: float  # ... and the load generator (this process), on the same cores
    machine_cpu_per_s: float  # ... and everything on the machine (PostgreSQL's backends included)
    postgres_cpu_per_s: float  # ... of which the local PostgreSQL's processes (any database)
    server_cpu_ms_per_request: float  # the server's CPU cost of one request: robust to a busy machine
    postgres_cpu_ms_per_request: float
    load_average: float  # 1-minute load average at the end of the run
    rss_after_scan_mb: float  # after one request that reads half the rows, through the same server
    rss_after_scan_anon_mb: float
    rss_peak_per_process_mb: dict[int, float] = field(default_factory=dict)
    server_cpu_per_process: dict[int, float] = field(default_factory=dict)  # cores, per process
    process_names: dict[int, str] = field(default_factory=dict)
    processes: int = 0
    token_via: str = ""
    reconnect_every: int = 0
    rss_probe: str = ""  # the request sent before the last RSS sample

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Client:
    """One keep-alive HTTP/1.1 connection that sends the same GET again and again."""

    def __init__(self, port: int, raw_request: bytes) -> None:
        self.port = port
        self.raw = raw_request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def once(self) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class _Drive:
    latencies: list[float]
    errors: int
    seconds: float
    peak: RssSample
    server_cpu_s: float
    client_cpu_s: float
    machine_cpu_s: float
    server_cpu_by_process: dict[int, float]
    postgres_cpu_s: float


async def _drive(
    server: Server,
    raw: bytes,
    case: Case,
    clients: int,
    seconds: float,
    warmup_s: float,
    reconnect_every: int = 0,
) -> _Drive:
    assert server.process is not None
    latencies: list[float] = []
    errors = 0
    peak = sample_rss(server.process.pid)
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds
    cpu_marks: dict[str, float] = {}
    per_process: dict[int, float] = {}

    async def worker() -> None:
        nonlocal errors
        client = Client(server.port, raw)
        checked = False
        sent = 0
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                if reconnect_every and sent and sent % reconnect_every == 0:
                    await client.close()
                sent += 1
                status, body = await client.once()
                t1 = time.perf_counter()
                if status != 200:
                    errors += 1
                elif not checked:
                    check_answer(case, body)
                    checked = True
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
        finally:
            await client.close()

    async def sampler() -> None:
        nonlocal peak
        assert server.process is not None
        pids = process_tree(server.process.pid)
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_marks["server"] = cpu_seconds(pids)
        cpu_marks["client"] = time.process_time()
        cpu_marks["machine"] = machine_busy_seconds()
        per_process.update(cpu_by_process(pids))
        pg = postgres_pids()
        cpu_marks["postgres"] = cpu_seconds(pg)
        while time.perf_counter() < stop_at:
            await asyncio.sleep(0.25)
            current = sample_rss(server.process.pid)
            if current.total_mb > peak.total_mb:
                peak = current
        cpu_marks["server"] = cpu_seconds(pids) - cpu_marks["server"]
        for pid, spent in cpu_by_process(pids).items():
            per_process[pid] = spent - per_process.get(pid, 0.0)
        cpu_marks["client"] = time.process_time() - cpu_marks["client"]
        cpu_marks["machine"] = machine_busy_seconds() - cpu_marks["machine"]
        cpu_marks["postgres"] = cpu_seconds(pg) - cpu_marks["postgres"]

    await asyncio.gather(*(worker() for _ in range(clients)), sampler())
    return _Drive(
        latencies,
        errors,
        stop_at - measure_from,
        peak,
        cpu_marks["server"],
        cpu_marks["client"],
        cpu_marks["machine"],
        per_process,
        cpu_marks["postgres"],
    )


def run_load(
    target: Target,
    case: Case,
    *,
    scan_case: Case | None = None,
    workers: int,
    clients: int,
    seconds: float,
    warmup_s: float,
    log_dir: Path,
    reconnect_every: int = 0,
) -> LoadResult:
    log_path = log_dir / f"server-{target.kind}-{workers}w.log"
    with Server(target, workers=workers, log_path=log_path) as server:
        assert server.process is not None
        token, via = get_token(target, server.port)
        raw = (
            f"GET {case.url()} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        status, body = request("GET", server.port, case.url(), None, {"Authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"{case.key} over HTTP answered {status}: {body[:300]!r}")
        check_answer(case, body)
        time.sleep(1.0)  # let the worker processes settle before the idle sample
        idle = sample_rss(server.process.pid)
        drive = asyncio.run(_drive(server, raw, case, clients, seconds, warmup_s, reconnect_every))
        names = {p: _command_line(p) for p in process_tree(server.process.pid)}
        after_scan = RssSample(float("nan"), float("nan"), float("nan"), {})
        if scan_case is not None:
            headers = {"Authorization": f"Bearer {token}"}
            status, body = request("GET", server.port, scan_case.url(), None, headers)
            if status != 200:
                raise RuntimeError(f"{scan_case.key} over HTTP answered {status}: {body[:300]!r}")
            check_answer(scan_case, body)
            after_scan = sample_rss(server.process.pid)
    ms = sorted(x * 1000 for x in drive.latencies)
    measured_s, peak = drive.seconds, drive.peak
    n = len(ms)

    def pct(p: float) -> float:
        return ms[max(0, min(n - 1, int(-(-n * p // 100)) - 1))] if n else float("nan")

    return LoadResult(
        workers=workers,
        clients=clients,
        seconds=measured_s,
        requests=n,
        errors=drive.errors,
        rps=n / measured_s if measured_s > 0 else 0.0,
        p50_ms=pct(50),
        p99_ms=pct(99),
        mean_ms=sum(ms) / n if n else float("nan"),
        rss_idle_mb=idle.total_mb,
        rss_peak_mb=peak.total_mb,
        rss_peak_anon_mb=peak.anon_mb,
        rss_peak_file_mb=peak.file_mb,
        server_cpu_per_s=drive.server_cpu_s / measured_s,
        client_cpu_per_s=drive.client_cpu_s / measured_s,
        machine_cpu_per_s=drive.machine_cpu_s / measured_s,
        postgres_cpu_per_s=drive.postgres_cpu_s / measured_s,
        server_cpu_ms_per_request=1000 * drive.server_cpu_s / n if n else float("nan"),
        postgres_cpu_ms_per_request=1000 * drive.postgres_cpu_s / n if n else float("nan"),
        load_average=load_average(),
        rss_after_scan_mb=after_scan.total_mb,
        rss_after_scan_anon_mb=after_scan.anon_mb,
        rss_peak_per_process_mb=peak.per_process_mb,
        server_cpu_per_process={p: s / measured_s for p, s in drive.server_cpu_by_process.items()},
        process_names=names,
        processes=len(peak.per_process_mb),
        token_via=via,
        reconnect_every=reconnect_every,
        rss_probe=scan_case.describe() if scan_case is not None else "",
    )
