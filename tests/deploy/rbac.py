"""Kubernetes' RBAC decision for one request, as the API server's authorizer makes it, against the
agent's ClusterRole in deploy/kubernetes/agent.yaml: the agent's tests check with it that every
request the agent makes is one its ServiceAccount may make."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

AGENT_MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "agent.yaml"


def agent_rules() -> list[dict[str, Any]]:
    [role] = [d for d in yaml.safe_load_all(AGENT_MANIFEST.read_text()) if d and d["kind"] == "ClusterRole"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def attributes(request: str) -> tuple[str, str, str] | str:
    """``"GET /apis/batch/v1/jobs?watch=true"`` as (verb, API group, resource), or the path of a
    non-resource request (discovery)."""
    method, target = request.split(" ", 1)
    assert method == "GET", request  # the agent only reads
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:
        return url.path
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced collection or object: the same resource
    if len(rest) > 1:
        return ("get", group, "/".join(rest[::2]))  # one object, or its subresource
    watch = parse_qs(url.query).get("watch", [""])[-1] in ("true", "1")
    return ("watch" if watch else "list", group, rest[0])


def allows(rules: list[dict[str, Any]], request: str) -> bool:
    wanted = attributes(request)
    for rule in rules:
        if isinstance(wanted, str):
            urls = rule.get("nonResourceURLs", [])
            if "get" in rule["verbs"] and any(
                wanted == u or (u.endswith("*") and wanted.startswith(u[:-1])) for u in urls
            ):
                return True
        else:
            verb, group, resource = wanted
            if (
                verb in rule["verbs"]
                and group in rule.get("apiGroups", [])
                and resource in rule.get("resources", [])
            ):
                return True
    return False
