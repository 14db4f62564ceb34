"""Configuration: the example is valid, and every mistake names its key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ConfigError, load_config, parse_config
from exporter.durations import parse_duration

ROOT = Path(__file__).resolve().parent.parent
SECRET = "0123456789abcdef" * 4


def minimal(**workspace: Any) -> dict[str, Any]:
    return {
        "workspaces": [
            {
                "name": "acme",
                "workspace_uid": "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19",
                "api_key": SECRET,
                **workspace,
            }
        ],
        "poll": {"interval": "60s"},
    }


def error_of(data: Any, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, environ or {}, ROOT)
    message = str(raised.value)
    assert SECRET not in message
    return message


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.yaml", {"CAPTAINDATA_API_KEY": SECRET})
    assert config.workspaces[0].api_key.reveal() == SECRET
    assert config.poll.interval == 60


def test_defaults() -> None:
    config = parse_config(minimal(), {})
    workspace = config.workspaces[0]
    assert workspace.base_url == "https://api.captaindata.co"
    assert workspace.api_version == "v3"
    assert config.web.listen_address == ":10237"
    assert config.poll.timeout == 300
    assert config.metrics.needs_action_limit == 50
    assert SECRET not in repr(config)


def test_environment_variables_expand() -> None:
    config = parse_config(minimal(api_key="${KEY}"), {"KEY": SECRET})
    assert config.workspaces[0].api_key.reveal() == SECRET


def test_api_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    data = minimal()
    del data["workspaces"][0]["api_key"]
    data["workspaces"][0]["api_key_file"] = str(key_file)
    assert parse_config(data, {}).workspaces[0].api_key.reveal() == SECRET


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["poll"].update(interval="5x"), 'poll.interval: "5x" is not a duration'),
        (
            lambda d: d["poll"].update(interval=60),
            "poll.interval: 60 is not a duration (write it with a unit",
        ),
        (lambda d: d["poll"].update(interval="0s"), 'poll.interval: "0s" must be longer than 0s'),
        (lambda d: d["poll"].update(every="1m"), "poll.every: unknown key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["workspaces"][0].update(api_key=""), "workspaces[0].api_key: is empty"),
        (
            lambda d: d["workspaces"][0].update(api_key="${NOPE}"),
            "workspaces[0].api_key: environment variable NOPE is not set",
        ),
        (
            lambda d: d["workspaces"][0].pop("api_key"),
            "workspaces[0].api_key: is required (or set api_key_file)",
        ),
        (
            lambda d: d["workspaces"][0].update(api_key_file="/k"),
            "set either api_key or api_key_file, not both",
        ),
        (lambda d: d["workspaces"][0].update(name=3), "workspaces[0].name: must be a string, got int 3"),
        (lambda d: d["workspaces"][0].pop("workspace_uid"), "workspaces[0].workspace_uid: is required"),
        (
            lambda d: d["workspaces"][0].update(api_version="v5"),
            'workspaces[0].api_version: "v5" is not supported',
        ),
        (
            lambda d: d["workspaces"][0].update(base_url="ftp://x"),
            'workspaces[0].base_url: "ftp://x" is not an http',
        ),
        (lambda d: d["workspaces"][0].update(colour="red"), "workspaces[0].colour: unknown key"),
        (
            lambda d: d["workspaces"].append(dict(d["workspaces"][0])),
            'workspaces[1].name: "acme" is used twice',
        ),
        (lambda d: d.update(workspaces=[]), "workspaces: must be a non-empty list"),
        (lambda d: d.update(workspaces="acme"), "workspaces: must be a non-empty list"),
        (
            lambda d: d["workspaces"][0].update(workflows={"include": ["("]}),
            "workspaces[0].workflows.include[0]",
        ),
        (lambda d: d.update(api={"burst": 0}), "api.burst: must be at least 1, got 0"),
        (lambda d: d.update(api={"burst": "5"}), 'api.burst: must be an integer, got "5"'),
        (lambda d: d.update(api={"requests_per_second": True}), "api.requests_per_second: must be a number"),
        (
            lambda d: d.update(api={"request_timeout": "soon"}),
            'api.request_timeout: "soon" is not a duration',
        ),
        (
            lambda d: d.update(log={"level": "loud"}),
            'log.level: "loud" is not one of debug, info, warning, error',
        ),
        (
            lambda d: d.update(web={"listen_address": "nowhere"}),
            'web.listen_address: "nowhere" is not a listen',
        ),
        (lambda d: d.update(metrics=[]), "metrics: must be a mapping, got list"),
    ],
)
def test_errors_name_the_key_and_the_reason(mutate: Any, expected: str) -> None:
    data = minimal()
    mutate(data)
    assert expected in error_of(data)


def test_unreadable_or_empty_key_file(tmp_path: Path) -> None:
    data = minimal()
    del data["workspaces"][0]["api_key"]
    data["workspaces"][0]["api_key_file"] = str(tmp_path / "missing")
    assert "workspaces[0].api_key_file: cannot read" in error_of(data)
    (tmp_path / "empty").write_text("\n")
    data["workspaces"][0]["api_key_file"] = str(tmp_path / "empty")
    assert "is empty" in error_of(data)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("workspaces:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_config(path, {})


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_config_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(minimal()))
    result = run_cli("--config", str(good), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout

    bad = tmp_path / "bad.yaml"
    data = minimal()
    data["poll"]["interval"] = "5x"
    bad.write_text(yaml.safe_dump(data))
    result = run_cli("--config", str(bad), "--check-config")
    assert result.returncode == 2  # a configuration error (exporter.cli.EXIT_CONFIG_ERROR)
    assert 'poll.interval: "5x" is not a duration' in result.stderr
    assert SECRET not in result.stderr + result.stdout

    # Starting (not just checking) with a bad config fails the same way, before serving anything.
    result = run_cli("--config", str(bad), "--web.listen-address", "127.0.0.1:0")
    assert result.returncode == 2  # a configuration error (exporter.cli.EXIT_CONFIG_ERROR)
    assert "poll.interval" in result.stderr


def test_missing_config_file_and_flag() -> None:
    result = run_cli("--check-config", "--config", "/nonexistent/config.yaml")
    assert result.returncode == 2  # a configuration error (exporter.cli.EXIT_CONFIG_ERROR)
    assert "cannot read config file /nonexistent/config.yaml" in result.stderr
    result = run_cli()
    assert result.returncode == 2  # a configuration error (exporter.cli.EXIT_CONFIG_ERROR)
    assert "--config FILE is required" in result.stderr
