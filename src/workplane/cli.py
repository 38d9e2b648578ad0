"""The ``workplane`` command: ``serve`` and ``db upgrade``.

Every flag has a ``WORKPLANE_*`` environment variable and a config-file key of the same name
(``<data-dir>/workplane.toml`` or the file named by ``WORKPLANE_CONFIG``); flags win.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from workplane import __version__
from workplane.settings import Settings, load_settings


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
    import uvicorn

    from workplane.app import build_services, create_app
    from workplane.store.setup import prepare_store

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    services = build_services(settings)
    prepare_store(services.db, settings)
    store = f"SQLite {settings.data_dir / 'workplane.db'}" if settings.is_sqlite else "PostgreSQL"
    print(f"workplane {__version__}: serving on http://{settings.host}:{settings.port} ({store})", flush=True)
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings, services), host=settings.host, port=settings.port, log_level=args.log_level
        )
        return 0
    services.db.dispose()
    # Worker processes rebuild the settings from the environment; the store is already prepared.
    os.environ.update(
        {
            "WORKPLANE_DATA_DIR": str(settings.data_dir),
            "WORKPLANE_MIGRATE_ON_START": "false",
        }
    )
    if settings.database_url is not None:
        os.environ["WORKPLANE_DATABASE_URL"] = settings.database_url.get_secret_value()
    uvicorn.run(
        "workplane.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=args.log_level,
    )
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from workplane.store.database import create_database
    from workplane.store.setup import prepare_store

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
    serve.set_defaults(run=_serve)

    db = commands.add_parser("db", help="store administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate the store to the latest schema and seed it")
    _add_store_flags(upgrade)
    upgrade.set_defaults(run=_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except ValueError as exc:  # bad settings: say what is wrong, without a traceback
        print(f"workplane: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
