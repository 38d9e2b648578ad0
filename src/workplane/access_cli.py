"""``workplane access-key | access-rule | audit``: the administrator API from the command line.

These commands are clients of a running server (the CLI never writes the store behind the API's
back), authenticated with an administrator access key: ``--credentials-file`` (e.g.
``<data-dir>/admin-credentials.env``), ``--client-id``/``--client-secret``, or the
``WORKPLANE_CLIENT_ID``/``WORKPLANE_CLIENT_SECRET`` environment variables.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from workplane.agents.client import add_connection_flags, agent_credentials
from workplane.domain.roles import KeyKind, Role
from workplane.domain.scopes import ScopeType


class CommandError(Exception):
    pass


def _connect(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, timeout=60)


# Replaced in tests by a factory of in-process clients.
connect: Callable[[str], httpx.Client] = _connect


def _sign_in(client: httpx.Client, args: argparse.Namespace) -> None:
    """Exchange the administrator key for a token and keep it on ``client`` for the calls that follow."""
    client_id, secret = agent_credentials(args.client_id, args.client_secret, args.credentials_file)
    answer = client.post(
        "/api/v1/token",
        json={"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret},
    )
    _check(answer)
    body = _body(answer)
    token = body.get("accessToken") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise CommandError(f"{args.server} answered the token request without a token: is it workplane?")
    client.headers["Authorization"] = f"Bearer {token}"


def _body(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _check(answer: httpx.Response) -> None:
    if answer.status_code >= 400:
        body = _body(answer)
        message = body.get("message", answer.text) if isinstance(body, dict) else answer.text
        raise CommandError(f"{answer.status_code}: {message}")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    # One client for the token and the call: an httpx client is opened by its first request and cannot
    # be entered (``with``) after that, so it is closed with ``closing`` rather than re-entered.
    with closing(connect(args.server)) as client:
        _sign_in(client, args)
        answer = client.request(method, path, **kwargs)
        _check(answer)
        return answer.json() if answer.content else None


def _show_secret(key: dict[str, Any], write_to: str | None) -> None:
    print(
        "The secret is shown once; store it now.\n"
        f"  client id:     {key['clientId']}\n"
        f"  client secret: {key['clientSecret']}",
        flush=True,
    )
    if write_to:
        from workplane.auth.credentials import write_credential_file

        write_credential_file(Path(write_to), key["clientId"], key["clientSecret"])
        print(f"  (also written to {write_to}, mode 0600)", flush=True)


def _key_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "kind": args.kind}
    if args.client_id_new:
        body["clientId"] = args.client_id_new
    if args.cluster:
        body["clusterId"] = args.cluster
    _show_secret(_call(args, "POST", "/api/v1/access-keys", json=body), args.write_credentials)
    return 0


def _key_list(args: argparse.Namespace) -> int:
    _print(_call(args, "GET", "/api/v1/access-keys")["accessKeys"])
    return 0


def _key_rotate(args: argparse.Namespace) -> int:
    _show_secret(_call(args, "POST", f"/api/v1/access-keys/{args.key}/secret"), args.write_credentials)
    return 0


def _key_revoke(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/api/v1/access-keys/{args.key}")
    print(f"revoked {args.key}", flush=True)
    return 0


def _rule_grant(args: argparse.Namespace) -> int:
    body = {"subjectId": args.subject, "roleName": args.role, "scopeType": args.scope_type}
    if args.scope_id:
        body["scopeId"] = args.scope_id
    _print(_call(args, "POST", "/api/v1/authorization/access-rules", json=body))
    return 0


def _rule_list(args: argparse.Namespace) -> int:
    params = {"subjectId": args.subject} if args.subject else {}
    _print(_call(args, "GET", "/api/v1/authorization/access-rules", params=params)["accessRules"])
    return 0


def _rule_revoke(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/api/v1/authorization/access-rules/{args.rule_id}")
    print(f"revoked rule {args.rule_id}", flush=True)
    return 0


def _audit(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"after": args.after, "limit": args.limit}
    if args.actor:
        params["actor"] = args.actor
    if args.action:
        params["action"] = args.action
    _print(_call(args, "GET", "/api/v1/audit", params=params))
    return 0


def _seconds(text: str) -> int:
    """``--keep-s``: a whole number of seconds, not negative."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give how many seconds to keep the old key")
    return value


def _signing_key_rotate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from workplane.auth.tokens import replaced_key_signs_s, rotate_signing_key
    from workplane.settings import load_settings

    settings = load_settings(data_dir=args.data_dir)
    lifetime = settings.token_lifetime_s
    # The last token the replaced key signs must stay verifiable to its end: servers go on signing
    # with that key for a while after the rotation (a mounted Secret's replicas, minutes).
    signs_s = replaced_key_signs_s(mounted=args.secret is not None)
    shortest = lifetime + signs_s
    if args.keep_s is not None and args.keep_s < shortest:
        # Checked here, not by the argument's type: the lifetime is a setting, known once they are read.
        parser.error(
            f"argument --keep-s: {args.keep_s} s is shorter than the token lifetime (token_lifetime_s = "
            f"{lifetime} s) and the {signs_s} s servers may go on signing with the replaced key: give at "
            f"least {shortest}, or tokens it signed would be refused before they expire"
        )
    keep_s = args.keep_s if args.keep_s is not None else shortest + 60
    if args.secret is not None:
        return _rotate_secret(args.secret, keep_s)
    kid = rotate_signing_key(settings.data_dir, keep_s=keep_s)
    print(
        f"workplane: new signing key {kid} in {settings.data_dir / 'signing.key'}; tokens signed by the "
        f"previous key stay valid until they expire (at most {settings.token_lifetime_s} s). Running "
        "servers on this data directory pick it up by themselves; copy it to servers elsewhere.",
        flush=True,
    )
    return 0


def _rotate_secret(source: str, keep_s: int) -> int:
    """A Secret as ``kubectl get secret -o json`` prints it, in; the same Secret with its signing keys
    rotated, out, for ``kubectl replace -f -`` (whose resourceVersion check refuses it if the Secret
    changed in between)."""
    import base64

    from workplane.auth.tokens import rotate_mounted_keys

    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    secret = json.loads(text)
    if not isinstance(secret, dict) or secret.get("kind") != "Secret":
        raise SystemExit("workplane: --secret takes a Secret as `kubectl get secret NAME -o json` prints it")
    files = {name: base64.b64decode(value).decode() for name, value in (secret.get("data") or {}).items()}
    try:
        rotated, kid = rotate_mounted_keys(files, keep_s)
    except ValueError as exc:
        raise SystemExit(f"workplane: {exc}") from exc
    secret["data"] = {name: base64.b64encode(value.encode()).decode() for name, value in rotated.items()}
    print(json.dumps(secret, indent=2))
    print(
        f"workplane: new signing key {kid}; the previous one verifies tokens for {keep_s} s more. "
        "Replicas pick it up when kubelet updates the mounted Secret.",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CommandError as exc:
            print(f"workplane {args.command}: {exc}", file=sys.stderr)
            return 1
        except httpx.TransportError as exc:  # no server there, a timeout, a broken connection
            print(
                f"workplane {args.command}: cannot reach the server at {args.server}: {_reason(exc)}",
                file=sys.stderr,
            )
            return 1
        except httpx.InvalidURL as exc:
            print(f"workplane {args.command}: --server {args.server} is not a URL: {exc}", file=sys.stderr)
            return 1

    return run


def _reason(exc: httpx.TransportError) -> str:
    """The transport error as a few words (``[Errno 111] Connection refused`` → ``connection refused``)."""
    text = str(exc).strip() or type(exc).__name__
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    return " ".join(text.split()).lower()


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "access-key", help="create, list, rotate and revoke access keys (administrator)"
    )
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser("create", help="create a key; its secret is printed once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. a person or a service")
    create.add_argument("--kind", default="user", choices=[k.value for k in KeyKind])
    create.add_argument("--id", dest="client_id_new", help="client id (default: generated)")
    create.add_argument("--cluster", help="agent keys: the cluster id it reports for")
    create.add_argument(
        "--write-credentials", metavar="FILE", help="also write the credential to FILE (0600)"
    )
    create.set_defaults(run=_run(_key_create))
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(run=_run(_key_list))
    rotate = key_commands.add_parser("rotate", help="replace a key's secret; the new one is printed once")
    rotate.add_argument("key", help="client id")
    rotate.add_argument(
        "--write-credentials", metavar="FILE", help="also write the credential to FILE (0600)"
    )
    rotate.set_defaults(run=_run(_key_rotate))
    revoke = key_commands.add_parser("revoke", help="revoke a key: its tokens are refused from now on")
    revoke.add_argument("key", help="client id")
    revoke.set_defaults(run=_run(_key_revoke))
    for parser in (create, listing, rotate, revoke):
        add_connection_flags(parser, "administrator access key")

    rules = commands.add_parser("access-rule", help="grant, list and revoke access rules (administrator)")
    rule_commands = rules.add_subparsers(dest="rule_command", required=True)
    grant = rule_commands.add_parser("grant", help="grant ROLE on a scope to an access key")
    grant.add_argument("subject", help="client id of the access key")
    grant.add_argument("role", choices=[r.value for r in Role])
    grant.add_argument("scope_type", choices=[t.value for t in ScopeType])
    grant.add_argument("scope_id", nargs="?", help="cluster, department or project id (not for tenant)")
    grant.set_defaults(run=_run(_rule_grant))
    rule_list = rule_commands.add_parser("list", help="list rules")
    rule_list.add_argument("--subject", help="only this access key's rules")
    rule_list.set_defaults(run=_run(_rule_list))
    rule_revoke = rule_commands.add_parser("revoke", help="revoke a rule by its id")
    rule_revoke.add_argument("rule_id")
    rule_revoke.set_defaults(run=_run(_rule_revoke))
    for parser in (grant, rule_list, rule_revoke):
        add_connection_flags(parser, "administrator access key")

    audit = commands.add_parser("audit", help="read the audit log (administrator)")
    audit.add_argument("--after", type=int, default=0, help="entries after this id")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--actor", help="only this client id's entries")
    audit.add_argument("--action", help="only this action, e.g. request.refused or access-key.create")
    add_connection_flags(audit, "administrator access key")
    audit.set_defaults(run=_run(_audit))

    signing = commands.add_parser(
        "signing-key", help="token signing keys of a data directory or a Kubernetes Secret"
    )
    signing_commands = signing.add_subparsers(dest="signing_command", required=True)
    rotate_signing = signing_commands.add_parser(
        "rotate", help="make a new signing key; tokens signed by the old one stay valid until they expire"
    )
    ring = rotate_signing.add_mutually_exclusive_group()
    ring.add_argument("--data-dir", help="the server's data directory (WORKPLANE_DATA_DIR, default ./data)")
    ring.add_argument(
        "--secret",
        metavar="FILE",
        help="rotate the keys of a Secret instead: read it as `kubectl get secret -o json` prints it "
        "(- for stdin) and print it rotated, for `kubectl replace -f -`",
    )
    rotate_signing.add_argument(
        "--keep-s",
        type=_seconds,
        help="how long the replaced key keeps verifying tokens, seconds: at least token_lifetime_s + 5 "
        "(with --secret: + 245, while replicas see the update and switch); default 60 s more than that",
    )
    rotate_signing.set_defaults(run=lambda args: _signing_key_rotate(args, rotate_signing))
