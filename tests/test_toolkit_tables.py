"""exporter-toolkit's own web-config test tables (web/tls_config_test.go, web/handler_test.go), row by
row, against our server: each test is named after the Go test it mirrors, and checks the same outcome:
served, request refused, or refused at start (and by --check-config) with a message naming the setting.
The YAML files, certificates and keys are the toolkit's, vendored in tests/data/exporter-toolkit/.

Rows where we deliberately differ say so in ``differs`` (docs/configuration.md gives the reasons)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from aiohttp import web

from exporter.cli import main
from exporter.config import ConfigError
from exporter.listener import start_site
from exporter.webconfig import WebConfigSource, load_web_config, parse_web_config
from exporter.webguard import install
from tests.support.net import LOOPBACK

DATA = Path(__file__).parent / "data" / "exporter-toolkit"
HELLO = "Hello World!"
SERVED, REFUSED, AT_START = "served", "request refused", "refused at start"


@dataclass(frozen=True)
class Row:
    go_test: str
    name: str
    yaml: str  # "" is no web config, as the toolkit's empty YAMLConfigPath
    outcome: str
    message: str = ""  # for AT_START: a part of the error, which names the setting
    tls_client: bool = False
    client_max_tls: ssl.TLSVersion | None = None
    ciphers: str = ""  # OpenSSL names of the client's TLS 1.2 suites
    actual_cipher: str = ""
    curve: str = ""
    user: str = ""
    password: str = ""
    client_cert: str = ""
    requests: int = 0  # as the Go test: requests + 1 requests
    differs: str = ""  # why our outcome is not the toolkit's

    @property
    def id(self) -> str:
        return f"{self.go_test}/{self.name}" + (" [differs]" if self.differs else "")


SERVER_CERT = ssl.PEM_cert_to_DER_cert((DATA / "server.crt").read_text())


def client_context(row: Row) -> ssl.SSLContext:
    """The toolkit's TLS client. Its CA chain has only "any" extended key usage, which Go accepts and
    OpenSSL refuses for a server: the server certificate is pinned instead (checked per response)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if row.client_cert:
        context.load_cert_chain(str(DATA / f"{row.client_cert}.pem"), str(DATA / f"{row.client_cert}.key"))
    if row.client_max_tls is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = row.client_max_tls
        context.set_ciphers("ALL:@SECLEVEL=0")
    if row.ciphers:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(row.ciphers)
    if row.curve:
        context.set_ecdh_curve(row.curve)
    return context


async def hello(_: web.Request) -> web.Response:
    return web.Response(text=HELLO)


@asynccontextmanager
async def serving(config: Path | None) -> AsyncIterator[tuple[str, WebConfigSource | None]]:
    """Our server, as the exporter starts it, with the toolkit's Hello World handler; ConfigError when
    it refuses to start."""
    source = WebConfigSource(config) if config is not None else None
    app = web.Application()
    app.router.add_get("/", hello)
    if source is not None:
        install(app, source)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = await start_site(
            runner,
            LOOPBACK,
            0,
            64,
            source.listener_context() if source is not None else None,
            10.0,
            source.current if source is not None else None,
        )
        scheme = "https" if source is not None and source.tls else "http"
        yield f"{scheme}://{LOOPBACK}:{site.port}", source
    finally:
        await runner.cleanup()


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """--check-config, as the toolkit's Validate()."""
    code = main(["--web.config.file", str(path), "--check-config"])
    out, err = capsys.readouterr()
    return code, out + err


def staged(tmp_path: Path, name: str) -> Path:
    """The toolkit's testdata in a directory of the test's own (a reload test rewrites a file)."""
    directory = tmp_path / "testdata"
    if not directory.exists():
        shutil.copytree(DATA, directory)
    return directory / name


async def request(url: str, row: Row) -> httpx.Response:
    verify: ssl.SSLContext | bool = client_context(row) if row.tls_client else False
    auth = (row.user, row.password) if row.user else None
    scheme_url = url.replace("http://", "https://") if row.tls_client else url.replace("https://", "http://")
    async with httpx.AsyncClient(verify=verify, timeout=10.0) as client:
        return await client.get(scheme_url + "/", auth=auth)


async def outcome(row: Row, tmp_path: Path) -> str:
    try:
        async with serving(staged(tmp_path, row.yaml) if row.yaml else None) as (url, _):
            for _ in range(row.requests + 1):
                try:
                    response = await request(url, row)
                except (httpx.TransportError, ssl.SSLError):
                    return REFUSED
                if response.status_code != 200:
                    return REFUSED
                assert response.text == HELLO
                tls = response.extensions["network_stream"].get_extra_info("ssl_object")
                if row.tls_client:
                    assert tls.getpeercert(binary_form=True) == SERVER_CERT
                if row.actual_cipher:
                    assert tls.cipher()[0] == row.actual_cipher
            return SERVED
    except ConfigError as error:
        message = str(error)
    assert row.message, message
    assert row.message in message, message
    return AT_START


YAML_FILES = "TestYAMLFiles"
YAML_ROWS = [
    Row(YAML_FILES, "path to config yml invalid", "somefile", AT_START, "No such file"),
    Row(YAML_FILES, "empty config yml", "web_config_empty.yml", SERVED),
    Row(
        YAML_FILES,
        "invalid config yml (invalid structure)",
        "web_config_junk.yml",
        AT_START,
        "must be a mapping",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (invalid key)",
        "web_config_junk_key.yml",
        AT_START,
        "cert_filse: unknown key",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (cert path empty)",
        "web_config_noAuth_certPath_empty.bad.yml",
        AT_START,
        "missing one of cert or cert_file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (cert empty)",
        "web_config_noAuth_cert_empty.bad.yml",
        AT_START,
        "missing one of cert or cert_file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (key path empty)",
        "web_config_noAuth_keyPath_empty.bad.yml",
        AT_START,
        "missing one of key or key_file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (key empty)",
        "web_config_noAuth_key_empty.bad.yml",
        AT_START,
        "missing one of key or key_file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (cert path and key path empty)",
        "web_config_noAuth_certPath_keyPath_empty.bad.yml",
        AT_START,
        "missing one of cert or cert_file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (cert path invalid)",
        "web_config_noAuth_certPath_invalid.bad.yml",
        AT_START,
        "No such file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (key path invalid)",
        "web_config_noAuth_keyPath_invalid.bad.yml",
        AT_START,
        "No such file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (cert path and key path invalid)",
        "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
        AT_START,
        "No such file",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (invalid ClientAuth)",
        "web_config_noAuth.bad.yml",
        AT_START,
        "client CA's have been configured without a Client Auth Policy",
    ),
    # The toolkit reads the missing CA file first; we name the missing policy first. Both refuse.
    Row(
        YAML_FILES,
        "invalid config yml (invalid ClientCAs filepath)",
        "web_config_auth_clientCAs_invalid.bad.yml",
        AT_START,
        "client_ca_file: client CA's have been configured without a Client Auth Policy",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (invalid user list)",
        "web_config_auth_user_list_invalid.bad.yml",
        AT_START,
        "basic_auth_users.john: must be a bcrypt hash",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (bad cipher)",
        "web_config_noAuth_inventedCiphers.bad.yml",
        AT_START,
        "unknown cipher",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (bad curves)",
        "web_config_noAuth_inventedCurves.bad.yml",
        AT_START,
        "unknown curve",
    ),
    Row(
        YAML_FILES,
        "invalid config yml (bad TLS version)",
        "web_config_noAuth_wrongTLSVersion.bad.yml",
        AT_START,
        'min_version: "TLS111" is not one of',
    ),
]

BEHAVIOUR = "TestServerBehaviour"
GOOD = "web_config_noAuth.good.yml"
SOME_CIPHERS = "web_config_noAuth_someCiphers.good.yml"
REQUIRE_ANY = "tls_config_noAuth.requireanyclientcert.good.yml"
REQUIRE_ANY_REASON = "Python's ssl verifies every client certificate: RequireAnyClientCert is refused"
BEHAVIOUR_ROWS = [
    Row(BEHAVIOUR, "empty string YAMLConfigPath and default client", "", SERVED),
    Row(BEHAVIOUR, "empty string YAMLConfigPath and TLS client", "", REFUSED, tls_client=True),
    Row(BEHAVIOUR, "valid tls config yml and default client", GOOD, REFUSED),
    Row(BEHAVIOUR, "valid tls config yml and tls client", GOOD, SERVED, tls_client=True),
    Row(
        BEHAVIOUR,
        "valid tls config yml (cert and key inline) and tls client",
        "web_config_noAuth_tlsInline.good.yml",
        SERVED,
        tls_client=True,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with TLS 1.1 client",
        GOOD,
        REFUSED,
        tls_client=True,
        client_max_tls=ssl.TLSVersion.TLSv1_1,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with all ciphers",
        "web_config_noAuth_allCiphers.good.yml",
        SERVED,
        tls_client=True,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with some ciphers",
        SOME_CIPHERS,
        SERVED,
        tls_client=True,
        ciphers="ECDHE-RSA-AES128-GCM-SHA256",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with no common cipher",
        SOME_CIPHERS,
        REFUSED,
        tls_client=True,
        ciphers="ECDHE-RSA-AES256-SHA",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with multiple client ciphers",
        SOME_CIPHERS,
        SERVED,
        tls_client=True,
        ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        actual_cipher="ECDHE-RSA-AES128-GCM-SHA256",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with multiple client ciphers, client chooses cipher",
        "web_config_noAuth_someCiphers_noOrder.good.yml",
        SERVED,
        tls_client=True,
        ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        actual_cipher="ECDHE-RSA-AES128-GCM-SHA256",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with all curves",
        "web_config_noAuth_allCurves.good.yml",
        AT_START,
        "curve_preferences: [CurveP256, CurveP384, CurveP521, X25519] cannot be enforced",
        tls_client=True,
        differs="Python's ssl can restrict the key exchange to one NIST curve only: a list is refused",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with some curves",
        "web_config_noAuth_someCurves.good.yml",
        SERVED,
        tls_client=True,
        curve="secp521r1",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with no common curves",
        "web_config_noAuth_someCurves.good.yml",
        REFUSED,
        tls_client=True,
        curve="secp384r1",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with non-http2 ciphers",
        "web_config_noAuth_noHTTP2.good.yml",
        SERVED,
        tls_client=True,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml with non-http2 ciphers but http2 enabled",
        "web_config_noAuth_noHTTP2Cipher.bad.yml",
        SERVED,
        tls_client=True,
        differs="HTTP/2-only: we speak HTTP/1.1, so no suite is required for HTTP/2",
    ),
    Row(BEHAVIOUR, "valid headers config", "web_config_headers.good.yml", SERVED),
    Row(
        BEHAVIOUR,
        "invalid X-Content-Type-Options headers config",
        "web_config_headers_content_type_options.bad.yml",
        AT_START,
        "X-Content-Type-Options: must be one of nosniff",
    ),
    Row(
        BEHAVIOUR,
        "invalid X-Frame-Options headers config",
        "web_config_headers_frame_options.bad.yml",
        AT_START,
        "X-Frame-Options: must be one of deny, sameorigin",
    ),
    Row(
        BEHAVIOUR,
        "HTTP header that can not be overridden",
        "web_config_headers_extra_header.bad.yml",
        AT_START,
        "headers.Content-Type: unknown key",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml and tls client with RequireAnyClientCert (present certificate)",
        REQUIRE_ANY,
        AT_START,
        "client_auth_type: RequireAnyClientCert",
        tls_client=True,
        client_cert="client_selfsigned",
        differs=REQUIRE_ANY_REASON,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml (cert from file, key inline) and tls client with RequireAnyClientCert "
        "(present certificate)",
        REQUIRE_ANY,  # sic: the Go row names this file, not ...keyinline.good.yml
        AT_START,
        "client_auth_type: RequireAnyClientCert",
        tls_client=True,
        client_cert="client_selfsigned",
        differs=REQUIRE_ANY_REASON,
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml and tls client with RequireAndVerifyClientCert (present certificate)",
        "tls_config_noAuth.requireandverifyclientcert.good.yml",
        SERVED,
        tls_client=True,
        client_cert="client_selfsigned",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml and tls client with VerifyPeerCertificate (present good SAN DNS entry)",
        "web_config_auth_client_san.good.yaml",
        SERVED,
        tls_client=True,
        client_cert="client2_selfsigned",
    ),
    Row(
        BEHAVIOUR,
        "valid tls config yml and tls client with VerifyPeerCertificate (present invalid SAN DNS entries)",
        "web_config_auth_client_san.bad.yaml",
        REFUSED,
        tls_client=True,
        client_cert="client2_selfsigned",
    ),
    Row(
        BEHAVIOUR,
        "valid rate limiter (no rate limiter set up) that doesn't block",
        "web_config_rate_limiter_nonblocking.yaml",
        SERVED,
        requests=10,
    ),
    Row(
        BEHAVIOUR,
        "valid rate limiter with an interval of one second",
        "web_config_rate_limiter_one_second.yaml",
        REFUSED,
        requests=10,
    ),
]

USERS = "TestUsers"
USERS_ROWS = [
    Row(USERS, "without basic auth", "web_config_users_noTLS.good.yml", REFUSED),
    Row(
        USERS,
        "with correct basic auth",
        "web_config_users_noTLS.good.yml",
        SERVED,
        user="dave",
        password="dave123",
    ),
    Row(USERS, "without basic auth and TLS", "web_config_users.good.yml", REFUSED, tls_client=True),
    Row(
        USERS,
        "with correct basic auth and TLS",
        "web_config_users.good.yml",
        SERVED,
        tls_client=True,
        user="dave",
        password="dave123",
    ),
    Row(
        USERS,
        "with another correct basic auth and TLS",
        "web_config_users.good.yml",
        SERVED,
        tls_client=True,
        user="carol",
        password="carol123",
    ),
    Row(
        USERS,
        "with bad password and TLS",
        "web_config_users.good.yml",
        REFUSED,
        tls_client=True,
        user="dave",
        password="bad",
    ),
    Row(
        USERS,
        "with bad username and TLS",
        "web_config_users.good.yml",
        REFUSED,
        tls_client=True,
        user="nonexistent",
        password="nonexistent",
    ),
]

ALL_ROWS = YAML_ROWS + BEHAVIOUR_ROWS + USERS_ROWS


@pytest.mark.parametrize("row", ALL_ROWS, ids=[row.id for row in ALL_ROWS])
async def test_toolkit_row(row: Row, tmp_path: Path) -> None:
    assert await outcome(row, tmp_path) == row.outcome


FILE_ROWS = [row for row in ALL_ROWS if row.yaml]


@pytest.mark.parametrize("row", FILE_ROWS, ids=[row.id for row in FILE_ROWS])
def test_toolkit_row_validate(row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TestYAMLFiles' validate/ half, for every row's file: --check-config refuses exactly the files the
    server refuses to start with, with the same message."""
    code, output = validate(staged(tmp_path, row.yaml), capsys)
    if row.outcome == AT_START:
        assert code == 2, output
        assert row.message in output, output
    else:
        assert code == 0, output


BLOCKING_TEXT = (DATA / "web_config_noAuth.good.blocking.yml").read_bytes() + b"\n"


async def test_TestConfigReloading(tmp_path: Path) -> None:
    """The toolkit starts with a config requiring a client certificate, then swaps in one that does
    not, and expects the next connection served. We fail closed instead: a reload that lowers
    authentication is refused and counted, and takes effect at the next start."""
    good, blocking = staged(tmp_path, GOOD), staged(tmp_path, "web_config_noAuth.good.blocking.yml")
    row = Row("TestConfigReloading", "", "", SERVED, tls_client=True)
    async with serving(blocking) as (url, source):
        assert source is not None
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            await request(url, row)
        blocking.write_bytes(good.read_bytes())
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            await request(url, row)
        assert source.reloads == {"success": 0, "failure": 1}
    async with serving(blocking) as (url, _):
        assert (await request(url, row)).text == HELLO  # the same file, after a restart
    # A reload that raises the requirement applies at once, as in the toolkit.
    blocking.write_bytes(good.read_bytes())
    async with serving(good) as (url, source):
        assert source is not None
        assert (await request(url, row)).text == HELLO
        good.write_bytes(BLOCKING_TEXT)
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            await request(url, row)
        assert source.reloads == {"success": 1, "failure": 0}


@pytest.mark.parametrize(
    ("name", "config", "enabled"),
    [
        ("empty config", {}, False),
        (
            "only non-enabling fields set",
            {"min_version": "TLS12", "prefer_server_cipher_suites": True},
            False,
        ),
        ("cert_file and key_file set", {"cert_file": "server.crt", "key_file": "server.key"}, True),
        ("inline cert and key set", {"cert": "cert", "key": "key"}, True),
        ("only client CA file set", {"client_ca_file": "client_ca.crt"}, True),
        ("only client auth type set", {"client_auth_type": "RequireAndVerifyClientCert"}, True),
    ],
)
def test_TestTLSConfigIsEnabled(name: str, config: dict[str, object], enabled: bool) -> None:
    """Enabled means "TLS is asked for": served over TLS, or refused at start when incomplete, never
    served as plain HTTP."""
    if config.get("cert") or config.get("cert_file"):
        assert parse_web_config({"tls_server_config": config}, DATA).tls is not None
    elif enabled:
        with pytest.raises(ConfigError, match="missing one of cert or cert_file"):
            parse_web_config({"tls_server_config": config}, DATA)
    else:
        assert parse_web_config({"tls_server_config": config}, DATA).tls is None


USERS_NO_TLS = "web_config_users_noTLS.good.yml"


async def login(client: httpx.AsyncClient, url: str, user: str, password: str) -> int:
    return (await client.get(url + "/", auth=(user, password))).status_code


async def test_TestBasicAuthCache(tmp_path: Path) -> None:
    """Right passwords are always served; wrong ones are refused, with 401 or, once the per-client
    failure limit is reached, 429 (the toolkit has no such limit: always 401)."""
    async with serving(staged(tmp_path, USERS_NO_TLS)) as (url, _), httpx.AsyncClient(timeout=60.0) as client:
        assert await login(client, url, "alice", "alice123") == 200
        assert await login(client, url, "alice", "alice1234") == 401
        right = [login(client, url, "alice", "alice123") for _ in range(150)]
        wrong = [login(client, url, "alice", "alice1234") for _ in range(150)]
        codes = await asyncio.gather(*(code for pair in zip(right, wrong, strict=True) for code in pair))
    assert codes[0::2] == [200] * 150
    assert set(codes[1::2]) <= {401, 429}
    assert 429 in codes[1::2]


async def test_TestBasicAuthWithFakepassword(tmp_path: Path) -> None:
    async with serving(staged(tmp_path, USERS_NO_TLS)) as (url, _), httpx.AsyncClient(timeout=30.0) as client:
        assert await login(client, url, "fakeuser", "fakepassword") == 401  # cold cache
        assert await login(client, url, "fakeuser", "fakepassword") == 401


async def test_TestByPassBasicAuthVuln(tmp_path: Path) -> None:
    """CVE-2022-46146: a cache poisoned through the user name must not let a hash in as a password."""
    hashed = "$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby"
    async with serving(staged(tmp_path, USERS_NO_TLS)) as (url, _), httpx.AsyncClient(timeout=30.0) as client:
        assert await login(client, url, "alice" + hashed, "fakepassword") == 401
        fake = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSifakepassword"
        assert await login(client, url, "alice", fake) == 401


def test_every_vendored_yaml_file_is_valid_yaml() -> None:
    """The vendored files stay byte-identical YAML documents (the junk one is a plain scalar)."""
    for path in sorted(DATA.glob("*.y*ml")):
        yaml.safe_load(path.read_text())
    assert load_web_config(DATA / GOOD).tls is not None
