"""``--web.config.file``: exporter-toolkit's web configuration (TLS, client certificates, response
headers, bcrypt basic auth, rate limit), validated, and re-read when it or a file it names changes."""

from __future__ import annotations

import logging
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.config import ConfigError, Secret, _Reader, read_yaml_text

logger = logging.getLogger("exporter.web")

# exporter-toolkit's client_auth_type values (Go's tls.ClientAuthType) that Python's ssl honours exactly.
# "RequestClientCert" asks Go's client for a certificate it then never verifies nor uses: the exporter
# uses none either, so not asking serves the same requests. Without client_ca, certificates are verified
# against the system's roots, as Go does.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go accepts any client certificate here, unverified; Python's ssl always verifies one. Refused rather
# than verified (another policy) or ignored (fail open).
UNHONOURABLE_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's names of the TLS 1.2 suites it supports → OpenSSL's names.
GO_CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
# TLS 1.3 suites: Go accepts their names and, as TLS 1.3 suites are not configurable, ignores them.
GO_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# exporter-toolkit's curve names → the OpenSSL curve ssl.SSLContext.set_ecdh_curve takes (None: Python's
# ssl cannot restrict the key exchange to it). set_ecdh_curve restricts the handshake to exactly one
# curve, so only a single NIST curve can be enforced; anything else is refused, never ignored.
GO_CURVES: dict[str, str | None] = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": None,
}
# The only headers exporter-toolkit lets the file set, with their accepted values (None: any).
RESPONSE_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}")
MAX_USERS = 1000
# bcrypt's own bounds (4..31) would let one request cost hours of CPU: 18 is about 15 s already.
MIN_COST, MAX_COST = 4, 18


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: Secret | None = None
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True)
class WebFileConfig:
    """What ``--web.config.file`` says. ``tls`` is None when it asks for plain HTTP."""

    tls: TlsServerConfig | None = None
    http2: bool = True  # accepted; the server speaks HTTP/1.1 (Prometheus scrapes it fine)
    headers: tuple[tuple[str, str], ...] = ()
    users: Mapping[str, bytes] = field(default_factory=dict)  # user → bcrypt hash
    rate_limit_interval: float = 0.0  # seconds between requests; 0: no limit
    rate_limit_burst: int = 0

    def __repr__(self) -> str:  # the hashes stay out of logs
        return f"WebFileConfig(tls={self.tls is not None}, users={len(self.users)})"


def _set(section: dict[str, Any], key: str) -> bool:
    """As in exporter-toolkit (Go's zero value): an empty string is the same as no value."""
    return section.get(key) not in (None, "")


def _path(reader: _Reader, section: dict[str, Any], key: str, path: str) -> Path | None:
    if not _set(section, key):
        return None
    value = Path(reader.string(section, key, path))
    return value if value.is_absolute() else reader.base_dir / value


def _pem(reader: _Reader, section: dict[str, Any], key: str, path: str) -> str | None:
    if not _set(section, key):
        return None
    return reader.string(section, key, path, secret=True)


TLS_KEYS = ("cert_file", "cert", "key_file", "key", "client_ca_file", "client_ca", "client_auth_type")


def _read_tls(reader: _Reader, value: object) -> TlsServerConfig | None:
    path = "tls_server_config"
    section = reader.mapping(value, path, tuple(TlsServerConfig.__dataclass_fields__))
    # exporter-toolkit's TLSConfig.IsEnabled: any of these asks for TLS, so a client CA or policy
    # without a certificate is an error (never plain HTTP).
    if not any(_set(section, key) for key in TLS_KEYS):
        return None
    for a, b in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if _set(section, a) and _set(section, b):
            raise ConfigError(f"{path}.{a}", f"set either {a} or {b}, not both")
    if not _set(section, "cert") and not _set(section, "cert_file"):
        raise ConfigError(f"{path}.cert_file", "missing one of cert or cert_file")
    if not _set(section, "key") and not _set(section, "key_file"):
        raise ConfigError(f"{path}.key_file", "missing one of key or key_file")
    auth = section.get("client_auth_type") or "NoClientCert"
    if auth in UNHONOURABLE_CLIENT_AUTH:
        raise ConfigError(
            f"{path}.client_auth_type",
            f"{auth} (accept any client certificate without verifying it) cannot be honoured by "
            "Python's ssl, which verifies every certificate; use RequireAndVerifyClientCert with "
            "client_ca_file",
        )
    config = TlsServerConfig(
        cert_file=_path(reader, section, "cert_file", path),
        key_file=_path(reader, section, "key_file", path),
        cert=_pem(reader, section, "cert", path),
        key=Secret(key) if (key := _pem(reader, section, "key", path)) is not None else None,
        client_ca_file=_path(reader, section, "client_ca_file", path),
        client_ca=_pem(reader, section, "client_ca", path),
        client_auth_type=reader.choice(
            {"client_auth_type": auth}, "client_auth_type", path, "NoClientCert", tuple(CLIENT_AUTH_TYPES)
        ),
        client_allowed_sans=reader.strings(section, "client_allowed_sans", path),
        min_version=reader.choice(section, "min_version", path, "TLS12", tuple(TLS_VERSIONS)),
        max_version=reader.choice(section, "max_version", path, "TLS13", tuple(TLS_VERSIONS)),
        cipher_suites=reader.strings(section, "cipher_suites", path),
        prefer_server_cipher_suites=reader.boolean(section, "prefer_server_cipher_suites", path, True),
        curve_preferences=reader.strings(section, "curve_preferences", path),
    )
    if TLS_VERSIONS[config.min_version] > TLS_VERSIONS[config.max_version]:
        raise ConfigError(f"{path}.min_version", "is higher than max_version")
    has_ca = config.client_ca_file is not None or config.client_ca is not None
    if has_ca and config.client_auth_type == "NoClientCert":
        raise ConfigError(
            f"{path}.client_ca_file",
            "client CA's have been configured without a Client Auth Policy (set client_auth_type, "
            "e.g. RequireAndVerifyClientCert)",
        )
    if config.client_allowed_sans and CLIENT_AUTH_TYPES[config.client_auth_type] != ssl.CERT_REQUIRED:
        raise ConfigError(f"{path}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    for index, name in enumerate(config.cipher_suites):
        if name not in GO_CIPHER_SUITES and name not in GO_TLS13_SUITES:
            raise ConfigError(f"{path}.cipher_suites[{index}]", f'unknown cipher: "{name}"')
    if config.cipher_suites and not _tls12_suites(config) and config.max_version != "TLS13":
        raise ConfigError(f"{path}.cipher_suites", "has no TLS 1.2 cipher suite and max_version is not TLS13")
    for index, name in enumerate(config.curve_preferences):
        if name not in GO_CURVES:
            raise ConfigError(f"{path}.curve_preferences[{index}]", f'unknown curve: "{name}"')
    if config.curve_preferences and _curve(config) is None:
        raise ConfigError(
            f"{path}.curve_preferences",
            f"[{', '.join(config.curve_preferences)}] cannot be enforced by Python's ssl, which can "
            "restrict the key exchange to one NIST curve only (CurveP256, CurveP384 or CurveP521); "
            "remove curve_preferences or list exactly one of those",
        )
    return config


def _tls12_suites(tls: TlsServerConfig) -> list[str]:
    return [GO_CIPHER_SUITES[name] for name in tls.cipher_suites if name in GO_CIPHER_SUITES]


def _curve(tls: TlsServerConfig) -> str | None:
    """The one OpenSSL curve to restrict handshakes to; None when none can express the setting."""
    if len(tls.curve_preferences) != 1:
        return None
    return GO_CURVES[tls.curve_preferences[0]]


def _read_headers(reader: _Reader, value: object) -> tuple[tuple[str, str], ...]:
    path = "http_server_config.headers"
    section = reader.mapping(value, path, tuple(RESPONSE_HEADERS))
    headers = []
    for name, accepted in RESPONSE_HEADERS.items():
        raw = section.get(name)
        if raw in (None, ""):
            continue
        if isinstance(raw, bool):  # Go's YAML reads any scalar into a string header value
            raw = "true" if raw else "false"
        text = str(raw) if isinstance(raw, int | float) else reader.string(section, name, path)
        if not text.isprintable() or len(text) > 4096:
            raise ConfigError(f"{path}.{name}", "must be printable text of at most 4096 characters")
        if accepted is not None and text.lower() not in accepted:
            raise ConfigError(f"{path}.{name}", f"must be one of {', '.join(accepted)}")
        headers.append((name, text))
    return tuple(headers)


def _read_users(reader: _Reader, value: object) -> dict[str, bytes]:
    path = "basic_auth_users"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            path, f"must be a mapping of user names to bcrypt hashes, got {type(value).__name__}"
        )
    if len(value) > MAX_USERS:
        raise ConfigError(path, f"more than {MAX_USERS} users")
    users = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user or ":" in user or not user.isprintable():
            raise ConfigError(path, "user names must be printable text without ':'")
        if len(user) > 200:
            raise ConfigError(path, "user names must be at most 200 characters")
        where = f"{path}.{user}"
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise ConfigError(where, "must be a bcrypt hash ($2y$10$... as made by htpasswd -nBC 10)")
        if not MIN_COST <= bcrypt_cost(hashed.encode("ascii")) <= MAX_COST:
            raise ConfigError(where, f"bcrypt cost must be between {MIN_COST} and {MAX_COST}")
        users[user] = hashed.encode("ascii")
    return users


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


def _duplicate_key(node: yaml.Node, where: str = "") -> str | None:
    """The path of the first key written twice in one mapping (PyYAML keeps the last silently; Go's
    YAML refuses). A user listed twice would otherwise have one of their two hashes ignored."""
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, child in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            at = f"{where}.{name}" if where else str(name)
            if name is not None and name in seen:
                return at
            seen.add(name)
            found = _duplicate_key(child, at)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            found = _duplicate_key(child, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def read_web_yaml(path: Path) -> object:
    """The file's YAML (bounded as the main configuration's), refusing a key written twice."""
    text, data = read_yaml_text(path, "web config file")
    if data is not None:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicate = _duplicate_key(node) if node is not None else None
        if duplicate is not None:
            what = "user listed twice" if duplicate.startswith("basic_auth_users.") else "key written twice"
            raise ConfigError(duplicate, what)
    return data


def parse_web_config(data: object, base_dir: Path) -> WebFileConfig:
    """Validate parsed YAML into a :class:`WebFileConfig` (paths relative to ``base_dir``)."""
    reader = _Reader({}, base_dir, expand_variables=False)
    top = reader.mapping(
        data, "", ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
    )
    http = reader.mapping(top.get("http_server_config"), "http_server_config", ("http2", "headers"))
    rate = reader.mapping(top.get("rate_limit"), "rate_limit", ("interval", "burst"))
    interval = 0.0
    if rate.get("interval") not in (None, 0, "0", "0s"):
        interval = reader.duration(rate, "interval", "rate_limit", 0.0)
    return WebFileConfig(
        tls=_read_tls(reader, top.get("tls_server_config")),
        http2=reader.boolean(http, "http2", "http_server_config", True),
        headers=_read_headers(reader, http.get("headers")),
        users=_read_users(reader, top.get("basic_auth_users")),
        rate_limit_interval=interval,
        rate_limit_burst=reader.number(rate, "burst", "rate_limit", 1 if interval else 0, int, 0, 1_000_000),
    )


def load_web_config(path: Path) -> WebFileConfig:
    """Read, validate and try out ``path``: certificates are loaded, so a bad one fails here."""
    config = parse_web_config(read_web_yaml(path), path.resolve().parent)
    if config.tls is not None:
        build_ssl_context(config.tls)
    return config


@contextmanager
def _as_file(pem: str) -> Iterator[str]:
    """OpenSSL loads server certificates and keys from files only: inline PEM goes through a private
    temporary file, removed at once."""
    handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
    try:
        os.chmod(handle.name, 0o600)
        handle.write(pem)
        handle.close()
        yield handle.name
    finally:
        handle.close()
        os.unlink(handle.name)


def apply_handshake_settings(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    """What a connection copies from its context when it starts: versions, suites, client auth."""
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.cipher_suites:
        suites = _tls12_suites(tls)
        if suites:
            context.set_ciphers(":".join(suites))
        else:  # only TLS 1.3 names: Go then has no suite left for TLS 1.2 and below
            context.minimum_version = ssl.TLSVersion.TLSv1_3
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]


def build_ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context from the settings; ConfigError (never a value from the files) if one is bad."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    where = "tls_server_config"
    try:
        apply_handshake_settings(context, tls)
        curve = _curve(tls)
        if curve is not None:  # never changed in place on reload: set_ecdh_curve cannot be undone
            context.set_ecdh_curve(curve)
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError(where, f"unusable settings ({type(error).__name__})") from None
    try:
        if tls.cert is not None or tls.key is not None:
            with _as_file(tls.cert or "") as cert_path, _as_file(tls.key.reveal() if tls.key else "") as key:
                context.load_cert_chain(
                    str(tls.cert_file) if tls.cert is None else cert_path,
                    str(tls.key_file) if tls.key is None else key,
                )
        else:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError, ValueError) as error:
        raise ConfigError(
            f"{where}.cert_file", f"cannot load the certificate and key: {_reason(error)}"
        ) from None
    try:
        if tls.client_ca is not None:
            context.load_verify_locations(cadata=tls.client_ca)
        elif tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        elif CLIENT_AUTH_TYPES[tls.client_auth_type] != ssl.CERT_NONE:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go: the system's roots
    except (OSError, ssl.SSLError, ValueError) as error:
        raise ConfigError(
            f"{where}.client_ca_file", f"cannot load the CA certificates: {_reason(error)}"
        ) from None
    return context


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return str(error.reason or "invalid PEM").lower().replace("_", " ")
    if isinstance(error, OSError):
        return f"{error.strerror or type(error).__name__}{f' ({error.filename})' if error.filename else ''}"
    return type(error).__name__


Stamp = tuple[tuple[int, int, int, int] | None, ...]


def _stamp(paths: tuple[Path, ...]) -> Stamp:
    """(device, inode, size, mtime) of each file: a change means it must be read again. A Kubernetes
    Secret update swaps a symlink, which changes the inode."""
    stamps: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(stamps)


@dataclass(frozen=True)
class Loaded:
    config: WebFileConfig
    stamp: Stamp
    ssl_context: ssl.SSLContext | None


def _client_auth_level(config: WebFileConfig) -> tuple[bool, int, bool]:
    """(basic auth on, client-certificate verification, allowed names on): what a reload may not lower."""
    tls = config.tls
    mode = CLIENT_AUTH_TYPES[tls.client_auth_type] if tls is not None else ssl.CERT_NONE
    return bool(config.users), int(mode), bool(tls is not None and tls.client_allowed_sans)


def reload_refusal(old: WebFileConfig, new: WebFileConfig) -> str | None:
    """Why ``new`` may not replace ``old`` at run time (None: it may). Reloads fail closed: a truncated
    or half-written file must never switch TLS or authentication off."""
    if (old.tls is None) != (new.tls is None):
        return "turning TLS on or off needs a restart"
    if any(
        after < before for before, after in zip(_client_auth_level(old), _client_auth_level(new), strict=True)
    ):
        return (
            "lowering authentication (basic_auth_users, client_auth_type, client_allowed_sans) "
            "needs a restart"
        )
    if old.tls is not None and new.tls is not None and old.tls.curve_preferences != new.tls.curve_preferences:
        return "changing curve_preferences needs a restart"
    return None


RELOAD_RESULTS = ("success", "failure")


class WebConfigSource:
    """The web config file and the files it names, re-read when any of them changes (checked on
    each new connection and each request: a few stat() calls). A file that stops being valid (empty,
    unreadable, invalid, or lowering security: see :func:`reload_refusal`) is logged once, counted in
    ``reloads["failure"]``, and the last good configuration stays in force. An empty file means "no
    TLS, no auth" only at start."""

    def __init__(
        self,
        path: Path,
        reloads: dict[str, int] | None = None,
        on_reload: Callable[[], object] | None = None,
    ) -> None:
        self.path = path
        self._loaded = self._load(self._watched(None), at_start=True)
        self._rejected: Stamp | None = None
        self._listener_context: ssl.SSLContext | None = None
        self.reloads = reloads if reloads is not None else dict.fromkeys(RELOAD_RESULTS, 0)
        self.on_reload = on_reload  # told after each counted reload (the /metrics cache)

    def _watched(self, config: WebFileConfig | None) -> tuple[Path, ...]:
        files = config.tls.files() if config is not None and config.tls is not None else ()
        return (self.path, *files)

    def _load(self, before: tuple[Path, ...], at_start: bool = False) -> Loaded:
        stamp_before = _stamp(before)
        data = read_web_yaml(self.path)
        if data is None and not at_start:
            raise ConfigError("", "the file is empty (an empty file means no TLS and no auth only at start)")
        config = parse_web_config(data, self.path.resolve().parent)
        context = build_ssl_context(config.tls) if config.tls is not None else None
        watched = self._watched(config)
        stamp = stamp_before if watched == before else _stamp(watched)
        return Loaded(config, stamp, context)

    @property
    def tls(self) -> bool:
        return self._loaded.config.tls is not None

    def current(self) -> Loaded:
        watched = self._watched(self._loaded.config)
        stamp = _stamp(watched)
        if stamp == self._loaded.stamp or stamp == self._rejected:
            return self._loaded
        try:
            loaded = self._load(watched)
            refusal = reload_refusal(self._loaded.config, loaded.config)
            if refusal is not None:
                raise ConfigError("", refusal)
        except ConfigError as error:
            self._rejected = stamp
            self._count("failure")
            logger.warning(
                "web config not reloaded, keeping the previous one",
                extra={"file": str(self.path), "error": str(error)},
            )
            return self._loaded
        self._loaded, self._rejected = loaded, None
        if self._listener_context is not None and loaded.config.tls is not None:
            apply_handshake_settings(self._listener_context, loaded.config.tls)
        self._count("success")
        logger.info("web config reloaded", extra={"file": str(self.path)})
        return loaded

    def _count(self, result: str) -> None:
        self.reloads[result] += 1
        if self.on_reload is not None:
            self.on_reload()

    def listener_context(self) -> ssl.SSLContext | None:
        """The context the listener is built with. Settings a connection copies when it starts are
        updated in place on reload; its certificate and CA store are swapped for the current ones
        during each handshake (the server-name callback runs on every ClientHello, SNI or not)."""
        loaded = self._loaded
        if loaded.config.tls is None or loaded.ssl_context is None:
            return None
        context = build_ssl_context(loaded.config.tls)

        def swap(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            current = self.current().ssl_context
            if current is not None:
                ssl_object.context = current

        context.sni_callback = swap
        self._listener_context = context
        return context
