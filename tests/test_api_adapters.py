"""The API-version registry: each workspace reads through its version's adapter, the sources share one
constructor, and the modules import in any order (config asks the registry; the adapters do not need
config at import time)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.api import API_VERSIONS, DEFAULT_API_VERSION, adapter
from exporter.api.v3.source import V3Source
from exporter.api.v4.source import V4Source
from exporter.config import SUPPORTED_API_VERSIONS, ConfigError, parse_config
from exporter.guide import API_CALLS, GUIDE
from exporter.poller import build
from tests.support.exporter_proc import fast_config, workspace_config

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 32
UNREACHABLE = "http://127.0.0.1:9"  # nothing is requested: the pollers are only built


def both_versions() -> dict[str, object]:
    v4 = {"name": "growth", "api_version": "v4", "api_key": KEY, "base_url": UNREACHABLE}
    return fast_config([workspace_config("legacy", UNREACHABLE, "uid-1", KEY), v4])


def test_the_registry_is_what_the_configuration_accepts() -> None:
    assert API_VERSIONS == SUPPORTED_API_VERSIONS == ("v3", "v4")
    assert DEFAULT_API_VERSION == "v3"
    assert [adapter(version).version for version in API_VERSIONS] == list(API_VERSIONS)
    with pytest.raises(KeyError):
        adapter("v5")
    config = both_versions()
    config["workspaces"][0]["api_version"] = "v5"  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"workspaces\[0\]\.api_version: .* \(supported: v3, v4\)"):
        parse_config(config)


async def test_each_workspace_reads_through_its_versions_adapter() -> None:
    _published, pollers = build(parse_config(both_versions()))
    try:
        assert [p.workspace.api_version for p in pollers] == ["v3", "v4"]
        for poller, source in zip(pollers, (V3Source, V4Source), strict=True):
            api = adapter(poller.workspace.api_version)
            assert type(poller.source) is source
            # The adapter's endpoints, then those of its side reads that are on (v3: credits, accounts).
            side = tuple(endpoint for read in api.side_reads for endpoint in read.endpoints)
            assert poller.state.api.endpoints == api.endpoints + side
    finally:
        for poller in pollers:
            await poller.aclose()


def test_the_sources_share_one_constructor() -> None:
    def parameters(source: Callable[..., object]) -> list[tuple[str, object]]:
        return [(p.name, p.kind) for p in inspect.signature(source).parameters.values()]

    factories = [V3Source, V4Source, *(adapter(version).source for version in API_VERSIONS)]
    assert all(parameters(factory) == parameters(V3Source) for factory in factories)
    assert [name for name, _ in parameters(V3Source)] == ["transport", "workspace", "config", "clock"]


def test_checking_a_configuration_does_not_load_the_http_client() -> None:
    """--check-config reads every version's block through the registry, not the sources."""
    code = "import sys, exporter.config, exporter.api; print(sorted({'httpx', 'aiohttp'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_each_version_authenticates_its_own_way() -> None:
    legacy, growth = parse_config(both_versions()).workspaces
    v3 = adapter("v3").headers(legacy)
    v4 = adapter("v4").headers(growth)
    assert v3["Authorization"] == f"x-api-key {KEY}"
    assert v3["x-project-id"] == "uid-1"
    assert v4["X-API-Key"] == KEY
    assert "Authorization" not in v4
    assert "x-project-id" not in v4
    assert v3["User-Agent"] == v4["User-Agent"]
    assert v3["User-Agent"].startswith("captaindata-exporter/")


def test_the_guide_uses_every_api_call_and_each_version_picks_its_own() -> None:
    used = {call.name for guide in GUIDE.values() for call in (*guide.api_calls, *guide.v4_api_calls)}
    assert used == {call.name for call in API_CALLS.values()}
    for call in API_CALLS.values():
        assert call.method in ("GET", "POST", "DELETE")
        assert call.path.startswith(("https://api.captaindata.co/v3/", "https://api.captaindata.com/v4/"))
    for guide in GUIDE.values():
        assert adapter("v3").api_calls(guide) == guide.api_calls
        assert adapter("v4").api_calls(guide) == guide.v4_api_calls
        assert adapter("v4").action(guide) == (guide.v4_action or guide.action)


@pytest.mark.parametrize(
    "module",
    [
        "exporter.config",
        "exporter.transport",
        "exporter.state",
        "exporter.sink",
        "exporter.api",
        "exporter.api.v3.source",
        "exporter.api.v4.source",
        "exporter.api.v4.settings",
        "exporter.status_view",
        "exporter.poller",
    ],
)
def test_each_module_imports_first(module: str) -> None:
    """No import cycle at run time, whichever module a program imports first."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
