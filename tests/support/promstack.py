"""A real Prometheus and Alertmanager (Debian's packages) on loopback, for end-to-end tests.

Usage::

    with running_alertmanager(tmp_path, receiver_url) as am, \
         running_prometheus(tmp_path, ["127.0.0.1:10237"], rule_files=[...], alertmanager=am.address) as prom:
        prom.wait_for("captaindata_up == 1", timeout=30)
        vector = prom.query("captaindata_runs")
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail, running_server

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERTMANAGER = (
    shutil.which("prometheus-alertmanager")
    or shutil.which("alertmanager")
    or ("/usr/bin/prometheus-alertmanager")
)
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


class PrometheusQueryError(AssertionError):
    pass


@dataclass
class Prometheus:
    url: str
    log_path: Path

    def api(self, path: str, params: dict[str, str]) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (each item has "metric" and "value")."""
        data = self.api("query", {"query": expr})
        if data["resultType"] != "vector":
            raise PrometheusQueryError(f"{expr}: expected a vector, got {data['resultType']}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: str) -> Any:
        return self.api("query_range", {"query": expr, "start": str(start), "end": str(end), "step": step})

    def wait_for(self, expr: str, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns a non-empty vector; return it."""
        found: list[list[dict[str, Any]]] = []

        def has_result() -> bool:
            vector = self.query(expr)
            if vector:
                found.append(vector)
            return bool(vector)

        try:
            wait_until(has_result, timeout, f"Prometheus to return data for {expr!r}", interval=0.5)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\nPrometheus log:\n{log_tail(self.log_path)}") from None
        return found[-1]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts", {})["alerts"]
        return alerts


@dataclass
class Alertmanager:
    url: str
    address: str
    log_path: Path

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10.0)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def prometheus_config(
    targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager: str | None,
    scrape_interval: str,
    evaluation_interval: str,
    job: str,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


@contextmanager
def _running_daemon(
    binary: str,
    name: str,
    what: str,
    workdir: Path,
    config: dict[str, Any],
    storage_flag: str,
    extra_flags: Sequence[str],
    timeout: float,
) -> Iterator[tuple[str, Path]]:
    """``binary`` with ``config`` and its storage in a new directory under ``workdir``, on a free loopback
    port, until the block ends; yields its address (``host:port``) once ready, and its log."""
    home = workdir / f"{name}-{time.monotonic_ns()}"
    home.mkdir(parents=True)
    config_path = home / f"{name}.yml"
    config_path.write_text(yaml.safe_dump(config))
    address = f"{LOOPBACK}:{free_port()}"
    argv = [
        binary,
        f"--config.file={config_path}",
        f"{storage_flag}={home / 'data'}",
        f"--web.listen-address={address}",
        *extra_flags,
        "--log.level=info",
    ]
    log_path = home / f"{name}.log"
    with running_server(argv, log_path, f"http://{address}/-/ready", what, timeout):
        yield address, log_path


@contextmanager
def running_prometheus(
    workdir: Path,
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    job: str = "captaindata",
    timeout: float = 30.0,
) -> Iterator[Prometheus]:
    """Run Prometheus on a free loopback port scraping ``targets`` (``host:port``)."""
    config = prometheus_config(targets, rule_files, alertmanager, scrape_interval, evaluation_interval, job)
    with _running_daemon(
        PROMETHEUS, "prometheus", "Prometheus", workdir, config, "--storage.tsdb.path", (), timeout
    ) as (address, log_path):
        yield Prometheus(url=f"http://{address}", log_path=log_path)


@contextmanager
def running_prometheus_on(data: Path, workdir: Path, timeout: float = 30.0) -> Iterator[Prometheus]:
    """Run Prometheus on a free loopback port over the TSDB in ``data`` (blocks made by ``promtool
    tsdb create-blocks-from``), scraping nothing: for queries at chosen times over chosen samples."""
    home = workdir / f"prometheus-{time.monotonic_ns()}"
    home.mkdir(parents=True)
    config_path = home / "prometheus.yml"
    config_path.write_text(yaml.safe_dump({"global": {"scrape_interval": "1m"}}))
    port = free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=3650d",
        "--log.level=warn",
    ]
    log_path = home / "prometheus.log"
    url = f"http://{LOOPBACK}:{port}"
    with running_server(argv, log_path, f"{url}/-/ready", "Prometheus", timeout):
        yield Prometheus(url=url, log_path=log_path)


@contextmanager
def running_alertmanager(
    workdir: Path, config: dict[str, Any], timeout: float = 30.0
) -> Iterator[Alertmanager]:
    """Run Alertmanager on a free loopback port with clustering off."""
    with _running_daemon(
        ALERTMANAGER,
        "alertmanager",
        "Alertmanager",
        workdir,
        config,
        "--storage.path",
        ("--cluster.listen-address=",),
        timeout,
    ) as (address, log_path):
        yield Alertmanager(url=f"http://{address}", address=address, log_path=log_path)
