"""Sharding (--shard, --total-shards): the hashing, the flags, and 3 (then 4) real shards against one
unsharded exporter and one simulator. The union of the shards' series must be the unsharded exporter's,
series for series and value for value; their API requests together must be its requests."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.api import adapter
from exporter.cli import main
from exporter.config import ConfigError, ShardingConfig, parse_config
from exporter.families import FAMILIES
from exporter.sharding import Part, Sharding, ordinal, owner
from exporter.simulator import Simulator
from exporter.state import WorkspaceState
from tests.support.exporter_proc import ExporterProcess, fast_config, running_exporter, workspace_config
from tests.support.metrics import ScrapedMetrics
from tests.support.net import wait_until
from tests.support.promstack import PROMTOOL, running_prometheus_on
from tests.support.sim_server import running_simulator

# ---------------------------------------------------------------------------------------------- hashing


def test_the_hash_is_stable_across_processes_and_versions() -> None:
    """Pinned: a shard must pick the same workspaces on every machine and Python (no hash())."""
    assert [owner(f"client-{i}", 3) for i in range(1, 9)] == [2, 0, 2, 0, 1, 2, 1, 0]
    assert [owner(f"big-wf-{i:02d}", 4) for i in range(12)] == [1, 1, 2, 3, 1, 0, 3, 0, 3, 0, 3, 2]
    code = "from exporter.sharding import owner; print(owner('client-1', 3), owner('big', 7))"
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    assert out.stdout.split() == [str(owner("client-1", 3)), str(owner("big", 7))]


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 8])
def test_one_more_shard_moves_about_one_in_m_plus_1_and_only_to_it(shards: int) -> None:
    keys = [f"workspace-{i}" for i in range(4000)]
    before = {key: owner(key, shards) for key in keys}
    after = {key: owner(key, shards + 1) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert all(after[key] == shards for key in moved)  # nothing moves between the old shards
    assert abs(len(moved) / len(keys) - 1 / (shards + 1)) < 0.03
    counts = Counter(before.values())
    assert len(counts) == shards
    assert min(counts.values()) > 0.8 * len(keys) / shards


def test_a_part_of_a_split_workspace_takes_its_share_of_the_budget() -> None:
    part = Sharding(1, 3).plan("big", "workflow")
    assert part == Part(1, 3, split=True, owner=owner("big", 3) == 1)
    assert part.budget(2.0, 5) == (2.0 / 3, 1)
    assert part.budget(30.0, 2) == (10.0, 1)  # burst at least 1
    assert part.budget(30.0, 90) == (10.0, 30)
    whole = Sharding(owner("acme", 3), 3).plan("acme", "workspace")
    assert whole is not None
    assert whole.budget(2.0, 5) == (2.0, 5)
    assert not whole.split
    assert Sharding((owner("acme", 3) + 1) % 3, 3).plan("acme", "workspace") is None
    # Unsharded, sharding.by: workflow changes nothing.
    assert Sharding().plan("big", "workflow") == Part(0, 1, split=False, owner=True)


# ----------------------------------------------------------------------------------- flags and config

KEY = "test-api-key-0001"


def test_auto_takes_the_statefulset_ordinal_of_the_host_name() -> None:
    assert ordinal("captaindata-exporter-0") == 0
    assert ordinal("captaindata-exporter-12") == 12
    for bad in ("captaindata-exporter", "exporter-01", "exporter-x", "exporter-3.local", ""):
        with pytest.raises(ValueError, match="ordinal"):
            ordinal(bad)
    assert ShardingConfig("auto", 3).resolve("exporter-2") == Sharding(2, 3)
    with pytest.raises(ValueError, match="does not exist among 3"):
        ShardingConfig("auto", 3).resolve("exporter-3")
    with pytest.raises(ValueError, match="--total-shards"):
        ShardingConfig("auto", None).resolve("exporter-0")


def _config(extra: Mapping[str, Any] | None = None, by: str | None = None, version: str = "v3") -> Any:
    workspace: dict[str, Any] = {"name": "big", "workspace_uid": "w", "api_key": KEY, "api_version": version}
    if by is not None:
        workspace["sharding"] = {"by": by}
    return {"workspaces": [workspace], **(extra or {})}


def test_the_config_keys() -> None:
    config = parse_config(_config({"sharding": {"shard": 2, "total_shards": 3}}, by="workflow"))
    assert config.sharding == ShardingConfig(2, 3)
    assert config.workspaces[0].shard_by == "workflow"
    assert parse_config(_config({"sharding": {"shard": "auto", "total_shards": 3}})).sharding.shard == "auto"
    assert parse_config(_config()).sharding == ShardingConfig(0, None)
    refused: list[tuple[dict[str, Any] | None, str | None, str, str]] = [
        ({"sharding": {"shard": 3, "total_shards": 3}}, None, "v3", "sharding.shard: 3 does not exist"),
        ({"sharding": {"shard": 1}}, None, "v3", "sharding.shard: 1 does not exist among 1"),
        ({"sharding": {"shard": "auto"}}, None, "v3", "auto needs sharding.total_shards"),
        ({"sharding": {"shard": "two", "total_shards": 3}}, None, "v3", "integer or auto"),
        ({"sharding": {"total_shards": 0}}, None, "v3", "sharding.total_shards: must be at least 1"),
        ({"sharding": {"shards": 2}}, None, "v3", "sharding.shards: unknown key"),
        (None, "workflows", "v3", 'workspaces[0].sharding.by: "workflows" is not one of workspace, workflow'),
        (None, "workflow", "v4", "workspaces[0].sharding.by: workflow is only for api_version: v3"),
    ]
    for extra, by, version, message in refused:
        with pytest.raises(ConfigError) as error:
            parse_config(_config(extra, by, version))
        assert message in str(error.value)


def _check(tmp_path: Path, args: list[str], hostname: str = "host") -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    workspaces: list[dict[str, Any]] = [
        {"name": name, "workspace_uid": "w", "api_key": KEY} for name in ("client-1", "client-2", "client-5")
    ]
    workspaces.append({"name": "big", "workspace_uid": "b", "api_key": KEY, "sharding": {"by": "workflow"}})
    path.write_text(yaml.safe_dump({"workspaces": workspaces, "api": {"requests_per_second": 3, "burst": 6}}))
    out = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), "--check-config", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"HOSTNAME": hostname, "PATH": ""},
    )
    return out.returncode, out.stdout, out.stderr


def test_check_config_says_what_this_shard_polls(tmp_path: Path) -> None:
    code, out, _ = _check(tmp_path, ["--shard", "auto", "--total-shards", "3"], hostname="exporter-2")
    assert code == 0
    assert "shard 2 of 3 (0 to 2)" in out
    assert "polls client-1 (v3, whole)" in out  # client-1 hashes to 2
    assert "polls part of big (v3, sharding.by: workflow)" in out
    assert "hashes to shard 2" in out
    assert "at 1 requests/s, burst 2" in out
    assert "this shard exports its captaindata_workflows" in out  # big hashes to 2
    assert "leaves to other shards: client-2 (shard 0), client-5 (shard 1)" in out
    code, out, _ = _check(tmp_path, [])
    assert code == 0
    assert "shard" not in out


@pytest.mark.parametrize(
    ("args", "hostname", "message"),
    [
        (["--shard", "auto"], "exporter-1", "--shard auto needs the number of shards: --total-shards M"),
        (["--shard", "auto", "--total-shards", "3"], "exporter", "has none"),
        (["--shard", "3", "--total-shards", "3"], "host", "shard 3 does not exist among 3 shard(s)"),
        (["--shard", "-1", "--total-shards", "3"], "host", "--shard must be a number or auto"),
        (["--shard", "1"], "host", "shard 1 does not exist among 1 shard(s)"),
        (["--total-shards", "0"], "host", "--total-shards must be between 1 and 1000"),
    ],
)
def test_wrong_shard_flags_exit_2(tmp_path: Path, args: list[str], hostname: str, message: str) -> None:
    code, _, err = _check(tmp_path, args, hostname)
    assert code == 2
    assert message in err


def test_demo_cannot_be_sharded(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--demo", "--shard", "1"])
    assert exit_.value.code == 2
    assert "--demo and --shard cannot be used together" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- shards for real

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 3
CLIENTS = [f"client-{i}" for i in range(1, 9)]
BIG = "big"
BIG_WORKFLOWS = [f"big-wf-{i:02d}" for i in range(12)]
T0 = float(int(time.time()))  # the runs' own times (API data, the same for every process)

# Values that depend on the wall clock (when a read happened, how long it took): present on both
# sides, their values not compared.
WALL_CLOCK = {
    "captaindata_workflow_last_success_timestamp_seconds",
    "captaindata_running_run_max_age_seconds",
    "captaindata_last_poll_success_timestamp_seconds",
    "captaindata_poll_duration_seconds",
    "captaindata_api_request_duration_seconds_bucket",
    "captaindata_api_request_duration_seconds_sum",
}
#: The series of the process, not of a workspace (build_info, shard_info...): every shard has its own.
PROCESS = {
    f"{family.name}_total" if family.type == "counter" else family.name
    for family in FAMILIES
    if "workspace" not in family.labels
}
#: How one exporter's value of a per-shard series (families.PER_SHARD) follows from the shards'.
MIN = {"captaindata_up", "captaindata_last_poll_success_timestamp_seconds"}
MAX = {"captaindata_poll_duration_seconds", "captaindata_api_retry_after_seconds"}

#: Credits and accounts (issue 17) hold the whole workspace's values: a split workspace reads them on its
#: owner shard only, so their endpoints' request series come from that one shard.
OWNER_ONLY_ENDPOINTS = {endpoint for read in adapter("v3").side_reads for endpoint in read.endpoints}

Key = tuple[str, frozenset[tuple[str, str]]]


def _simulator() -> tuple[Simulator, dict[str, dict[str, str]]]:
    """9 workspaces: 8 of 2 workflows, and big, of 12 workflows, split by workflow."""
    # Pages of 20, workflows of 1 to 5 runs: no process learns the page size in one poll (exporter/api/
    # v3/source.py), so each reads every workflow in two requests, and one poll's requests are exact.
    sim = Simulator(seed=7, page_size=20)
    runs: dict[str, dict[str, str]] = {}
    statuses = ("finished", "running", "warning", "paused", "pending", "shutdown", "finished", "stopped")
    for index, name in enumerate([*CLIENTS, BIG]):
        workspace = sim.add_workspace(f"uid-{name}", f"api-key-{name}")
        uids = BIG_WORKFLOWS if name == BIG else [f"{name}-wf-{i}" for i in range(2)]
        for number, uid in enumerate(uids):
            sim.add_workflow(uid, f"Workflow {uid}", workspace)
            for run in range(1 + (index + number) % 5):
                status = statuses[(index + number + run) % len(statuses)]
                start = T0 - 3600 * (run + 1) * (4 if status == "running" else 1) - 60 * number
                finish = start + 600 if status in ("finished", "warning", "shutdown", "stopped") else None
                run_uid = sim.add_run(uid, status, start_time=start, finish_time=finish)
                runs.setdefault(uid, {})[run_uid] = status
    return sim, runs


def _sharded_config(base_url: str) -> dict[str, Any]:
    workspaces = [workspace_config(name, base_url, f"uid-{name}", f"api-key-{name}") for name in CLIENTS]
    big = workspace_config(BIG, base_url, f"uid-{BIG}", f"api-key-{BIG}")
    big["sharding"] = {"by": "workflow"}
    config = fast_config([*workspaces, big], interval="1s")
    # On a loaded machine a 2 s request timeout can retry a request, and one poll's count is then off.
    config["api"]["request_timeout"] = "30s"
    return config


def _parse(text: str) -> dict[Key, float]:
    return {(s.name, s.labels): s.value for s in ScrapedMetrics(text).series}


def _union(expositions: list[str]) -> dict[Key, float]:
    shards = len(expositions)
    """The shards' series as one exporter would export them. A series exported by two shards fails;
    a split workspace's per-shard series (``shard`` label) are merged: summed, or min/max."""
    union: dict[Key, float] = {}
    merged: dict[Key, list[float]] = {}
    for text in expositions:
        for (name, labels), value in _parse(text).items():
            if name in PROCESS:
                continue
            if any(label == "shard" for label, _ in labels):
                merged.setdefault((name, frozenset(kv for kv in labels if kv[0] != "shard")), []).append(
                    value
                )
                continue
            assert (name, labels) not in union, f"two shards export {name}{dict(labels)}"
            union[(name, labels)] = value
    for (name, labels), values in merged.items():
        once = dict(labels).get("endpoint") in OWNER_ONLY_ENDPOINTS
        assert len(values) == (1 if once else shards), (name, labels, values)  # from every shard, once
        assert (name, labels) not in union
        union[(name, labels)] = min(values) if name in MIN else max(values) if name in MAX else sum(values)
    return union


def _masked(series: Mapping[Key, float], masked: set[str]) -> dict[Key, float | None]:
    return {key: (None if key[0] in masked else value) for key, value in series.items()}


def _listing(key: Key) -> bool:
    labels = dict(key[1])
    return labels.get("workspace") == BIG and labels.get("endpoint") == "/v3/workflows"


def _requests(sim: Simulator) -> Counter[tuple[str, str]]:
    """(workspace uid, workflows | jobs) -> requests the simulator answered."""
    with sim.lock:
        log = list(sim.request_log)
    return Counter((entry["project"], entry["path"].rsplit("/", 1)[-1]) for entry in log)


def _once(config_path: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(config_path), "--once", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _each(count: int, run: Any) -> list[str]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def sim_and_config(tmp_path: Path) -> Iterator[tuple[Simulator, dict[str, dict[str, str]], dict[str, Any]]]:
    sim, runs = _simulator()
    with running_simulator(sim) as base_url:
        yield sim, runs, _sharded_config(base_url)


def test_one_poll_the_union_of_3_shards_is_one_exporter_and_so_are_its_requests(
    sim_and_config: tuple[Simulator, dict[str, dict[str, str]], dict[str, Any]], tmp_path: Path
) -> None:
    """--once: one poll of everything by each process, so every value is exact, API counters included;
    then 4 shards, and the workspaces that moved."""
    sim, _, config = sim_and_config
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    alone = _once(path)
    one_exporter = _requests(sim)
    sim.request_log.clear()
    shards = _each(SHARDS, lambda shard: _once(path, "--shard", str(shard), "--total-shards", str(SHARDS)))
    together = _requests(sim)

    # The API requests: the same runs requests; a list of big's workflows per shard and per poll.
    alone_count, shards_count = sum(one_exporter.values()), sum(together.values())
    print(f"API requests of one poll: one exporter {alone_count}, the 3 shards together {shards_count}")
    big = f"uid-{BIG}"
    assert sum(one_exporter.values()) > 9 * 3
    assert together.keys() == one_exporter.keys()
    for (project, kind), count in one_exporter.items():
        expected = count * SHARDS if (project, kind) == (big, "workflows") else count
        assert together[(project, kind)] == expected, (project, kind)

    # The series: the same, and the same values (the API counters too, the listing of big aside).
    union = _union(shards)
    assert _masked(union, WALL_CLOCK) == _masked(_expected(alone, SHARDS), WALL_CLOCK)
    assert len(union) > 1000
    workflows = {
        dict(labels)["workspace"]: value
        for (name, labels), value in union.items()
        if name == "captaindata_workflows"
    }
    assert workflows == {**dict.fromkeys(CLIENTS, 2.0), BIG: float(len(BIG_WORKFLOWS))}

    # Each shard: its own workspaces, its share of big, and its shard_info.
    owned: dict[int, set[str]] = {}
    for shard, text in enumerate(shards):
        scraped = ScrapedMetrics(text)
        assert scraped.value("captaindata_exporter_shard_info", shard=str(shard), total_shards="3") == 1
        owned[shard] = {s.label("workspace") for s in scraped.find("captaindata_workflows")} - {BIG}
        split = {s.label("workflow_uid") for s in scraped.find("captaindata_runs", workspace=BIG)}
        assert split == {uid for uid in BIG_WORKFLOWS if owner(uid, SHARDS) == shard}
        assert scraped.value("captaindata_up", workspace=BIG, shard=str(shard)) == 1
    assert sorted(len(names) for names in owned.values()) == [2, 3, 3]

    # 3 -> 4 shards: about 1/4 of the workspaces move, each to the new shard, none between old ones.
    four = _each(4, lambda shard: _once(path, "--shard", str(shard), "--total-shards", "4"))
    now = {
        shard: {s.label("workspace") for s in ScrapedMetrics(text).find("captaindata_workflows")} - {BIG}
        for shard, text in enumerate(four)
    }
    moved = {name for shard, names in owned.items() for name in names if name not in now[shard]}
    assert moved == now[3]
    assert moved
    big_moved = [uid for uid in BIG_WORKFLOWS if owner(uid, 3) != owner(uid, 4)]
    print(
        f"3 -> 4 shards: {len(moved)} of {len(CLIENTS)} whole workspaces moved ({sorted(moved)}); "
        f"{len(big_moved)} of {len(BIG_WORKFLOWS)} workflows of {BIG}"
    )
    assert len(moved) == 2
    assert len(big_moved) == 4
    assert _masked(_union(four), WALL_CLOCK) == _masked(_expected(alone, 4), WALL_CLOCK)


def _expected(alone: str, shards: int) -> dict[Key, float]:
    """What the union of ``shards`` shards must be: the unsharded exporter's series, with each shard's
    list of big's workflows counted."""
    expected = {key: value for key, value in _parse(alone).items() if key[0] not in PROCESS}
    for key in expected:
        if _listing(key) and key[0].endswith(("_total", "_count")):
            expected[key] *= shards
    return expected


def _changes(process: ExporterProcess) -> Counter[str]:
    """workflow uid -> status changes counted."""
    counted: Counter[str] = Counter()
    for series in ScrapedMetrics(process.metrics()).find("captaindata_run_status_changes_total"):
        counted[series.label("workflow_uid")] += int(series.value)
    return counted


def test_serving_3_shards_and_one_exporter_agree_as_runs_change(
    sim_and_config: tuple[Simulator, dict[str, dict[str, str]], dict[str, Any]], tmp_path: Path
) -> None:
    """The real thing: 3 shards and one exporter serving, polling every second. Runs change status; once
    every process has seen the changes, the union equals the exporter, counters of changes included."""
    sim, runs, config = sim_and_config
    with ExitStack() as stack:
        starting = [running_exporter(config, tmp_path / "alone")] + [
            running_exporter(
                config,
                tmp_path / f"shard-{shard}",
                ["--shard", "auto", "--total-shards", str(SHARDS)],
                env={"HOSTNAME": f"captaindata-exporter-{shard}"},
            )
            for shard in range(SHARDS)
        ]
        with ThreadPoolExecutor(len(starting)) as pool:  # started side by side, each waited for
            alone, *shards = pool.map(stack.enter_context, starting)
        before = (alone.metrics(), [shard.metrics() for shard in shards])
        # Change one run of every workflow of three workspaces, big included: each change is counted.
        changed = [uid for name in ("client-1", "client-5", BIG) for uid in runs if uid.startswith(name)]
        for index, uid in enumerate(changed):
            run = next(iter(runs[uid]))
            to = [s for s in ("warning", "shutdown", "stopped", "finished") if s != runs[uid][run]][index % 3]
            sim.update_run(run, to, start_time=T0 - 50, finish_time=T0)

        def seen() -> bool:
            by_shards = sum((_changes(shard) for shard in shards), Counter[str]())
            by_alone = _changes(alone)
            return all(by_alone[uid] == 1 and by_shards[uid] == 1 for uid in changed)

        wait_until(seen, 30, "every process to count the changed runs")
        wait_until(lambda: _agree(alone, shards), 30, "the union of the shards to equal the exporter")
        after = (alone.metrics(), [shard.metrics() for shard in shards])
    _rules_agree(before, after, tmp_path)


#: Serving, each process polls on its own schedule: the API counters depend on how many polls each made.
POLL_COUNTED = {"captaindata_api_requests_total", "captaindata_api_request_duration_seconds_count"}


def _agree(alone: ExporterProcess, shards: list[ExporterProcess]) -> bool:
    masked = WALL_CLOCK | POLL_COUNTED
    union = _masked(_union([shard.metrics() for shard in shards]), masked)
    expected = _masked({k: v for k, v in _parse(alone.metrics()).items() if k[0] not in PROCESS}, masked)
    if union != expected:
        differing = (
            sorted(str(key) for key in union.keys() ^ expected.keys())[:5]
            or [str((key, union[key], expected[key])) for key in union if union[key] != expected[key]][:5]
        )
        print("not yet:", differing)
        return False
    return True


# ------------------------------------------------------------------ the rules over the union, in Prometheus

RULES = ROOT / "deploy" / "prometheus" / "captaindata-alerts.rules.yml"
JOB = {"job": "captaindata-exporter", "instance": "exporter:10237"}
STEP, STEPS = 60, 61  # an hour of samples a minute apart: "before" the changes, then "after"


def _samples(alone: str, shards: list[str]) -> dict[Key, float]:
    """Both data sets as one: the exporter's workspaces as ``A:<name>``, the shards' union (as
    Prometheus would store it from one target: no two shards export a series) as ``U:<name>``. Values
    of the wall clock are the same constant on both sides; the API request counts (each process's own
    poll count) and the process-level series are left out: no rule reads them."""
    found: dict[Key, float] = {}
    for prefix, texts in (("A:", [alone]), ("U:", shards)):
        for text in texts:
            for (name, labels), value in _parse(text).items():
                if name in PROCESS or name in POLL_COUNTED or name.startswith("captaindata_api_request_dur"):
                    continue
                named = {**dict(labels), **JOB}
                named["workspace"] = prefix + named["workspace"]
                key = (name, frozenset(named.items()))
                assert key not in found, key
                found[key] = 1_000.0 if name in WALL_CLOCK else value
    return found


def _openmetrics(before: dict[Key, float], after: dict[Key, float], end: int) -> str:
    lines = []
    for key in sorted(before.keys() | after.keys(), key=str):
        name, labels = key
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels))
        for step in range(STEPS):
            moment = end - (STEPS - 1 - step) * STEP
            value = (before if step < STEPS // 2 else after).get(key)
            if value is not None:
                lines.append(f"{name}{{{text}}} {value!r} {moment}")
    return "\n".join([*lines, "# EOF", ""])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _expressions() -> dict[str, str]:
    """Every alert's and recording rule's expression, with recorded series replaced by their own
    expression (so the success ratio is evaluated from the raw series too). Skipped:
    CaptainDataExporterDown, on Prometheus' own scrape ``up``, which sharding does not change."""
    records: dict[str, str] = {}
    found: dict[str, str] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            for record, inner in records.items():
                expr = re.sub(re.escape(record) + r"\{([^}]*)\}", _inline(inner), expr)
            if "record" in rule:
                records[rule["record"]] = expr
            name = rule.get("alert") or rule["record"]
            if name != "CaptainDataExporterDown":
                found[name] = expr
    return found


def _inline(inner: str) -> Callable[[re.Match[str]], str]:
    """A reference to a recorded series, ``record{matchers}``, as its expression with those matchers."""

    def replace(match: re.Match[str]) -> str:
        job = 'job="captaindata-exporter"'
        return "(" + inner.replace(job, f"{job}, {match.group(1)}") + ")"

    return replace


def _rules_agree(before: tuple[str, list[str]], after: tuple[str, list[str]], tmp_path: Path) -> None:
    """Every alert and recording rule, evaluated by Prometheus over the union of the shards, gives what
    it gives over the one exporter: the same series, the same values."""
    end = int(time.time()) // STEP * STEP
    data = tmp_path / "union.om"
    data.write_text(_openmetrics(_samples(*before), _samples(*after), end))
    blocks = tmp_path / "blocks"
    done = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answered = []
    with running_prometheus_on(blocks, tmp_path) as prometheus:
        for name, expr in _expressions().items():
            result = prometheus.api("query", {"query": expr, "time": str(end)})["result"]
            sides: dict[str, Counter[tuple[frozenset[tuple[str, str]], str]]] = {
                "A:": Counter(),
                "U:": Counter(),
            }
            for item in result:
                labels = dict(item["metric"])
                workspace = labels.pop("workspace")
                # An alert on a per-shard series fires for each shard of a split workspace, with its
                # shard label: here every shard is as stale as the one exporter, so once per shard.
                labels.pop("shard", None)
                sides[workspace[:2]][
                    (frozenset({**labels, "workspace": workspace[2:]}.items()), item["value"][1])
                ] += 1
            per_shard = {key for key, count in sides["U:"].items() if count == SHARDS}
            sides["U:"].update({key: 1 - SHARDS for key in per_shard})
            assert dict(sides["U:"]) == dict(sides["A:"]), name
            answered += [name] if sides["A:"] else []
    print(f"rules with the same series over the union and over one exporter: {', '.join(answered)}")
    # Not an empty comparison: the recording rules, and the alerts these runs fire, have series.
    assert set(answered) >= {
        "workflow:captaindata_run_status_changes:increase1h",
        "workflow:captaindata_run_success_ratio:increase1d",
        "CaptainDataRunRunningTooLong",
        "CaptainDataRunWarning",
        "CaptainDataRunShutdown",
        "CaptainDataRunPaused",
        "CaptainDataRunStopped",
        "CaptainDataExporterPollStale",
    }


# ------------------------------------------------------------------------------ the state of each shard


def test_a_workspace_that_moved_away_leaves_no_stale_state_behind(tmp_path: Path) -> None:
    """A shard sets aside the journal of a workspace another shard polls now, and a split workspace's
    journal is its part's: a new split is a fresh baseline."""
    from exporter.persist.saver import open_state

    workspaces: list[dict[str, Any]] = [{"name": n, "workspace_uid": "w", "api_key": KEY} for n in CLIENTS]
    workspaces.append({"name": BIG, "workspace_uid": "b", "api_key": KEY, "sharding": {"by": "workflow"}})
    state = tmp_path / "state"

    def opened(shard: int, total: int) -> dict[str, Any]:
        config = parse_config({"workspaces": workspaces, "state": {"path": str(state)}})
        config = dataclasses.replace(config, sharding=ShardingConfig(shard, total))
        directory, savers = open_state(config)
        assert directory is not None
        assert savers is not None
        for name, saver in savers.items():
            if saver.restore() is None:  # a fresh start: save one, as the poller would
                saver.save(WorkspaceState(name), force=True)
        directory.close()
        return savers

    assert set(opened(1, 3)) == {"client-5", "client-7", BIG}  # client-5 and -7 hash to 1 of 3
    assert len(list(state.glob("*.journal"))) == 3
    # 4 shards: client-5 and -7 go to shard 3. Shard 1 sets them aside; big's part of shard 1 changed.
    assert set(opened(1, 4)) == {BIG}
    assert sorted(p.name.rsplit(".", 1)[-1] for p in state.iterdir() if p.name != "LOCK") == [
        "journal",
        "mismatch",
        "moved",
        "moved",
    ]
    savers = opened(1, 4)  # the same shards again: its part of big continues
    assert savers[BIG].restore() is not None
