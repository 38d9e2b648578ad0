"""HS256 JSON Web Tokens that the official Run:ai client can read.

The client decodes the payload segment with the *standard* base64 alphabet (not URL-safe), so the
segment must contain neither ``-`` nor ``_``. In base64url those come only from a 6-bit group 62 or 63;
with 7-bit ASCII input that happens only for the last group of a 3-byte block ending in ``>``, ``?``,
``~`` or DEL. The payload is therefore written as ASCII JSON with those characters escaped as
``\\u003e``-style sequences, which makes every issued payload segment safe by construction.

Signing keys rotate without cutting anyone off: the header names its key (``kid``); the current key
lives in ``<data_dir>/signing.key`` and the keys it replaced in ``<data_dir>/signing-keys/``, each
kept until every token it signed has expired. Server processes notice a rotation by themselves (a
token with a ``kid`` they do not know, or the key file's change) and reload the key ring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workplane.domain.values import INT64_MAX
from workplane.files import private_dir, write_private

_RELOAD_INTERVAL_S = 5.0  # how often an issuing process looks for a rotated key
_MIN_RELOAD_S = 1.0  # unknown kids reload the ring at most this often (no disk I/O per forged token)
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


def key_id(key: bytes) -> str:
    """A key's public name: the first 16 hex digits of its SHA-256 (no secret in it)."""
    return hashlib.sha256(b"workplane-kid:" + key).hexdigest()[:16]


class TokenSigner:
    """Issues and verifies tokens with a key ring: one current key, and earlier keys by ``kid``.

    ``tenant`` (when set) goes into every token as ``tid``; a token naming another tenant is refused.
    """

    def __init__(
        self,
        key: bytes,
        issuer: str = "workplane",
        *,
        previous: dict[str, bytes] | None = None,
        tenant: str | None = None,
        key_dir: Path | None = None,
    ) -> None:
        self._key = key
        self._kid = key_id(key)
        self._previous = dict(previous or {})
        self.issuer = issuer
        self.tenant = tenant
        self._key_dir = key_dir
        self._lock = threading.Lock()
        # When the ring on disk was last looked at: periodically (issuing) and for an unknown kid.
        self._checked_at = self._forced_at = -math.inf
        self._stamp = _stamp(key_dir)

    @classmethod
    def from_dir(cls, data_dir: Path, *, tenant: str | None = None) -> TokenSigner:
        """The key ring of a data directory (its current key is created on first use)."""
        current, previous = load_key_ring(data_dir)
        return cls(current, previous=previous, tenant=tenant, key_dir=data_dir)

    @property
    def kid(self) -> str:
        return self._kid

    def _reload(self, *, force: bool) -> None:
        if self._key_dir is None:
            return
        now = time.monotonic()
        if force:
            if now - self._forced_at < _MIN_RELOAD_S:
                return
            self._forced_at = now
        else:
            if now - self._checked_at < _RELOAD_INTERVAL_S:
                return
            self._checked_at = now
        stamp = _stamp(self._key_dir)
        if stamp == self._stamp:
            return
        current, previous = load_key_ring(self._key_dir)
        with self._lock:
            self._key, self._kid, self._previous, self._stamp = current, key_id(current), previous, stamp

    def _key_for(self, kid: Any) -> bytes | None:
        if kid is None:
            return self._key  # tokens from before key ids: only the current key can have signed them
        if not isinstance(kid, str):
            return None
        if kid == self._kid:
            return self._key
        found = self._previous.get(kid)
        if found is None:
            self._reload(force=True)
            found = self._key if kid == self._kid else self._previous.get(kid)
        return found

    def issue(self, subject: str, role: str, lifetime_s: int, now: float | None = None) -> str:
        self._reload(force=False)
        issued = int(now if now is not None else time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "role": role,
            "iat": issued,
            "exp": issued + lifetime_s,
            "jti": secrets.token_hex(8),
        }
        if self.tenant is not None:
            payload["tid"] = self.tenant
        key, kid = self._key, self._kid
        header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
        signing_input = f"{_b64(_json(header))}.{_b64(_json(payload))}"
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
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
        key = self._key_for(header.get("kid"))
        if key is None:
            raise InvalidToken("bad token signature")  # the same answer as a wrong key: no key oracle
        expected = hmac.new(key, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad token signature")
        try:
            payload = json.loads(_unb64(payload_b64))
            claims = Claims(
                str(payload["sub"]),
                str(payload.get("role", "")),
                _numeric_date(payload["iat"]),
                _numeric_date(payload["exp"]),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed token payload") from exc
        if claims.expires_at <= (now if now is not None else time.time()):
            raise InvalidToken("token expired")
        # A token without ``tid`` predates tenant claims; only this server's keys can have signed it.
        tenant = payload.get("tid")
        if self.tenant is not None and tenant is not None and str(tenant) != self.tenant:
            raise InvalidToken("token of another tenant")
        return claims


def _numeric_date(value: object) -> int:
    """A JWT NumericDate (seconds, RFC 7519): a finite number within 64 bits. Python's JSON parser
    reads ``1e400`` as infinity and ``NaN`` as NaN, which ``int()`` would turn into an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a NumericDate is a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a NumericDate is finite")
    seconds = int(value)
    if not 0 <= seconds <= INT64_MAX:
        raise ValueError("a NumericDate is within 64 bits")
    return seconds


def _stamp(data_dir: Path | None) -> tuple[float, ...]:
    """Changes whenever the key ring on disk does (rotation replaces the key file by a rename)."""
    if data_dir is None:
        return ()
    try:
        stamps = [(data_dir / "signing.key").stat().st_mtime_ns]
    except FileNotFoundError:
        return ()
    folder = data_dir / PREVIOUS_DIR
    if folder.is_dir():
        stamps.append(folder.stat().st_mtime_ns)
    return tuple(float(s) for s in stamps)


PREVIOUS_DIR = "signing-keys"


def load_key_ring(data_dir: Path, now: float | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The current key and the earlier keys still within their retention, by kid. Earlier keys past
    it are removed: every token they signed has expired."""
    current = load_or_create_key(data_dir / "signing.key")
    previous: dict[str, bytes] = {}
    folder = data_dir / PREVIOUS_DIR
    moment = now if now is not None else time.time()
    if folder.is_dir():
        for path in folder.glob("*.key"):
            kid, _, until = path.stem.partition(".")
            try:
                keep_until = int(until)
            except ValueError:
                continue
            if keep_until < moment:
                path.unlink(missing_ok=True)
                continue
            previous[kid] = bytes.fromhex(path.read_text().strip())
    return current, previous


def rotate_signing_key(data_dir: Path, keep_s: int, now: float | None = None) -> str:
    """Make a new current key; the old one verifies tokens for ``keep_s`` more seconds (the longest
    token lifetime). Returns the new key's kid. Safe against a crash midway: the old key is kept
    before the new one replaces it."""
    old = load_or_create_key(data_dir / "signing.key")
    folder = data_dir / PREVIOUS_DIR
    private_dir(folder)
    until = int(now if now is not None else time.time()) + keep_s
    write_private(folder / f"{key_id(old)}.{until}.key", old.hex())
    new = secrets.token_bytes(32)
    staged = data_dir / "signing.key.new"
    write_private(staged, new.hex())
    staged.replace(data_dir / "signing.key")
    return key_id(new)


def load_or_create_key(path: Path) -> bytes:
    """The signing key, generated on first use and kept readable by the owner only."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    write_private(path, key.hex(), exclusive=True)
    return key
