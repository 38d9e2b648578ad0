"""POST /api/v1/token and the tokens it issues (docs/contract.md §9).

Access keys come in as ``client_credentials`` (clientId/clientSecret, as Run:ai's docs send it) or
``app_token`` (AppId/AppSecret, as the official client sends it), keys matched case-insensitively.
The issued JWT must be readable the way the official client reads it: the payload segment decoded with
the *standard* base64 alphabet after appending ``==`` — so it may hold neither ``-`` nor ``_`` — and
carrying ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.server import assert_error, read_admin_credential
from workplane.api.deps import Services
from workplane.app import build_services, create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID, ADMIN_ROLE
from workplane.auth.tokens import TokenSigner
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store.database import Database

TOKEN = "/api/v1/token"
PROTECTED = "/api/v1/workload-categories"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload_as_the_client_reads_it(token: str) -> dict[str, Any]:
    """runai.token_refresher.TokenRefresher._set_token_expiry, verbatim in effect."""
    segment = token.split(".")[1]
    assert "-" not in segment
    assert "_" not in segment
    payload: dict[str, Any] = json.loads(base64.b64decode(segment + "=="))
    return payload


def _sign(key: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _key(services: Services) -> bytes:
    return bytes.fromhex((services.settings.data_dir / "signing.key").read_text().strip())


def _issue(anonymous: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = anonymous.post(TOKEN, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    issued: dict[str, Any] = answer.json()
    return issued


def _works(anonymous: TestClient, token: str) -> bool:
    answer = anonymous.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
    if answer.status_code == 401:
        assert_error(answer, 401)
        return False
    assert answer.status_code == 200, answer.text
    return True


# --- issuing ---------------------------------------------------------------------------------------


def test_client_credentials_and_app_token_both_issue_a_working_token(
    anonymous: TestClient, admin_secret: str
) -> None:
    for body in [
        {"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": admin_secret},
        {"grantType": "app_token", "AppId": ADMIN_CLIENT_ID, "AppSecret": admin_secret},  # the client
        {
            "grantType": "client_credentials",
            "clientID": ADMIN_CLIENT_ID,
            "clientSecret": admin_secret,
        },  # spec
    ]:
        issued = _issue(anonymous, body)
        assert set(issued) == {"accessToken", "expiresIn"}
        assert issued["expiresIn"] == 3600
        assert _works(anonymous, issued["accessToken"])


def test_body_keys_are_matched_case_insensitively(anonymous: TestClient, admin_secret: str) -> None:
    for grant, client_id, secret in [
        ("granttype", "clientid", "clientsecret"),
        ("GRANTTYPE", "CLIENTID", "CLIENTSECRET"),
        ("GrantType", "ClientId", "ClientSecret"),
        ("grantType", "appId", "appSecret"),
        ("grantType", "APPID", "APPSECRET"),
        ("grantType", "appID", "AppSecret"),
        ("grantType", "clientId", "appSecret"),  # the synonyms mixed
    ]:
        body = {grant: "client_credentials", client_id: ADMIN_CLIENT_ID, secret: admin_secret}
        assert _works(anonymous, _issue(anonymous, body)["accessToken"]), body


def test_the_grant_may_carry_its_enum_name(anonymous: TestClient, admin_secret: str) -> None:
    body = {
        "grantType": "TokenRequestGrantTypeEnum.client_credentials",
        "clientId": ADMIN_CLIENT_ID,
        "clientSecret": admin_secret,
    }
    assert _works(anonymous, _issue(anonymous, body)["accessToken"])


def test_wrong_credentials_are_401(anonymous: TestClient, admin_secret: str) -> None:
    wrong_secret = anonymous.post(
        TOKEN, json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": "nope"}
    )
    unknown_client = anonymous.post(
        TOKEN, json={"grantType": "app_token", "AppId": "someone-else", "AppSecret": admin_secret}
    )
    nul_client = anonymous.post(
        TOKEN, json={"grantType": "app_token", "AppId": "admin\x00", "AppSecret": admin_secret}
    )
    case_changed_secret = anonymous.post(
        TOKEN,
        json={
            "grantType": "client_credentials",
            "clientId": ADMIN_CLIENT_ID,
            "clientSecret": admin_secret.upper(),
        },
    )
    bodies = [assert_error(a, 401) for a in (wrong_secret, unknown_client)]
    # The same answer whether the client id exists or not: no oracle for valid ids.
    assert bodies[0] == bodies[1]
    # A NUL is refused before any id is looked up, whatever the id (api.edge).
    assert_error(nul_client, 400, "NUL")
    if admin_secret.upper() != admin_secret:
        assert_error(case_changed_secret, 401)


def test_missing_or_mistyped_fields_are_400(anonymous: TestClient, admin_secret: str) -> None:
    for body, mention in [
        ({}, "grantType"),
        ({"clientId": ADMIN_CLIENT_ID, "clientSecret": admin_secret}, "grantType"),
        ({"grantType": "client_credentials"}, "clientId"),
        ({"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID}, "clientSecret"),
        ({"grantType": "client_credentials", "clientSecret": admin_secret}, "clientId"),
        ({"grantType": "app_token", "AppId": "", "AppSecret": admin_secret}, "clientId"),
        ({"grantType": "client_credentials", "clientId": 7, "clientSecret": admin_secret}, "clientId"),
        (
            {"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": None},
            "clientSecret",
        ),
        ({"grantType": 1, "clientId": ADMIN_CLIENT_ID, "clientSecret": admin_secret}, "grantType"),
    ]:
        assert_error(anonymous.post(TOKEN, json=body), 400, mention)


def test_an_unsupported_grant_is_400(anonymous: TestClient, admin_secret: str) -> None:
    for grant in ["password", "refresh_token", "exchange_token", "external_token_exchange", "", "tokens"]:
        body = {"grantType": grant, "clientId": ADMIN_CLIENT_ID, "clientSecret": admin_secret}
        assert_error(anonymous.post(TOKEN, json=body), 400, "grantType")


def test_a_body_that_is_not_a_json_object_is_400(anonymous: TestClient) -> None:
    for raw in [b"", b"grantType=client_credentials", b"{", b"[]", b'"token please"', b"null", b"\xff\xfe"]:
        answer = anonymous.post(TOKEN, content=raw, headers={"Content-Type": "application/json"})
        assert_error(answer, 400, "body")


# --- what is issued --------------------------------------------------------------------------------


def test_issued_payloads_are_standard_base64_and_carry_exp(anonymous: TestClient, admin_secret: str) -> None:
    # Each token differs (jti, and iat over time), so many of them cover many payload byte patterns.
    before = int(time.time())
    seen = set()
    for i in range(40):
        body = {"grantType": "app_token", "AppId": ADMIN_CLIENT_ID, "AppSecret": admin_secret}
        if i % 2:
            body = {
                "grantType": "client_credentials",
                "clientId": ADMIN_CLIENT_ID,
                "clientSecret": admin_secret,
            }
        token = _issue(anonymous, body)["accessToken"]
        seen.add(token)
        payload = _payload_as_the_client_reads_it(token)
        assert payload["sub"] == ADMIN_CLIENT_ID
        assert before <= payload["iat"] <= time.time() + 1
        assert payload["exp"] == payload["iat"] + 3600
    assert len(seen) == 40


@given(
    subject=st.text(max_size=40),
    role=st.text(max_size=12),
    lifetime=st.integers(min_value=120, max_value=86_400),
    now=st.integers(min_value=0, max_value=2**33),
)
@settings(max_examples=300, deadline=None)
def test_any_payload_is_free_of_url_safe_characters(subject: str, role: str, lifetime: int, now: int) -> None:
    signer = TokenSigner(b"k" * 32)
    token = signer.issue(subject, role, lifetime, now=now)
    payload = _payload_as_the_client_reads_it(token)
    assert (payload["sub"], payload["role"], payload["iat"], payload["exp"]) == (
        subject,
        role,
        now,
        now + lifetime,
    )
    claims = signer.verify(token, now=now + lifetime - 1)
    assert (claims.subject, claims.role, claims.expires_at) == (subject, role, now + lifetime)


@pytest.fixture
def short_lived(settings: Settings, database: Database) -> Services:
    """Services whose tokens live 120 s (the shortest lifetime allowed)."""
    short = settings.model_copy(update={"token_lifetime_s": 120})
    prepare_store(database, short, announce=False)
    return build_services(short, database)


def test_the_lifetime_is_configurable(short_lived: Services) -> None:
    client_id, secret = read_admin_credential(short_lived.settings.data_dir)
    with TestClient(create_app(short_lived.settings, short_lived)) as anonymous:
        issued = _issue(
            anonymous, {"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret}
        )
        assert issued["expiresIn"] == 120
        payload = _payload_as_the_client_reads_it(issued["accessToken"])
        assert payload["exp"] - payload["iat"] == 120


# --- what is refused -------------------------------------------------------------------------------


def test_forged_altered_and_expired_tokens_are_401(anonymous: TestClient, services: Services) -> None:
    key = _key(services)
    now = int(time.time())
    claims = {"iss": "workplane", "sub": ADMIN_CLIENT_ID, "role": ADMIN_ROLE, "iat": now, "exp": now + 600}
    good = _sign(key, {"alg": "HS256", "typ": "JWT"}, claims)
    assert _works(anonymous, good)  # the hand-made token is right: each variant below breaks one thing

    header, payload, signature = good.split(".")
    tampered = {**claims, "sub": "someone-else"}
    other_signature = signature[:-2] + ("BB" if signature.endswith("AA") else "AA")
    refused = {
        "signed with another key": _sign(b"another key" * 3, {"alg": "HS256", "typ": "JWT"}, claims),
        "alg none": f"{_b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}.",
        "alg none, signature kept": f"{_b64url(json.dumps({'alg': 'none'}).encode())}.{payload}.{signature}",
        "alg HS512": _sign(key, {"alg": "HS512", "typ": "JWT"}, claims),
        "tampered payload": f"{header}.{_b64url(json.dumps(tampered).encode())}.{signature}",
        "tampered signature": f"{header}.{payload}.{other_signature}",
        "no signature": f"{header}.{payload}.",
        "expired": _sign(key, {"alg": "HS256"}, {**claims, "iat": now - 7200, "exp": now - 3600}),
        "expired just now": _sign(key, {"alg": "HS256"}, {**claims, "exp": now - 1}),
        "no exp": _sign(key, {"alg": "HS256"}, {k: v for k, v in claims.items() if k != "exp"}),
        "no sub": _sign(key, {"alg": "HS256"}, {k: v for k, v in claims.items() if k != "sub"}),
        "exp not a number": _sign(key, {"alg": "HS256"}, {**claims, "exp": "tomorrow"}),
        "payload not JSON": f"{header}.{_b64url(b'not json')}.{signature}",
        "two segments": f"{header}.{payload}",
        "four segments": f"{good}.{signature}",
        "not base64": f"{header}.{payload}.***",
        "empty": ".",
    }
    for name, token in refused.items():
        assert not _works(anonymous, token), name


def test_a_token_from_another_installation_is_refused(anonymous: TestClient, services: Services) -> None:
    elsewhere = TokenSigner(b"\x01" * 32).issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600)
    assert not _works(anonymous, elsewhere)
    assert _works(anonymous, services.signer.issue(ADMIN_CLIENT_ID, ADMIN_ROLE, 3600))
