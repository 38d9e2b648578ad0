"""Signing-key rotation across processes: each signer notices a rotation on disk by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from workplane.auth.tokens import InvalidToken, TokenSigner, load_key_ring, rotate_signing_key


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
