"""The ``workplane`` command: ``serve``, ``replay``, ``db upgrade``, and the administrator's
``access-key``, ``access-rule``, ``audit`` and ``signing-key`` (``workplane.access_cli``); ``agent slurm``
(``workplane.agent_cli``).

Every flag has a ``WORKPLANE_*`` environment variable and a config-file key of the same name
(``<data-dir>/workplane.toml`` or the file named by ``WORKPLANE_CONFIG``); flags win. ``replay`` is a
client of a running server (the sync protocol) and takes only its own flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workplane import __version__
from workplane.settings import Settings, load_settings

if TYPE_CHECKING:
    from workplane.agents.demo import Demo
    from workplane.api.deps import Services


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="directory for the SQLite database, signing key and admin credential "
        "(WORKPLANE_DATA_DIR, default ./data)",
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db "
        "(WORKPLANE_DATABASE_URL, default SQLite in the data directory)",
    )


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return load_settings(data_dir=args.data_dir, database_url=args.database_url, **extra)


def _serve(args: argparse.Namespace) -> int:
    from workplane.app import build_services
    from workplane.services.setup import prepare_store

    host = args.host
    if args.no_auth:
        # Without authentication anyone who can connect is administrator: only this machine may.
        if args.host not in (None, *LOOPBACK):
            raise ValueError(f"--no-auth serves on loopback only (127.0.0.1 or ::1), not {args.host}")
        if args.workers not in (None, 1):
            raise ValueError("--no-auth runs one server process")
        host = args.host or "127.0.0.1"
    settings = _settings(args, host=host, port=args.port, workers=1 if args.no_auth else args.workers)
    if args.no_auth and settings.host not in LOOPBACK:
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    sock = _take_address(settings)
    try:
        if settings.port == 0:  # the port the system chose, for the messages and the demo
            settings = settings.model_copy(update={"port": sock.getsockname()[1]})
        services = build_services(settings, auth_disabled=args.no_auth)
        prepare_store(services.db, settings)
    except BaseException:
        sock.close()
        raise
    store = f"SQLite {settings.data_dir / 'workplane.db'}" if settings.is_sqlite else "PostgreSQL"
    print(f"workplane {__version__}: serving on http://{settings.host}:{settings.port} ({store})", flush=True)
    if args.no_auth:
        print(
            "workplane: WARNING: authentication is OFF (--no-auth): every request to "
            f"{settings.host}:{settings.port} acts as administrator, with or without a token. "
            "Listening on loopback only. Do not use this beyond local development.",
            file=sys.stderr,
            flush=True,
        )
    if settings.port:
        from workplane.agents.demo import local_url

        print(f"  dashboard: {local_url(settings.host, settings.port)}/", flush=True)
    demo = _start_demo(settings) if args.demo else None
    try:
        return _run_server(args, settings, services, sock)
    finally:
        if demo is not None:
            demo.stop()


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _start_demo(settings: Settings) -> Demo:
    from workplane.agents.demo import Demo, local_url, quiet_sync_access_log

    if settings.port == 0:
        raise ValueError("--demo needs a fixed --port (the replay talks to the server's own port)")
    quiet_sync_access_log()
    demo = Demo(local_url(settings.host, settings.port), settings.data_dir, out=_say)
    demo.start()
    return demo


def _say(line: str) -> None:
    print(line, flush=True)


def _take_address(settings: Settings) -> socket.socket:
    """Bind the server's address before anything is written: a taken port is one line naming it, with
    no store migrated, no key made and no "serving on" said. Several server processes bind their own
    sockets (``serving.run_workers``); this one only holds the port for them, without accepting."""
    from workplane.serving import listen

    if settings.workers > 1 and settings.port == 0:
        raise ValueError("several workers need a fixed --port")
    several = settings.workers > 1
    return listen(settings.host, settings.port, share_port=several, accept=not several)


def _run_server(args: argparse.Namespace, settings: Settings, services: Services, sock: socket.socket) -> int:
    import uvicorn

    from workplane.app import create_app

    if settings.workers == 1:
        if settings.pin_cpus:
            from workplane.serving import pin_to_cpu

            pin_to_cpu(0)
        from workplane.serving import uvicorn_config

        uvicorn.Server(uvicorn_config(create_app(settings, services), settings, args.log_level)).run(
            sockets=[sock]
        )
        return 0
    sock.close()  # each server process binds its own (SO_REUSEPORT)
    services.db.dispose()
    # Worker processes rebuild the settings from the environment; the store is already prepared.
    os.environ.update(
        {
            "WORKPLANE_DATA_DIR": str(settings.data_dir),
            "WORKPLANE_MIGRATE_ON_START": "false",
            # Each process's share of the CPUs for its sync worker processes depends on how many there are.
            "WORKPLANE_WORKERS": str(settings.workers),
        }
    )
    if settings.database_url is not None:
        os.environ["WORKPLANE_DATABASE_URL"] = settings.database_url.get_secret_value()
    from workplane.serving import run_workers

    return run_workers(settings.host, settings.port, settings.workers, args.log_level, pin=settings.pin_cpus)


def _replay_credentials(args: argparse.Namespace) -> tuple[str, str]:
    from workplane.agents.client import agent_credentials

    return agent_credentials(args.client_id, args.client_secret, args.credentials_file)


def _replay(args: argparse.Namespace) -> int:
    from workplane.agents.client import ServerUnavailable, SyncClient, SyncError
    from workplane.agents.replay import LiveReplay, format_trace_time, parse_trace_time, snapshot
    from workplane.agents.traces import Inventory, parse_trace_names

    names = parse_trace_names(args.traces)
    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    client_id, secret = _replay_credentials(args)
    started = time.monotonic()
    inventory = Inventory.load(names)
    summary = ", ".join(
        f"{t.cluster.name} ({t.rows:,} {t.unit} → {len(t.workloads):,} workloads)" for t in inventory.traces
    )
    print(f"replay: loaded {summary} in {time.monotonic() - started:.1f} s", flush=True)
    client = SyncClient(args.server, client_id, secret)
    try:
        if args.live:
            start = args.start.strip().lower()
            replay = LiveReplay(
                inventory,
                client,
                starts=inventory.demo_starts() if start == "busiest" else parse_trace_time(start, inventory),
                speed=args.speed,
                span_ms=round(args.duration * args.speed * 1000) if args.duration else None,
                tick_s=args.tick,
                batch_size=args.batch_size,
                state_file=Path(args.state_file) if args.state_file else None,
                log=_say,
            )
            replay.run()
            return 0
        at = parse_trace_time(args.snapshot_at, inventory)
        print(f"replay: snapshot at trace time {format_trace_time(at)} to {args.server}", flush=True)
        snapshot(inventory, client, at, batch_size=args.batch_size, log=_say)
    except (SyncError, ServerUnavailable) as exc:
        print(f"workplane replay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("workplane replay: interrupted", file=sys.stderr)
        return 130
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from workplane.services.setup import prepare_store
    from workplane.store.database import create_database

    settings = _settings(args)
    db = create_database(settings)
    prepare_store(db, settings)
    db.dispose()
    print("workplane: the store is at the latest schema", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workplane", description="A control plane for GPU workloads, wire-compatible with Run:ai."
    )
    parser.add_argument("--version", action="version", version=f"workplane {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API server (migrates the store first)")
    _add_store_flags(serve)
    serve.add_argument("--host", help="address to bind (WORKPLANE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (WORKPLANE_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="server processes (WORKPLANE_WORKERS, default 1)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--demo",
        action="store_true",
        help="also replay the bundled ITP, openb and DLRM traces live into this server (each from a "
        "busy moment, one trace minute per second; resumed across restarts)",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve WITHOUT authentication, every request acting as administrator: for local development "
        "only; binds to loopback (127.0.0.1 or ::1) and prints a warning. There is no setting for this, "
        "only the flag.",
    )
    serve.set_defaults(run=_serve)

    _add_replay_parser(commands)
    _add_agent_parsers(commands)
    from workplane.access_cli import add_parsers

    add_parsers(commands)

    db = commands.add_parser("db", help="store administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate the store to the latest schema and seed it")
    _add_store_flags(upgrade)
    upgrade.set_defaults(run=_db_upgrade)
    return parser


def _add_agent_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = commands.add_parser(
        "agent", help="run a cluster agent (reports a cluster through the sync protocol)"
    )
    agents = agent.add_subparsers(dest="agent_command", required=True)
    from workplane.agent_cli import add_parser as add_slurm_agent
    from workplane.agents.kubernetes.command import add_parser as add_kubernetes_agent

    add_kubernetes_agent(agents)
    add_slurm_agent(agents)


def _add_replay_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="replay the bundled GPU-cluster traces into a server (sync protocol)",
        description="Replay the bundled traces (Microsoft ITP, Alibaba openb, Alibaba DLRM) into a running "
        "server through the cluster sync protocol: the state at one trace instant (--snapshot-at, the "
        "default) or live (--live). Trace times are seconds from the start of each trace (1400809), "
        "a duration (16.2d, 36h, 90m) or start, busiest, end.",
    )
    from workplane.agents.client import add_connection_flags

    add_connection_flags(replay)
    replay.add_argument(
        "--traces", default="itp,openb,dlrm", help="comma-separated traces to replay (default %(default)s)"
    )
    mode = replay.add_mutually_exclusive_group()
    mode.add_argument(
        "--snapshot-at",
        default="end",
        metavar="T",
        help="send the state of every workload at trace time T as a full resync, then exit "
        "(default: end, the whole traces)",
    )
    mode.add_argument(
        "--live", action="store_true", help="replay live: trace time runs at --speed from --start"
    )
    replay.add_argument(
        "--start",
        default="busiest",
        metavar="T",
        help="live: trace time to start from, the same for every trace; busiest (the default) starts each "
        "trace at its own busiest moment (most running pods) that leaves at least five trace days to play",
    )
    replay.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="live: trace seconds per wall-clock second (default %(default)g: a trace minute per second)",
    )
    replay.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="live: replay this many seconds (duration × speed of trace time), then stop "
        "(default: until the traces end)",
    )
    replay.add_argument(
        "--tick",
        type=float,
        default=1.0,
        help="live: seconds between batches of changes (default %(default)g)",
    )
    replay.add_argument(
        "--state-file",
        help="live: keep the timeline in this file, so that a restarted agent with the same --traces, "
        "--start and --speed resumes it (full resync at its current trace time) instead of starting over",
    )
    replay.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="workloads per sync request (default %(default)s; the protocol allows up to 20,000)",
    )
    replay.set_defaults(run=_replay)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces each of its plugins at INFO on every start; the migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # httpx logs every request it makes at INFO: the client commands' output is their answer alone.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except ValueError as exc:  # bad settings: say what is wrong, without a traceback
        print(f"workplane: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
