"""Issue #19, config and filters: what --check-config must refuse (hosts the client would refuse, a
malformed listen address, a too-short key, a FIFO for a file), and filters that cannot block the loop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.config import ConfigError, parse_config
from exporter.simulator import Simulator
from tests.conftest import ConfigFactory
from tests.support.exporter_proc import running_exporter
from tests.support.metrics import ScrapedMetrics
from tests.support.net import wait_until

KEY = "sk_live_" + "Zq9" * 10


def minimal(**workspace: object) -> dict[str, object]:
    return {
        "workspaces": [
            {"name": "acme", "workspace_uid": "ws-1", "api_key": KEY, **workspace},
        ]
    }


def check_config(path: Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), "--check-config"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def error_of(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, {})
    return str(caught.value)


# ---- item 9: a pathological filter regex ------------------------------------------------------------


def test_a_backtracking_pattern_does_not_block_the_loop(
    sim: Simulator, config_dict: ConfigFactory, tmp_path: Path
) -> None:
    """``(a|aa)*c`` against a 41-character name takes Python's re minutes; RE2 answers at once."""
    sim.add_workflow("wf-slow", "a" * 41)
    sim.add_workflow("wf-kept", "aac")
    config = config_dict(workspace={"workflows": {"include": ["(a|aa)*c"]}})
    with running_exporter(config, tmp_path) as exporter:
        started = time.monotonic()
        response = httpx.get(f"{exporter.url}/-/healthy", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 2

        def polled() -> bool:
            return ScrapedMetrics(exporter.metrics()).total("captaindata_workflows") == 1

        wait_until(polled, 15, "the filtered workflow list")
        assert 'workflow_uid="wf-kept"' in exporter.metrics()
        assert "wf-slow" not in exporter.metrics()


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=a)b", "invalid perl operator"),
        ("a{2000}", "invalid repetition size"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_config_time(pattern: str, reason: str) -> None:
    error = error_of(minimal(workflows={"exclude": ["ok.*", pattern]}))
    assert error.startswith("workspaces[0].workflows.exclude[1]: ")
    assert "RE2 syntax" in error
    assert reason in error


def test_re2_filters_keep_the_documented_semantics() -> None:
    config = parse_config(
        minimal(workflows={"include": ["Extract .*", "wf-[0-9]+"], "exclude": [".*test.*"]})
    )
    keep = config.workspaces[0].workflows.keeps
    assert keep("x", "Extract LinkedIn")
    assert keep("wf-12", "anything")
    assert not keep("wf-12x", "Extract")  # anchored: the whole name or uid must match
    assert not keep("x", "Extract test run")
    assert keep("x", "Extract \u00e9l\u00e8ves")  # names are matched as text, not bytes


# ---- item 10: a FIFO where a file is expected ------------------------------------------------------


def test_a_fifo_as_api_key_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(minimal(api_key=None, api_key_file=str(fifo))))
    result = check_config(config)
    assert result.returncode == 2, result.stderr
    assert "workspaces[0].api_key_file: the file is not a regular file" in result.stderr
    assert str(fifo) not in result.stderr  # the path may be a pasted key: never echoed


def test_a_fifo_as_the_config_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    result = check_config(fifo)
    assert result.returncode == 2, result.stderr
    assert f"config file {fifo} is not a regular file" in result.stderr


def test_a_directory_as_api_key_file_is_refused(tmp_path: Path) -> None:
    error = error_of(minimal(api_key=None, api_key_file=str(tmp_path)))
    assert error == "workspaces[0].api_key_file: the file is not a regular file"


# ---- item 11: hosts the HTTP client would refuse at run time -------------------------------------


@pytest.mark.parametrize("base_url", ["http://\u2488.com", "http://xn--a.com", "http://a..b"])
def test_hosts_that_fail_at_run_time_fail_check_config(tmp_path: Path, base_url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(minimal(base_url=base_url), allow_unicode=True), encoding="utf-8")
    result = check_config(config)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("captaindata-exporter: configuration error: workspaces[0].base_url: ")
    assert "is not a valid host name" in line


@pytest.mark.parametrize(
    "base_url",
    [
        "http://b\u00fccher.example",
        "http://xn--bcher-kva.example",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "https://api.captaindata.co",
        "http://sim_host.local",
    ],
)
def test_valid_hosts_pass(base_url: str) -> None:
    assert parse_config(minimal(base_url=base_url)).workspaces[0].base_url == base_url


# ---- item 12: a listen address that cannot be bound ------------------------------------------------


@pytest.mark.parametrize(
    "address", ["[::1:99", "::1]:99", "[::1]]:99", "[example]:99", "::1:99", "[[::1]]:9"]
)
def test_malformed_listen_addresses_fail_check_config(address: str) -> None:
    error = error_of({**minimal(), "web": {"listen_address": address}})
    assert error.startswith("web.listen_address: ")
    assert "is not a listen address" in error


@pytest.mark.parametrize("address", ["[::1]:99", ":99", "127.0.0.1:99", "localhost:99", "[::]:99"])
def test_listen_addresses_that_bind(address: str) -> None:
    assert parse_config({**minimal(), "web": {"listen_address": address}}).web.listen_address == address


# ---- item 15: a key too short to be one -----------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "wor", "1234567"])
def test_short_api_keys_are_refused_without_echo(tmp_path: Path, key: str) -> None:
    error = error_of(minimal(api_key=key))
    assert error == "workspaces[0].api_key: is shorter than 8 characters: not an API key"
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    error = error_of(minimal(api_key=None, api_key_file=str(key_file)))
    assert error == "workspaces[0].api_key_file: is shorter than 8 characters: not an API key"


def test_an_eight_character_key_is_accepted() -> None:
    assert parse_config(minimal(api_key="12345678")).workspaces[0].api_key.reveal() == "12345678"
