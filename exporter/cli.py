"""The command line: serve, ``--demo``, ``--once``, ``--check-config``, ``--version``.

What ``--version``, ``--help`` and ``--check-config`` do not need (the HTTP client and server, the poller,
the simulator) is imported only when serving or polling: those three stay quick (bench/import_time.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import platform
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.api.v4.settings import V4Config
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    LOG_FORMATS,
    LOG_LEVELS,
    AccountsConfig,
    ApiConfig,
    Config,
    ConfigError,
    CreditsConfig,
    PollConfig,
    Secret,
    ShardingConfig,
    StateConfig,
    WebConfig,
    WorkspaceConfig,
    load_config,
    parse_listen_address,
)
from exporter.logs import setup_logging
from exporter.push.config import PushConfig, add_push_flags, apply_push_flags
from exporter.sharding import AUTO, MAX_TOTAL_SHARDS, owner

if TYPE_CHECKING:
    from aiohttp.web import BaseRunner

    from exporter.persist.journal import StateDirectory
    from exporter.poller import Poller
    from exporter.published import Published
    from exporter.simulator import Simulator
    from exporter.simulator.push import PushSender
    from exporter.webconfig import WebConfigSource

logger = logging.getLogger("exporter")

EXIT_POLL_FAILED = 1  # --once: a workspace's poll failed
EXIT_USAGE = 2  # the command line or the configuration is wrong (argparse uses 2 for its own errors too)
EXIT_CONFIG_ERROR = EXIT_USAGE
EXIT_CANNOT_LISTEN = 3  # the listen address cannot be bound (taken, or not ours)
#: The state directory when neither --state.path nor state.path sets one (the container image sets it).
STATE_PATH_ENV = "CAPTAINDATA_EXPORTER_STATE_PATH"
#: The demo receives pushes (#16), so its polls are only the reconciliation: a run's change shows
#: within a second through push, where this interval alone would take up to 30 s.
DEMO_POLL_INTERVAL = 30.0
#: The demo's push listener: loopback only, any free port (the simulator is told which).
DEMO_PUSH_ADDRESS = "127.0.0.1:0"
DEMO_SIDE_READ_INTERVAL = 5.0  # credits and accounts (issue 17): the demo's credits run out in minutes
# CPython's defaults: (700 or 2000, 10, 10). A young collection walks every object of the young
# generation while holding the GIL: 50,000 of them took 30 to 70 ms during a 100k-run poll (bench/perf),
# 5,000 take under 10 ms; 500 young collections per middle one keep those as rare as before.
GC_THRESHOLDS = (5_000, 500, 100)
#: How long (seconds) a thread holding the GIL keeps it once another thread asks for it (CPython's
#: default 5 ms). The event loop gives the GIL up at every socket call, then waits that long for the
#: parse and render threads to give it back: at 5 ms, a scrape during a big poll waited 30 to 280 ms.
#: Each hand-off costs CPU too: at 100k runs, 0.5 ms cost about 1.2x the CPU of a poll at 5 ms, 1 ms about
#: 1.1x, for a /metrics p99 under 30 ms during the poll (bench/README.md, "All of issue #20 together").
SWITCH_INTERVAL = 0.001
DEMO_V4_RESYNC = 60.0  # the demo forgets runs after 10 minutes; a resync a minute drops them soon
DOCS = "https://github.com/captaindata-exporter/captaindata-exporter/tree/main/docs"

EPILOG = f"""\
The API key: put it in the configuration (api_key: "${{CAPTAINDATA_API_KEY}}" reads the environment
variable CAPTAINDATA_API_KEY; or api_key_file: FILE). It never appears in logs, metrics or pages.

Flags override the configuration file: --web.listen-address over web.listen_address, --log.level over
log.level, --log.format over log.format, --shard and --total-shards over sharding.shard and
sharding.total_shards.

Exit codes: 0 success; {EXIT_POLL_FAILED} --once and a poll failed; {EXIT_USAGE} a wrong command line or
configuration; {EXIT_CANNOT_LISTEN} the listen address cannot be bound.

Documentation: {DOCS} (configuration.md, metrics.md, alerts.md, runbooks.md).
Try it without an account: captaindata-exporter --demo"""

#: Flags that make no sense together, and why (exit code 2).
CONFLICTS: tuple[tuple[str, str, str], ...] = (
    ("demo", "config", "--demo polls its built-in simulator and reads no configuration file"),
    ("demo", "check_config", "--demo has no configuration file to check"),
    ("once", "check_config", "--check-config only validates the configuration; it never polls"),
    ("demo", "shard", "--demo polls its one built-in simulator; shard a real configuration"),
    ("demo", "total_shards", "--demo polls its one built-in simulator; shard a real configuration"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captaindata-exporter",
        description="Prometheus exporter for Captain Data runs: polls the Captain Data API and serves "
        "/metrics, a status page (/) and /api/v1/status.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the YAML configuration file (see config.example.yaml)"
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDRESS",
        help="host:port or :port to serve on; overrides the config's web.listen_address "
        f"(default {DEFAULT_LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--state.path",
        dest="state_path",
        metavar="DIR",
        help="directory of the state that survives restarts; overrides the config's state.path (empty: off)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=lambda text: Path(text) if text else None,  # empty: no web config, as exporter-toolkit
        metavar="FILE",
        help="exporter-toolkit web configuration (TLS, client certificates, basic auth); re-read on change",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LOG_LEVELS,
        help="overrides the config's log.level (default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help="overrides the config's log.format (default logfmt)",
    )
    parser.add_argument(
        "--shard",
        metavar="N|auto",
        help="this exporter's shard, 0 to M-1 (default 0); auto: the StatefulSet ordinal at the end of "
        "$HOSTNAME (pod name-N). Overrides the config's sharding.shard",
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        metavar="M",
        help="the number of shards the workspaces are spread over (default 1: no sharding); overrides "
        "the config's sharding.total_shards",
    )
    parser.add_argument(
        "--demo", action="store_true", help="no account needed: start the built-in API simulator and poll it"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll every workspace once, print the metrics on stdout and a summary on stderr; "
        f"exit 0 only if every poll succeeded, else {EXIT_POLL_FAILED}",
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration file and exit (0 if valid)"
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    # Test only, hidden from --help: time from a clock file the soak test owns (exporter/fileclock.py).
    parser.add_argument("--test.clock-file", dest="test_clock_file", type=Path, help=argparse.SUPPRESS)
    add_push_flags(parser)
    return parser


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    for first, second, why in CONFLICTS:
        if getattr(args, first) and getattr(args, second) not in (None, False):
            flags = " and ".join("--" + name.replace("_", "-") for name in (first, second))
            parser.error(f"{flags} cannot be used together: {why}")  # exits with 2
    return args


def _demo_config(
    base_url: str,
    workspace_uid: str,
    api_key: str,
    listen_address: str,
    v4_api_key: str | None = None,
    push_tokens: Mapping[str, str] | None = None,
) -> Config:
    v4 = WorkspaceConfig(
        name="demo-v4",
        workspace_uid="",
        api_key=Secret(v4_api_key or ""),
        api_version="v4",
        base_url=base_url,
        settings=V4Config(resync_interval=DEMO_V4_RESYNC),
    )
    return Config(
        workspaces=(
            WorkspaceConfig(
                name="demo",
                workspace_uid=workspace_uid,
                api_key=Secret(api_key),
                base_url=base_url,
                credits=CreditsConfig(interval=DEMO_SIDE_READ_INTERVAL),
                accounts=AccountsConfig(interval=DEMO_SIDE_READ_INTERVAL),
            ),
            *((v4,) if v4_api_key else ()),
        ),
        poll=PollConfig(interval=DEMO_POLL_INTERVAL),
        api=ApiConfig(requests_per_second=100.0, burst=100, retry_backoff=0.2, retry_backoff_max=2.0),
        web=WebConfig(listen_address),
        push=PushConfig(
            listen_address=DEMO_PUSH_ADDRESS,
            tokens={name: Secret(token) for name, token in (push_tokens or {}).items()},
        )
        if push_tokens
        else None,
    )


class _DemoPushes:
    """The demo's simulator pushes its runs' changes to the demo's own push listener, with a token,
    once that listener has a port (``started``)."""

    def __init__(self, sim: Simulator, targets: Mapping[str, tuple[str, str, str]]) -> None:
        self.sim = sim
        self.targets = targets  # simulator workspace uid -> (workspace name, token, api version)
        self.sender: PushSender | None = None

    async def started(self, port: int) -> None:
        from exporter.simulator.push import PushSender, PushTarget

        self.sender = PushSender(
            self.sim,
            {
                uid: PushTarget(
                    f"http://127.0.0.1:{port}/push/{name}", token, "v4" if version == "v4" else "v3"
                )
                for uid, (name, token, version) in self.targets.items()
            },
        )
        self.sender.start()

    async def aclose(self) -> None:
        if self.sender is not None:
            await self.sender.aclose()


@contextlib.asynccontextmanager
async def _demo_simulator(listen_address: str) -> AsyncIterator[tuple[Config, _DemoPushes]]:
    from exporter.simulator import build_demo_simulator, start_simulator
    from exporter.simulator.scenarios import DEMO_REQUEST_BUDGET
    from exporter.simulator.v4demo import add_demo_v4_workspace

    sim = build_demo_simulator(request_budget=DEMO_REQUEST_BUDGET)
    workspace = next(iter(sim.workspaces.values()))
    v4_api_key = add_demo_v4_workspace(sim)  # the v3 and v4 demos side by side
    v4_uid = next(uid for uid, w in sim.workspaces.items() if w.api_key == v4_api_key)
    tokens = {"demo": secrets.token_urlsafe(24), "demo-v4": secrets.token_urlsafe(24)}
    pushes = _DemoPushes(
        sim, {workspace.uid: ("demo", tokens["demo"], "v3"), v4_uid: ("demo-v4", tokens["demo-v4"], "v4")}
    )
    runner, base_url = await start_simulator(sim, "127.0.0.1", 0)
    try:
        yield (
            _demo_config(base_url, workspace.uid, workspace.api_key, listen_address, v4_api_key, tokens),
            pushes,
        )
    finally:
        await pushes.aclose()
        await runner.cleanup()


def _display_url(listen_address: str, tls: bool = False) -> str:
    host, port = parse_listen_address(listen_address)
    shown = "localhost" if host in (None, "0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _totals(text: str) -> dict[str, dict[str, float]]:
    """From an exposition: per workspace, the sums the --once log and summary report."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "captaindata_workflows": "workflows",
        "captaindata_runs": "runs",
        "captaindata_up": "up",
        "captaindata_api_requests": "requests",
        "captaindata_api_rate_limited": "rate_limited",
        "captaindata_api_request_failures": "failed_requests",
    }
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        key = wanted.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            workspace = totals.setdefault(
                sample.labels.get("workspace", ""), dict.fromkeys(wanted.values(), 0)
            )
            workspace[key] += sample.value
    return totals


def _summary(
    totals: dict[str, dict[str, float]], results: list[bool], names: list[str], seconds: float
) -> str:
    failed = [name for name, ok in zip(names, results, strict=True) if not ok]
    count = {key: int(sum(t[key] for t in totals.values())) for key in ("workflows", "runs", "requests")}
    waits = int(sum(t["rate_limited"] for t in totals.values()))
    retried = int(sum(t["failed_requests"] for t in totals.values()))
    outcome = f"{len(failed)} failed ({', '.join(failed)})" if failed else "all succeeded"
    return (
        f"captaindata-exporter --once: {len(names)} workspace(s) polled, {outcome}; "
        f"{count['workflows']} workflows, {count['runs']} runs, {count['requests']} API requests "
        f"({waits} answered 429, {retried} without a response) in {seconds:.1f}s"
    )


async def _text(published: Published) -> str:
    return published.render_now(openmetrics=False).decode()


async def _poll_once_and_print(config: Config) -> int:
    from exporter.poller import build

    published, pollers = build(config)
    names = [poller.workspace.name for poller in pollers]
    logger.info("polling once", extra={"workspaces": len(pollers)})
    started = time.monotonic()

    async def poll(poller: Poller) -> bool:
        ok = await poller.poll_once()
        for side in poller.side_loops:  # credits and accounts (issue 17): once each, never failing --once
            await side.read_once()
        poller.sink.flush()
        name = poller.workspace.name
        mine = _totals(await _text(published)).get(name, {})
        logger.info(
            "workspace polled",
            extra={
                "workspace": name,
                "ok": ok,
                **{key: int(value) for key, value in mine.items() if key != "up"},
            },
        )
        return ok

    try:
        results = list(await asyncio.gather(*(poll(poller) for poller in pollers)))
    finally:
        for poller in pollers:
            await poller.aclose()
    text = await _text(published)
    sys.stdout.write(text)
    sys.stdout.flush()
    print(_summary(_totals(text), results, names, time.monotonic() - started), file=sys.stderr, flush=True)
    return 0 if all(results) else EXIT_POLL_FAILED


async def _serve(
    config: Config,
    web_source: WebConfigSource | None = None,
    banner: Callable[[], None] | None = None,
    on_push: Callable[[int], Awaitable[None]] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    from aiohttp import web

    from exporter.listener import ProtocolErrorLog, bounded_writes, start_site

    stop = asyncio.Event()
    _handle_signals(stop, web_source)  # first: a signal during start-up must not kill it either
    # Tracked runs are long-lived and acyclic: with the default thresholds, a poll of 100k runs
    # triggers full collections that walk every one of them while holding the GIL, stalling scrapes.
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
    from exporter.persist.journal import StateDirectoryError
    from exporter.persist.saver import open_state
    from exporter.poller import build, unhealthy
    from exporter.server import create_app
    from exporter.webguard import install as install_web_guard

    try:
        state_directory, savers = open_state(config)
    except StateDirectoryError as error:
        logger.error("cannot use the state directory (state.path)", extra={"error": str(error)})
        return EXIT_CONFIG_ERROR
    published, pollers = build(config, savers=savers, clock=clock)
    from exporter.push.apply import wire_push

    push = wire_push(config, pollers, published)
    host, port = parse_listen_address(config.web.listen_address)
    app = create_app(published, lambda: unhealthy(pollers))
    app.middlewares.insert(0, bounded_writes(config.web.idle_timeout))
    if web_source is not None:
        install_web_guard(app, web_source)
        web_source.on_reload = published.invalidate
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access"),
        logger=ProtocolErrorLog(logging.getLogger("aiohttp.server")),
        shutdown_timeout=5.0,
        # aiohttp starts this timer when a connection opens and after each response, and partial
        # request bytes do not reset it: idle and half-sent requests both close in idle_timeout.
        keepalive_timeout=config.web.idle_timeout,
    )
    await runner.setup()
    try:
        await start_site(
            runner,
            host,
            port,
            config.web.max_connections,
            web_source.listener_context() if web_source is not None else None,
            config.web.idle_timeout,
            web_source.current if web_source is not None else None,
        )
    except OSError as error:
        address = config.web.listen_address
        reason = error.strerror or str(error)
        logger.error("cannot listen", extra={"address": address, "error": reason})
        print(
            f"captaindata-exporter: cannot listen on {address}: {reason}. "
            "Is another exporter running? Choose another address with --web.listen-address HOST:PORT.",
            file=sys.stderr,
            flush=True,
        )
        await _close(pollers, state_directory, runner)
        return EXIT_CANNOT_LISTEN
    if push is not None:
        try:
            await push.start()
        except OSError as error:
            push_address = push.push.listen_address
            reason = error.strerror or str(error)
            logger.error("cannot listen for pushes", extra={"address": push_address, "error": reason})
            print(
                f"captaindata-exporter: cannot listen on {push_address} (push.listen_address): {reason}.",
                file=sys.stderr,
                flush=True,
            )
            await _close(pollers, state_directory, runner)
            return EXIT_CANNOT_LISTEN
        logger.info("receiving pushes", extra={"address": push.push.listen_address, "port": push.port})
        if on_push is not None:
            await on_push(push.port)
    sharding = config.sharding.current
    logger.info(
        "serving metrics",
        extra={
            "address": config.web.listen_address,
            "workspaces": len(pollers),
            "version": __version__,
            "tls": web_source is not None and web_source.tls,
            **({"shard": sharding.shard, "total_shards": sharding.total} if sharding.sharded else {}),
        },
    )
    if banner is not None:  # only now: the address is really ours
        banner()
    tasks = [
        asyncio.create_task(poller.run_forever(), name=f"poll {poller.workspace.name}") for poller in pollers
    ]
    await stop.wait()
    logger.info("shutting down")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if push is not None:
        await push.aclose()
    await _close(pollers, state_directory, runner)
    return 0


#: Signals that end the exporter as SIGTERM does: the state is saved, then the process exits 0.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
#: Signals that would kill the process at once by default, and mean nothing to the exporter.
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


def _handle_signals(stop: asyncio.Event, web_source: WebConfigSource | None) -> None:
    """SIGTERM, SIGINT and SIGQUIT stop gracefully; SIGHUP re-reads the web config (the exporter
    configuration needs a restart) and keeps serving; SIGUSR1 and SIGUSR2 are logged and ignored."""
    loop = asyncio.get_running_loop()

    def stopping(signum: signal.Signals) -> None:
        logger.info("signal received: stopping", extra={"signal": signum.name})
        stop.set()

    def reload() -> None:
        if web_source is None:
            logger.info("SIGHUP received: no --web.config.file to reload; still serving")
            return
        logger.info("SIGHUP received: checking the web config file", extra={"file": str(web_source.path)})
        web_source.current()  # reloads when a file changed; a bad one is logged and the old one kept

    def ignored(signum: signal.Signals) -> None:
        logger.info("signal ignored", extra={"signal": signum.name})

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping, signum)
    loop.add_signal_handler(signal.SIGHUP, reload)
    for signum in IGNORED_SIGNALS:
        loop.add_signal_handler(signum, ignored, signum)


async def _close(
    pollers: Sequence[Poller], state_directory: StateDirectory | None, runner: BaseRunner
) -> None:
    """Close the API clients, release the state directory's lock, then stop serving."""
    for poller in pollers:
        await poller.aclose()
    if state_directory is not None:
        state_directory.close()
    await runner.cleanup()


async def _run_demo(args: argparse.Namespace, listen_address: str, web_source: WebConfigSource | None) -> int:
    async with _demo_simulator(listen_address) as (config, pushes):
        setup_logging(args.log_level or "info", args.log_format or "logfmt", config.secrets())
        if args.once:
            return await _poll_once_and_print(config)
        url = _display_url(listen_address, web_source is not None and web_source.tls)

        def banner() -> None:
            print(
                f"captaindata-exporter {__version__} demo: metrics at {url}/metrics, status page at {url}/ "
                f"(polling the built-in Captain Data simulator at {config.workspaces[0].base_url}, "
                "which pushes each run's change to the exporter's push listener; Ctrl-C stops)",
                flush=True,
            )

        return await _serve(config, web_source, banner, pushes.started)


def _sharded(config: Config, shard: str | None, total_shards: int | None) -> Config:
    """The configuration with its shard resolved: flags over the file, ``auto`` from $HOSTNAME."""
    written = config.sharding
    if shard not in (None, AUTO) and not (shard.isascii() and shard.isdigit() and len(shard) <= 6):
        raise ValueError(f"--shard must be a number or auto, got {shard[:20]!r}")
    chosen = ShardingConfig(
        shard=written.shard if shard is None else (shard if shard == AUTO else int(shard)),
        total_shards=written.total_shards if total_shards is None else total_shards,
    )
    if chosen.total_shards is not None and not 1 <= chosen.total_shards <= MAX_TOTAL_SHARDS:
        raise ValueError(f"--total-shards must be between 1 and {MAX_TOTAL_SHARDS}")
    hostname = os.environ.get("HOSTNAME") or socket.gethostname()
    resolved = chosen.resolve(hostname)
    return dataclasses.replace(config, sharding=ShardingConfig(resolved.shard, resolved.total))


def _shard_report(config: Config) -> str:
    """What --check-config says about sharding: what this shard polls, and which shard has the rest.
    The workflows of a workspace split by workflow need the API to list; the rule that picks them is
    given instead (--check-config never talks to the API)."""
    sharding = config.sharding.current
    parts = config.parts()
    lines = [
        f"shard {sharding.shard} of {sharding.total} (0 to {sharding.total - 1}); workspaces go to shards "
        "by rendezvous hashing of their name:"
    ]
    others = []
    for workspace in config.workspaces:
        part = parts.get(workspace.name)
        if part is None:
            others.append(f"{workspace.name} (shard {owner(workspace.name, sharding.total)})")
        elif not part.split:
            lines.append(f"  polls {workspace.name} ({workspace.api_version}, whole)")
        else:
            rate, burst = part.budget(config.api.requests_per_second, config.api.burst)
            exporter = "this shard" if part.owner else f"shard {owner(workspace.name, sharding.total)}"
            lines.append(
                f"  polls part of {workspace.name} ({workspace.api_version}, sharding.by: workflow): the "
                f"workflows whose workflow_uid hashes to shard {sharding.shard} (the same rendezvous "
                f"hashing; listing them needs the API), at {rate:g} requests/s, burst {burst}; "
                f"{exporter} exports its captaindata_workflows"
            )
    if not parts:
        lines.append("  polls no workspace")
    if others:
        lines.append(f"  leaves to other shards: {', '.join(others)}")
    return "\n".join(lines)


def side_read_summary(config: Config) -> list[str]:
    """--check-config: each workspace's credits and accounts reads and their request cost (issue 17)."""
    from exporter.api import adapter
    from exporter.durations import format_duration

    lines = []
    for workspace in config.workspaces:
        api = adapter(workspace.api_version)
        parts = []
        for name in ("credits", "accounts"):
            if not api.has_side_read(name):
                parts.append(f"{name} off (the {workspace.api_version} API documents no {name} endpoint yet)")
            elif not workspace.side_read_enabled(name):
                parts.append(f"{name} off")
            elif name == "credits":
                every = format_duration(workspace.credits.interval)
                parts.append(f"credits every {every} (1 request)")
            else:
                every = format_duration(workspace.accounts.interval)
                integrations = ", ".join(workspace.accounts.integrations)
                parts.append(
                    f"accounts of {integrations} every {every} (1 request per page of accounts per "
                    f"integration; at most {workspace.accounts.max_accounts} accounts)"
                )
        lines.append(f"  {workspace.name} ({workspace.api_version}): " + "; ".join(parts))
    return lines


def _web_config_error(path: Path, error: ConfigError) -> int:
    print(f"captaindata-exporter: configuration error: {path}: {error}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.version:
        print(f"captaindata-exporter {__version__} (Python {platform.python_version()})")
        return 0
    if args.listen_address is not None:
        try:
            parse_listen_address(args.listen_address)
        except ValueError as error:
            print(f"captaindata-exporter: --web.listen-address: {error}", file=sys.stderr)
            return EXIT_USAGE
    web_source = None
    if args.web_config_file is not None:
        from exporter.render import WEB_CONFIG_RELOAD_COUNTS
        from exporter.webconfig import WebConfigSource, load_web_config

        try:
            if args.check_config:
                load_web_config(args.web_config_file)
            else:
                web_source = WebConfigSource(args.web_config_file, WEB_CONFIG_RELOAD_COUNTS)
        except ConfigError as error:
            return _web_config_error(args.web_config_file, error)
        if args.check_config and args.config is None:
            print(f"{args.web_config_file}: OK (web config)")
            return 0
    if args.demo:
        return asyncio.run(_run_demo(args, args.listen_address or DEFAULT_LISTEN_ADDRESS, web_source))
    if args.config is None:
        print("captaindata-exporter: --config FILE is required (or --demo to try it out)", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"captaindata-exporter: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        config = _sharded(config, args.shard, args.total_shards)
    except ValueError as error:
        print(f"captaindata-exporter: sharding: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.check_config:
        print(f"{args.config}: OK ({len(config.workspaces)} workspace(s))")
        if config.sharding.current.sharded:
            print(_shard_report(config))
        for line in side_read_summary(config):
            print(line)
        return 0
    if args.listen_address:
        config = dataclasses.replace(
            config, web=dataclasses.replace(config.web, listen_address=args.listen_address)
        )
    try:
        config = apply_push_flags(config, args)
    except ValueError as error:
        print(f"captaindata-exporter: {error}", file=sys.stderr)
        return EXIT_USAGE
    state_path = args.state_path
    if state_path is None and config.state.path is None:
        state_path = os.environ.get(STATE_PATH_ENV)  # the container image's default
    if state_path is not None:
        config = dataclasses.replace(config, state=StateConfig(Path(state_path) if state_path else None))
    setup_logging(args.log_level or config.log.level, args.log_format or config.log.format, config.secrets())
    if args.once:
        return asyncio.run(_poll_once_and_print(config))
    clock = SYSTEM_CLOCK
    if args.test_clock_file is not None:
        from exporter.fileclock import ClockFileError, FileClock

        try:
            clock = FileClock(args.test_clock_file)
        except ClockFileError as error:
            print(f"captaindata-exporter: --test.clock-file: {error}", file=sys.stderr)
            return EXIT_USAGE
        logger.warning(
            "TEST CLOCK: time comes from a test's clock file, not from the system; for tests only",
            extra={"file": str(args.test_clock_file)},
        )
    return asyncio.run(_serve(config, web_source, clock=clock))
