"""``restrict`` (SQL) and ``ScopeSet.covers`` (Python) agree on every row, for any set of scopes, on any
table with the three columns — here a small table of its own, so the rule is pinned apart from the
workloads that the differential test in ``tests/auth`` exercises."""

from __future__ import annotations

import itertools

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.store.scopes import restrict

IDS = ["a", "b", "c"]
rows_table = sa.Table(
    "placements",
    sa.MetaData(),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("cluster_id", sa.Text),
    sa.Column("department_id", sa.Text),
    sa.Column("project_id", sa.Text),
)
ROWS = [
    {"n": n, "cluster_id": f"c{c}", "department_id": f"d{d}", "project_id": f"p{p}"}
    for n, (c, d, p) in enumerate(itertools.product(IDS, IDS, IDS))
]
_engine = sa.create_engine("sqlite://")
rows_table.metadata.create_all(_engine)
with _engine.begin() as _conn:
    _conn.execute(rows_table.insert(), ROWS)

scopes = st.lists(
    st.one_of(
        st.just(Scope(ScopeType.TENANT, "*")),
        st.sampled_from(IDS).map(lambda i: Scope(ScopeType.CLUSTER, f"c{i}")),
        st.sampled_from(IDS).map(lambda i: Scope(ScopeType.DEPARTMENT, f"d{i}")),
        st.sampled_from(IDS).map(lambda i: Scope(ScopeType.PROJECT, f"p{i}")),
    ),
    max_size=4,
).map(ScopeSet.of)


@settings(max_examples=150, deadline=None)
@given(scopes)
def test_restrict_selects_exactly_the_rows_covers_accepts(scope_set: ScopeSet) -> None:
    with _engine.connect() as conn:
        selected = set(
            conn.execute(sa.select(rows_table.c.n).where(restrict(rows_table, scope_set))).scalars()
        )
    expected = {
        r["n"] for r in ROWS if scope_set.covers(r["cluster_id"], r["department_id"], r["project_id"])
    }
    assert selected == expected


def test_no_scope_selects_nothing_and_the_tenant_everything() -> None:
    with _engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(rows_table)
        assert conn.execute(count.where(restrict(rows_table, ScopeSet()))).scalar_one() == 0
        assert conn.execute(count.where(restrict(rows_table, ScopeSet.everything()))).scalar_one() == len(
            ROWS
        )
