"""How long each test file takes, so the parallel run can start the longest files first.

``./scripts/test`` runs the suite on one worker per core, each taking whole files (a file's module
fixtures — a Slurm cluster, a browser, a server — are made once, on one worker). pytest-xdist hands the
files out in the order it is given them; by default it orders them by how many tests they hold, which
says little about their length: a file of two end-to-end tests can take longer than one of four hundred
parsing cases, and when such a file is handed out last, one worker runs it alone while the other
core idles. Handing out the longest first (the classic longest-processing-time rule) leaves only short
files for the end.

The weights are seconds measured on this project's reference machine (2 cores); only their order
matters. A file missing from the table (a new one) gets a weight from its number of tests, so it is
neither first nor forgotten. Regenerate the table after adding slow tests:

    .venv/bin/python -m pytest -n auto --dist loadfile --junitxml=/tmp/junit.xml
    .venv/bin/python -m tests.file_weights /tmp/junit.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

TABLE = Path(__file__).with_name("file_weights.json")
# Seconds per test assumed for a file the table does not know: the suite's median per-test time.
UNKNOWN_S_PER_TEST = 0.3


def load(table: Path = TABLE) -> dict[str, float]:
    if not table.exists():
        return {}
    weights = json.loads(table.read_text())
    return {str(name): float(seconds) for name, seconds in weights.items()}


def longest_first(items: Sequence[pytest.Item], weights: dict[str, float]) -> list[pytest.Item]:
    """The items with whole files in descending weight; within a file, their own order."""
    counts = Counter(item.nodeid.split("::", 1)[0] for item in items)

    def weight(path: str) -> float:
        return weights.get(path, counts[path] * UNKNOWN_S_PER_TEST)

    files = sorted(counts, key=lambda path: (-weight(path), path))
    rank = {path: i for i, path in enumerate(files)}
    position = {id(item): i for i, item in enumerate(items)}
    return sorted(items, key=lambda item: (rank[item.nodeid.split("::", 1)[0]], position[id(item)]))


def from_junit(report: Path) -> dict[str, float]:
    """Seconds per test file from a JUnit XML report (setup, call and teardown of every test)."""
    seconds: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):  # noqa: S314 (a report this suite wrote)
        # "tests.api.test_sync" or, for a test in a class, "tests.api.test_sync.TestSomething"
        parts = case.get("classname", "").split(".")
        while parts and parts[-1][:1].isupper():
            parts.pop()
        path = "/".join(parts) + ".py"
        seconds[path] += float(case.get("time", "0"))
    return {path: round(total, 1) for path, total in sorted(seconds.items())}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.file_weights <junit.xml>", file=sys.stderr)
        return 2
    weights = from_junit(Path(argv[0]))
    TABLE.write_text(json.dumps(weights, indent=1, sort_keys=True) + "\n")
    print(f"{len(weights)} files, {sum(weights.values()):.0f} s in all -> {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
