"""Configuration of v4 workspaces: the pinned keys, their defaults and every rule, mixed files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.api.v3 import DEFAULT_BASE_URL
from exporter.api.v4.settings import DEFAULT_V4_BASE_URL, V4Config
from exporter.config import ConfigError, parse_config

ENV = {"CAPTAINDATA_V4_API_KEY": "v4-secret-key", "CAPTAINDATA_API_KEY": "v3-secret-key"}


def v3(**extra: Any) -> dict[str, Any]:
    return {"name": "legacy", "workspace_uid": "uid-1", "api_key": "${CAPTAINDATA_API_KEY}", **extra}


def v4(**extra: Any) -> dict[str, Any]:
    return {"name": "growth", "api_version": "v4", "api_key": "${CAPTAINDATA_V4_API_KEY}", **extra}


def parse(*workspaces: dict[str, Any]) -> Any:
    return parse_config({"workspaces": list(workspaces)}, environ=ENV)


def test_the_issue_example_parses() -> None:
    text = """
workspaces:
  - name: growth
    api_version: v4
    api_key: "${CAPTAINDATA_V4_API_KEY}"
    base_url: https://api.captaindata.com
    v4:
      lookback: 60d
      resync_interval: 1h
      page_size: 100
"""
    (workspace,) = parse_config(yaml.safe_load(text), environ=ENV).workspaces
    assert workspace.api_version == "v4"
    assert workspace.workspace_uid == ""
    assert workspace.api_key.reveal() == "v4-secret-key"
    assert workspace.settings == V4Config(lookback=60 * 86400.0, resync_interval=3600.0, page_size=100)
    assert isinstance(workspace.settings, V4Config)
    assert workspace.settings.path == "/v4/runs"


def test_defaults() -> None:
    legacy, growth = parse(v3(), v4()).workspaces
    assert legacy.settings is None
    assert legacy.base_url == DEFAULT_BASE_URL
    assert growth.settings == V4Config()
    assert growth.base_url == DEFAULT_V4_BASE_URL
    assert parse(v4(workspace_uid="uid-2")).workspaces[0].workspace_uid == "uid-2"  # optional, allowed


def test_the_alias_path_is_a_knob() -> None:
    (workspace,) = parse(v4(v4={"path": "/v4/api/runs/list"})).workspaces
    assert isinstance(workspace.settings, V4Config)
    assert workspace.settings.path == "/v4/api/runs/list"


@pytest.mark.parametrize(
    ("workspace", "where", "reason"),
    [
        (v3(v4={"lookback": "30d"}), "workspaces[0].v4", "only for api_version: v4"),
        (v3(api_version="v5"), "workspaces[0].api_version", "not supported"),
        (v3(workspace_uid=None), "workspaces[0].workspace_uid", "is required"),
        (v4(v4={"page_size": 101}), "workspaces[0].v4.page_size", "at most 100"),
        (v4(v4={"page_size": 0}), "workspaces[0].v4.page_size", "at least 1"),
        (v4(v4={"page_size": "100"}), "workspaces[0].v4.page_size", "must be an integer"),
        (v4(v4={"lookback": "60"}), "workspaces[0].v4.lookback", "not a duration"),
        (v4(v4={"resync_interval": "0s"}), "workspaces[0].v4.resync_interval", "longer than 0s"),
        (v4(v4={"path": "v4/runs"}), "workspaces[0].v4.path", "not a URL path"),
        (v4(v4={"path": "/v4/runs?limit=5"}), "workspaces[0].v4.path", "not a URL path"),
        (v4(v4={"lookbak": "1d"}), "workspaces[0].v4.lookbak", "unknown key"),
        (v4(v4=["60d"]), "workspaces[0].v4", "must be a mapping"),
        (v4(api_key=None), "workspaces[0].api_key", "is required"),
    ],
)
def test_errors_name_the_key(workspace: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(workspace)
    assert raised.value.path == where
    assert reason in raised.value.reason
    assert "secret-key" not in str(raised.value)


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config), "--check-config"],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def test_a_mixed_file_checks_with_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "mixed.yaml"
    config.write_text(yaml.safe_dump({"workspaces": [v3(), v4(v4={"lookback": "7d"})]}))
    checked = check_config(config)
    assert checked.returncode == 0, checked.stderr
    assert "2 workspace(s)" in checked.stdout
    config.write_text(yaml.safe_dump({"workspaces": [v3(v4={}), v4()]}))
    refused = check_config(config)
    assert refused.returncode == 2
    assert "workspaces[0].v4: is only for api_version: v4" in refused.stderr


def test_demo_runs_a_v3_and_a_v4_workspace_side_by_side() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert 'captaindata_up{workspace="demo"} 1' in shown.stdout
    assert 'captaindata_up{workspace="demo-v4"} 1' in shown.stdout
    action = 'workflow="enrich_company",workflow_uid="enrich_company",workspace="demo-v4"'
    assert f'captaindata_runs{{status="finished",{action}}}' in shown.stdout
    assert 'endpoint="/v4/runs"' in shown.stdout
