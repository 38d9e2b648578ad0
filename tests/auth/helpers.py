"""Creating scoped callers through the administrator API, as an operator would; a Secret volume as
kubelet lays it out."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

TOKEN = "/api/v1/token"


@dataclass(frozen=True)
class Credential:
    client_id: str
    secret: str


def create_key(admin: TestClient, name: str, kind: str = "user", **extra: Any) -> Credential:
    answer = admin.post("/api/v1/access-keys", json={"name": name, "kind": kind, **extra})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Credential(body["clientId"], body["clientSecret"])


def grant(admin: TestClient, subject: str, role: str, scope_type: str, scope_id: str | None = None) -> str:
    body = {"subjectId": subject, "roleName": role, "scopeType": scope_type}
    if scope_id is not None:
        body["scopeId"] = scope_id
    answer = admin.post("/api/v1/authorization/access-rules", json=body)
    assert answer.status_code == 201, answer.text
    rule_id: str = answer.json()["id"]
    return rule_id


def token(client: TestClient, credential: Credential) -> str:
    answer = client.post(
        TOKEN,
        json={
            "grantType": "client_credentials",
            "clientId": credential.client_id,
            "clientSecret": credential.secret,
        },
        headers={"Authorization": ""},
    )
    assert answer.status_code == 200, answer.text
    issued: str = answer.json()["accessToken"]
    return issued


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def printed_credential(out: str) -> Credential:
    """The credential ``workplane access-key create|rotate`` printed (its ``client id:``/``client secret:``
    lines)."""
    fields = dict(
        line.strip().split(":", 1) for line in out.splitlines() if line.strip().startswith("client ")
    )
    return Credential(fields["client id"].strip(), fields["client secret"].strip())


def kubelet_secret_update(mount: Path, files: dict[str, str], version: str) -> None:
    """What kubelet does to a Secret volume, read-only between updates: the files in a new hidden
    folder, ``..data`` swapped to it by a rename, one symlink ``<key> -> ..data/<key>`` per key (those
    of keys no longer there removed), then the previous folder removed."""
    mount.mkdir(exist_ok=True)
    mount.chmod(0o755)
    folder = mount / f"..{version}"
    folder.mkdir()
    for name, value in files.items():
        (folder / name).write_text(value)
        (folder / name).chmod(0o440)
    folder.chmod(0o555)
    data = mount / "..data"
    before = os.readlink(data) if data.is_symlink() else None
    staged = mount / "..data_tmp"
    staged.symlink_to(folder.name)
    staged.replace(data)
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    for link in mount.iterdir():
        if link.is_symlink() and not link.name.startswith("..") and link.name not in files:
            link.unlink()
    if before is not None:
        (mount / before).chmod(0o755)
        shutil.rmtree(mount / before)
    mount.chmod(0o555)


def tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (symlinks not followed) with its target or content: to show that
    nothing there was changed."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        else:
            found[name] = path.read_text() if path.is_file() else "/"
    return found
