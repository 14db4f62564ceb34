"""The ``push:`` section and each workspace's ``push_token`` / ``push_token_file``.

``exporter/config.py`` calls :func:`read_push` from ``parse_config`` (one hook); this module builds on
its reader, so it is imported there lazily, never the other way round at import time."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.config import (
    ConfigError,
    Secret,
    _Reader,
    parse_listen_address,
    read_secret,
)

if TYPE_CHECKING:
    from exporter.config import Config, WorkspaceConfig

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # v4 callbacks carry pages of results
DEFAULT_QUEUE_SIZE = 10_000
MAX_BODY_BYTES_LIMIT = 64 * 1024 * 1024
MAX_QUEUE_SIZE = 10_000_000
SECTION_KEYS = ("listen_address", "web_config_file", "max_body_bytes", "queue_size")


@dataclass(frozen=True)
class PushConfig:
    """Push is on when ``listen_address`` is set. ``tokens``: workspace name → its bearer token
    (a workspace without one refuses every push unless the push web config's basic auth admits it)."""

    listen_address: str | None = None
    web_config_file: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    queue_size: int = DEFAULT_QUEUE_SIZE
    tokens: Mapping[str, Secret] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.listen_address is not None

    def secrets(self) -> list[str]:
        return [token.reveal() for token in self.tokens.values()]

    def __repr__(self) -> str:  # the tokens' names only
        return (
            f"PushConfig(listen_address={self.listen_address!r}, tokens={sorted(self.tokens)!r}, "
            f"max_body_bytes={self.max_body_bytes}, queue_size={self.queue_size})"
        )


def _token(reader: _Reader, section: dict[str, Any], path: str) -> Secret | None:
    """The workspace's push token, read as its API key is (``${VAR}``, a file of at most 4 KiB)."""
    return read_secret(reader, section, path, "push_token")


def _listen_address(reader: _Reader, section: dict[str, Any]) -> str | None:
    if section.get("listen_address") is None:
        return None
    address = reader.string(section, "listen_address", "push")
    try:
        parse_listen_address(address)
    except ValueError:
        shown = reader.shown(section, "listen_address")
        raise ConfigError(
            "push.listen_address", f"{shown} is not a listen address (expected host:port or :port)"
        ) from None
    return address


def _web_config_file(reader: _Reader, section: dict[str, Any]) -> Path | None:
    if section.get("web_config_file") is None:
        return None
    path = Path(reader.string(section, "web_config_file", "push"))
    path = path if path.is_absolute() else reader.base_dir / path
    from exporter.webconfig import load_web_config  # only when set: it loads the certificates

    try:
        load_web_config(path)
    except ConfigError as error:
        raise ConfigError("push.web_config_file", f"{path}: {error}") from None
    return path


def read_push(
    reader: _Reader,
    value: object,
    raw_workspaces: Sequence[object],
    workspaces: Sequence[WorkspaceConfig],
) -> PushConfig:
    """The ``push:`` section (``value``) and every workspace's token (read from ``raw_workspaces``, the
    YAML items already checked as mappings, in the order of ``workspaces``)."""
    section = reader.mapping(value, "push", SECTION_KEYS)
    tokens: dict[str, Secret] = {}
    for index, (raw, workspace) in enumerate(zip(raw_workspaces, workspaces, strict=True)):
        if isinstance(raw, dict):
            token = _token(reader, raw, f"workspaces[{index}]")
            if token is not None:
                tokens[workspace.name] = token
    return PushConfig(
        listen_address=_listen_address(reader, section),
        web_config_file=_web_config_file(reader, section),
        max_body_bytes=reader.number(
            section, "max_body_bytes", "push", DEFAULT_MAX_BODY_BYTES, int, 1024, MAX_BODY_BYTES_LIMIT
        ),
        queue_size=reader.number(section, "queue_size", "push", DEFAULT_QUEUE_SIZE, int, 1, MAX_QUEUE_SIZE),
        tokens=tokens,
    )


def add_push_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--push.listen-address",
        dest="push_listen_address",
        metavar="ADDRESS",
        help="host:port or :port of the push receiver (v3 webhooks, v4 callbacks); overrides the "
        "config's push.listen_address (default: off; see docs/push.md)",
    )


def apply_push_flags(config: Config, args: argparse.Namespace) -> Config:
    """``config`` with ``--push.listen-address`` applied; ValueError naming the flag if it is wrong."""
    address = getattr(args, "push_listen_address", None)
    if address is None:
        return config
    try:
        parse_listen_address(address)
    except ValueError as error:
        raise ValueError(f"--push.listen-address: {error}") from None
    push = config.push or PushConfig()
    return dataclasses.replace(config, push=dataclasses.replace(push, listen_address=address))
