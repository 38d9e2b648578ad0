"""The roles an access rule grants and the kinds of access key, as plain values.

Their meaning (which permissions a role carries, on which scopes it may be granted) is
``auth.rules``; they live here so that what only names them — the ``workplane access-key`` and
``access-rule`` commands' choices — does not import the store's tables with them (a third of a
second of every ``workplane`` command's start, agents included).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    DEPARTMENT_EDITOR = "department-editor"
    DEPARTMENT_VIEWER = "department-viewer"
    RESEARCHER = "researcher"
    PROJECT_VIEWER = "project-viewer"
    CLUSTER_AGENT = "cluster-agent"


class KeyKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    AGENT = "agent"
