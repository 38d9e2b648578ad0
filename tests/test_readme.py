"""The README's "Run it" commands, run as written (bash, curl, python3) against a real server: the token
one-liner gives a token that lists workloads, and when it cannot it shows the server's reason."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Server, free_port, running_server
from workplane.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_TIMEOUT_S = 60


def token_block() -> list[str]:
    """The lines of the README's first bash block that sets ``SERVER``."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    block = next(b for b in blocks if b.startswith("SERVER="))
    lines: list[str] = block.splitlines()
    return lines


def run(lines: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT_S,
        check=False,
    )


def pointed_at(url: str, lines: list[str]) -> list[str]:
    assert lines[0].startswith("SERVER=")
    return [f"SERVER={url}", *lines[1:]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    with running_server(tmp_path_factory.mktemp("readme") / "data") as running:
        yield running


def test_the_block_names_the_default_address_once_and_uses_it_everywhere() -> None:
    lines = token_block()
    host, port = (Settings.model_fields[name].default for name in ("host", "port"))
    assert lines[0] == f"SERVER=http://{host}:{port}"
    assert not [line for line in lines[1:] if str(port) in line]
    assert sum('"$SERVER/' in line for line in lines) == 2


def test_the_token_lists_workloads(server: Server) -> None:
    done = run(pointed_at(server.base_url, token_block()), server.data_dir.parent)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["workloads"] == []


def test_a_refused_key_shows_the_servers_message(server: Server) -> None:
    lines = pointed_at(server.base_url, token_block())
    source = next(i for i, line in enumerate(lines) if line.startswith("source "))
    lines.insert(source + 1, "WORKPLANE_CLIENT_SECRET=wrong")
    token_end = next(i for i, line in enumerate(lines) if line.endswith("')"))
    done = run([*lines[: token_end + 1], 'echo "token=[$TOKEN]"'], server.data_dir.parent)
    assert done.stdout == "token=[]\n"
    assert done.stderr == "no token: invalid client credentials\n"


def test_no_server_says_so(server: Server) -> None:
    lines = pointed_at(f"http://127.0.0.1:{free_port()}", token_block())
    token_end = next(i for i, line in enumerate(lines) if line.endswith("')"))
    done = run([*lines[: token_end + 1], 'echo "token=[$TOKEN]"'], server.data_dir.parent)
    assert done.stdout == "token=[]\n"
    assert "Failed to connect" in done.stderr  # curl -sS
    assert done.stderr.endswith("no token: no answer\n")
    assert "Traceback" not in done.stderr
