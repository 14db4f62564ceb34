"""The ``push:`` section and the workspaces' push tokens: defaults, ``${VAR}``, token files, the flag,
and errors that name the key but never the value."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.config import ConfigError, parse_config
from exporter.push.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_SIZE, add_push_flags, apply_push_flags

TOKEN = "pu5h-t0ken-" + "e1" * 16


def config(push: dict[str, Any] | None = None, **workspace: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workspaces": [{"name": "acme", "workspace_uid": "uid-1", "api_key": "k" * 32, **workspace}]
    }
    if push is not None:
        data["push"] = push
    return data


def test_off_by_default() -> None:
    parsed = parse_config(config())
    assert parsed.push is not None
    assert not parsed.push.enabled
    assert parsed.push.tokens == {}
    assert parsed.push.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    assert parsed.push.queue_size == DEFAULT_QUEUE_SIZE == 10_000


def test_section_and_token() -> None:
    parsed = parse_config(
        config({"listen_address": ":10238", "max_body_bytes": 4096, "queue_size": 1}, push_token=TOKEN)
    )
    assert parsed.push is not None
    assert parsed.push.enabled
    assert parsed.push.listen_address == ":10238"
    assert (parsed.push.max_body_bytes, parsed.push.queue_size) == (4096, 1)
    assert parsed.push.tokens["acme"].reveal() == TOKEN
    assert TOKEN in parsed.secrets()  # so the logs mask it
    assert TOKEN not in repr(parsed)


def test_token_from_environment_and_file(tmp_path: Path) -> None:
    parsed = parse_config(config(push_token="${PUSH_TOKEN}"), environ={"PUSH_TOKEN": TOKEN})
    assert parsed.push is not None
    assert parsed.push.tokens["acme"].reveal() == TOKEN
    (tmp_path / "token").write_text(TOKEN + "\n")
    parsed = parse_config(config(push_token_file="token"), base_dir=tmp_path)
    assert parsed.push is not None
    assert parsed.push.tokens["acme"].reveal() == TOKEN


def test_web_config_file(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "push-web.yml").write_text(f"basic_auth_users:\n  captain: '{hashed}'\n")
    parsed = parse_config(config({"web_config_file": "push-web.yml"}), base_dir=tmp_path)
    assert parsed.push is not None
    assert parsed.push.web_config_file == tmp_path / "push-web.yml"
    (tmp_path / "bad.yml").write_text("basic_auth_users:\n  captain: not-a-hash\n")
    with pytest.raises(ConfigError) as error:
        parse_config(config({"web_config_file": "bad.yml"}), base_dir=tmp_path)
    assert error.value.path == "push.web_config_file"
    with pytest.raises(ConfigError, match="cannot read"):
        parse_config(config({"web_config_file": "missing.yml"}), base_dir=tmp_path)


@pytest.mark.parametrize(
    ("push", "workspace", "where", "reason"),
    [
        ({"listen_address": "nowhere"}, {}, "push.listen_address", "is not a listen address"),
        ({"queue_size": 0}, {}, "push.queue_size", "at least 1"),
        ({"max_body_bytes": 10}, {}, "push.max_body_bytes", "at least 1024"),
        ({"max_body_bytes": "1MiB"}, {}, "push.max_body_bytes", "must be an integer"),
        ({"port": 1}, {}, "push.port", "unknown key"),
        (None, {"push_token": TOKEN + " x"}, "workspaces[0].push_token", "single token"),
        (None, {"push_token": TOKEN, "push_token_file": "f"}, "workspaces[0].push_token", "not both"),
        (None, {"push_token": "${NOPE}"}, "workspaces[0].push_token", "NOPE is not set"),
        (None, {"push_token_file": TOKEN}, "workspaces[0].push_token_file", "cannot read the file"),
        (None, {"push_token": ["x"]}, "workspaces[0].push_token", "must be a string"),
    ],
)
def test_errors_name_the_key_never_the_value(
    push: dict[str, Any] | None, workspace: dict[str, Any], where: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(config(push, **workspace), environ={})
    assert error.value.path == where
    assert reason in error.value.reason
    assert TOKEN not in str(error.value)


def test_empty_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ConfigError, match=r"push_token_file: the file is empty"):
        parse_config(config(push_token_file=str(tmp_path / "token")))


def test_listen_address_flag() -> None:
    parser = argparse.ArgumentParser()
    add_push_flags(parser)
    parsed = parse_config(config())
    assert apply_push_flags(parsed, parser.parse_args([])) is parsed
    flagged = apply_push_flags(parsed, parser.parse_args(["--push.listen-address", "127.0.0.1:10238"]))
    assert flagged.push is not None
    assert flagged.push.listen_address == "127.0.0.1:10238"
    with pytest.raises(ValueError, match=r"--push.listen-address"):
        apply_push_flags(parsed, parser.parse_args(["--push.listen-address", "nope"]))
