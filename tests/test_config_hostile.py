"""Hostile configuration files: --check-config answers "OK" or exactly one clean error line.

Every crasher of issue #9 §4 and every secret leak of §3 is a regression case; hypothesis then feeds
random YAML documents and random bytes to the same in-process check.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import main

DATA = Path(__file__).resolve().parent / "data" / "hostile_config"
KEY = "sk_live_" + "Zq9" * 10
ERROR_PREFIX = "captaindata-exporter: configuration error: "

BASE = """\
workspaces:
  - name: acme
    workspace_uid: "5b7c6a0e-3f51-4c1b-9a7e-2d8f0c4e6a19"
    api_key: "{key}"
    base_url: {base_url}
    workflows:
      include: [{include}]
poll:
  interval: {interval}
api:
  burst: {burst}
  requests_per_second: {rps}
"""
DEFAULTS = {
    "key": KEY,
    "base_url": "https://api.captaindata.co",
    "include": "",
    "interval": "60s",
    "burst": "5",
    "rps": "2",
}


def config_text(**changes: str) -> str:
    return BASE.format(**{**DEFAULTS, **changes})


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``--check-config`` in-process; return the exit code and the one line it printed (after "OK",
    one indented line per workspace says its credits and accounts reads, issue 17)."""
    code = main(["--config", str(path), "--check-config"])
    out, err = capsys.readouterr()
    text = out + err
    lines = text.splitlines()
    assert len(lines) == 1 or (code == 0 and all(line.startswith("  ") for line in lines[1:])), text
    if code == 0:
        assert lines[0].endswith("workspace(s))"), text
    else:
        assert code == 2
        assert lines[0].startswith(ERROR_PREFIX), text
        assert "Traceback" not in text
    return code, lines[0]


def error_for(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes) -> str:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, line = check(path, capsys)
    assert code == 2, line
    assert KEY not in line
    return line.removeprefix(ERROR_PREFIX)


def test_the_base_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text())
    assert check(path, capsys)[0] == 0


def test_billion_laughs_is_refused_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = check(DATA / "billion_laughs.yaml", capsys)
    assert code == 2
    assert "expands to more than" in line
    assert "lol" not in line


def test_modest_aliases_still_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "defaults: &d {workspace_uid: u1, api_key: k1}\n"
        "workspaces:\n  - {<<: *d, name: a}\n  - {<<: *d, name: b}\n"
    )
    # The extra top-level key is rejected by the schema, not by the YAML loader.
    assert "defaults: unknown key" in error_for(tmp_path, capsys, path.read_text())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("workspaces: " + "[" * 5000 + "]" * 5000, "nested deeper than 50 levels"),
        ("workspaces:" + "".join(f"\n{'  ' * i}a:" for i in range(1, 200)) + " 1\n", "nested deeper"),
        ("a: &x [1, *x]\n", "refers to a node that contains it"),
        (b"workspaces:\n  - name: \xff\xfe\n", "not UTF-8 text (invalid byte at offset 22)"),
        (config_text(burst="9" * 5000), "a number longer than 100 characters"),
        (config_text(burst="1" + "0" * 12), "api.burst: must be at most 10000"),
        (config_text(rps=".nan"), "api.requests_per_second: must be a finite number, got nan"),
        (config_text(rps=".inf"), "api.requests_per_second: must be a finite number"),
        (config_text(rps="1.0e+999"), "api.requests_per_second: must be a finite number"),
        (config_text(interval="1" + "0" * 400 + "d"), "poll.interval:"),
        (config_text(interval="400d"), 'poll.interval: "400d" is longer than a year'),
        (config_text(include="'a{4294967296}'"), 'workflows.include[0]: "a{4294967296}" is too large'),
        (config_text(include="'" + "(" * 500 + ")" * 500 + "'"), "include[0]: nests groups deeper"),
        (config_text(include="'" + "a" * 2000 + "'"), "include[0]: is longer than 1000 characters"),
        (config_text(include="'('"), 'include[0]: "(" is not a valid regular expression'),
        (config_text(base_url='"http://[::1"'), 'base_url: "http://[::1" is not a valid URL'),
        (config_text(base_url="http://h:99999"), 'base_url: "http://h:99999" is not a valid URL'),
        (config_text(base_url="http://h:0"), "port must be between 1 and 65535"),
        (config_text(base_url="http://user:pw@h"), "base_url: must not contain credentials"),
        (config_text(base_url="ftp://h"), "is not an http(s) URL"),
        (config_text(base_url='"http://h/\\npath"'), "base_url: contains spaces, control"),
        (config_text().replace('19"', '19\\n1"'), "workspace_uid: contains control"),
        (config_text().replace('19"', '19/x"'), "workspace_uid: must not contain spaces"),
        (config_text().replace("name: acme", 'name: "a\\u200bb"'), "name: contains control"),
        (config_text().replace("60s", "2024-13-45"), "a value cannot be read"),
        ("x" * (1024 * 1024 + 1), "larger than 1024 KiB"),
        ("workspaces: [\n", "expected the node content"),
        ("\x00", "special characters are not allowed"),
        ("? [a, b]\n: 1\n", "found unhashable key"),
        ("? 7\n: 1\n", "7: unknown key"),
        ("[1, 2]", "the top level must be a mapping (key: value lines), not a list"),
    ],
)
def test_crashers_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, expected: str
) -> None:
    assert expected in error_for(tmp_path, capsys, content)


@pytest.mark.parametrize(
    "key",
    [
        KEY + "\u200b",  # trailing zero-width space
        KEY + "\nsecond-line",
        "Zq9 " + KEY,
        KEY + "\x7f",
        "clé" + KEY,
    ],
)
def test_bad_api_keys_are_rejected_without_echo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    inline = config_text(key=key.encode("unicode_escape").decode("ascii").replace('"', '\\"'))
    line = error_for(tmp_path, capsys, inline)
    assert line.startswith("workspaces[0].api_key: must be a single token of printable ASCII"), line
    assert "Zq9" not in line

    key_file = tmp_path / "key"
    key_file.write_bytes(key.encode() + b"\n")
    line = error_for(
        tmp_path, capsys, config_text().replace(f'api_key: "{KEY}"', f"api_key_file: {key_file}")
    )
    assert line.startswith("workspaces[0].api_key_file: must be a single token"), line
    assert "Zq9" not in line


def test_key_file_trailing_whitespace_is_trimmed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY.encode() + b" \t\r\n\n")
    path = tmp_path / "config.yaml"
    path.write_text(config_text().replace(f'api_key: "{KEY}"', f"api_key_file: {key_file}"))
    assert check(path, capsys)[0] == 0


@pytest.mark.parametrize(
    ("replacement", "secret"),
    [
        ("api_key: 123456789012345", "123456789012345"),
        ("api_key: [sk_live_abcdefgh]", "sk_live_abcdefgh"),
        ("api_key: {x: sk_live_abcdefgh}", "sk_live_abcdefgh"),
    ],
)
def test_non_string_api_keys_are_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replacement: str, secret: str
) -> None:
    line = error_for(tmp_path, capsys, config_text().replace(f'api_key: "{KEY}"', replacement))
    assert line.startswith("workspaces[0].api_key: must be a string"), line
    assert secret not in line


@pytest.mark.parametrize(
    "fragment",
    ["base_url: ${VALUE}", "api_version: ${VALUE}", "name: ${VALUE}\n    workspace_uid: ${VALUE}"],
)
def test_expanded_values_are_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fragment: str
) -> None:
    monkeypatch.setenv("VALUE", "hunter2 \x01")
    text = config_text().replace("base_url: https://api.captaindata.co", fragment.split("\n")[0])
    if "name:" in fragment:
        text = config_text().replace("name: acme", "name: ${VALUE}")
    line = error_for(tmp_path, capsys, text)
    assert "hunter2" not in line


@pytest.mark.parametrize(
    "fragment",
    [
        "base_url: https://h:${VALUE}",  # the port, quoted by urlsplit's reason
        "base_url: https://h\uff03x${VALUE}.com",  # the netloc, quoted by urlsplit's reason
        "api_version: v4\n    v4:\n      path: ${VALUE}",
    ],
)
def test_expanded_values_are_not_echoed_in_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fragment: str
) -> None:
    monkeypatch.setenv("VALUE", "hunter2")
    text = config_text().replace("base_url: https://api.captaindata.co", fragment)
    line = error_for(tmp_path, capsys, text)
    assert "hunter2" not in line


# --- fuzz: random YAML documents and random bytes never crash --check-config ------------------------

KEYS = [
    "workspaces", "name", "workspace_uid", "api_key", "api_key_file", "api_version", "base_url",
    "workflows", "include", "exclude", "poll", "interval", "timeout", "api", "burst", "request_timeout",
    "requests_per_second", "max_retries", "retry_backoff", "max_pages", "concurrency", "metrics",
    "needs_action_limit", "web", "listen_address", "log", "level", "format",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["60s", "1" + "0" * 30 + "d", "http://[::1", "http://h:99999", "(", "a{99999999999}"]),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=30,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def near_valid(document: Any) -> dict[str, Any]:
    """Graft the random value into an otherwise valid config, so checks deep inside are reached."""
    base: dict[str, Any] = yaml.safe_load(config_text())
    workspace = base["workspaces"][0]
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(key, str) and key in workspace:
                workspace[key] = value
            elif isinstance(key, str):
                base[key] = value
    return base


@FUZZ
@given(DOCUMENTS)
def test_fuzz_random_yaml_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any
) -> None:
    path = tmp_path / "fuzz.yaml"
    for candidate in (document, near_valid(document)):
        path.write_text(yaml.safe_dump(candidate, allow_unicode=True))
        _code, line = check(path, capsys)
        assert KEY not in line


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(content)
    check(path, capsys)


@FUZZ
@given(st.text(alphabet=string.printable + "[]{}&*!|>'\"%@`#,?:-\u200b\u2028", max_size=200))
def test_fuzz_random_yaml_text(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(config_text() + content)
    check(path, capsys)


def test_api_key_file_value_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A key pasted into api_key_file by mistake is a path that does not exist: the error must not show it.
    for value in ('"' + KEY + '"', "12345678901234567"):
        text = config_text().replace(f'api_key: "{KEY}"', f"api_key_file: {value}")
        line = error_for(tmp_path, capsys, text)
        assert line.startswith("workspaces[0].api_key_file: "), line
        assert "Zq9" not in line
        assert "12345678901234567" not in line
