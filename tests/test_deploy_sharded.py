"""deploy/kubernetes/sharded/: the StatefulSet of shards, checked offline as tests/test_deploy.py checks
the base (Kubernetes schemas, kubectl kustomize, and the exporter's own --check-config on the config)."""

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

import exporter

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes"
SHARDED = BASE / "sharded"
K8S_VERSION = "1.30.0"
KUBECTL = shutil.which("kubectl")


def documents() -> dict[str, Any]:
    found = {}
    for name in yaml.safe_load((SHARDED / "kustomization.yaml").read_text())["resources"]:
        document = yaml.safe_load((SHARDED / name).read_text())
        found[document["kind"]] = document
    return found


def test_the_overlay_lists_every_manifest() -> None:
    listed = yaml.safe_load((SHARDED / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in SHARDED.glob("*.yaml") if p.name != "kustomization.yaml")
    assert set(documents()) == {"ConfigMap", "StatefulSet", "Service", "ServiceMonitor"}


@pytest.mark.parametrize("kind", ["ConfigMap", "StatefulSet", "Service"])
def test_the_manifests_validate_against_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(documents()[kind], K8S_VERSION, strict=True)


def test_the_statefulset_is_the_base_pod_with_the_shard_flags_and_a_claim_per_shard() -> None:
    sharded = documents()
    statefulset = sharded["StatefulSet"]["spec"]
    base = yaml.safe_load((BASE / "deployment.yaml").read_text())["spec"]["template"]
    pod = statefulset["template"]
    (container,) = pod["spec"]["containers"]
    (base_container,) = base["spec"]["containers"]
    args = container["args"]
    total = args[args.index("--total-shards") + 1]
    assert args == [*base_container["args"], "--shard", "auto", "--total-shards", total]
    assert int(total) == statefulset["replicas"] > 1
    assert {**container, "args": None} == {**base_container, "args": None}
    assert pod["metadata"] == base["metadata"]
    compared = ("containers", "volumes")  # the containers above, the volumes below
    assert {k: v for k, v in pod["spec"].items() if k not in compared} == {
        k: v for k, v in base["spec"].items() if k not in compared
    }
    # The base's state volume (one claim) becomes one claim per shard, mounted the same way.
    assert [v for v in base["spec"]["volumes"] if v["name"] != "state"] == pod["spec"]["volumes"]
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert "state" in {m["name"] for m in container["volumeMounts"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The headless Service governs the StatefulSet and reaches every pod; the ServiceMonitor scrapes it.
    service, monitor = sharded["Service"], sharded["ServiceMonitor"]
    assert statefulset["serviceName"] == service["metadata"]["name"] == "captaindata-exporter"  # the job
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert statefulset["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert {port["name"] for port in container["ports"]} >= {endpoint["port"]}


def _check(config: Path, *args: str, hostname: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAPTAINDATA_API_KEY": "0" * 64, "HOSTNAME": hostname}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config), "--check-config", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_each_pod_of_the_statefulset_is_one_shard(tmp_path: Path) -> None:
    """--shard auto with each pod's host name (StatefulSet name-ordinal), on the overlay's config."""
    sharded = documents()
    config = tmp_path / "config.yaml"
    config.write_text(sharded["ConfigMap"]["data"]["config.yaml"])
    statefulset = sharded["StatefulSet"]
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = args[args.index("--shard") :]
    name, replicas = statefulset["metadata"]["name"], statefulset["spec"]["replicas"]
    polled: dict[str, int] = {}
    for ordinal in range(replicas):
        result = _check(config, *flags, hostname=f"{name}-{ordinal}")
        assert result.returncode == 0, result.stderr
        assert f"shard {ordinal} of {replicas}" in result.stdout
        assert "polls part of large (v3, sharding.by: workflow)" in result.stdout
        for line in result.stdout.splitlines():
            if line.startswith("  polls main"):
                polled["main"] = polled.get("main", 0) + 1
    assert polled == {"main": 1}  # a whole workspace: exactly one shard
    result = _check(config, *flags, hostname=f"{name}-{replicas}")
    assert result.returncode == 2
    assert f"shard {replicas} does not exist among {replicas}" in result.stderr


def test_the_image_tag_is_the_package_version() -> None:
    images = yaml.safe_load((SHARDED / "kustomization.yaml").read_text())["images"]
    assert images == [{"name": "captaindata-exporter", "newTag": exporter.__version__}]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (kubectl kustomize renders the overlay)")
def test_kustomize_renders_valid_manifests() -> None:
    assert KUBECTL
    result = subprocess.run([KUBECTL, "kustomize", str(SHARDED)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in rendered) == ["ConfigMap", "Service", "ServiceMonitor", "StatefulSet"]
    for document in rendered:
        if not document["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    statefulset = next(d for d in rendered if d["kind"] == "StatefulSet")
    image = statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"captaindata-exporter:{exporter.__version__}"
