"""--web.config.file validation with --check-config: exporter-toolkit's keys, clean one-line errors,
no secret (password hash, inline key) ever echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.webconfig import load_web_config
from tests.support.certs import Issued, issue, make_ca

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
ERROR_PREFIX = "captaindata-exporter: configuration error: "


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Issued | Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "ca")
    other = make_ca(directory, "other")
    return {
        "ca": ca.cert,
        "server": issue(ca, directory, "server", server=True, names=("127.0.0.1",)),
        "other": issue(other, directory, "other-server", server=True, names=("127.0.0.1",)),
    }


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], web: Any, raw: bool = False) -> str:
    path = tmp_path / "web.yml"
    path.write_text(web if raw else yaml.safe_dump(web))
    code = main(["--web.config.file", str(path), "--check-config"])
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert len(lines) == 1, out + err
    if code == 0:
        return "OK"
    assert code == 2
    assert lines[0].startswith(ERROR_PREFIX + str(path) + ": "), lines[0]
    return lines[0].removeprefix(ERROR_PREFIX + str(path) + ": ")


def tls(certs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    server = certs["server"]
    return {"tls_server_config": {"cert_file": str(server.cert), "key_file": str(server.key), **extra}}


def test_valid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], certs: dict[str, Any]) -> None:
    assert check(tmp_path, capsys, {"basic_auth_users": {"alice": HASH}}) == "OK"
    full = tls(
        certs,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(certs["ca"]),
        client_allowed_sans=["prometheus"],
        min_version="TLS13",
        max_version="TLS13",
        cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
        prefer_server_cipher_suites=False,
        curve_preferences=["CurveP384"],
    )
    full["http_server_config"] = {"http2": False, "headers": {"X-Content-Type-Options": "nosniff"}}
    full["basic_auth_users"] = {"alice": HASH}
    full["rate_limit"] = {"interval": "1s", "burst": 10}
    assert check(tmp_path, capsys, full) == "OK"
    # Paths are relative to the web config file, as in exporter-toolkit; inline PEM works too.
    server = certs["server"]
    inline = {"tls_server_config": {"cert": server.cert.read_text(), "key": server.key.read_text()}}
    assert check(tmp_path, capsys, inline) == "OK"
    # No certificate: plain HTTP, as in exporter-toolkit.
    assert check(tmp_path, capsys, {"tls_server_config": {}}) == "OK"
    assert load_web_config(tmp_path / "web.yml").tls is None


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda w, c: w.update(colour=1), "colour: unknown key"),
        (lambda w, c: w["tls_server_config"].update(cert_file="/nope"), "cert_file: cannot load"),
        (lambda w, c: w["tls_server_config"].pop("key_file"), "key_file: missing one of key or key_file"),
        (
            lambda w, c: w["tls_server_config"].update(key_file=str(c["other"].key)),
            "cert_file: cannot load the certificate and key: key values mismatch",
        ),
        (
            lambda w, c: w["tls_server_config"].update(client_ca_file=str(c["ca"])),
            "client_ca_file: client CA's have been configured without a Client Auth Policy",
        ),
        (
            lambda w, c: w["tls_server_config"].update(client_auth_type="RequireAnyClientCert"),
            "client_auth_type: RequireAnyClientCert (accept any client certificate without verifying it) "
            "cannot be honoured",
        ),
        (
            lambda w, c: w["tls_server_config"].update(curve_preferences=["CurveP256", "CurveP384"]),
            "curve_preferences: [CurveP256, CurveP384] cannot be enforced by Python's ssl",
        ),
        (
            lambda w, c: w["tls_server_config"].update(curve_preferences=["X25519"]),
            "curve_preferences: [X25519] cannot be enforced",
        ),
        (
            lambda w, c: w["tls_server_config"].update(curve_preferences=["CurveP257"]),
            'curve_preferences[0]: unknown curve: "CurveP257"',
        ),
        (
            lambda w, c: w.update(tls_server_config={"client_auth_type": "RequireAndVerifyClientCert"}),
            "cert_file: missing one of cert or cert_file",
        ),
        (
            lambda w, c: w.update(tls_server_config={"client_ca_file": str(c["ca"])}),
            "cert_file: missing one of cert or cert_file",
        ),
        (
            lambda w, c: w["tls_server_config"].update(client_auth_type="Always"),
            'client_auth_type: "Always" is not one of NoClientCert',
        ),
        (
            lambda w, c: w["tls_server_config"].update(
                client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(c["server"].key)
            ),
            "client_ca_file: cannot load the CA certificates",
        ),
        (lambda w, c: w["tls_server_config"].update(client_allowed_sans=["x"]), "client_allowed_sans: needs"),
        (lambda w, c: w["tls_server_config"].update(min_version="SSL3"), 'min_version: "SSL3" is not one'),
        (
            lambda w, c: w["tls_server_config"].update(min_version="TLS13", max_version="TLS12"),
            "min_version: is higher than max_version",
        ),
        (
            lambda w, c: w["tls_server_config"].update(cipher_suites=["RC4"]),
            'cipher_suites[0]: unknown cipher: "RC4"',
        ),
        (lambda w, c: w["tls_server_config"].update(curve_preferences="x"), "must be a list of strings"),
        (
            lambda w, c: w["tls_server_config"].update(cert="-----BEGIN", cert_file="x"),
            "tls_server_config.cert: set either cert or cert_file",
        ),
        (
            lambda w, c: w.update(http_server_config={"http2": "yes"}),
            'http2: must be true or false, got "yes"',
        ),
        (
            lambda w, c: w.update(http_server_config={"headers": {"Server": "x"}}),
            "headers.Server: unknown key",
        ),
        (
            lambda w, c: w.update(http_server_config={"headers": {"X-Frame-Options": "allow"}}),
            "headers.X-Frame-Options: must be one of deny, sameorigin",
        ),
        (
            lambda w, c: w.update(basic_auth_users={"alice": "plaintext-pw"}),
            "basic_auth_users.alice: must be",
        ),
        (lambda w, c: w.update(basic_auth_users={"a:b": HASH}), "user names must be printable text without"),
        (lambda w, c: w.update(basic_auth_users=["alice"]), "basic_auth_users: must be a mapping"),
        (
            lambda w, c: w.update(rate_limit={"interval": "fast"}),
            'rate_limit.interval: "fast" is not a duration',
        ),
    ],
)
def test_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], certs: dict[str, Any], mutate: Any, expected: str
) -> None:
    web = tls(certs)
    mutate(web, certs)
    line = check(tmp_path, capsys, web)
    assert expected in line, line
    assert "plaintext-pw" not in line
    assert HASH not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "basic_auth_users:\n  alice: {h}\n  bob: {h}\n  alice: {h}\n",
            "basic_auth_users.alice: user listed twice",
        ),
        ("rate_limit:\n  burst: 1\n  burst: 2\n", "rate_limit.burst: key written twice"),
        ("basic_auth_users:\n  alice: $2y$19$" + "a" * 53 + "\n", "bcrypt cost must be between 4 and 18"),
    ],
)
def test_duplicate_users_and_keys_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    line = check(tmp_path, capsys, text.replace("{h}", HASH), raw=True)
    assert expected in line, line
    assert HASH not in line


def test_empty_web_config_flag_means_none(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--web.config.file", "", "--check-config"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "--config FILE is required" in err, out + err  # read as "no web config"


def test_inline_key_never_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = check(tmp_path, capsys, {"tls_server_config": {"cert": "-----BEGIN x", "key": "SECRETKEYTEXT"}})
    assert "cannot load the certificate and key" in line
    assert "SECRETKEYTEXT" not in line
    line = check(tmp_path, capsys, {"tls_server_config": {"cert": "x", "key": 12345678}})
    assert line == "tls_server_config.key: must be a string, got int", line


def test_hostile_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "nested deeper" in check(tmp_path, capsys, "a: " + "[" * 1000 + "]" * 1000, raw=True)
    laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{b}: &{b} [{','.join(['*' + a] * 10)}]\n" for a, b in zip("abcdefg", "bcdefgh", strict=True)
    )
    assert "expands to more than" in check(tmp_path, capsys, laughs, raw=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit", "x"]),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3),
                st.dictionaries(
                    st.one_of(
                        st.sampled_from(
                            ["cert_file", "key_file", "client_auth_type", "headers", "http2", "interval"]
                        ),
                        st.text(max_size=5),
                    ),
                    inner,
                    max_size=4,
                ),
            ),
            max_leaves=15,
        ),
        max_size=4,
    )
)
def test_fuzz_web_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], web: dict[str, Any]) -> None:
    check(tmp_path, capsys, web)
