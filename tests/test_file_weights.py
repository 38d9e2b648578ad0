"""The suite's own scheduling aid hands out whole files, longest first, and reads its table from a
JUnit report (tests/file_weights.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from tests import file_weights


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def _ids(items: list[Any]) -> list[str]:
    return [item.nodeid for item in items]


def test_files_stay_whole_and_the_longest_go_first() -> None:
    items = [
        _Item(nodeid)
        for nodeid in (
            "tests/a.py::one",
            "tests/a.py::two",
            "tests/b.py::one",
            "tests/c.py::one",
            "tests/c.py::two",
            "tests/c.py::three",
        )
    ]
    # b is long; a is short; c is not in the table and is weighed by its three tests.
    weights = {"tests/a.py": 0.1, "tests/b.py": 50.0}
    ordered = file_weights.longest_first(cast("list[pytest.Item]", items), weights)
    assert _ids(ordered) == [
        "tests/b.py::one",
        "tests/c.py::one",
        "tests/c.py::two",
        "tests/c.py::three",
        "tests/a.py::one",
        "tests/a.py::two",
    ]


def test_the_table_sums_each_files_tests_from_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.api.test_sync" name="a" time="1.25"/>'
        '<testcase classname="tests.api.test_sync" name="b" time="0.5"/>'
        '<testcase classname="tests.api.test_sync.TestGroup" name="c" time="2"/>'
        '<testcase classname="tests.test_readme" name="d" time="3"/>'
        "</testsuite></testsuites>"
    )
    assert file_weights.from_junit(report) == {"tests/api/test_sync.py": 3.8, "tests/test_readme.py": 3.0}


def test_every_file_in_the_table_exists() -> None:
    root = Path(__file__).resolve().parent.parent
    assert all((root / path).is_file() for path in file_weights.load()), "stale tests/file_weights.json"
