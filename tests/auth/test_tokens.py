"""Signing-key rotation across processes: each signer notices a rotation on disk by itself, in a data
directory or in a Kubernetes Secret mounted as a directory (kubelet's layout: symlinks, read-only)."""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.helpers import bearer, kubelet_secret_update, tree
from tests.server import running_server
from workplane.auth.tokens import (
    MOUNTED_SWITCH_DELAY_S,
    PREVIOUS_DIR,
    InvalidToken,
    TokenSigner,
    key_id,
    load_key_ring,
    load_mounted_key_ring,
    rotate_mounted_keys,
    rotate_signing_key,
)
from workplane.cli import main

WORKLOADS = "/api/v1/workloads"


def test_a_process_verifies_tokens_signed_by_a_key_rotated_elsewhere(tmp_path: Path) -> None:
    first = TokenSigner.from_dir(tmp_path, tenant="1")
    before = first.issue("someone", "user", 600)
    rotate_signing_key(tmp_path, keep_s=3600)
    second = TokenSigner.from_dir(tmp_path, tenant="1")  # a process started after the rotation
    after = second.issue("someone", "user", 600)
    assert second.kid != first.kid
    assert first.verify(after).subject == "someone"  # unknown kid: the ring is reloaded
    assert second.verify(before).subject == "someone"  # the old key verifies until its time is up


def test_old_keys_go_once_their_tokens_have_expired(tmp_path: Path) -> None:
    signer = TokenSigner.from_dir(tmp_path)
    token = signer.issue("someone", "user", 600, now=1000)
    rotate_signing_key(tmp_path, keep_s=600, now=1000)
    current, previous = load_key_ring(tmp_path, now=1500)
    assert list(previous) == [signer.kid]
    current, previous = load_key_ring(tmp_path, now=1601)
    assert previous == {}
    assert not list((tmp_path / "signing-keys").iterdir())
    with pytest.raises(InvalidToken):
        TokenSigner(current, previous=previous).verify(token, now=1100)


def test_a_token_of_another_tenant_is_refused(tmp_path: Path) -> None:
    other = TokenSigner.from_dir(tmp_path, tenant="2").issue("someone", "user", 600)
    with pytest.raises(InvalidToken, match="another tenant"):
        TokenSigner.from_dir(tmp_path, tenant="1").verify(other)


def _mounted_signer(mount: Path, switch_delay_s: float = 0.0) -> TokenSigner:
    current, previous = load_mounted_key_ring(mount)
    return TokenSigner(
        current, previous=previous, tenant="1", key_dir=mount, mounted=True, switch_delay_s=switch_delay_s
    )


def test_a_mounted_secret_rotates_under_running_signers(tmp_path: Path) -> None:
    mount = tmp_path / "keys"
    old, new = "a1" * 32, "b2" * 32
    kubelet_secret_update(mount, {"database-url": "postgresql://x", "signing-key": old + "\n"}, "2026_01")
    prompt = _mounted_signer(mount)  # switches to the new key as soon as it sees it
    careful = TokenSigner.from_dir(tmp_path / "data", tenant="1", key_dir=mount)
    before = careful.issue("someone", "user", 600)
    assert careful.kid == prompt.kid == key_id(bytes.fromhex(old))
    files = tree(mount)

    kubelet_secret_update(mount, {"signing-key": new, "signing-key.4102444800": old}, "2026_02")
    after = TokenSigner(bytes.fromhex(new), tenant="1").issue("someone", "user", 600)
    for signer in (prompt, careful):
        assert signer.verify(after).subject == "someone"  # unknown kid: the ring is reloaded
        assert signer.verify(before).subject == "someone"  # the replaced key still verifies
        assert signer.kid == key_id(bytes.fromhex(new))
    assert prompt.verify(prompt.issue("someone", "user", 600)).subject == "someone"
    assert _kid(prompt.issue("someone", "user", 600)) == key_id(bytes.fromhex(new))
    # Until every replica has had time to see the update, the replaced key keeps signing.
    assert _kid(careful.issue("someone", "user", 600)) == key_id(bytes.fromhex(old))
    assert not (tmp_path / "data").exists()  # a mounted ring needs no data directory
    assert files.keys() != tree(mount).keys()


def test_a_changed_key_under_the_same_name_is_noticed(tmp_path: Path) -> None:
    """Kubelet's update leaves the names alone when only a value changes: the symlink is the same, the
    file behind it is new."""
    mount = tmp_path / "keys"
    kubelet_secret_update(mount, {"signing-key": "1a" * 32}, "2026_01")
    signer = _mounted_signer(mount)
    kubelet_secret_update(mount, {"signing-key": "2b" * 32}, "2026_02")
    replaced = TokenSigner(bytes.fromhex("2b" * 32), tenant="1").issue("someone", "user", 600)
    assert signer.verify(replaced).subject == "someone"


def test_a_broken_update_leaves_the_ring_as_it_was(tmp_path: Path) -> None:
    mount = tmp_path / "keys"
    kept, new = "3c" * 32, "4d" * 32
    kubelet_secret_update(mount, {"signing-key": kept}, "2026_01")
    signer = _mounted_signer(mount)
    before = signer.issue("someone", "user", 600)
    kubelet_secret_update(mount, {"signing-key": "not a key", "signing-key.4102444800": kept}, "2026_02")
    after = TokenSigner(bytes.fromhex(new), tenant="1").issue("someone", "user", 600)
    with pytest.raises(InvalidToken):
        signer.verify(after)  # the reload this asks for finds nothing it can read
    assert signer.verify(before).subject == "someone"
    assert _kid(signer.issue("someone", "user", 600)) == key_id(bytes.fromhex(kept))
    kubelet_secret_update(mount, {"signing-key": new, "signing-key.4102444800": kept}, "2026_03")
    # Forced reloads happen at most once a second: without waiting, the fixed Secret is seen now.
    signer._forced_at = -math.inf
    assert signer.verify(after).subject == "someone"


def test_a_mounted_ring_skips_expired_keys_and_never_writes(tmp_path: Path) -> None:
    mount = tmp_path / "keys"
    current, earlier, named = "c3" * 32, "d4" * 32, "e5" * 32
    kubelet_secret_update(
        mount,
        {"signing-key": current, "signing-key.1000": earlier, "signing-key.5000": named},
        "2026_01",
    )
    files = tree(mount)
    key, previous = load_mounted_key_ring(mount, now=2000)
    assert key == bytes.fromhex(current)
    assert previous == {key_id(bytes.fromhex(named)): bytes.fromhex(named)}
    _key, previous = load_mounted_key_ring(mount, now=500)
    assert set(previous) == {key_id(bytes.fromhex(earlier)), key_id(bytes.fromhex(named))}
    assert tree(mount) == files


def test_a_mounted_ring_without_a_current_key_is_refused(tmp_path: Path) -> None:
    kubelet_secret_update(tmp_path / "keys", {"signing-key.9999999999": "f6" * 32}, "2026_01")
    with pytest.raises(FileNotFoundError, match="signing-key"):
        TokenSigner.from_dir(tmp_path / "data", key_dir=tmp_path / "keys")
    kubelet_secret_update(tmp_path / "keys", {"signing-key": ""}, "2026_02")
    with pytest.raises(ValueError, match="64 hex digits"):
        load_mounted_key_ring(tmp_path / "keys")


def test_an_earlier_keys_id_comes_from_its_content(tmp_path: Path) -> None:
    signer = TokenSigner.from_dir(tmp_path)
    earlier = "a7" * 32
    folder = tmp_path / PREVIOUS_DIR
    folder.mkdir()
    (folder / f"{signer.kid}.4102444800.key").write_text(earlier)  # a name that lies
    _current, previous = load_key_ring(tmp_path)
    assert previous == {key_id(bytes.fromhex(earlier)): bytes.fromhex(earlier)}


def test_rotating_a_secrets_keys(tmp_path: Path) -> None:
    files = {"database-url": "postgresql://x", "signing-key": "a8" * 32, "signing-key.900": "b9" * 32}
    rotated, kid = rotate_mounted_keys(files, keep_s=600, now=1000)
    assert rotated["database-url"] == files["database-url"]
    assert rotated["signing-key.1600"] == files["signing-key"]
    assert "signing-key.900" not in rotated  # past its time
    assert key_id(bytes.fromhex(rotated["signing-key"])) == kid != key_id(bytes.fromhex("a8" * 32))
    again, _kid = rotate_mounted_keys(rotated, keep_s=600, now=1000)
    assert again["signing-key.1600"] == files["signing-key"]
    assert again["signing-key.1601"] == rotated["signing-key"]


def test_the_rotate_command_turns_a_secret_into_its_rotation(tmp_path: Path, capsys: Any) -> None:
    old = "c0" * 32
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "workplane-server", "namespace": "workplane", "resourceVersion": "42"},
        "type": "Opaque",
        "data": {name: _b64(value) for name, value in {"signing-key": old, "database-url": "pg"}.items()},
    }
    (tmp_path / "secret.json").write_text(json.dumps(secret))
    assert main(["signing-key", "rotate", "--secret", str(tmp_path / "secret.json"), "--keep-s", "3900"]) == 0
    out, err = capsys.readouterr()
    rotated = json.loads(out)
    assert rotated["metadata"] == secret["metadata"]  # `kubectl replace` refuses it if the Secret changed
    data = {name: base64.b64decode(value).decode() for name, value in rotated["data"].items()}
    [kept] = [name for name in data if name.startswith("signing-key.")]
    assert data[kept] == old
    assert int(kept.removeprefix("signing-key.")) >= time.time() + 3890
    assert data["database-url"] == "pg"
    assert key_id(bytes.fromhex(data["signing-key"])) in err
    kubelet_secret_update(tmp_path / "keys", data, "2026_01")
    _current, previous = load_mounted_key_ring(tmp_path / "keys")
    assert list(previous) == [key_id(bytes.fromhex(old))]


@pytest.mark.parametrize(
    ("keep_s", "mentions"),
    [
        ("-1", ["--keep-s", "-1 is negative"]),
        ("599", ["--keep-s", "599 s is shorter than the token lifetime", "600 s"]),
        ("604", ["--keep-s", "604 s is shorter"]),
        ("ten", ["--keep-s", "'ten' is not a whole number"]),
    ],
)
@pytest.mark.parametrize("ring", ["data-dir", "secret"])
def test_the_rotate_command_refuses_to_drop_the_old_key_before_its_tokens_expire(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, keep_s: str, mentions: list[str], ring: str
) -> None:
    """``--keep-s`` under the token lifetime (here 600 s) would refuse tokens the replaced key signed
    while they are still valid; a negative value even more so. Both are usage errors (exit 2, argparse's
    message), and nothing is rotated."""
    monkeypatch.setenv("WORKPLANE_TOKEN_LIFETIME_S", "600")
    data_dir = tmp_path / "data"
    key = TokenSigner.from_dir(data_dir).kid
    (tmp_path / "secret.json").write_text(
        json.dumps({"kind": "Secret", "data": {"signing-key": _b64("d1" * 32)}})
    )
    where = (
        ["--data-dir", str(data_dir)] if ring == "data-dir" else ["--secret", str(tmp_path / "secret.json")]
    )
    with pytest.raises(SystemExit) as exited:
        main(["signing-key", "rotate", *where, "--keep-s", keep_s])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage: " in err, err
    assert "signing-key rotate: error: argument --keep-s: " in err, err
    for mention in mentions:
        assert mention in err, err
    assert TokenSigner.from_dir(data_dir).kid == key
    assert not (data_dir / PREVIOUS_DIR).exists()
    # The lifetime and the 5 s in which a server may not yet have seen the rotation are enough.
    assert main(["signing-key", "rotate", "--data-dir", str(data_dir), "--keep-s", "605"]) == 0
    assert TokenSigner.from_dir(data_dir).kid != key


def test_a_secrets_replaced_key_outlives_every_token_it_signs(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas on a mounted Secret see a rotation up to MOUNTED_SWITCH_DELAY_S apart and then sign with
    the replaced key for MOUNTED_SWITCH_DELAY_S more: its last token, issued up to 245 s after the
    rotation, must verify to its end. The default kept the key for the lifetime + 60 s only, and such
    a token was refused in its last three minutes; a --keep-s that short is now refused."""
    monkeypatch.setenv("WORKPLANE_TOKEN_LIFETIME_S", "600")
    old = "e2" * 32
    secret = {"kind": "Secret", "data": {"signing-key": _b64(old)}}
    (tmp_path / "secret.json").write_text(json.dumps(secret))
    rotated_at = time.time()
    assert main(["signing-key", "rotate", "--secret", str(tmp_path / "secret.json")]) == 0
    data = {k: base64.b64decode(v).decode() for k, v in json.loads(capsys.readouterr().out)["data"].items()}
    kubelet_secret_update(tmp_path / "keys", data, "2026_01")
    last_signed = rotated_at + 2 * MOUNTED_SWITCH_DELAY_S + 5
    _current, previous = load_mounted_key_ring(tmp_path / "keys", now=last_signed + 600 - 1)
    assert key_id(bytes.fromhex(old)) in previous
    for short, shortest in (("844", "845"), ("660", "845")):
        with pytest.raises(SystemExit):
            main(["signing-key", "rotate", "--secret", str(tmp_path / "secret.json"), "--keep-s", short])
        assert f"at least {shortest}" in capsys.readouterr().err


def test_a_server_on_a_mounted_secret_keeps_old_tokens_across_a_rotation(tmp_path: Path) -> None:
    mount = tmp_path / "keys"
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    kubelet_secret_update(mount, {"signing-key": old}, "2026_01")
    with running_server(tmp_path / "data", env={"WORKPLANE_SIGNING_KEY_DIR": str(mount)}) as server:
        before = server.token()
        assert _kid(before) == key_id(bytes.fromhex(old))
        claims = json.loads(base64.urlsafe_b64decode(before.split(".")[1] + "=="))
        kubelet_secret_update(mount, {"signing-key": new, "signing-key.4102444800": old}, "2026_02")
        # A token from a replica that has seen the update already.
        after = TokenSigner(bytes.fromhex(new), tenant="1").issue(claims["sub"], claims["role"], 600)
        stranger = TokenSigner(secrets.token_bytes(32), tenant="1").issue(claims["sub"], claims["role"], 600)
        assert httpx.get(server.url(WORKLOADS), headers=bearer(after), timeout=30).status_code == 200
        assert httpx.get(server.url(WORKLOADS), headers=bearer(before), timeout=30).status_code == 200
        assert httpx.get(server.url(WORKLOADS), headers=bearer(stranger), timeout=30).status_code == 401
        assert _kid(server.token()) == key_id(bytes.fromhex(old))  # other replicas may lag behind


def _kid(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    return str(header["kid"])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
