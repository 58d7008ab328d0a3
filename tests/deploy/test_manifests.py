"""Kubernetes manifests (DESIGN §11): schema-valid offline, and safe by default."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s" / "sidecar"
KUBERNETES_VERSION = "1.30"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = _documents()


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def _containers() -> Iterator[dict[str, Any]]:
    for deployment in _by_kind("Deployment"):
        yield from deployment["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[name for name, _ in DOCS])
def test_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    """Every manifest validates strictly (no unknown fields) against the Kubernetes schema."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_example_has_every_part_the_design_names() -> None:
    """App + sidecar, control plane with 2 replicas, Service, Secret, PDB and a NetworkPolicy."""
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Deployment", "Service", "Secret", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    control = next(d for d in _by_kind("Deployment") if d["metadata"]["name"] == "pdp-control")
    assert control["spec"]["replicas"] == 2


def test_sidecar_decision_ports_stay_on_loopback() -> None:
    """The sidecar binds its HTTP and gRPC ports to 127.0.0.1 inside the pod."""
    sidecars = [c for c in _containers() if c["name"] == "pdp"]
    assert sidecars
    for container in sidecars:
        args = container["args"]
        assert args[0] == "run"
        assert "--http-addr=127.0.0.1:8181" in args
        assert "--grpc-addr=127.0.0.1:50051" in args
        assert any(a.startswith("--verification-key=") for a in args)


def test_every_container_is_locked_down_and_has_resources() -> None:
    """Read-only root filesystem, no privilege escalation, resource requests and limits."""
    for container in _containers():
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_pdp_containers_have_health_probes() -> None:
    """Every pdp container is probed on the /health/* endpoints for readiness and liveness."""
    for container in _containers():
        if container["name"] not in {"pdp", "control"}:
            continue
        for probe in ("readinessProbe", "livenessProbe"):
            assert "/health/" in yaml.safe_dump(container[probe]), (container["name"], probe)


def test_pdp_can_read_its_mounted_secrets() -> None:
    """Kubernetes writes secret files as root; pdp runs as 10001, so it reads them by group.

    That needs the pod's fsGroup to be the container's group and the mode to grant group read.
    """
    for deployment in _by_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        secrets = {volume["name"]: volume["secret"] for volume in pod.get("volumes", [])
                   if "secret" in volume}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in secrets:
                    continue
                group = container["securityContext"]["runAsGroup"]
                assert pod["securityContext"].get("fsGroup") == group, mount["name"]
                assert secrets[mount["name"]].get("defaultMode", 0o644) & 0o040, mount["name"]


def _pdp_containers() -> Iterator[dict[str, Any]]:
    for container in _containers():
        if container["name"] in {"pdp", "control"}:
            yield container


def _probe_paths(probe: dict[str, Any]) -> set[str]:
    text = yaml.safe_dump(probe)
    return {path for path in ("/health/live", "/health/ready") if path in text}


def test_only_readiness_waits_for_a_bundle() -> None:
    """A pdp without a bundle yet is taken out of service, never restarted into CrashLoopBackOff."""
    for container in _pdp_containers():
        assert _probe_paths(container["readinessProbe"]) == {"/health/ready"}, container["name"]
        for probe in ("startupProbe", "livenessProbe"):
            if probe in container:
                paths = _probe_paths(container[probe])
                assert paths == {"/health/live"}, (container["name"], probe)


def _literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment; values from a Secret get a placeholder of the right shape."""
    env = {}
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "postgresql://pdp:secret@postgres.example:5432/pdp")
    return env


@pytest.mark.parametrize("container", list(_pdp_containers()), ids=lambda c: c["name"])
def test_pdp_accepts_the_container_command_line(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every flag and PDP_* variable a manifest gives pdp is one it accepts, with a valid value."""
    from pdp.cli.main import build_parser
    from pdp.control.settings import ControlSettings, load_control_settings
    from pdp.sidecar.settings import load_settings

    for name in [name for name in os.environ if name.upper().startswith("PDP_")]:
        monkeypatch.delenv(name)
    for name, value in _literal_env(container).items():
        monkeypatch.setenv(name, value)
    args = build_parser(container["args"]).parse_args(container["args"])
    if args.command == "run":
        flags = {k: v for k, v in vars(args).items() if k not in {"func", "command", "config"}}
        settings = load_settings(flags)
        assert settings.bundle_url and settings.verification_key
    else:
        assert args.command == "control" and args.control_command is None
        control = load_control_settings(
            {name: getattr(args, name) for name in ControlSettings.model_fields}
        )
        assert control.http_listen.host == "0.0.0.0"


_PATH_FLAGS = ("--bundle-token-file", "--verification-key", "--persist-dir", "--signing-key",
               "--bundle-ca-file", "--bundle-dir")


def test_every_path_pdp_is_given_is_mounted() -> None:
    """Key, token and persist paths lie in the pod's volumes; the persist dir is writable."""
    for deployment in _by_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod["containers"]:
            if container["name"] not in {"pdp", "control"}:
                continue
            mounts = container.get("volumeMounts", [])
            for arg in container["args"]:
                flag, _, value = arg.partition("=")
                if flag not in _PATH_FLAGS:
                    continue
                mount = next((m for m in mounts
                              if value == m["mountPath"] or value.startswith(m["mountPath"] + "/")),
                             None)
                assert mount is not None, (container["name"], arg)
                if flag in {"--persist-dir", "--bundle-dir"}:
                    # The root filesystem is read-only: pdp writes only into this volume.
                    assert not mount.get("readOnly", False), (container["name"], arg)
                secret = volumes[mount["name"]].get("secret", {})
                inside = value.removeprefix(mount["mountPath"]).lstrip("/")
                if secret.get("items") and inside:
                    assert inside in {item["path"] for item in secret["items"]}, arg
