"""``--web.config.file``: exporter-toolkit's web configuration (TLS, client certificates, response
headers, bcrypt basic auth, rate limit), validated, and re-read when it or a file it names changes."""

from __future__ import annotations

import logging
import os
import re
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config import ConfigError, Secret, _Reader, read_yaml_file

logger = logging.getLogger("exporter.web")

# exporter-toolkit's client_auth_type values (Go's tls.ClientAuthType). Python's TLS cannot accept a
# client certificate without verifying it, so "RequireAnyClientCert" verifies it against client_ca
# (stricter than Go), and "RequestClientCert" asks for none (the exporter never uses an unverified one).
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's names of the TLS 1.2 suites it supports → OpenSSL's names (TLS 1.3 suites are not configurable).
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
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
# Accepted for compatibility; OpenSSL's own curve preferences are used.
GO_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768")
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


def _path(reader: _Reader, section: dict[str, Any], key: str, path: str) -> Path | None:
    if section.get(key) is None:
        return None
    value = Path(reader.string(section, key, path))
    return value if value.is_absolute() else reader.base_dir / value


def _pem(reader: _Reader, section: dict[str, Any], key: str, path: str) -> str | None:
    if section.get(key) is None:
        return None
    return reader.string(section, key, path, secret=True)


def _read_tls(reader: _Reader, value: object) -> TlsServerConfig | None:
    path = "tls_server_config"
    section = reader.mapping(value, path, tuple(TlsServerConfig.__dataclass_fields__))
    config = TlsServerConfig(
        cert_file=_path(reader, section, "cert_file", path),
        key_file=_path(reader, section, "key_file", path),
        cert=_pem(reader, section, "cert", path),
        key=Secret(key) if (key := _pem(reader, section, "key", path)) is not None else None,
        client_ca_file=_path(reader, section, "client_ca_file", path),
        client_ca=_pem(reader, section, "client_ca", path),
        client_auth_type=reader.choice(
            section, "client_auth_type", path, "NoClientCert", tuple(CLIENT_AUTH_TYPES)
        ),
        client_allowed_sans=reader.strings(section, "client_allowed_sans", path),
        min_version=reader.choice(section, "min_version", path, "TLS12", tuple(TLS_VERSIONS)),
        max_version=reader.choice(section, "max_version", path, "TLS13", tuple(TLS_VERSIONS)),
        cipher_suites=reader.strings(section, "cipher_suites", path),
        prefer_server_cipher_suites=reader.boolean(section, "prefer_server_cipher_suites", path, True),
        curve_preferences=reader.strings(section, "curve_preferences", path),
    )
    has_cert = config.cert_file is not None or config.cert is not None
    has_key = config.key_file is not None or config.key is not None
    if not has_cert and not has_key:
        return None  # as in exporter-toolkit: no certificate, no TLS
    for a, b in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if section.get(a) is not None and section.get(b) is not None:
            raise ConfigError(f"{path}.{a}", f"set either {a} or {b}, not both")
    if not has_cert:
        raise ConfigError(f"{path}.cert_file", "is required when a key is set")
    if not has_key:
        raise ConfigError(f"{path}.key_file", "is required when a certificate is set")
    if TLS_VERSIONS[config.min_version] > TLS_VERSIONS[config.max_version]:
        raise ConfigError(f"{path}.min_version", "is higher than max_version")
    verifies = CLIENT_AUTH_TYPES[config.client_auth_type] != ssl.CERT_NONE
    has_ca = config.client_ca_file is not None or config.client_ca is not None
    if verifies and not has_ca:
        raise ConfigError(
            f"{path}.client_ca_file", f"is required with client_auth_type {config.client_auth_type}"
        )
    if config.client_allowed_sans and CLIENT_AUTH_TYPES[config.client_auth_type] != ssl.CERT_REQUIRED:
        raise ConfigError(
            f"{path}.client_allowed_sans",
            "needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert)",
        )
    for key, names, known, what in (
        ("cipher_suites", config.cipher_suites, GO_CIPHER_SUITES, "a supported cipher suite"),
        ("curve_preferences", config.curve_preferences, GO_CURVES, "a known curve"),
    ):
        for index, name in enumerate(names):
            if name not in known:
                raise ConfigError(f"{path}.{key}[{index}]", f'"{name}" is not {what}')
    return config


def _read_headers(reader: _Reader, value: object) -> tuple[tuple[str, str], ...]:
    path = "http_server_config.headers"
    section = reader.mapping(value, path, tuple(RESPONSE_HEADERS))
    headers = []
    for name, accepted in RESPONSE_HEADERS.items():
        if section.get(name) in (None, ""):
            continue
        text = reader.string(section, name, path)
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
        users[user] = hashed.encode("ascii")
    return users


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
    config = parse_web_config(
        read_yaml_file(path, "web config file", allow_empty=True), path.resolve().parent
    )
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
        context.set_ciphers(":".join(GO_CIPHER_SUITES[name] for name in tls.cipher_suites))
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


class WebConfigSource:
    """The web config file and the files it names, re-read when any of them changes (checked on
    each new connection and each request: a few stat() calls). A file that stops being valid is
    logged once and the last good configuration stays in force."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded = self._load(self._watched(None))
        self._rejected: Stamp | None = None
        self._listener_context: ssl.SSLContext | None = None

    def _watched(self, config: WebFileConfig | None) -> tuple[Path, ...]:
        files = config.tls.files() if config is not None and config.tls is not None else ()
        return (self.path, *files)

    def _load(self, before: tuple[Path, ...]) -> Loaded:
        stamp_before = _stamp(before)
        config = parse_web_config(
            read_yaml_file(self.path, "web config file", allow_empty=True), self.path.resolve().parent
        )
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
            if (loaded.config.tls is None) != (self._loaded.config.tls is None):
                raise ConfigError("tls_server_config", "turning TLS on or off needs a restart")
        except ConfigError as error:
            self._rejected = stamp
            logger.warning(
                "web config not reloaded, keeping the previous one",
                extra={"file": str(self.path), "error": str(error)},
            )
            return self._loaded
        self._loaded, self._rejected = loaded, None
        if self._listener_context is not None and loaded.config.tls is not None:
            apply_handshake_settings(self._listener_context, loaded.config.tls)
        logger.info("web config reloaded", extra={"file": str(self.path)})
        return loaded

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
