"""HS256 JSON Web Tokens that the official Run:ai client can read.

The client decodes the payload segment with the *standard* base64 alphabet (not URL-safe), so the
segment must contain neither ``-`` nor ``_``. In base64url those come only from a 6-bit group 62 or 63;
with 7-bit ASCII input that happens only for the last group of a 3-byte block ending in ``>``, ``?``,
``~`` or DEL. The payload is therefore written as ASCII JSON with those characters escaped as
``\\u003e``-style sequences, which makes every issued payload segment safe by construction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}
_UNSAFE = {">": "\\u003e", "?": "\\u003f", "~": "\\u007e", "\x7f": "\\u007f"}


class InvalidToken(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: dict[str, Any]) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True)
    for char, escaped in _UNSAFE.items():
        text = text.replace(char, escaped)
    return text.encode()


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    role: str
    issued_at: int
    expires_at: int


class TokenSigner:
    def __init__(self, key: bytes, issuer: str = "workplane") -> None:
        self._key = key
        self.issuer = issuer

    def issue(self, subject: str, role: str, lifetime_s: int, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        payload = {
            "iss": self.issuer,
            "sub": subject,
            "role": role,
            "iat": issued,
            "exp": issued + lifetime_s,
            "jti": secrets.token_hex(8),
        }
        signing_input = f"{_b64(_json(_HEADER))}.{_b64(_json(payload))}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str, now: float | None = None) -> Claims:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        header_b64, payload_b64, signature_b64 = parts
        try:
            header = json.loads(_unb64(header_b64))
            signature = _unb64(signature_b64)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed token") from exc
        # Only HS256 is accepted: "alg: none" and algorithm confusion are refused here.
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise InvalidToken("unsupported token algorithm")
        expected = hmac.new(self._key, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad token signature")
        try:
            payload = json.loads(_unb64(payload_b64))
            claims = Claims(
                str(payload["sub"]), str(payload["role"]), int(payload["iat"]), int(payload["exp"])
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed token payload") from exc
        if claims.expires_at <= (now if now is not None else time.time()):
            raise InvalidToken("token expired")
        return claims


def load_or_create_key(path: Path) -> bytes:
    """The signing key, generated on first use and kept readable by the owner only."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key
