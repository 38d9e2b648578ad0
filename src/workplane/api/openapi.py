"""The API description served at /api/docs: generated from the routes, with response bodies
documented by the upstream Run:ai component schemas (shipped in ``spec/``)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_LOCAL_SCHEMAS: dict[str, Any] = {
    "WorkloadsPage": {
        "type": "object",
        "required": ["workloads"],
        "properties": {
            "workloads": {"$ref": "#/components/schemas/Workloads"},
            "next": {"type": "integer", "description": "offset of the next page; absent on the last page"},
        },
    },
    "WorkloadsCount": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
    "CategoriesPage": {
        "type": "object",
        "required": ["categories"],
        "properties": {"categories": {"$ref": "#/components/schemas/WorkloadCategories"}},
    },
    "PrioritiesPage": {
        "type": "object",
        "required": ["priorities"],
        "properties": {"priorities": {"$ref": "#/components/schemas/Priorities"}},
    },
    "TypesPage": {
        "type": "object",
        "required": ["types"],
        "properties": {"types": {"$ref": "#/components/schemas/WorkloadTypeConfigs"}},
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
}


def json_response(description: str, schema: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


@functools.cache
def upstream_schemas() -> dict[str, Any]:
    text = resources.files("workplane.api").joinpath("spec/runai-openapi-workloads.json").read_text()
    schemas: dict[str, Any] = json.loads(text)["components"]["schemas"]
    return schemas


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title="workplane",
        version=app.version,
        description="GPU workload control plane, wire-compatible with the NVIDIA Run:ai Workloads API.",
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    # FastAPI's own validation-error schemas describe a 422 this server never sends.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    schemas.update(_LOCAL_SCHEMAS)
    upstream = upstream_schemas()
    pending = _refs(document)
    while pending:
        name = pending.pop()
        if name in schemas or name not in upstream:
            continue
        schemas[name] = upstream[name]
        pending |= _refs(upstream[name])
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    document["security"] = [{"bearerAuth": []}]
    app.openapi_schema = document
    return document
