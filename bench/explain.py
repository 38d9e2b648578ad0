"""Query plans of the measured requests: the SQL the store actually sends (captured while the route
function runs), then EXPLAIN QUERY PLAN (SQLite, plus the statement's own time) or
EXPLAIN (ANALYZE, BUFFERS) (PostgreSQL) of each statement that reads ``workloads``."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bench.cases import Case
from bench.measure import route_call
from workplane.api.deps import Services


def captured_statements(svc: Services, case: Case) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def before(
        _conn: sa.Connection, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        statements.append((statement, parameters))

    sa.event.listen(svc.db.engine, "before_cursor_execute", before)
    try:
        route_call(svc, case, 0)
    finally:
        sa.event.remove(svc.db.engine, "before_cursor_execute", before)
    return [(s, p) for s, p in statements if "FROM workloads" in s]


def _sqlite_plan(rows: list[Any]) -> list[str]:
    depth: dict[int, int] = {0: 0}
    lines = []
    for node_id, parent, _unused, detail in rows:
        depth[node_id] = depth.get(parent, 0) + 1
        lines.append("  " * depth[node_id] + str(detail))
    return lines


def explain_case(svc: Services, case: Case) -> str:
    out = [f"--- {case.key}: {case.title}", f"    {case.describe()}"]
    for statement, params in captured_statements(svc, case):
        out.append("")
        out.append("    " + " ".join(statement.split()))
        out.append(f"    parameters: {params!r}"[:400])
        with svc.db.read() as conn:
            if svc.db.dialect == "sqlite":
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
                t0 = time.perf_counter()
                conn.exec_driver_sql(statement, params).all()
                elapsed = (time.perf_counter() - t0) * 1000
                out.extend("    " + line for line in _sqlite_plan(list(rows)))
                out.append(f"    statement time: {elapsed:.2f} ms")
            else:
                rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).all()
                out.extend("    " + str(r[0]) for r in rows)
    return "\n".join(out)


def explain_all(svc: Services, cases: list[Case]) -> str:
    return "\n\n".join(explain_case(svc, c) for c in cases)
