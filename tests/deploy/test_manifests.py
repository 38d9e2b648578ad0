"""deploy/kubernetes/: valid against the Kubernetes API's schemas, and consistent with the code it runs.

The schemas are those kubernetes-validate bundles (no network). The agent's ClusterRole is compared
with the agent's own table of kinds, every environment variable with the settings or the credentials
the code reads, and every command line with the real CLI parser, so that none of them can drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.agents.kubernetes.apiserver import BUILTIN
from tests.agents.kubernetes.conftest import CRDS
from tests.auth.helpers import kubelet_secret_update
from workplane.agents.client import agent_credentials
from workplane.agents.kubernetes.kinds import DISCOVERY_PATHS, RBAC_VERBS, rbac_resources, resource_plural
from workplane.auth.tokens import TokenSigner, key_id
from workplane.cli import build_parser
from workplane.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release the manifests are for, and the newest the validator knows.
KEY_DIR = "WORKPLANE_SIGNING_KEY_DIR"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

Doc = dict[str, Any]


def _kustomization() -> Doc:
    loaded: Doc = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return loaded


def _documents() -> list[tuple[str, Doc]]:
    return [
        (name, doc)
        for name in _kustomization()["resources"]
        for doc in yaml.safe_load_all((MANIFESTS / name).read_text())
        if doc
    ]


def _one(kind: str, name: str) -> Doc:
    [doc] = [d for _, d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(deployment: str) -> Doc:
    [container] = _one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: Doc, secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment, each Secret reference replaced by a value of ``secrets``."""
    out = {}
    for var in container.get("env", []):
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        out[var["name"]] = secrets[ref["key"]] if ref else var["value"]
    return out


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(_kustomization()["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    documents = _documents()
    assert {d["kind"] for _, d in documents} >= {"Namespace", "Deployment", "Service", "ClusterRole"}
    for name, doc in documents:
        try:
            # strict: a misspelt or misplaced field is an error, not silently ignored.
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def test_a_misplaced_field_is_refused() -> None:
    """The validation above does refuse something: a probe one level too high."""
    server = _one("Deployment", "workplane-server")
    broken = yaml.safe_load(yaml.safe_dump(server))
    broken["spec"]["template"]["spec"]["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_agent_role_is_exactly_what_the_agent_reads() -> None:
    rules = _one("ClusterRole", "workplane-agent")["rules"]
    granted: dict[str, tuple[str, ...]] = {}
    urls: list[str] = []
    for rule in rules:
        if "nonResourceURLs" in rule:
            assert rule["verbs"] == ["get"]
            urls += rule["nonResourceURLs"]
            continue
        assert rule["verbs"] == list(RBAC_VERBS)
        [group] = rule["apiGroups"]
        assert group not in granted, f"two rules for {group!r}"
        granted[group] = tuple(rule["resources"])
    assert granted == rbac_resources()
    assert tuple(urls) == DISCOVERY_PATHS


def test_resource_names_follow_what_api_servers_serve() -> None:
    """The plural rule of ``rbac_resources`` gives the names the test API server (shaped after the
    upstream projects) serves."""
    for kind in (*BUILTIN, *CRDS):
        assert resource_plural(kind.kind) == kind.plural


def test_the_agent_role_is_bound_to_the_agent() -> None:
    binding = _one("ClusterRoleBinding", "workplane-agent")
    account = _one("ServiceAccount", "workplane-agent")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "workplane-agent",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "workplane-agent", "namespace": account["metadata"]["namespace"]}
    ]
    pod = _one("Deployment", "workplane-agent")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "workplane-agent"


def test_the_server_settings_are_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://workplane:pw@postgres:5432/workplane"
    env = _env(_container("workplane-server"), {"database-url": url})
    for name in env:
        assert name.startswith("WORKPLANE_"), name
        assert name.removeprefix("WORKPLANE_").lower() in Settings.model_fields, name
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WORKPLANE_CONFIG", raising=False)
    settings = load_settings()
    assert settings.sqlalchemy_url == url  # PostgreSQL, never the SQLite default
    assert settings.host == "0.0.0.0"  # noqa: S104 (a pod's address is where its Service sends)
    assert not settings.pin_cpus  # several pods share a node's CPUs


def test_the_server_runs_several_replicas_behind_its_service() -> None:
    deployment = _one("Deployment", "workplane-server")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    service = _one("Service", "workplane-server")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = _container("workplane-server")
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    [port] = container["ports"]
    assert port["containerPort"] == args.port
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]


def test_the_server_writes_only_to_its_volumes() -> None:
    """A read-only root: the data directory and /tmp are volumes, and the signing keys are the Secret
    mounted as a directory where the server reads its key ring."""
    container = _container("workplane-server")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = _env(container, {"database-url": ""})
    assert env["WORKPLANE_DATA_DIR"] in mounts
    assert "/tmp" in mounts
    key_mount = mounts[env[KEY_DIR]]
    assert key_mount["readOnly"] is True


def test_the_signing_keys_follow_the_secret_without_a_restart(tmp_path: Path) -> None:
    """Kubelet updates a Secret volume in place only without ``subPath``; with ``items``, a key absent
    from the Secret (``signing-key.<until>`` outside a rotation) would fail the mount."""
    container = _container("workplane-server")
    key_dir = _env(container, {"database-url": ""})[KEY_DIR]
    [key_mount] = [m for m in container["volumeMounts"] if m["mountPath"] == key_dir]
    assert "subPath" not in key_mount
    assert "subPathExpr" not in key_mount
    pod = _one("Deployment", "workplane-server")["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == key_mount["name"]]
    assert volume["secret"]["secretName"] == "workplane-server"
    assert "items" not in volume["secret"]
    old, new = "ab" * 32, "cd" * 32
    # As `kubectl create secret --from-literal` gives them, then after a rotation.
    mount = tmp_path / "keys"
    kubelet_secret_update(mount, {"database-url": "postgresql://x", "signing-key": old}, "2026_01")
    signer = TokenSigner.from_dir(tmp_path / "data", tenant="1", key_dir=mount)
    before = signer.issue("someone", "user", 600)
    kubelet_secret_update(mount, {"signing-key": new, "signing-key.4102444800": old}, "2026_02")
    assert signer.verify(TokenSigner(bytes.fromhex(new), tenant="1").issue("x", "user", 600)).subject == "x"
    assert signer.verify(before).subject == "someone"
    assert signer.kid == key_id(bytes.fromhex(new))


def test_the_agent_command_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    container = _container("workplane-agent")
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.agent_command) == ("agent", "kubernetes")
    assert args.in_cluster
    service = _one("Service", "workplane-server")
    meta = service["metadata"]
    assert (
        args.server == f"http://{meta['name']}.{meta['namespace']}.svc:{service['spec']['ports'][0]['port']}"
    )
    env = _env(container, {"WORKPLANE_CLIENT_ID": "agent-id", "WORKPLANE_CLIENT_SECRET": "agent-secret"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert agent_credentials(args.client_id, args.client_secret, args.credentials_file) == (
        "agent-id",
        "agent-secret",
    )


def test_every_pod_runs_unprivileged() -> None:
    images = {image["name"] for image in _kustomization()["images"]}
    for name in ("workplane-server", "workplane-agent"):
        pod = _one("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            assert container["image"] in images  # kustomize's images: sets where it comes from
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["requests"]
