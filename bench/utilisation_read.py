"""The Kubernetes agent's CPU per GPU-utilisation reading (``UtilisationSource.read``).

    .venv/bin/python -m bench.utilisation_read [--readings N]

Serves a DCGM exporter's text on 127.0.0.1 from a thread of this process and reads it ``N`` times as
the agent does every ``--utilisation-interval``; prints the process's CPU per reading (the agent's
side and the little HTTP server's together).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workplane.agents.kubernetes.utilisation import UtilisationSource

BODY = b'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",pod="p",namespace="n",container="c"} 50\n'


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def _cpu_per_reading(source: UtilisationSource, readings: int) -> float:
    await source.read()  # the first reading's imports and set-up are not counted
    started = time.process_time()
    for _ in range(readings):
        await source.read()
    return (time.process_time() - started) / readings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.utilisation_read", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--readings", type=int, default=200, help="readings to time (after a first one)")
    args = parser.parse_args()
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    try:
        source = UtilisationSource(f"http://127.0.0.1:{exporter.server_address[1]}/metrics", "dcgm-exporter")
        seconds = asyncio.run(_cpu_per_reading(source, args.readings))
    finally:
        exporter.shutdown()
    print(f"{args.readings} readings: {seconds * 1000:.2f} ms of CPU a reading")


if __name__ == "__main__":
    main()
