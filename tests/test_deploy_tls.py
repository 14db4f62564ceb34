"""The secured deployment assets (systemd web-config.yml, compose.secure.yaml, deploy/kubernetes-tls)
agree with each other and with the exporter: their web configs pass --check-config once the
placeholders are filled, and the compose demo's scrape settings really get through."""

from __future__ import annotations

import shlex
import shutil
import ssl
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import bcrypt
import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from exporter.config import WebConfig
from exporter.listener import RESERVED_DESCRIPTORS
from tests.support.certs import issue, make_ca
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail, running_process

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "kubernetes"
K8S_TLS = DEPLOY / "kubernetes-tls"
PROMTOOL = shutil.which("promtool")
KUBECTL = shutil.which("kubectl")
PLACEHOLDER = "REPLACE_WITH_A_BCRYPT_HASH"


def check_web_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--web.config.file", str(path), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def filled_in(template: str, directory: Path, cert: str, key: str) -> Path:
    """The web config with a real hash, beside a real certificate and key named as it expects."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory / "ca", "ca")
    issued = issue(ca, directory / "ca", "server", server=True, names=("127.0.0.1",))
    (directory / cert).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(issued.cert, directory / cert)
    shutil.copy(issued.key, directory / key)
    path = directory / "web-config.yml"
    path.write_text(
        template.replace(PLACEHOLDER, "'" + bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode() + "'")
    )
    return path


def unit_lines(key: str) -> list[str]:
    prefix = f"{key}="
    lines = (SYSTEMD / "captaindata-exporter.service").read_text().splitlines()
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def test_systemd_web_config_and_unit_agree(tmp_path: Path) -> None:
    template = (SYSTEMD / "web-config.yml").read_text()
    # As shipped, the placeholder must be replaced: the check says where, without echoing it.
    shipped = tmp_path / "shipped" / "web-config.yml"
    shipped.parent.mkdir()
    shipped.write_text(template)
    result = check_web_config(shipped)
    assert result.returncode == 2
    assert "basic_auth_users.prometheus: must be a bcrypt hash" in result.stderr

    tls = yaml.safe_load(template)["tls_server_config"]
    path = filled_in(template, tmp_path / "credentials", tls["cert_file"], tls["key_file"])
    result = check_web_config(path)
    assert result.returncode == 0, result.stderr

    (exec_start,) = unit_lines("ExecStart")
    argv = shlex.split(exec_start)
    web_config = PurePosixPath(argv[argv.index("--web.config.file") + 1])
    assert web_config.parent == PurePosixPath("%d"), "the web config is a credential"
    credentials = {line.partition(":")[0] for line in unit_lines("LoadCredential")}
    assert {web_config.name, tls["cert_file"], tls["key_file"]} <= credentials
    (limit,) = unit_lines("LimitNOFILE")
    assert int(limit) >= WebConfig.max_connections + RESERVED_DESCRIPTORS


def test_compose_secure_stack_scrapes_the_exporter(tmp_path: Path) -> None:
    override = yaml.safe_load((COMPOSE / "compose.secure.yaml").read_text())["services"]
    command = override["exporter"]["command"]
    web_target = command[command.index("--web.config.file") + 1]
    mounts = dict(
        reversed(volume.rsplit(":", 1)[0].split(":", 1)) for volume in override["exporter"]["volumes"]
    )
    source = COMPOSE / mounts[web_target]
    web = yaml.safe_load(source.read_text())
    # The exporter's files, laid out as in the container: the web config beside the mounted tls/.
    container = tmp_path / "container"
    tls = web["tls_server_config"]
    web_path = filled_in(source.read_text(), container, tls["cert_file"], tls["key_file"])
    web_path.write_text(source.read_text())

    prometheus = yaml.safe_load((COMPOSE / "prometheus.secure.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "captaindata-exporter"]
    assert job["scheme"] == "https"
    prometheus_mounts = {
        target: source for source, target, *_ in (v.split(":") for v in override["prometheus"]["volumes"])
    }
    password = (COMPOSE / prometheus_mounts[job["basic_auth"]["password_file"]]).read_text().strip()
    assert prometheus_mounts[job["tls_config"]["ca_file"]].endswith(tls["cert_file"].rpartition("/")[2])

    port = free_port()
    argv = [sys.executable, "-m", "exporter", *command]
    argv[argv.index("--web.listen-address") + 1] = f"{LOOPBACK}:{port}"
    argv[argv.index("--web.config.file") + 1] = str(web_path)
    log = tmp_path / "exporter.log"
    url = f"https://{LOOPBACK}:{port}/metrics"
    # compose's certificate is self-signed; here it is signed by a test CA, which the client trusts.
    ca = ssl.create_default_context(cafile=str(container / "ca" / "ca.crt"))
    with running_process(argv, log):

        def scraped() -> bool:
            auth = (job["basic_auth"]["username"], password)
            return httpx.get(url, verify=ca, auth=auth, timeout=5).status_code == 200

        try:
            wait_until(scraped, 30, "a scrape with the compose Prometheus settings")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{log_tail(log)}") from None
        assert httpx.get(url, verify=ca, timeout=5).status_code == 401


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_checks_the_secure_compose_prometheus_config(tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load((COMPOSE / "prometheus.secure.yml").read_text())
    config["rule_files"] = [str(p) for p in sorted((DEPLOY / "prometheus").glob("*.rules.yml"))]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "captaindata-exporter"]
    ca = make_ca(tmp_path, "ca")
    job["tls_config"]["ca_file"] = str(ca.cert)
    job["basic_auth"]["password_file"] = str(COMPOSE / "scrape-password.demo")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    assert PROMTOOL
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (kubectl kustomize renders the overlay)")
def test_kubernetes_tls_overlay(tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(K8S, copy / "kubernetes")
    shutil.copytree(K8S_TLS, copy / "kubernetes-tls")
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    base["resources"] = [r for r in base["resources"] if (K8S / r).exists()]  # generated ones may be absent
    (copy / "kubernetes" / "kustomization.yaml").write_text(yaml.safe_dump(base))
    assert KUBECTL
    result = subprocess.run(
        [KUBECTL, "kustomize", str(copy / "kubernetes-tls")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = {d["kind"]: d for d in yaml.safe_load_all(result.stdout) if d}
    for document in rendered.values():
        if not document["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(document, "1.30.0", strict=True)
    secret = yaml.safe_load((K8S_TLS / "web-config-secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, "1.30.0", strict=True)

    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    web_config = PurePosixPath(args[args.index("--web.config.file") + 1])
    mount = next(m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == web_config.parent)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert {v["name"] for v in pod["volumes"]} >= {"config", "tmp", mount["name"]}
    projected = {
        item["path"]: (source["secret"]["name"], item["key"])
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert projected[web_config.name] == (secret["metadata"]["name"], web_config.name)
    web_template = secret["stringData"][web_config.name]
    tls = yaml.safe_load(web_template)["tls_server_config"]
    tls_secret = projected[tls["cert_file"]][0]
    assert projected[tls["key_file"]][0] == tls_secret
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"

    (endpoint,) = rendered["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"]["name"] == tls_secret
    for part in ("username", "password"):
        ref = endpoint["basicAuth"][part]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]

    path = filled_in(web_template, tmp_path / "mounted", tls["cert_file"], tls["key_file"])
    result = check_web_config(path)
    assert result.returncode == 0, result.stderr
