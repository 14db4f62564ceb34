"""Run the real exporter command line as a subprocess against a config, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.net import LOOPBACK, free_port
from tests.support.procs import running_server


@dataclass
class ExporterProcess:
    url: str
    address: str
    log_path: Path
    config_path: Path
    process: subprocess.Popen[bytes]

    def metrics(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=10.0)
        response.raise_for_status()
        return response.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def exporter_argv(config_path: Path, address: str, *extra: str) -> list[str]:
    """``python -m exporter --config <config_path> --web.listen-address <address> <extra...>``."""
    return [
        sys.executable,
        "-m",
        "exporter",
        "--config",
        str(config_path),
        "--web.listen-address",
        address,
        *extra,
    ]


def workspace_config(name: str, base_url: str, workspace_uid: str, api_key: str) -> dict[str, Any]:
    return {
        "name": name,
        "workspace_uid": workspace_uid,
        "api_key": api_key,
        "api_version": "v3",
        "base_url": base_url,
    }


def fast_config(workspaces: Sequence[dict[str, Any]], interval: str = "1s") -> dict[str, Any]:
    """A config that polls often and retries fast, for tests."""
    return {
        "workspaces": list(workspaces),
        "poll": {"interval": interval},
        "api": {
            "requests_per_second": 200,
            "burst": 200,
            "retry_backoff": "50ms",
            "retry_backoff_max": "200ms",
            "request_timeout": "2s",
        },
    }


@contextmanager
def running_exporter(
    config: dict[str, Any],
    workdir: Path,
    extra_args: Sequence[str] = (),
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
    name: str | None = None,
) -> Iterator[ExporterProcess]:
    """``python -m exporter --config ... --web.listen-address 127.0.0.1:<free>`` until the block ends.

    The config is written to ``workdir/<name>.yaml`` and the output to ``workdir/<name>.log`` (a name of
    its own when ``name`` is None); ``env`` is added to this process's environment."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = name if name is not None else f"exporter-{os.getpid()}-{free_port()}"
    config_path = workdir / f"{stem}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    address = f"{LOOPBACK}:{free_port()}"
    argv = exporter_argv(config_path, address, *extra_args)
    log_path = config_path.with_suffix(".log")
    url = f"http://{address}"
    ready_url = f"{url}/-/ready" if wait_ready else f"{url}/-/healthy"
    with running_server(
        argv, log_path, ready_url, "the exporter", env={**os.environ, **(env or {})}
    ) as process:
        yield ExporterProcess(url, address, log_path, config_path, process)
