"""Kubernetes manifests (DESIGN §11): schema-valid offline, and safe by default."""

from __future__ import annotations

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
