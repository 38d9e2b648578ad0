"""HS256 JSON Web Tokens that the official Run:ai client can read.

The client decodes the payload segment with the *standard* base64 alphabet (not URL-safe), so the
segment must contain neither ``-`` nor ``_``. In base64url those come only from a 6-bit group 62 or 63;
with 7-bit ASCII input that happens only for the last group of a 3-byte block ending in ``>``, ``?``,
``~`` or DEL. The payload is therefore written as ASCII JSON with those characters escaped as
``\\u003e``-style sequences, which makes every issued payload segment safe by construction.

Signing keys rotate without cutting anyone off: the header names its key (``kid``); the current key
lives in ``<data_dir>/signing.key`` and the keys it replaced in ``<data_dir>/signing-keys/``, each
kept until every token it signed has expired. Server processes notice a rotation by themselves (a
token with a ``kid`` they do not know, or the key files' change) and reload the key ring.

A *mounted* key ring (``signing_key_dir``, e.g. a Kubernetes Secret mounted as a directory) is read
only and flat, as Secret keys are: ``signing-key`` is the current key and ``signing-key.<until>`` a key
it replaced, kept until the Unix time ``<until>``. Kubelet updates such a directory by swapping a
symlink, and replicas see the update up to a minute or so apart: a replica that notices a new current
key keeps signing with the one it replaced for ``MOUNTED_SWITCH_DELAY_S`` more, so that no replica is
handed a token of a key it has not seen yet.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workplane.domain.values import INT64_MAX
from workplane.files import private_dir, write_private

log = logging.getLogger("workplane")

_RELOAD_INTERVAL_S = 5.0  # how often an issuing process looks for a rotated key
_MIN_RELOAD_S = 1.0  # unknown kids reload the ring at most this often (no disk I/O per forged token)
MOUNTED_SWITCH_DELAY_S = 120.0  # kubelet's sync period (1 min) and its Secret cache, with room to spare
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
        mounted: bool = False,
        switch_delay_s: float = 0.0,
    ) -> None:
        self._key = key
        self._kid = key_id(key)
        self._previous = dict(previous or {})
        self.issuer = issuer
        self.tenant = tenant
        self._key_dir = key_dir
        self._mounted = mounted
        self._switch_delay_s = switch_delay_s
        # After a rotation is noticed: the key that keeps signing, and until when (monotonic).
        self._signing: tuple[bytes, str] | None = None
        self._switch_at = -math.inf
        self._lock = threading.Lock()
        # When the ring on disk was last looked at: periodically (issuing) and for an unknown kid.
        self._checked_at = self._forced_at = -math.inf
        self._stamp = _stamp(key_dir, mounted=mounted)

    @classmethod
    def from_dir(
        cls, data_dir: Path, *, tenant: str | None = None, key_dir: Path | None = None
    ) -> TokenSigner:
        """The key ring of a data directory (its current key is created on first use), or the
        mounted key ring in ``key_dir`` when one is given."""
        if key_dir is None:
            current, previous = load_key_ring(data_dir)
            return cls(current, previous=previous, tenant=tenant, key_dir=data_dir)
        current, previous = load_mounted_key_ring(key_dir)
        return cls(
            current,
            previous=previous,
            tenant=tenant,
            key_dir=key_dir,
            mounted=True,
            switch_delay_s=MOUNTED_SWITCH_DELAY_S,
        )

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
        stamp = _stamp(self._key_dir, mounted=self._mounted)
        if stamp == self._stamp:
            return
        load = load_mounted_key_ring if self._mounted else load_key_ring
        try:
            current, previous = load(self._key_dir)
        except (OSError, ValueError) as exc:
            # A key ring changed into something unreadable (a mistyped key in a Secret): keep serving
            # with the ring as it was, and look again at the next change.
            log.warning("signing keys in %s not reloaded: %s", self._key_dir, exc)
            return
        with self._lock:
            if key_id(current) != self._kid and self._kid in previous and self._switch_delay_s > 0:
                self._signing, self._switch_at = (self._key, self._kid), now + self._switch_delay_s
            self._key, self._kid, self._previous, self._stamp = current, key_id(current), previous, stamp

    def _signing_key(self) -> tuple[bytes, str]:
        """The key new tokens are signed with: the current one, or for a while after a rotation of a
        mounted ring the one it replaced (still verified everywhere, unlike the new one yet)."""
        with self._lock:
            held = self._signing
            if held is not None and time.monotonic() < self._switch_at and held[1] in self._previous:
                return held
            return self._key, self._kid

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
        key, kid = self._signing_key()
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


PREVIOUS_DIR = "signing-keys"
MOUNTED_KEY = "signing-key"  # a mounted ring's current key; ``signing-key.<until>``: the ones it replaced


def _ring_files(key_dir: Path, *, mounted: bool) -> tuple[Path, list[Path]]:
    """The current key's file and the files of the keys it replaced."""
    if mounted:
        return key_dir / MOUNTED_KEY, sorted(key_dir.glob(f"{MOUNTED_KEY}.*"))
    folder = key_dir / PREVIOUS_DIR
    return key_dir / "signing.key", sorted(folder.glob("*.key")) if folder.is_dir() else []


def _stamp(key_dir: Path | None, *, mounted: bool = False) -> tuple[tuple[str, int, int, int], ...]:
    """Changes whenever the key ring on disk does. ``stat`` follows symlinks: kubelet's update of a
    mounted Secret points them at new files (a new inode), a rotation in a data directory renames a new
    file over the key, and a key added or removed changes the list."""
    if key_dir is None:
        return ()
    current, earlier = _ring_files(key_dir, mounted=mounted)
    stamps = []
    for path in (current, *earlier):
        try:
            found = path.stat()
        except FileNotFoundError:  # removed since it was listed: the next look sees the rest
            continue
        stamps.append((path.name, found.st_ino, found.st_mtime_ns, found.st_size))
    return tuple(stamps)


def _keep_until(path: Path, *, mounted: bool) -> int | None:
    """The Unix time an earlier key's file name keeps it until (None: not a key file)."""
    until = path.name.removeprefix(f"{MOUNTED_KEY}.") if mounted else path.stem.partition(".")[2]
    try:
        return int(until)
    except ValueError:
        return None


def _read_key(path: Path) -> bytes:
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise ValueError(f"{path}: a signing key is at least 64 hex digits")
    return key


def _earlier_keys(files: list[Path], moment: float, *, mounted: bool) -> dict[str, bytes]:
    """The earlier keys still within their retention, by the kid of their content (a file's name is
    not trusted to say which key it holds). Expired ones are left alone: their tokens have expired."""
    found: dict[str, bytes] = {}
    for path in files:
        keep_until = _keep_until(path, mounted=mounted)
        if keep_until is None or keep_until < moment:
            continue
        try:
            key = _read_key(path)
        except FileNotFoundError:  # removed since it was listed
            continue
        found[key_id(key)] = key
    return found


def load_key_ring(data_dir: Path, now: float | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The current key and the earlier keys still within their retention, by kid. Earlier keys past
    it are removed where the directory allows it: every token they signed has expired."""
    current = load_or_create_key(data_dir / "signing.key")
    moment = now if now is not None else time.time()
    _key_file, earlier = _ring_files(data_dir, mounted=False)
    for path in earlier:
        keep_until = _keep_until(path, mounted=False)
        if keep_until is not None and keep_until < moment:
            with contextlib.suppress(OSError):  # a read-only directory: skipped all the same
                path.unlink(missing_ok=True)
    return current, _earlier_keys(earlier, moment, mounted=False)


def load_mounted_key_ring(key_dir: Path, now: float | None = None) -> tuple[bytes, dict[str, bytes]]:
    """A mounted key ring (``signing-key`` and ``signing-key.<until>`` files), read only: nothing is
    created or removed there, expired keys are skipped."""
    key_file, earlier = _ring_files(key_dir, mounted=True)
    if not key_file.exists():
        raise FileNotFoundError(f"no signing key {key_file} (the key ring's current key)")
    moment = now if now is not None else time.time()
    return _read_key(key_file), _earlier_keys(earlier, moment, mounted=True)


def replaced_key_signs_s(*, mounted: bool) -> int:
    """How long after a rotation a server may still sign tokens with the key it replaced: how much
    longer than the token lifetime that key must keep verifying. In a data directory, until each
    process next looks at the ring. From a mounted Secret, until the last replica sees kubelet's
    update (up to ``MOUNTED_SWITCH_DELAY_S`` after the rotation, the bound that delay rests on), and
    then ``MOUNTED_SWITCH_DELAY_S`` more, during which it signs with the replaced key on purpose."""
    if mounted:
        return math.ceil(2 * MOUNTED_SWITCH_DELAY_S + _RELOAD_INTERVAL_S)
    return math.ceil(_RELOAD_INTERVAL_S)


def rotate_mounted_keys(
    files: dict[str, str], keep_s: int, now: float | None = None
) -> tuple[dict[str, str], str]:
    """The files of a mounted key ring (e.g. a Secret's data, with other entries left as they are)
    after a rotation: a new ``signing-key``, the one it replaced as ``signing-key.<until>``, and the
    earlier keys past their time dropped. Returns them and the new key's kid."""
    moment = int(now if now is not None else time.time())
    if MOUNTED_KEY not in files:
        raise ValueError(f"no {MOUNTED_KEY!r} to rotate")
    old = files[MOUNTED_KEY].strip()
    bytes.fromhex(old)  # refuse to keep something that is not a key
    rotated = {
        name: value
        for name, value in files.items()
        if not name.startswith(f"{MOUNTED_KEY}.")
        or (until := _keep_until(Path(name), mounted=True)) is None
        or until >= moment
    }
    until = moment + keep_s
    while f"{MOUNTED_KEY}.{until}" in rotated:  # two rotations within a second: keep both keys
        until += 1
    rotated[f"{MOUNTED_KEY}.{until}"] = old
    new = secrets.token_bytes(32)
    rotated[MOUNTED_KEY] = new.hex()
    return rotated, key_id(new)


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
        return _read_key(path)
    key = secrets.token_bytes(32)
    write_private(path, key.hex(), exclusive=True)
    return key
