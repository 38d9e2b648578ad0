"""SQLAlchemy Core tables. The Alembic migrations create exactly these (a test checks it).

Instants are integer milliseconds since the epoch (see ``domain.timefmt``). Text that can be filtered
with ``<=``/``>=`` or sorted uses the "C" collation on PostgreSQL so that both databases compare code
points (SQLite's default BINARY collation already does, UTF-8 byte order being code-point order).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


def text_c() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


LIVE = sa.text("deleted_at IS NULL")

catalog_state = sa.Table(
    "catalog_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Bumped on every change of the catalog, so caches of the type defaults know to reload.
    sa.Column("version", sa.Integer, nullable=False),
)

categories = sa.Table(
    "workload_categories",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", text_c(), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

priorities = sa.Table(
    "workload_priorities",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", text_c(), nullable=False, unique=True),
    sa.Column("value", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

workload_types = sa.Table(
    "workload_types",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # A workload names its type by name alone, so names are unique across groups.
    sa.Column("name", text_c(), nullable=False, unique=True),
    sa.Column("group", text_c(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("category_name", text_c(), nullable=False),
    sa.Column("priority_name", text_c(), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
)

clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", text_c(), nullable=False),
    sa.Column("last_sync_at", sa.BigInteger, nullable=True),
)

departments = sa.Table(
    "departments",
    metadata,
    sa.Column("id", text_c(), primary_key=True),
    sa.Column("name", text_c(), nullable=False),
    sa.Column("cluster_id", sa.String(36), nullable=True),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", text_c(), primary_key=True),
    sa.Column("name", text_c(), nullable=False),
    sa.Column("department_id", text_c(), nullable=False),
    sa.Column("cluster_id", sa.String(36), nullable=True),
)

workloads = sa.Table(
    "workloads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("cluster_id", sa.String(36), nullable=False),
    sa.Column("name", text_c(), nullable=False),
    sa.Column("namespace", text_c(), nullable=False),
    sa.Column("project_id", text_c(), nullable=False),
    sa.Column("project_name", text_c(), nullable=False),
    sa.Column("department_id", text_c(), nullable=False),
    sa.Column("department_name", text_c(), nullable=False),
    sa.Column("type", text_c(), nullable=False),
    # Category / priority *given at submission*; NULL means "follow the type's current default".
    sa.Column("own_category", text_c(), nullable=True),
    sa.Column("own_priority", text_c(), nullable=True),
    sa.Column("own_preemptible", sa.Boolean, nullable=True),
    sa.Column("submitted_by", text_c(), nullable=True),
    sa.Column("phase", text_c(), nullable=False),
    sa.Column("distributed_framework", text_c(), nullable=True),
    sa.Column("ai_application_id", text_c(), nullable=True),
    sa.Column("ai_application_name", text_c(), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    sa.Column("phase_updated_at", sa.BigInteger, nullable=False),
    sa.Column("guaranteed_runtime_ends_at", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("allocated_gpu", sa.Float, nullable=True),
    sa.Column("idle_gpus", sa.Integer, nullable=True),
    sa.Column("idle_allocated_gpus", sa.Float, nullable=True),
    sa.Column("pending_closed_ms", sa.BigInteger, nullable=False),
    sa.Column("pending_since_ms", sa.BigInteger, nullable=True),
    sa.Column("running_closed_ms", sa.BigInteger, nullable=False),
    sa.Column("running_since_ms", sa.BigInteger, nullable=True),
    sa.Column("first_nodepool", text_c(), nullable=True),
    sa.Column("search_text", sa.Text, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("pending_messages", sa.Text, nullable=True),
    # Sync protocol: the agent's revision of the last applied observation (older ones change nothing),
    # the full resync that last saw this workload, and the derived values of the last history entry.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("resync_id", sa.String(64), nullable=True),
    sa.Column("history_key", sa.Text, nullable=True),
)

# Index design (each index costs every write that touches it, so the set is deliberate):
# - live rows are what almost every request reads: partial indexes on (field, createdAt, id) serve the
#   common "equality filter + default order" page straight from the index, and its count;
# - deleted rows get their own small partial indexes (listing with deleted=true, and the purge);
# - sparse fields are indexed only where they have a value (a NULL never satisfies a positive
#   operator), so rows without them pay nothing.
LIVE_TEXT_INDEXED = (
    "phase",
    "project_id",
    "project_name",
    "department_id",
    "department_name",
    "cluster_id",
    "type",
    "name",
)


def _partial_index(name: str, *columns: str, where: sa.TextClause) -> sa.Index:
    """An index over ``columns`` of the rows satisfying ``where``, on both databases."""
    return sa.Index(name, *(workloads.c[c] for c in columns), sqlite_where=where, postgresql_where=where)


# The scopes' columns (``store.scopes.restrict``), held by the live name index as well (migration
# 0028), with ``deleted_at`` (NULL throughout, but SQLite needs it to count the index as covering): a
# scoped caller's page by name that walks the name index (``store.workloads._broad_scope``) checks
# each entry's scope in the index, not in the table. At 1,000,000 workloads on SQLite, a project
# viewer's first page by name read 3,100 rows from the table along it (20 ms) or the project's
# 15,000 by its own index (24 ms); the walk in the index alone takes 0.2 ms.
SCOPE_COLUMNS = ("cluster_id", "department_id", "project_id")
LIVE_SCOPE_HELD = ("name",)
# The fields the live-count rollup (``workload_counts``, below) counts workloads by.
COUNTED_COLUMNS = (
    "cluster_id",
    "department_id",
    "department_name",
    "project_id",
    "project_name",
    "type",
    "phase",
    "own_category",
    "own_priority",
)
# The columns that a sort by a field of few values reads its parts by (``store.ordering.parts_for``:
# each value's rows in id order; the values are the rollup's), held by the live project and department
# indexes as well (migration 0029), with ``deleted_at``: a part inside such a scope is read from the
# scope's index alone and its ids sorted, where each of the scope's rows was read from the table. At
# 1,000,000 workloads on SQLite, a project viewer's part by type: 16.5 -> 1.5 ms.
PART_COLUMNS = COUNTED_COLUMNS
SCOPES_HOLDING_PARTS = ("project_id", "department_id")
# And the phase's time (migration 0030), which a change of phase rewrites with the phase: a scoped page
# by phaseUpdatedAt is the scope's entries sorted, without the table (1,000,000 workloads on SQLite,
# a project viewer: 26.9 -> 1.6 ms).
SCOPE_HELD_TIMES = ("phase_updated_at",)


def _held_by(column: str) -> tuple[str, ...]:
    """What the live index led by ``column`` holds after its creation time and id."""
    if column in LIVE_SCOPE_HELD:
        return (*SCOPE_COLUMNS, "deleted_at")
    if column in SCOPES_HOLDING_PARTS:
        return (*(c for c in PART_COLUMNS if c != column), *SCOPE_HELD_TIMES, "deleted_at")
    return ()


for _col in LIVE_TEXT_INDEXED:
    _partial_index(f"ix_workloads_live_{_col}", _col, "created_at", "id", *_held_by(_col), where=LIVE)
_partial_index("ix_workloads_live_created", "created_at", "id", where=LIVE)
DELETED = sa.text("deleted_at IS NOT NULL")
_partial_index("ix_workloads_deleted_created", "created_at", "id", where=DELETED)
_partial_index("ix_workloads_deleted_at", "deleted_at", "id", where=DELETED)
sa.Index("ix_workloads_phase_updated_at", workloads.c.phase_updated_at, workloads.c.id)
# Live Pending workloads (a few percent of the inventory) with what telemetry groups them by: the pending
# time distribution reads this index alone.
PENDING = sa.text("deleted_at IS NULL AND phase = 'Pending'")
# The (column, value) selections whose index holds the scopes' columns: read for a scope, its entries
# are checked without the table (``store.ordering._broader_than_scope``).
SCOPE_HELD_VALUES = frozenset({("phase", "Pending")})
# Led by phase (constant here) so that the query's phase equality makes it SQLite's choice.
_partial_index(
    "ix_workloads_pending",
    "phase",
    "phase_updated_at",
    "cluster_id",
    "department_id",
    "project_id",
    "type",
    "own_category",
    "id",
    "deleted_at",  # NULL throughout, but SQLite needs it to count the index as covering
    where=PENDING,
)
SPARSE_INDEXED = (
    "submitted_by",
    "completed_at",
    "guaranteed_runtime_ends_at",
    "allocated_gpu",
    "idle_gpus",
    "idle_allocated_gpus",
    "distributed_framework",
    "ai_application_id",
    "ai_application_name",
    "first_nodepool",
    "own_category",
    "own_priority",
)
for _col in SPARSE_INDEXED:
    _partial_index(f"ix_workloads_{_col}", _col, "id", where=sa.text(f"{_col} IS NOT NULL"))

# The phase clocks (migration 0020). ``totalPendingTimeSeconds`` is ``closed + (now - since)`` while the
# interval is open (``since`` in the past), else ``closed``: not a stored value, but on each of three
# disjoint sets of rows a stored key plus a constant, which an index orders (``Compiler.clock_streams``):
# - stopped clocks (``since`` NULL: every row not Pending, resp. not Running, and every deleted one):
#   by whole seconds of ``closed`` (the served value, so that ties fall back to the id as the sort's
#   do); ``closed``, ``deleted_at`` and ``since`` make it cover a count's predicates on SQLite. Over
#   every row, not only those: PostgreSQL keeps statistics of an indexed expression only for an
#   index without a condition, and without them takes any range on it to select a third of the rows;
# - open clocks: by ``closed - since`` (the value less ``now``); open clocks are live Pending, resp.
#   Running, rows only, so these indexes are small;
# - open clocks that start after ``now`` (a clock ahead of the server's): by ``since``, to find them.
CLOCKS = ("pending", "running")
for _clock in CLOCKS:
    _closed, _since = f"{_clock}_closed_ms", f"{_clock}_since_ms"
    sa.Index(
        f"ix_workloads_{_clock}_stopped",
        sa.text(f"({_closed} / 1000)"),
        workloads.c.id,
        workloads.c[_closed],
        workloads.c.deleted_at,
        workloads.c[_since],
    )
    sa.Index(
        f"ix_workloads_{_clock}_open",
        workloads.c[_closed] - workloads.c[_since],
        workloads.c.id,
        workloads.c[_since],
        workloads.c.deleted_at,
        sqlite_where=sa.text(f"{_since} IS NOT NULL"),
        postgresql_where=sa.text(f"{_since} IS NOT NULL"),
    )
    _partial_index(
        f"ix_workloads_{_clock}_since",
        _since,
        _closed,
        "id",
        "deleted_at",
        where=sa.text(f"{_since} IS NOT NULL"),
    )
# The live rows with a completion time by its day, then in creation order (migration 0025): a range on
# completedAt in the creation order reads each day's first rows along it and merges them
# (``store.ordering.page_by_days``), where no index gave the selection in that order and its rows
# were looked up and sorted. ``completed_at`` and ``deleted_at`` make a day's walk index-only on
# SQLite (the range is tested on each entry).
COMPLETED_DAY_MS = 86_400_000
LIVE_COMPLETED = sa.text("completed_at IS NOT NULL AND deleted_at IS NULL")
sa.Index(
    "ix_workloads_completed_day",
    sa.text(f"(completed_at / {COMPLETED_DAY_MS})"),
    workloads.c.created_at,
    workloads.c.id,
    workloads.c.completed_at,
    workloads.c.deleted_at,
    sqlite_where=LIVE_COMPLETED,
    postgresql_where=LIVE_COMPLETED,
)
# Each project's live completed rows by completion time (migration 0027): a project viewer's range on
# completedAt reads its own matches, not the project's every row (the project's matches are its
# newest, and the range holds more rows tenant-wide than the project does).
_partial_index(
    "ix_workloads_live_project_completed", "project_id", "completed_at", "id", where=LIVE_COMPLETED
)
# Expression indexes, which SQLite's reflection skips: left out of the schema comparison (``migrate``).
EXPRESSION_INDEXES = (
    *(f"ix_workloads_{c}_{kind}" for c in CLOCKS for kind in ("stopped", "open")),
    "ix_workloads_completed_day",
    "ix_workload_pods_completed_day",
    "ix_workload_pods_deleted_day",
)

workload_nodepools = sa.Table(
    "workload_nodepools",
    metadata,
    sa.Column(
        "workload_id", sa.String(36), sa.ForeignKey("workloads.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", text_c(), nullable=False),
    sa.Index("ix_workload_nodepools_name", "name", "workload_id"),
)

# Access keys of users, service accounts and cluster agents. What a key may do comes from its access
# rules (``access_rules``); an agent key is also bound to the one cluster it may report for.
access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # user | service | agent
    sa.Column("cluster_id", sa.String(36), nullable=True),  # agents only
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("rotated_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

# "subject has role in scope". scope_id is the cluster, department or project id (the tenant id for
# the tenant scope). A rule stays after its key is revoked: the history of who could do what.
access_rules = sa.Table(
    "access_rules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("scope_type", sa.String(16), nullable=False),
    sa.Column("scope_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.UniqueConstraint("subject", "role", "scope_type", "scope_id", name="uq_access_rules_grant"),
)

# The token endpoint's throttle (``auth.throttle``), shared by every server process: failed attempts
# per client id ("client:<id>") and per address ("address:<ip>"), and the addresses that obtained a
# token for a client id ("known:<id> <ip>", ``last_ms`` the success). Times are epoch ms.
token_throttle = sa.Table(
    "token_throttle",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_ms", sa.BigInteger, nullable=False),
    sa.Column("blocked_until_ms", sa.BigInteger, nullable=False),
)

# Who did what, when: every change of credentials, rules and the catalog, and every refused request.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),  # client id, or "-" when the caller is unknown
    sa.Column("action", sa.Text, nullable=False),  # e.g. access-key.create, request.refused
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),  # the HTTP status the action ended with
    sa.Column("address", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_log_at", "at_ms"),
)

# What a workload looked like over time: one entry per applied observation that changed its phase or
# any derived quantity (allocation, requests, limits, pods). Phase history and derived metric series
# are read from here; it goes only when the workload itself is purged.
workload_history = sa.Table(
    "workload_history",
    metadata,
    sa.Column(
        "workload_id", sa.String(36), sa.ForeignKey("workloads.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("revision", sa.BigInteger, primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("values", sa.Text, nullable=False),
)

# Measured samples reported by agents, many per row: one chunk per (workload, metric, batch).
metric_chunks = sa.Table(
    "metric_chunks",
    metadata,
    sa.Column(
        "workload_id", sa.String(36), sa.ForeignKey("workloads.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("metric", sa.String(48), primary_key=True),
    sa.Column("start_ms", sa.BigInteger, primary_key=True),
    sa.Column("end_ms", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_metric_chunks_end", "end_ms"),
)

# Live workloads counted per combination of the fields most filters and counts name, maintained by
# database triggers (migration 0005) on every insert, delete and change of those fields: a count whose
# terms only name these fields sums a few hundred rows instead of visiting every matching workload.
# ``key`` is the combination written unambiguously (each part length-prefixed), for the upsert.
workload_counts = sa.Table(
    "workload_counts",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("cluster_id", sa.String(36), nullable=False),
    sa.Column("department_id", text_c(), nullable=False),
    sa.Column("department_name", text_c(), nullable=False),
    sa.Column("project_id", text_c(), nullable=False),
    sa.Column("project_name", text_c(), nullable=False),
    sa.Column("type", text_c(), nullable=False),
    sa.Column("phase", text_c(), nullable=False),
    sa.Column("own_category", text_c(), nullable=True),
    sa.Column("own_priority", text_c(), nullable=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    # Summed allocatedResources.gpu in millionths (migration 0007): an integer, so that moving a
    # workload's share in and out of a combination leaves no floating-point residue.
    sa.Column("gpu_micro", sa.BigInteger, nullable=False, server_default="0"),
)

# The same per current node pool, for telemetry (migration 0007): a workload counts once in each pool
# it currently uses (a pool named twice counts once), with its cluster, department, project, type,
# phase and own category.
POOL_COUNTED_COLUMNS = ("cluster_id", "department_id", "project_id", "type", "phase", "own_category")
workload_pool_counts = sa.Table(
    "workload_pool_counts",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("cluster_id", sa.String(36), nullable=False),
    sa.Column("department_id", text_c(), nullable=False),
    sa.Column("project_id", text_c(), nullable=False),
    sa.Column("type", text_c(), nullable=False),
    sa.Column("phase", text_c(), nullable=False),
    sa.Column("own_category", text_c(), nullable=True),
    sa.Column("nodepool", text_c(), nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("gpu_micro", sa.BigInteger, nullable=False),
)

# A row here only inside a SQLite transaction that keeps both rollups and the text index itself
# (migration 0009, ``store.rollups.deferred_triggers``): those triggers then leave its rows alone.
# Always empty when committed.
triggers_deferred = sa.Table("triggers_deferred", metadata, sa.Column("id", sa.Integer, primary_key=True))


def _reported_part_columns() -> list[sa.Column[Any]]:
    """The columns every reported part of a workload (a pod, an event) starts with: its id, the
    workload it goes with, the reporting cluster, the revision that orders its observations, and when
    it was created."""
    return [
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "workload_id", sa.String(36), sa.ForeignKey("workloads.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("cluster_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    ]


# The pods of workloads, as agents report them (migration 0012). A pod belongs to one workload and
# goes with it; ``document`` is the served record's stored part (``domain.pods.pod_document``).
workload_pods = sa.Table(
    "workload_pods",
    metadata,
    *_reported_part_columns(),
    sa.Column("k8s_phase", sa.String(32), nullable=False),
    sa.Column("k8s_phase_updated_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    sa.Column("resync_id", sa.String(64), nullable=True),
    sa.Column("document", sa.Text, nullable=False),
    # What ``GET /workloads/pods`` filters, sorts and searches by, out of the document, and the
    # workload's project and department, which scope the pod as they scope the workload (migration 0013).
    sa.Column("project_id", text_c(), nullable=True),
    sa.Column("department_id", text_c(), nullable=True),
    sa.Column("node_name", text_c(), nullable=True),
    sa.Column("current_nodepool", text_c(), nullable=True),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    sa.Column("search_text", text_c(), nullable=True),  # folded: pod, workload and node names, pool, phase
    # The uid of the workload revision that owns the pod (a Knative Revision), when it has one (0017).
    sa.Column("revision_id", text_c(), nullable=True),
)
# A workload's pods in creation order (the pods route's page).
sa.Index(
    "ix_workload_pods_workload", workload_pods.c.workload_id, workload_pods.c.created_at, workload_pods.c.id
)


def _pods_index(name: str, *columns: str, where: sa.TextClause) -> sa.Index:
    return sa.Index(name, *(workload_pods.c[c] for c in columns), sqlite_where=where, postgresql_where=where)


# The cluster-wide pod list reads live pods in the order asked for, as the workload list does: partial
# indexes on (field, createdAt, id) over live pods serve an equality filter with the default order, and
# its count, and a scoped caller's pages and counts; deleted pods have their own; completedAt is indexed
# where it is set. The live cluster index also serves a full resync's "live pods of the cluster"; the
# search text's, a count of the live pods with a word (read from the index alone).
for _col in ("cluster_id", "department_id", "project_id", "node_name", "current_nodepool", "search_text"):
    _pods_index(f"ix_workload_pods_live_{_col}", _col, "created_at", "id", where=LIVE)
_pods_index("ix_workload_pods_live_created", "created_at", "id", where=LIVE)
_pods_index("ix_workload_pods_deleted_created", "created_at", "id", where=DELETED)
_pods_index("ix_workload_pods_deleted_at", "deleted_at", "id", where=DELETED)
# Only the pods that have a revision: most have none, and a filter on it names a value (0017).
_pods_index(
    "ix_workload_pods_live_revision_id",
    "revision_id",
    "created_at",
    "id",
    where=sa.text("deleted_at IS NULL AND revision_id IS NOT NULL"),
)
# A revision's deleted pods (``GET /workloads/inferences/revisions/{revisionId}/pods?deleted=true``; 0019).
_pods_index(
    "ix_workload_pods_deleted_revision_id",
    "revision_id",
    "created_at",
    "id",
    where=sa.text("deleted_at IS NOT NULL AND revision_id IS NOT NULL"),
)
_pods_index("ix_workload_pods_completed_at", "completed_at", "id", where=sa.text("completed_at IS NOT NULL"))
# The live pods with a completion time, and the deleted pods, by the day of that time (of the
# deletion), then in creation order (migration 0026): a range on completedAt (on deletedAt, over
# deleted pods) in the creation order reads each day's first pods along it and merges them
# (``store.ordering.page_by_days``), as ``ix_workloads_completed_day`` does for workloads.
for _name, _time, _where in (
    ("ix_workload_pods_completed_day", "completed_at", LIVE_COMPLETED),
    ("ix_workload_pods_deleted_day", "deleted_at", DELETED),
):
    sa.Index(
        _name,
        sa.text(f"({_time} / {COMPLETED_DAY_MS})"),
        workload_pods.c.created_at,
        workload_pods.c.id,
        *(workload_pods.c[c] for c in dict.fromkeys((_time, "deleted_at"))),
        sqlite_where=_where,
        postgresql_where=_where,
    )

# Live pods per cluster, department, project and revision (an empty text where a pod has none), kept
# exact by triggers on ``workload_pods`` (migrations 0016, 0017): a pod count with no filter but the
# caller's scopes (or terms on clusterId and revisionId) sums these few rows instead of counting a
# million index entries.
pod_counts = sa.Table(
    "pod_counts",
    metadata,
    sa.Column("cluster_id", sa.String(36), primary_key=True),
    sa.Column("department_id", text_c(), primary_key=True),
    sa.Column("project_id", text_c(), primary_key=True),
    sa.Column("revision_id", text_c(), primary_key=True),
    sa.Column("live", sa.BigInteger, nullable=False),
)

# Kubernetes events about workloads and their pods, as agents report them (migration 0012).
workload_events = sa.Table(
    "workload_events",
    metadata,
    *_reported_part_columns(),
    sa.Column("document", sa.Text, nullable=False),
)
sa.Index(
    "ix_workload_events_workload",
    workload_events.c.workload_id,
    workload_events.c.created_at,
    workload_events.c.id,
)
