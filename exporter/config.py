"""Load and validate the YAML configuration; every error names the key path and the reason."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import idna
import re2  # type: ignore[import-untyped]

from exporter.api import API_VERSIONS, DEFAULT_API_VERSION, adapter
from exporter.durations import parse_duration
from exporter.safeyaml import YamlRefused, one_line, safe_load_bounded
from exporter.sharding import AUTO, MAX_TOTAL_SHARDS, SHARD_BY, WHOLE, Part, ShardBy, Sharding, ordinal

if TYPE_CHECKING:
    from exporter.push.config import PushConfig

PUSH_WORKSPACE_KEYS = ("push_token", "push_token_file")  # read by exporter/push/config.py

DEFAULT_LISTEN_ADDRESS = ":10237"
SUPPORTED_API_VERSIONS = API_VERSIONS
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

MAX_CONFIG_BYTES = 1024 * 1024
MAX_KEY_FILE_BYTES = 4096
MAX_DURATION = 366 * 86400.0  # one year: anything longer is a typo
MAX_INTEGER = 10**9
MAX_NAME_LENGTH = 200
MAX_PATTERN_LENGTH = 1000
MAX_PATTERN_NESTING = 50
MAX_WORKSPACES = 1000
MAX_IDLE_TIMEOUT = 60.0
MAX_SHOWN = 60  # characters of a bad value quoted in an error message
MIN_API_KEY_LENGTH = 8  # no real key is shorter; a shorter one would redact common words in the logs
MAX_PATTERN_MEMORY = 8 << 20  # bytes RE2 may use for one compiled filter pattern

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem: ``path: reason``."""

    def __init__(self, path: str, reason: str) -> None:
        path, reason = one_line(path), one_line(reason)
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


class Pattern(Protocol):
    """A compiled filter pattern (an RE2 regex: matching takes time linear in the text)."""

    @property
    def pattern(self) -> str: ...

    def fullmatch(self, text: str) -> object: ...


@dataclass(frozen=True)
class WorkflowFilter:
    """Which workflows to track: a workflow is kept when its name or uid matches an ``include`` pattern
    (or there are none) and matches no ``exclude`` pattern. Patterns are anchored RE2 regexes."""

    include: tuple[Pattern, ...] = ()
    exclude: tuple[Pattern, ...] = ()

    def keeps(self, uid: str, name: str) -> bool:
        def matches(patterns: tuple[Pattern, ...]) -> bool:
            return any(p.fullmatch(uid) or p.fullmatch(name) for p in patterns)

        return (not self.include or matches(self.include)) and not matches(self.exclude)


# Credits and account health (issue 17): side reads of the workspace, beside its runs poll.
#: Shortest interval of a side read.
MIN_SIDE_READ_INTERVAL = 1.0
MAX_ACCOUNTS = 100_000
_INTEGRATION_UID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class CreditsConfig:
    """``credits:``: read the workspace's credits (1 request per interval)."""

    enabled: bool = True
    interval: float = 300.0


@dataclass(frozen=True)
class AccountsConfig:
    """``accounts:``: read each integration's accounts (1 request per page per integration per
    interval); an empty ``integrations`` list turns it off."""

    integrations: tuple[str, ...] = ("linkedin",)
    interval: float = 300.0
    max_accounts: int = 500

    @property
    def enabled(self) -> bool:
        return bool(self.integrations)


@dataclass(frozen=True)
class WorkspaceConfig:
    name: str
    workspace_uid: str
    api_key: Secret
    api_version: str = DEFAULT_API_VERSION
    base_url: str = adapter(DEFAULT_API_VERSION).default_base_url
    workflows: WorkflowFilter = field(default_factory=WorkflowFilter)
    #: The API version's own block (``v4:``), as its adapter reads it; None when it has none.
    settings: object = None
    #: ``sharding.by``: a v3 workspace may be split by workflow across shards (exporter/sharding.py).
    shard_by: ShardBy = "workspace"
    #: This shard's part of the workspace, set when the pollers are built (exporter/poller.py).
    part: Part = WHOLE

    #: Side reads; a version whose adapter has no such read ignores them (the configuration turns
    #: them off for it).
    credits: CreditsConfig = field(default_factory=CreditsConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)

    def side_read_enabled(self, name: str) -> bool:
        """Whether the side read ``name`` (``credits``, ``accounts``) is on for this workspace."""
        if name == "credits":
            return self.credits.enabled
        return name == "accounts" and self.accounts.enabled

    def side_read_interval(self, name: str) -> float:
        return self.credits.interval if name == "credits" else self.accounts.interval


#: Workflows (v3) and actions (v4) tracked per workspace by default: each costs about 10 kB of /metrics
#: and one request per poll (v3); sized from bench/wide.py (docs/configuration.md).
DEFAULT_MAX_WORKFLOWS: Final = 2000


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
    max_workflows: int = DEFAULT_MAX_WORKFLOWS  # v3: workflows tracked per workspace, after the filter
    concurrency: int = 4
    max_response_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class MetricsConfig:
    needs_action_limit: int = 50


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    max_connections: int = 4096  # lowered at start to fit the open-files limit
    idle_timeout: float = 30.0  # idle keep-alive, unfinished request headers, TLS handshakes


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "logfmt"


@dataclass(frozen=True)
class StateConfig:
    path: Path | None = None  # the state directory (exporter/persist/); None: nothing is saved


@dataclass(frozen=True)
class ShardingConfig:
    """``sharding``: this process's shard, as written (``auto``: the StatefulSet ordinal of the host
    name), and the number of shards (None: not set, one shard)."""

    shard: int | str = 0
    total_shards: int | None = None

    def resolve(self, hostname: str) -> Sharding:
        """The shard this process is; ValueError when ``auto`` finds no ordinal, when ``auto`` has no
        total, or when the shard is not below the total."""
        total = 1 if self.total_shards is None else self.total_shards
        if self.shard == AUTO:
            if self.total_shards is None:
                raise ValueError("--shard auto needs the number of shards: --total-shards M")
            shard = ordinal(hostname)
        else:
            shard = int(self.shard)
        if not 0 <= shard < total:
            raise ValueError(f"shard {shard} does not exist among {total} shard(s) (0 to {total - 1})")
        return Sharding(shard, total)

    @property
    def current(self) -> Sharding:
        """The shard once resolved (the command line resolves ``auto`` before anything polls)."""
        return self.resolve("")


@dataclass(frozen=True)
class Config:
    workspaces: tuple[WorkspaceConfig, ...]
    poll: PollConfig = field(default_factory=PollConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    state: StateConfig = field(default_factory=StateConfig)
    push: PushConfig | None = None  # exporter/push/config.py; None: off
    sharding: ShardingConfig = field(default_factory=ShardingConfig)

    def secrets(self) -> list[str]:
        tokens = self.push.secrets() if self.push is not None else []
        return [workspace.api_key.reveal() for workspace in self.workspaces] + tokens

    def parts(self) -> dict[str, Part]:
        """This shard's part of each workspace it polls, by name (every workspace when unsharded)."""
        sharding = self.sharding.current
        planned = {w.name: sharding.plan(w.name, w.shard_by) for w in self.workspaces}
        return {name: part for name, part in planned.items() if part is not None}


def _show(value: object) -> str:
    """A bounded, one-line rendering of a bad value; containers by type only (never expanded)."""
    if isinstance(value, str):
        text = value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 3] + "..."
        return json.dumps(text)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**30 else "a very large integer"
    return type(value).__name__


class _Reader:
    """Walks the parsed YAML, tracking the key path for error messages."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path, expand_variables: bool = True) -> None:
        self.environ = environ
        self.base_dir = base_dir
        self.expand_variables = expand_variables

    def mapping(self, value: object, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                shown = key if isinstance(key, str) and len(key) <= MAX_SHOWN else _show(key)
                raise ConfigError(_join(path, shown), f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def error(self, path: str, reason: str) -> ConfigError:
        """The error to raise for a check of the caller's own (an API version's block)."""
        return ConfigError(path, reason)

    def expand(self, text: str, path: str) -> str:
        if not self.expand_variables:
            return text

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                raise ConfigError(path, f"environment variable {name} is not set")
            return self.environ[name]

        return _ENV_REFERENCE.sub(substitute, text)

    def string(
        self,
        section: dict[str, Any],
        key: str,
        path: str,
        default: str | None = None,
        secret: bool = False,
    ) -> str:
        where = _join(path, key)
        value = section.get(key, default)
        if value is None:
            raise ConfigError(where, "is required")
        if not isinstance(value, str):
            shown = "" if secret else f" {_show(value)}"
            raise ConfigError(where, f"must be a string, got {type(value).__name__}{shown}")
        value = self.expand(value, where)
        if not value.strip():
            raise ConfigError(where, "is empty")
        return value

    def shown(self, section: dict[str, Any], key: str, default: object = None) -> str:
        """The value as written in the file (before ``${VAR}`` expansion), for error messages."""
        return _show(section.get(key, default))

    def name(self, section: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        """A name or id: printable (no control or format characters), at most MAX_NAME_LENGTH long."""
        value = self.string(section, key, path, default).strip()
        if len(value) > MAX_NAME_LENGTH:
            raise ConfigError(_join(path, key), f"is longer than {MAX_NAME_LENGTH} characters")
        if not value.isprintable():
            raise ConfigError(_join(path, key), "contains control or non-printable characters")
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
        if seconds > MAX_DURATION:
            raise ConfigError(where, f"{_show(value)} is longer than a year")
        return seconds

    def number(
        self,
        section: dict[str, Any],
        key: str,
        path: str,
        default: T,
        kind: Callable[[Any], T],
        minimum: float,
        maximum: float = MAX_INTEGER,
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
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(where, f"must be a finite number, got {_show(value)}")
        if value < minimum:
            raise ConfigError(where, f"must be at least {minimum:g}, got {_show(value)}")
        if value > maximum:
            raise ConfigError(where, f"must be at most {maximum:g}, got {_show(value)}")
        return kind(value)

    def boolean(self, section: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = section.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(_join(path, key), f"must be true or false, got {_show(value)}")
        return value

    def strings(self, section: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
        """A list of non-empty, printable strings (an absent or null key is an empty list)."""
        items = []
        for at, item in self.string_items(section, key, path, "strings"):
            if not item.strip() or len(item) > MAX_NAME_LENGTH or not item.isprintable():
                raise ConfigError(at, f"must be printable text of 1 to {MAX_NAME_LENGTH} characters")
            items.append(item.strip())
        return tuple(items)

    def choice(
        self, section: dict[str, Any], key: str, path: str, default: str, choices: tuple[str, ...]
    ) -> str:
        value = self.string(section, key, path, default)
        if value not in choices:
            shown = self.shown(section, key, default)
            raise ConfigError(_join(path, key), f"{shown} is not one of {', '.join(choices)}")
        return value

    def patterns(self, section: dict[str, Any], key: str, path: str) -> tuple[Pattern, ...]:
        return tuple(
            _compile_pattern(pattern, at)
            for at, pattern in self.string_items(section, key, path, "regular expressions")
        )

    def string_items(
        self, section: dict[str, Any], key: str, path: str, what: str
    ) -> Iterator[tuple[str, str]]:
        """Each item of a list of strings with its path, checked as it is reached (so the first bad
        item is the one reported); an absent or null key is an empty list."""
        where = _join(path, key)
        value = section.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            raise ConfigError(where, f"must be a list of {what}, got {type(value).__name__}")
        for index, item in enumerate(value):
            at = f"{where}[{index}]"
            if not isinstance(item, str):
                raise ConfigError(at, f"must be a string, got {_show(item)}")
            yield at, item


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _compile_pattern(pattern: str, where: str) -> Pattern:
    """The pattern compiled by RE2, whose matching time is linear in the text: a backtracking engine
    (``re``) can spend minutes on one name with a pattern such as ``(a|aa)*c``, blocking the event loop.
    Python's ``re`` checks the syntax first (RE2 reads some mistakes as literals, e.g. ``a{4294967296}``,
    and Python's messages are clearer); what RE2 cannot run (backreferences, lookaround, possessive
    repeats) is then refused here rather than silently matching something else."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ConfigError(where, f"is longer than {MAX_PATTERN_LENGTH} characters")
    depth = deepest = 0
    for char in pattern:  # a rough count (escaped parentheses count too): it only bounds the compiler
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_PATTERN_NESTING:
        raise ConfigError(where, f"nests groups deeper than {MAX_PATTERN_NESTING} levels")
    try:
        re.compile(pattern)
    except re.error as error:
        reason = one_line(error.msg)
        raise ConfigError(where, f"{_show(pattern)} is not a valid regular expression: {reason}") from None
    except (OverflowError, RecursionError, ValueError, MemoryError):
        raise ConfigError(where, f"{_show(pattern)} is too large a regular expression") from None
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr
    options.max_mem = MAX_PATTERN_MEMORY
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as error:
        detail = error.args[0] if error.args else ""
        reason = one_line(detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail))
        raise ConfigError(
            where,
            f"{_show(pattern)} is not supported: filters use RE2 syntax, which matches in linear time "
            f"(no backreferences, lookaround or possessive repeats): {reason}",
        ) from None
    return compiled


def _api_key(value: str, where: str) -> Secret:
    """One token of printable ASCII, at least MIN_API_KEY_LENGTH long; the error never shows the value."""
    if not all(33 <= ord(char) <= 126 for char in value):
        raise ConfigError(
            where,
            "must be a single token of printable ASCII "
            "(no spaces, line breaks, control or invisible characters)",
        )
    if len(value) < MIN_API_KEY_LENGTH:
        raise ConfigError(where, f"is shorter than {MIN_API_KEY_LENGTH} characters: not an API key")
    return Secret(value)


def _check_host(host: str, where: str, shown: str) -> None:
    """An IP address, or a name that IDNA 2008 (UTS 46) can encode and decode back: what the HTTP client
    and the resolver will accept at run time (``⒈.com`` or ``xn--a.com`` would fail on every poll)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if host.isascii() and not any(label.startswith("xn--") for label in host.lower().split(".")):
        valid = all(
            label and len(label) <= 63 and re.fullmatch(r"[A-Za-z0-9_-]+", label)
            for label in host.rstrip(".").split(".")
        )
        if not valid or len(host) > 253:
            raise ConfigError(where, f"{shown}: the host is not a valid host name")
        return
    try:
        encoded = idna.encode(host.rstrip("."), uts46=True)
        idna.decode(encoded)
    except (idna.IDNAError, UnicodeError, ValueError):
        # No reason given: it would quote the host as expanded from a ${VAR}.
        raise ConfigError(where, f"{shown}: the host is not a valid host name (IDNA 2008)") from None


def _base_url(reader: _Reader, section: dict[str, Any], path: str, default: str) -> str:
    where = _join(path, "base_url")
    base_url = reader.string(section, "base_url", path, default).strip().rstrip("/")
    shown = reader.shown(section, "base_url", default)
    if not base_url.isprintable() or any(char.isspace() for char in base_url):
        raise ConfigError(where, "contains spaces, control or non-printable characters")
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as error:
        # The reason may quote the URL as expanded: given only when no ${VAR} was expanded into it.
        written = section.get("base_url", default)
        expanded = not isinstance(written, str) or _ENV_REFERENCE.search(written) is not None
        reason = "" if expanded else f": {one_line(str(error))}"
        raise ConfigError(where, f"{shown} is not a valid URL{reason}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(where, f"{shown} is not an http(s) URL")
    _check_host(parts.hostname, where, shown)
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(where, f"{shown}: the port must be between 1 and 65535")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(where, "must not contain credentials (user:password@)")
    if parts.query or parts.fragment:
        raise ConfigError(where, f"{shown} must not have a query or a fragment")
    return base_url


def _read_api_key(reader: _Reader, section: dict[str, Any], path: str) -> Secret:
    secret = read_secret(reader, section, path, "api_key")
    if secret is None:
        raise ConfigError(_join(path, "api_key"), "is required (or set api_key_file)")
    return secret


def read_secret(reader: _Reader, section: dict[str, Any], path: str, key: str) -> Secret | None:
    """``key`` or ``key_file`` of ``section`` (None when neither is set): a value (``${VAR}`` expands)
    or a file of at most MAX_KEY_FILE_BYTES. An error names the key, never the value or the file."""
    key_file = f"{key}_file"
    has_key = section.get(key) is not None
    has_file = section.get(key_file) is not None
    if has_key and has_file:
        raise ConfigError(_join(path, key), f"set either {key} or {key_file}, not both")
    if has_key:
        where = _join(path, key)
        return _api_key(reader.string(section, key, path, secret=True).strip(), where)
    if not has_file:
        return None
    where = _join(path, key_file)
    # The path is not echoed either: a key pasted here by mistake must not end up in the error.
    shown = "the file"
    file_path = Path(reader.string(section, key_file, path, secret=True))
    if not file_path.is_absolute():
        file_path = reader.base_dir / file_path
    raw = _read_head(file_path, MAX_KEY_FILE_BYTES, where, shown)
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise ConfigError(where, f"{shown} is larger than {MAX_KEY_FILE_BYTES} bytes")
    value = raw.decode("latin-1").rstrip(" \t\r\n")
    if not value:
        raise ConfigError(where, f"{shown} is empty")
    return _api_key(value, where)


def _read_workflow_filter(reader: _Reader, value: object, path: str) -> WorkflowFilter:
    section = reader.mapping(value, path, ("include", "exclude"))
    return WorkflowFilter(
        reader.patterns(section, "include", path), reader.patterns(section, "exclude", path)
    )


#: The workspace keys of the API versions' own blocks (``v4``), by version.
_SETTINGS_KEYS: dict[str, str] = {
    version: key for version in API_VERSIONS if (key := adapter(version).settings_key) is not None
}


def _read_settings(reader: _Reader, section: dict[str, Any], path: str, api_version: str) -> object:
    """The workspace's API-version block, read by that version's adapter (None when it has none)."""
    for version, key in _SETTINGS_KEYS.items():
        if version != api_version and key in section:
            raise ConfigError(
                _join(path, key), f"is only for api_version: {version} (this workspace uses {api_version})"
            )
    api = adapter(api_version)
    if api.settings_key is None or api.read_settings is None:
        return None
    return api.read_settings(reader, section.get(api.settings_key), _join(path, api.settings_key))


def _interval(reader: _Reader, section: dict[str, Any], path: str, default: float) -> float:
    seconds = reader.duration(section, "interval", path, default)
    if seconds < MIN_SIDE_READ_INTERVAL:
        raise ConfigError(_join(path, "interval"), f"must be at least {MIN_SIDE_READ_INTERVAL:g}s")
    return seconds


def _read_credits(reader: _Reader, value: object, path: str, available: bool) -> CreditsConfig:
    section = reader.mapping(value, path, ("enabled", "interval"))
    enabled = reader.boolean(section, "enabled", path, available)
    if enabled and not available:
        raise ConfigError(
            _join(path, "enabled"), "this API version documents no credits endpoint; credits stay off"
        )
    return CreditsConfig(enabled=enabled, interval=_interval(reader, section, path, CreditsConfig.interval))


def _read_accounts(reader: _Reader, value: object, path: str, available: bool) -> AccountsConfig:
    section = reader.mapping(value, path, ("integrations", "interval", "max_accounts"))
    if "integrations" in section:
        integrations = reader.strings(section, "integrations", path)
    else:
        integrations = AccountsConfig.integrations if available else ()
    for index, integration in enumerate(integrations):
        if not _INTEGRATION_UID.fullmatch(integration):
            raise ConfigError(
                f"{_join(path, 'integrations')}[{index}]",
                "must be an integration's slug (lower-case letters, digits, - and _), e.g. linkedin",
            )
    if integrations and not available:
        raise ConfigError(
            _join(path, "integrations"),
            "this API version documents no accounts endpoint; accounts stay off (use an empty list)",
        )
    return AccountsConfig(
        integrations=tuple(dict.fromkeys(integrations)),
        interval=_interval(reader, section, path, AccountsConfig.interval),
        max_accounts=reader.number(
            section, "max_accounts", path, AccountsConfig.max_accounts, int, 1, MAX_ACCOUNTS
        ),
    )


def _read_workspace(reader: _Reader, value: object, path: str) -> WorkspaceConfig:
    section = reader.mapping(
        value,
        path,
        (
            "name",
            "workspace_uid",
            "api_key",
            "api_key_file",
            "api_version",
            "base_url",
            "workflows",
            "sharding",
            "credits",
            "accounts",
            *_SETTINGS_KEYS.values(),
            *PUSH_WORKSPACE_KEYS,
        ),
    )
    if not section:
        raise ConfigError(path, "must be a mapping with name, workspace_uid and api_key")
    api_version = reader.string(section, "api_version", path, DEFAULT_API_VERSION)
    if api_version not in SUPPORTED_API_VERSIONS:
        raise ConfigError(
            _join(path, "api_version"),
            f"{reader.shown(section, 'api_version')} is not supported "
            f"(supported: {', '.join(SUPPORTED_API_VERSIONS)})",
        )
    api = adapter(api_version)
    settings = _read_settings(reader, section, path, api_version)
    base_url = _base_url(reader, section, path, api.default_base_url)
    if not api.needs_workspace_uid and section.get("workspace_uid") is None:
        workspace_uid = ""
    else:
        workspace_uid = reader.name(section, "workspace_uid", path)
    if any(char.isspace() or char in "/?#%" for char in workspace_uid):
        raise ConfigError(_join(path, "workspace_uid"), "must not contain spaces or any of / ? # %")
    shard_by = _read_shard_by(reader, section.get("sharding"), _join(path, "sharding"), api_version)
    return WorkspaceConfig(
        name=reader.name(section, "name", path),
        workspace_uid=workspace_uid,
        api_key=_read_api_key(reader, section, path),
        api_version=api_version,
        base_url=base_url,
        workflows=_read_workflow_filter(reader, section.get("workflows"), _join(path, "workflows")),
        settings=settings,
        shard_by=shard_by,
        credits=_read_credits(
            reader, section.get("credits"), _join(path, "credits"), api.has_side_read("credits")
        ),
        accounts=_read_accounts(
            reader, section.get("accounts"), _join(path, "accounts"), api.has_side_read("accounts")
        ),
    )


def _read_shard_by(reader: _Reader, value: object, path: str, api_version: str) -> ShardBy:
    section = reader.mapping(value, path, ("by",))
    by = reader.choice(section, "by", path, "workspace", SHARD_BY)
    if by == "workflow" and api_version != "v3":
        raise ConfigError(
            _join(path, "by"),
            f"workflow is only for api_version: v3 ({api_version} workspaces are sharded whole: "
            "one listing covers all their runs)",
        )
    return "workflow" if by == "workflow" else "workspace"


def _read_sharding(reader: _Reader, value: object) -> ShardingConfig:
    section = reader.mapping(value, "sharding", ("shard", "total_shards"))
    total = None
    if section.get("total_shards") is not None:
        total = reader.number(section, "total_shards", "sharding", 1, int, 1, MAX_TOTAL_SHARDS)
    shard: int | str = 0
    if section.get("shard") == AUTO:
        if total is None:
            raise ConfigError("sharding.shard", "auto needs sharding.total_shards")
        shard = AUTO
    elif section.get("shard") is not None:
        if isinstance(section["shard"], str):
            raise ConfigError("sharding.shard", f"must be an integer or auto, got {_show(section['shard'])}")
        shard = reader.number(section, "shard", "sharding", 0, int, 0, MAX_TOTAL_SHARDS - 1)
        if shard >= (total or 1):
            raise ConfigError(
                "sharding.shard",
                f"{shard} does not exist among {total or 1} shard(s) (sharding.total_shards)",
            )
    return ShardingConfig(shard, total)


def parse_config(
    data: object, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate parsed YAML into a :class:`Config`; raise :class:`ConfigError` on the first problem."""
    reader = _Reader(os.environ if environ is None else environ, base_dir or Path.cwd())
    from exporter.push.config import read_push  # lazily: that module builds on this one

    top = reader.mapping(
        data, "", ("workspaces", "poll", "api", "metrics", "web", "log", "state", "push", "sharding")
    )

    raw_workspaces = top.get("workspaces")
    if not isinstance(raw_workspaces, list) or not raw_workspaces:
        raise ConfigError("workspaces", "must be a non-empty list of workspaces")
    if len(raw_workspaces) > MAX_WORKSPACES:
        raise ConfigError("workspaces", f"more than {MAX_WORKSPACES} workspaces")
    workspaces = tuple(
        _read_workspace(reader, item, f"workspaces[{i}]") for i, item in enumerate(raw_workspaces)
    )
    seen: set[str] = set()
    for index, workspace in enumerate(workspaces):
        if workspace.name in seen:
            shown = _show(raw_workspaces[index].get("name"))
            raise ConfigError(f"workspaces[{index}].name", f"{shown} is used twice; names must be unique")
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
            api_section, "requests_per_second", "api", defaults.requests_per_second, float, 0.001, 10_000
        ),
        burst=reader.number(api_section, "burst", "api", defaults.burst, int, 1, 10_000),
        max_retries=reader.number(api_section, "max_retries", "api", defaults.max_retries, int, 0, 100),
        retry_backoff=reader.duration(api_section, "retry_backoff", "api", defaults.retry_backoff),
        retry_backoff_max=reader.duration(
            api_section, "retry_backoff_max", "api", defaults.retry_backoff_max
        ),
        max_rate_limit_retries=reader.number(
            api_section, "max_rate_limit_retries", "api", defaults.max_rate_limit_retries, int, 0, 1000
        ),
        max_retry_after=reader.duration(api_section, "max_retry_after", "api", defaults.max_retry_after),
        max_pages=reader.number(api_section, "max_pages", "api", defaults.max_pages, int, 1, 1_000_000),
        max_workflows=reader.number(
            api_section, "max_workflows", "api", defaults.max_workflows, int, 1, 1_000_000
        ),
        concurrency=reader.number(api_section, "concurrency", "api", defaults.concurrency, int, 1, 1000),
        max_response_bytes=reader.number(
            api_section, "max_response_bytes", "api", defaults.max_response_bytes, int, 1024, 1 << 30
        ),
    )

    metrics_section = reader.mapping(top.get("metrics"), "metrics", ("needs_action_limit",))
    metrics = MetricsConfig(
        needs_action_limit=reader.number(
            metrics_section,
            "needs_action_limit",
            "metrics",
            MetricsConfig.needs_action_limit,
            int,
            0,
            100_000,
        )
    )

    web_section = reader.mapping(top.get("web"), "web", ("listen_address", "max_connections", "idle_timeout"))
    listen_address = reader.string(web_section, "listen_address", "web", DEFAULT_LISTEN_ADDRESS)
    try:
        parse_listen_address(listen_address)
    except ValueError:
        shown = reader.shown(web_section, "listen_address", DEFAULT_LISTEN_ADDRESS)
        raise ConfigError(
            "web.listen_address", f"{shown} is not a listen address (expected host:port or :port)"
        ) from None

    web = WebConfig(
        listen_address,
        max_connections=reader.number(
            web_section, "max_connections", "web", WebConfig.max_connections, int, 1, 1_000_000
        ),
        idle_timeout=reader.duration(web_section, "idle_timeout", "web", WebConfig.idle_timeout),
    )
    if web.idle_timeout > MAX_IDLE_TIMEOUT:
        raise ConfigError("web.idle_timeout", f"must be at most {MAX_IDLE_TIMEOUT:g}s")

    log_section = reader.mapping(top.get("log"), "log", ("level", "format"))
    log = LogConfig(
        level=reader.choice(log_section, "level", "log", LogConfig.level, LOG_LEVELS),
        format=reader.choice(log_section, "format", "log", LogConfig.format, LOG_FORMATS),
    )
    state_section = reader.mapping(top.get("state"), "state", ("path",))
    state_path = None
    if state_section.get("path") is not None:
        state_path = reader.base_dir / reader.string(state_section, "path", "state")
    return Config(
        workspaces=workspaces,
        poll=poll,
        api=api,
        metrics=metrics,
        web=web,
        log=log,
        state=StateConfig(state_path),
        push=read_push(reader, top.get("push"), raw_workspaces, workspaces),
        sharding=_read_sharding(reader, top.get("sharding")),
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``."""
    data = read_yaml_file(path, "config file")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise ConfigError("", f"{path}: the top level must be a mapping (key: value lines), not {kind}")
    return parse_config(data, environ, base_dir=path.resolve().parent)


def _read_head(path: Path, limit: int, where: str, shown: str) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (one more than allowed tells a file that
    is too large); a ConfigError at ``where`` naming the file as ``shown`` when it cannot be read.

    Opened without blocking (a FIFO's open waits for a writer) and checked to be a regular file before
    any read (a FIFO, a terminal or a device would block it, or never end)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ConfigError(where, f"cannot read {shown}: {reason}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(where, f"{shown} is not a regular file")
        chunks = []
        size = 0
        while size <= limit and (chunk := os.read(descriptor, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(where, f"cannot read {shown}: {reason}") from None
    finally:
        os.close(descriptor)


def read_yaml_text(path: Path, what: str) -> tuple[str, object]:
    """The text of a YAML file of at most MAX_CONFIG_BYTES of UTF-8, and its data, parsed with bounded
    aliases and nesting (None for an empty document)."""
    raw = _read_head(path, MAX_CONFIG_BYTES, "", f"{what} {path}")
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError("", f"{path}: not UTF-8 text (invalid byte at offset {error.start})") from None
    try:
        return text, safe_load_bounded(text)
    except YamlRefused as error:
        raise ConfigError("", f"{path}: {error}") from None


def read_yaml_file(path: Path, what: str, allow_empty: bool = False) -> object:
    """Parse a YAML file of at most MAX_CONFIG_BYTES of UTF-8, with bounded aliases and nesting."""
    _, data = read_yaml_text(path, what)
    if data is None and not allow_empty:
        raise ConfigError("", f"{path} is empty")
    return data


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → (host or None for every interface, port).

    As Go's net.SplitHostPort: an IPv6 host needs brackets, and brackets hold an IPv6 address."""
    wrong = ValueError(f'"{address}" is not a listen address (expected host:port, :port or [v6]:port)')
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise wrong
    if not 0 <= int(port_text) <= 65535 or not host.isprintable():
        raise wrong
    if host.startswith("[") or host.endswith("]"):
        inner = host[1:-1]
        if not (host.startswith("[") and host.endswith("]")) or "[" in inner or "]" in inner:
            raise wrong
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise wrong from None
        return (inner, int(port_text))
    if any(char in host for char in "[]:"):
        raise wrong
    return (host or None, int(port_text))
