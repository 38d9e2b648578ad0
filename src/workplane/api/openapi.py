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
    "HistoryPage": {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {"$ref": "#/components/schemas/HistoryRecords1"},
            "next": {"type": "integer", "description": "offset of the next page; absent on the last page"},
        },
    },
    "EventsPage": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"$ref": "#/components/schemas/Events"},
            "next": {"type": "integer", "description": "offset of the next page; absent on the last page"},
        },
    },
    "PodsPage": {
        "type": "object",
        "required": ["pods"],
        "properties": {
            "pods": {"$ref": "#/components/schemas/Pods1"},
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
    "SyncResult": {
        "type": "object",
        "required": ["applied", "ignored", "deleted", "samples"],
        "properties": {
            "applied": {"type": "integer", "description": "observations applied"},
            "ignored": {"type": "integer", "description": "observations not newer than the stored state"},
            "deleted": {"type": "integer", "description": "workloads marked deleted by this batch"},
            "samples": {"type": "integer", "description": "metric samples stored"},
            "pods": {"type": "integer", "description": "pod observations applied (when the batch had pods)"},
            "events": {"type": "integer", "description": "events applied (when the batch had events)"},
        },
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    # What POST /token accepts: upstream's TokenRequest lists six grants and no required field, but only
    # access keys are served, so a request the description calls valid is one the server answers.
    # Keys are matched case-insensitively and appId/appSecret are synonyms (docs/contract.md §9);
    # the spellings below are the documented ones.
    "AccessKeyTokenRequest": {
        "type": "object",
        "required": ["grantType"],
        "properties": {
            "grantType": {"type": "string", "enum": ["client_credentials", "app_token"]},
            "clientId": {"type": "string", "minLength": 1},
            "clientID": {"type": "string", "minLength": 1},
            "clientSecret": {"type": "string", "minLength": 1},
            "AppId": {"type": "string", "minLength": 1, "deprecated": True},
            "AppSecret": {"type": "string", "minLength": 1, "deprecated": True},
        },
        "anyOf": [
            {"required": ["clientId", "clientSecret"]},
            {"required": ["clientID", "clientSecret"]},
            {"required": ["AppId", "AppSecret"]},
        ],
    },
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
def _upstream() -> dict[str, Any]:
    text = resources.files("workplane.api").joinpath("spec/runai-openapi-workloads.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def upstream_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = _upstream()["components"]["schemas"]
    return schemas


def _upstream_parameters(path: str, method: str) -> dict[str, dict[str, Any]]:
    """Run:ai's definitions of one operation's parameters, by name ($refs resolved)."""
    document = _upstream()
    operation = document["paths"].get(path, {}).get(method, {})
    found: dict[str, dict[str, Any]] = {}
    for parameter in operation.get("parameters", []):
        ref = parameter.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/parameters/"):
            parameter = document["components"]["parameters"][ref.rsplit("/", 1)[1]]
        found[parameter["name"]] = parameter
    return found


def _document_parameters_as_upstream(document: dict[str, Any]) -> None:
    """The routes read most parameters as text (to accept the ``SomeEnum.`` prefix and answer 400 with
    the offending value), so the generated schemas say little more than "string". Describe them as Run:ai
    does (boolean ``deleted``, the ``sortBy``/``sortOrder`` enums, the ``filterBy`` pattern sent as one
    comma-joined value, UUID path ids), keeping the bounds the routes enforce."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            upstream = _upstream_parameters(path, method)
            for parameter in operation.get("parameters", []):
                theirs = upstream.get(parameter["name"])
                if theirs is None or theirs.get("in") != parameter.get("in"):
                    continue
                ours = parameter.get("schema", {})
                schema = dict(theirs["schema"])
                schema.update({k: ours[k] for k in ("minimum", "maximum") if k in ours})
                parameter["schema"] = schema
                if "explode" in theirs:
                    parameter["explode"] = theirs["explode"]


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
    _document_parameters_as_upstream(document)
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
