"""Credits and account health (issue 17), against the real pipeline and the simulator over loopback:
the configuration, the reads (pagination, the account cap, disappearing accounts, hostile fields),
failures that keep the last values and never touch the runs poll, the endpoint labels, and the Coming
up rows."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main as cli_main
from exporter.cli import side_read_summary
from exporter.coming_up import KINDS
from exporter.config import ConfigError, parse_config
from exporter.landing import render_landing_page
from exporter.persist.saver import open_state
from exporter.poller import build
from exporter.simulator import Simulator
from exporter.status_view import build_status

ALERTS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
ACCOUNTS = "/v3/integrations/{integration_uid}/accounts"


def config(**workspace: Any) -> dict[str, Any]:
    base = {"name": "acme", "workspace_uid": "w", "api_key": "k" * 20, **workspace}
    return {"workspaces": [base]}


# --- configuration ----------------------------------------------------------------------------------


def test_both_reads_default_on_for_v3_and_off_for_v4() -> None:
    v3 = parse_config(config()).workspaces[0]
    assert v3.side_read_enabled("credits")
    assert v3.credits.interval == 300
    assert v3.accounts.integrations == ("linkedin",)
    assert v3.accounts.max_accounts == 500
    v4 = parse_config(config(api_version="v4")).workspaces[0]
    assert not v4.side_read_enabled("credits")
    assert not v4.side_read_enabled("accounts")


def test_settings_are_read() -> None:
    ws = parse_config(
        config(
            credits={"enabled": False},
            accounts={"integrations": ["linkedin", "sales-nav"], "interval": "1s", "max_accounts": 3},
        )
    ).workspaces[0]
    assert not ws.side_read_enabled("credits")
    assert ws.accounts.integrations == ("linkedin", "sales-nav")
    assert ws.accounts.interval == 1.0
    assert not parse_config(config(accounts={"integrations": []})).workspaces[0].side_read_enabled("accounts")


@pytest.mark.parametrize(
    ("workspace", "where"),
    [
        ({"credits": {"interval": "500ms"}}, "workspaces[0].credits.interval: must be at least 1s"),
        ({"accounts": {"interval": "0s"}}, "workspaces[0].accounts.interval"),
        ({"accounts": {"integrations": ["Linked In"]}}, "workspaces[0].accounts.integrations[0]"),
        ({"accounts": {"max_accounts": 0}}, "workspaces[0].accounts.max_accounts"),
        ({"credits": {"enabled": "yes"}}, "workspaces[0].credits.enabled"),
        ({"credits": {"every": "5m"}}, "workspaces[0].credits.every: unknown key"),
        ({"api_version": "v4", "credits": {"enabled": True}}, "documents no credits endpoint"),
        ({"api_version": "v4", "accounts": {"integrations": ["linkedin"]}}, "documents no accounts endpoint"),
    ],
)
def test_bad_settings_are_refused(workspace: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(config(**workspace))
    assert where in str(error.value)


def test_check_config_says_the_cost_and_that_v4_has_none(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "config.yaml"
    v3 = {"name": "acme", "workspace_uid": "w", "api_key": "k" * 20}
    v4 = {"name": "beta", "api_version": "v4", "api_key": "k" * 20}
    path.write_text(yaml.safe_dump({"workspaces": [v3, v4]}))
    assert cli_main(["--config", str(path), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "acme (v3): credits every 5m (1 request); accounts of linkedin every 5m (1 request per page" in out
    assert "beta (v4): credits off (the v4 API documents no credits endpoint yet)" in out
    assert side_read_summary(parse_config({"workspaces": [v3]}))[0] in out


# --- the reads, over loopback -----------------------------------------------------------------------


def gauges(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            found[series[len(name) :]] = float(value)
    return found


async def test_credits_and_accounts_are_exported(sim: Simulator, harness_for: Any) -> None:
    sim.set_credits(1234, tasks_max=5000, plan="Scale")
    sim.add_account("Ann Lee", uid="acct-ann", queued=7, limit_used=95)
    sim.add_account("Bo", uid="acct-bo")
    sim.expire_account("acct-bo")
    harness = harness_for()
    text = (await harness.read_side()).text
    assert gauges(text, "captaindata_workspace_credits_remaining") == {'{workspace="acme"}': 1234.0}
    assert gauges(text, "captaindata_workspace_credits_limit") == {'{workspace="acme"}': 5000.0}
    assert gauges(text, "captaindata_workspace_credits_used") == {'{workspace="acme"}': 3766.0}
    assert '{plan="Scale",workspace="acme"}' in gauges(text, "captaindata_workspace_info")
    end = next(iter(gauges(text, "captaindata_workspace_credits_period_end_timestamp_seconds").values()))
    assert 29 * 86400 < end - time.time() < 31 * 86400
    assert gauges(text, "captaindata_account_valid") == {
        '{account="Ann Lee",account_uid="acct-ann",integration="linkedin",workspace="acme"}': 1.0,
        '{account="Bo",account_uid="acct-bo",integration="linkedin",workspace="acme"}': 0.0,
    }
    key = '{account_uid="acct-ann",integration="linkedin",limit="connection requests",workspace="acme"}'
    assert gauges(text, "captaindata_account_limit_used")[key] == 95.0
    assert gauges(text, "captaindata_account_limit")[key] == 100.0
    assert key in gauges(text, "captaindata_account_limit_reset_timestamp_seconds")
    queued = gauges(text, "captaindata_account_inputs_queued")
    assert queued['{account_uid="acct-ann",integration="linkedin",workspace="acme"}'] == 7.0
    # The side reads count under their own endpoint labels, in the workspace's request counters.
    requests = gauges(text, "captaindata_api_requests_total")
    assert requests['{code="200",endpoint="/v3/workspace",workspace="acme"}'] == 1.0
    assert requests[f'{{code="200",endpoint="{ACCOUNTS}",workspace="acme"}}'] == 1.0
    status = build_status(harness.published.workspaces())
    kinds = [row["kind"] for row in status["coming_up"]]
    assert kinds == ["account_invalid", "account_limit", "credits_ok"]
    assert status["coming_up"][0]["account"] == "Bo"
    assert status["coming_up"][0]["action"] == KINDS["account_invalid"].action


async def test_pages_until_next_page_exist_is_false(sim: Simulator, harness_for: Any) -> None:
    sim.accounts_page_size = 3
    for index in range(8):
        sim.add_account(f"A{index}", uid=f"acct-{index}")
    harness = harness_for()
    text = (await harness.read_side()).text
    assert len(gauges(text, "captaindata_account_valid")) == 8
    pages = [e["query"] for e in sim.request_log if e["path"] == "/v3/integrations/linkedin/accounts"]
    assert pages == [{"stats": "true", "page": str(page)} for page in range(3)]


async def test_a_vanished_account_loses_its_series(sim: Simulator, harness_for: Any) -> None:
    sim.add_account("Stays", uid="acct-stays")
    sim.add_account("Goes", uid="acct-goes", queued=3)
    harness = harness_for()
    text = (await harness.read_side()).text
    assert "acct-goes" in text
    sim.remove_account("acct-goes")
    text = (await harness.read_side()).text
    assert "acct-goes" not in text
    assert "acct-stays" in text


async def test_accounts_beyond_max_accounts_are_counted_not_exported(
    sim: Simulator, harness_for: Any, caplog: Any
) -> None:
    sim.accounts_page_size = 5
    sim.add_accounts(40)
    harness = harness_for(workspace={"accounts": {"max_accounts": 7}})
    text = (await harness.read_side()).text
    assert len(gauges(text, "captaindata_account_valid")) == 7
    skipped = gauges(text, "captaindata_side_read_skipped_total")
    assert skipped['{read="accounts",reason="over_max_accounts",workspace="acme"}'] == 33.0
    # It stopped reading at the cap: the API's total says how many more there are.
    pages = [e for e in sim.request_log if e["path"] == "/v3/integrations/linkedin/accounts"]
    assert len(pages) == 2
    assert "more accounts than accounts.max_accounts" in caplog.text


async def test_incomplete_listings_never_keep_more_than_max_accounts(
    sim: Simulator, harness_for: Any
) -> None:
    # The page cap ends each read early (an incomplete listing keeps the accounts read before); the API
    # lists other accounts each time: what is kept stays within max_accounts.
    sim.accounts_page_size = 3
    sim.add_accounts(30)
    harness = harness_for(workspace={"accounts": {"max_accounts": 7}}, api={"max_pages": 1})
    for _ in range(6):
        text = (await harness.read_side()).text
        shown = gauges(text, "captaindata_account_valid")
        assert 3 <= len(shown) <= 7
        with sim.lock:
            listed = list(sim.accounts)[:3]  # page 0, the one page read
        for uid in listed:
            assert f'account_uid="{uid}"' in text  # the accounts just read are kept
            sim.remove_account(uid)  # the next read lists others


@pytest.mark.parametrize("fault", ["junk", "negative", "non_finite", "missing"])
async def test_hostile_fields_are_skipped_per_item(sim: Simulator, harness_for: Any, fault: str) -> None:
    sim.set_credits(100)
    sim.add_account("Ann", uid="acct-ann", queued=2)
    sim.set_health_fault(fault)
    harness = harness_for()
    text = (await harness.read_side()).text
    assert "captaindata_workspace_credits_remaining{" not in text
    assert "captaindata_account_limit_used{" not in text
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")]
    assert not {"NaN", "+Inf", "-Inf"} & set(values)  # nothing non-finite reaches a sample
    skipped = gauges(text, "captaindata_side_read_skipped_total")
    if fault != "missing":  # a missing field is no error, only absent
        assert skipped['{read="credits",reason="invalid_value",workspace="acme"}'] >= 3
        assert skipped['{read="accounts",reason="invalid_value",workspace="acme"}'] >= 2
    # The account is still there: only its bad fields were left out.
    assert "acct-ann" in text
    assert not any(harness.pollers[0].state.side_last_error.values())


async def test_a_failed_read_keeps_the_last_values_and_never_fails_the_poll(
    sim: Simulator, harness_for: Any
) -> None:
    sim.add_workflow("wf-1", "A")
    sim.add_run("wf-1", "finished", start_time=time.time() - 60, finish_time=time.time())
    sim.set_credits(800)
    sim.add_account("Ann", uid="acct-ann")
    harness = harness_for(api={"max_retries": 0})
    await harness.read_side()
    sim.add_fault("status", status=503, path_contains="/v3/workspace")
    sim.add_fault("malformed", path_contains="/accounts")
    sim.set_credits(10)
    sim.remove_account("acct-ann")
    text = (await harness.read_side()).text
    assert gauges(text, "captaindata_workspace_credits_remaining") == {'{workspace="acme"}': 800.0}
    assert "acct-ann" in text
    errors = gauges(text, "captaindata_side_read_errors_total")
    assert errors['{read="credits",reason="server_error",workspace="acme"}'] == 1.0
    assert errors['{read="accounts",reason="bad_response",workspace="acme"}'] == 1.0
    sim.clear_faults()
    text = (await harness.poll()).text
    assert gauges(text, "captaindata_up") == {'{workspace="acme"}': 1.0}
    assert 'reason="server_error",workspace="acme"} 0.0' in text.split("captaindata_poll_errors_total")[-1]
    state = harness.pollers[0].state
    assert state.side_last_error["credits"].startswith("server_error: GET /v3/workspace answered HTTP 503")


async def test_side_reads_share_the_workspace_429_window(sim: Simulator, harness_for: Any) -> None:
    """A 429 on a side read pauses every request of the workspace, the runs poll's too."""
    sim.set_credits(100)
    sim.add_fault("status", status=429, count=1, path_contains="/v3/workspace")
    harness = harness_for(api={"max_retry_after": "1s", "retry_backoff": "1s"})
    poller = harness.pollers[0]
    await harness.read_side()
    assert poller.transport.window.until > 0  # opened by the side read, shared with the poll
    text = (await harness.exposition()).text
    limited = gauges(text, "captaindata_api_rate_limited_total")
    assert limited['{endpoint="/v3/workspace",limit_type="none",workspace="acme"}'] == 1.0
    assert gauges(text, "captaindata_workspace_credits_remaining") == {'{workspace="acme"}': 100.0}


async def test_the_credits_forecast_shows_when_they_run_out(sim: Simulator, harness_for: Any) -> None:
    sim.set_credits(1000, cost_per_run=100)
    sim.add_workflow("wf-1", "A")
    harness = harness_for()
    await harness.read_side()
    for _ in range(3):
        run = sim.add_run("wf-1", "running", start_time=time.time())
        sim.update_run(run, "finished", finish_time=time.time())
    await harness.read_side()
    status = build_status(harness.published.workspaces())
    (credits,) = [row for row in status["coming_up"] if row["kind"].startswith("credits")]
    assert credits["kind"] == "credits_soon"
    assert credits["remaining"] == 700
    assert credits["runs_out_at"] is not None
    assert credits["runs_out_at"] < credits["period_end"]
    assert credits["action"] == KINDS["credits_soon"].action


def test_each_coming_up_action_is_its_alerts() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    actions = {
        rule["alert"]: rule["annotations"]["action"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    for name, kind in KINDS.items():
        if name != "credits_ok":
            assert kind.action == actions[kind.alert], name


async def test_the_page_shows_coming_up_escaped(sim: Simulator, harness_for: Any) -> None:
    hostile = '<script>alert("x")</script> & co'
    sim.set_credits(0)
    sim.add_account(hostile, uid="acct-x", queued=1, limit_used=99)
    sim.expire_account("acct-x")
    harness = harness_for()
    await harness.read_side()
    page = render_landing_page(harness.published.workspaces())
    section = page.split("<h2>Coming up</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<script>" not in section
    assert html.escape(hostile) in section
    titles = [KINDS[kind].title for kind in ("credits_exhausted", "account_invalid", "account_limit")]
    assert [title in section for title in titles] == [True, True, True]
    assert section.index(titles[0]) < section.index(titles[1]) < section.index(titles[2])
    assert html.escape(KINDS["account_invalid"].action) in section
    assert "POST https://api.captaindata.co/v3/integrations/linkedin/accounts" in section


async def test_side_read_counters_continue_across_a_restart(
    sim: Simulator, config_dict: Any, tmp_path: Path
) -> None:
    """With state.path, the side reads' API counters and their error counters continue after a restart
    (the values themselves are read again)."""
    sim.set_credits(100)
    raw = config_dict(state={"path": str(tmp_path / "state")}, api={"max_retries": 0})
    sim.add_fault("status", status=503, count=1, path_contains="/v3/workspace")

    async def run_once() -> str:
        config = parse_config(raw)
        directory, savers = open_state(config)
        assert directory is not None
        published, pollers = build(config, savers=savers)
        try:
            for loop in pollers[0].side_loops:
                await loop.read_once()
        finally:
            for poller in pollers:
                await poller.aclose()
            directory.close()
        return (await published.exposition(openmetrics=False, gzip=False)).decode()

    first = await run_once()
    second = await run_once()
    failed = '{read="credits",reason="server_error",workspace="acme"}'
    assert gauges(first, "captaindata_side_read_errors_total")[failed] == 1.0
    assert gauges(second, "captaindata_side_read_errors_total")[failed] == 1.0
    ok = '{code="200",endpoint="/v3/workspace",workspace="acme"}'
    assert ok not in gauges(first, "captaindata_api_requests_total")
    assert gauges(second, "captaindata_api_requests_total")[ok] == 1.0
    answered = '{code="503",endpoint="/v3/workspace",workspace="acme"}'
    assert gauges(second, "captaindata_api_requests_total")[answered] == 1.0  # restored
