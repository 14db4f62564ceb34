"""deploy/kubernetes/push: the optional push receiver (a kustomize Component), checked offline like the
other manifests: schemas, the rendered overlay, and the configuration it carries (--check-config)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from exporter.config import parse_config, parse_listen_address

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
PUSH = K8S / "push"
K8S_VERSION = "1.30.0"
KUBECTL = shutil.which("kubectl")


def load(name: str) -> Any:
    return yaml.safe_load((PUSH / name).read_text())


@pytest.mark.parametrize("name", ["service.yaml", "ingress.yaml", "push-token-secret.example.yaml"])
def test_whole_manifests_validate(name: str) -> None:
    kubernetes_validate.validate(load(name), K8S_VERSION, strict=True)


def test_component_lists_its_files_but_never_the_token() -> None:
    component = load("kustomization.yaml")
    assert component["kind"] == "Component"
    listed = set(component["resources"]) | {p["path"] for p in component["patches"]}
    assert listed == {p.name for p in PUSH.glob("*.yaml")} - {
        "kustomization.yaml",
        "push-token-secret.example.yaml",
    }
    assert load("push-token-secret.example.yaml")["stringData"]["push-token"].startswith("REPLACE")


def test_the_configuration_it_carries_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(load("configmap-patch.yaml")["data"]["config.yaml"])
    env = {**os.environ, "CAPTAINDATA_API_KEY": "0" * 64, "CAPTAINDATA_PUSH_TOKEN": "1" * 64}
    command = [sys.executable, "-m", "exporter", "--config", str(config), "--check-config"]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    env.pop("CAPTAINDATA_PUSH_TOKEN")
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "CAPTAINDATA_PUSH_TOKEN" in result.stderr


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (kubectl kustomize renders the overlay)")
def test_overlay_with_the_component_renders_and_agrees(tmp_path: Path) -> None:
    copy = tmp_path / "deploy" / "kubernetes"
    shutil.copytree(K8S, copy)
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    base["resources"] = [r for r in base["resources"] if (K8S / r).exists()]  # generated ones may be absent
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(base))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../deploy/kubernetes]\ncomponents: [../deploy/kubernetes/push]\n"
    )
    assert KUBECTL
    result = subprocess.run([KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    for document in rendered:
        if not document["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in rendered}

    (container,) = by_name[("Deployment", "captaindata-exporter")]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e for e in container["env"]}
    assert {"CAPTAINDATA_API_KEY", "CAPTAINDATA_PUSH_TOKEN"} <= set(env)
    secret = load("push-token-secret.example.yaml")
    ref = env["CAPTAINDATA_PUSH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], "push-token")

    text = by_name[("ConfigMap", "captaindata-exporter")]["data"]["config.yaml"]
    config = parse_config(
        yaml.safe_load(text), environ={"CAPTAINDATA_API_KEY": "k" * 32, "CAPTAINDATA_PUSH_TOKEN": "t" * 32}
    )
    assert config.push is not None
    assert config.push.listen_address is not None
    assert parse_listen_address(config.push.listen_address)[1] == ports["push"]
    assert set(config.push.tokens) == {w.name for w in config.workspaces}

    push_service = by_name[("Service", "captaindata-exporter-push")]
    (service_port,) = push_service["spec"]["ports"]  # the push port alone: never /metrics
    assert service_port["targetPort"] == "push"
    metrics_service = by_name[("Service", "captaindata-exporter")]
    assert [p["targetPort"] for p in metrics_service["spec"]["ports"]] == ["http-metrics"]

    ingress = by_name[("Ingress", "captaindata-exporter-push")]["spec"]
    (rule,) = ingress["rules"]
    assert [tls["hosts"] for tls in ingress["tls"]] == [[rule["host"]]]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/push/"
    assert path["backend"]["service"] == {
        "name": "captaindata-exporter-push",
        "port": {"name": service_port["name"]},
    }
