"""Load and validate the YAML configuration; every error names the key path and the reason."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from exporter.durations import parse_duration

DEFAULT_LISTEN_ADDRESS = ":10237"
DEFAULT_BASE_URL = "https://api.captaindata.co"
SUPPORTED_API_VERSIONS = ("v3",)
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem: ``path: reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class Secret:
    """A string that never shows itself in ``repr``/``str`` (so never in logs or errors)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class WorkflowFilter:
    """Which workflows to track: a workflow is kept when its name or uid matches an ``include`` pattern
    (or there are none) and matches no ``exclude`` pattern. Patterns are anchored regexes."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    def keeps(self, uid: str, name: str) -> bool:
        def matches(patterns: tuple[re.Pattern[str], ...]) -> bool:
            return any(p.fullmatch(uid) or p.fullmatch(name) for p in patterns)

        return (not self.include or matches(self.include)) and not matches(self.exclude)


@dataclass(frozen=True)
class WorkspaceConfig:
    name: str
    workspace_uid: str
    api_key: Secret
    api_version: str = "v3"
    base_url: str = DEFAULT_BASE_URL
    workflows: WorkflowFilter = field(default_factory=WorkflowFilter)


@dataclass(frozen=True)
class PollConfig:
    interval: float = 60.0
    timeout: float = 300.0  # time without a successful API request before a poll fails


@dataclass(frozen=True)
class ApiConfig:
    request_timeout: float = 10.0
    requests_per_second: float = 2.0
    burst: int = 5
    max_retries: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 30.0
    max_rate_limit_retries: int = 5
    max_retry_after: float = 300.0
    max_pages: int = 50
    concurrency: int = 4
    max_response_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class MetricsConfig:
    needs_action_limit: int = 50


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = DEFAULT_LISTEN_ADDRESS


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "logfmt"


@dataclass(frozen=True)
class Config:
    workspaces: tuple[WorkspaceConfig, ...]
    poll: PollConfig = field(default_factory=PollConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def secrets(self) -> list[str]:
        return [workspace.api_key.reveal() for workspace in self.workspaces]


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


class _Reader:
    """Walks the parsed YAML, tracking the key path for error messages."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path) -> None:
        self.environ = environ
        self.base_dir = base_dir

    def mapping(self, value: object, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise ConfigError(_join(path, str(key)), f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def expand(self, text: str, path: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                raise ConfigError(path, f"environment variable {name} is not set")
            return self.environ[name]

        return _ENV_REFERENCE.sub(substitute, text)

    def string(self, section: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        where = _join(path, key)
        value = section.get(key, default)
        if value is None:
            raise ConfigError(where, "is required")
        if not isinstance(value, str):
            raise ConfigError(where, f"must be a string, got {type(value).__name__} {_show(value)}")
        value = self.expand(value, where)
        if not value.strip():
            raise ConfigError(where, "is empty")
        return value

    def duration(self, section: dict[str, Any], key: str, path: str, default: float) -> float:
        where = _join(path, key)
        if key not in section:
            return default
        value = section[key]
        if not isinstance(value, str):
            raise ConfigError(where, f"{_show(value)} is not a duration (write it with a unit, e.g. 30s)")
        try:
            seconds = parse_duration(self.expand(value, where))
        except ValueError:
            raise ConfigError(where, f"{_show(value)} is not a duration") from None
        if seconds <= 0:
            raise ConfigError(where, f"{_show(value)} must be longer than 0s")
        return seconds

    def number(
        self,
        section: dict[str, Any],
        key: str,
        path: str,
        default: T,
        kind: Callable[[Any], T],
        minimum: float,
    ) -> T:
        where = _join(path, key)
        if key not in section:
            return default
        value = section[key]
        wanted = "an integer" if kind is int else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not isinstance(value, int))
        ):
            raise ConfigError(where, f"must be {wanted}, got {_show(value)}")
        if value < minimum:
            raise ConfigError(where, f"must be at least {minimum:g}, got {value}")
        return kind(value)

    def choice(
        self, section: dict[str, Any], key: str, path: str, default: str, choices: tuple[str, ...]
    ) -> str:
        value = self.string(section, key, path, default)
        if value not in choices:
            raise ConfigError(_join(path, key), f"{_show(value)} is not one of {', '.join(choices)}")
        return value

    def patterns(self, section: dict[str, Any], key: str, path: str) -> tuple[re.Pattern[str], ...]:
        where = _join(path, key)
        value = section.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(where, f"must be a list of regular expressions, got {type(value).__name__}")
        compiled = []
        for index, pattern in enumerate(value):
            item = f"{where}[{index}]"
            if not isinstance(pattern, str):
                raise ConfigError(item, f"must be a string, got {_show(pattern)}")
            try:
                compiled.append(re.compile(pattern))
            except re.error as error:
                raise ConfigError(
                    item, f"{_show(pattern)} is not a valid regular expression: {error}"
                ) from None
        return tuple(compiled)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _read_api_key(reader: _Reader, section: dict[str, Any], path: str) -> Secret:
    has_key = section.get("api_key") is not None
    has_file = section.get("api_key_file") is not None
    if has_key and has_file:
        raise ConfigError(_join(path, "api_key"), "set either api_key or api_key_file, not both")
    if not has_key and not has_file:
        raise ConfigError(_join(path, "api_key"), "is required (or set api_key_file)")
    if has_key:
        return Secret(reader.string(section, "api_key", path).strip())
    file_path = Path(reader.string(section, "api_key_file", path))
    if not file_path.is_absolute():
        file_path = reader.base_dir / file_path
    where = _join(path, "api_key_file")
    try:
        key = file_path.read_text().strip()
    except OSError as error:
        raise ConfigError(where, f"cannot read {file_path}: {error.strerror or error}") from None
    if not key:
        raise ConfigError(where, f"{file_path} is empty")
    return Secret(key)


def _read_workflow_filter(reader: _Reader, value: object, path: str) -> WorkflowFilter:
    section = reader.mapping(value, path, ("include", "exclude"))
    return WorkflowFilter(
        reader.patterns(section, "include", path), reader.patterns(section, "exclude", path)
    )


def _read_workspace(reader: _Reader, value: object, path: str) -> WorkspaceConfig:
    section = reader.mapping(
        value,
        path,
        ("name", "workspace_uid", "api_key", "api_key_file", "api_version", "base_url", "workflows"),
    )
    if not section:
        raise ConfigError(path, "must be a mapping with name, workspace_uid and api_key")
    base_url = reader.string(section, "base_url", path, DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(_join(path, "base_url"), f"{_show(base_url)} is not an http(s) URL")
    api_version = reader.string(section, "api_version", path, "v3")
    if api_version not in SUPPORTED_API_VERSIONS:
        raise ConfigError(
            _join(path, "api_version"),
            f"{_show(api_version)} is not supported (supported: {', '.join(SUPPORTED_API_VERSIONS)})",
        )
    return WorkspaceConfig(
        name=reader.string(section, "name", path),
        workspace_uid=reader.string(section, "workspace_uid", path).strip(),
        api_key=_read_api_key(reader, section, path),
        api_version=api_version,
        base_url=base_url,
        workflows=_read_workflow_filter(reader, section.get("workflows"), _join(path, "workflows")),
    )


def parse_config(
    data: object, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate parsed YAML into a :class:`Config`; raise :class:`ConfigError` on the first problem."""
    reader = _Reader(os.environ if environ is None else environ, base_dir or Path.cwd())
    top = reader.mapping(data, "", ("workspaces", "poll", "api", "metrics", "web", "log"))

    raw_workspaces = top.get("workspaces")
    if not isinstance(raw_workspaces, list) or not raw_workspaces:
        raise ConfigError("workspaces", "must be a non-empty list of workspaces")
    workspaces = tuple(
        _read_workspace(reader, item, f"workspaces[{i}]") for i, item in enumerate(raw_workspaces)
    )
    seen: set[str] = set()
    for index, workspace in enumerate(workspaces):
        if workspace.name in seen:
            raise ConfigError(
                f"workspaces[{index}].name", f"{_show(workspace.name)} is used twice; names must be unique"
            )
        seen.add(workspace.name)

    poll_section = reader.mapping(top.get("poll"), "poll", ("interval", "timeout"))
    poll = PollConfig(
        interval=reader.duration(poll_section, "interval", "poll", PollConfig.interval),
        timeout=reader.duration(poll_section, "timeout", "poll", PollConfig.timeout),
    )

    defaults = ApiConfig()
    api_section = reader.mapping(top.get("api"), "api", tuple(ApiConfig.__dataclass_fields__))
    api = ApiConfig(
        request_timeout=reader.duration(api_section, "request_timeout", "api", defaults.request_timeout),
        requests_per_second=reader.number(
            api_section, "requests_per_second", "api", defaults.requests_per_second, float, 0.001
        ),
        burst=reader.number(api_section, "burst", "api", defaults.burst, int, 1),
        max_retries=reader.number(api_section, "max_retries", "api", defaults.max_retries, int, 0),
        retry_backoff=reader.duration(api_section, "retry_backoff", "api", defaults.retry_backoff),
        retry_backoff_max=reader.duration(
            api_section, "retry_backoff_max", "api", defaults.retry_backoff_max
        ),
        max_rate_limit_retries=reader.number(
            api_section, "max_rate_limit_retries", "api", defaults.max_rate_limit_retries, int, 0
        ),
        max_retry_after=reader.duration(api_section, "max_retry_after", "api", defaults.max_retry_after),
        max_pages=reader.number(api_section, "max_pages", "api", defaults.max_pages, int, 1),
        concurrency=reader.number(api_section, "concurrency", "api", defaults.concurrency, int, 1),
        max_response_bytes=reader.number(
            api_section, "max_response_bytes", "api", defaults.max_response_bytes, int, 1024
        ),
    )

    metrics_section = reader.mapping(top.get("metrics"), "metrics", ("needs_action_limit",))
    metrics = MetricsConfig(
        needs_action_limit=reader.number(
            metrics_section, "needs_action_limit", "metrics", MetricsConfig.needs_action_limit, int, 0
        )
    )

    web_section = reader.mapping(top.get("web"), "web", ("listen_address",))
    listen_address = reader.string(web_section, "listen_address", "web", DEFAULT_LISTEN_ADDRESS)
    try:
        parse_listen_address(listen_address)
    except ValueError as error:
        raise ConfigError("web.listen_address", str(error)) from None

    log_section = reader.mapping(top.get("log"), "log", ("level", "format"))
    log = LogConfig(
        level=reader.choice(log_section, "level", "log", LogConfig.level, LOG_LEVELS),
        format=reader.choice(log_section, "format", "log", LogConfig.format, LOG_FORMATS),
    )
    return Config(
        workspaces=workspaces, poll=poll, api=api, metrics=metrics, web=WebConfig(listen_address), log=log
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError("", f"cannot read config file {path}: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError("", f"{path}: {problem}{where}") from None
    if data is None:
        raise ConfigError("", f"{path} is empty")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise ConfigError("", f"{path}: the top level must be a mapping (key: value lines), not {kind}")
    return parse_config(data, environ, base_dir=path.resolve().parent)


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → (host or None for every interface, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f'"{address}" is not a listen address (expected host:port or :port)')
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return (host or None, int(port_text))
