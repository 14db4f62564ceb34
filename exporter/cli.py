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
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.api.v4.settings import V4Config
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
    StateConfig,
    WebConfig,
    WorkspaceConfig,
    load_config,
    parse_listen_address,
)
from exporter.logs import setup_logging

if TYPE_CHECKING:
    from aiohttp.web import BaseRunner

    from exporter.persist.journal import StateDirectory
    from exporter.poller import Poller
    from exporter.published import Published
    from exporter.webconfig import WebConfigSource

logger = logging.getLogger("exporter")

EXIT_POLL_FAILED = 1  # --once: a workspace's poll failed
EXIT_USAGE = 2  # the command line or the configuration is wrong (argparse uses 2 for its own errors too)
EXIT_CONFIG_ERROR = EXIT_USAGE
EXIT_CANNOT_LISTEN = 3  # the listen address cannot be bound (taken, or not ours)
#: The state directory when neither --state.path nor state.path sets one (the container image sets it).
STATE_PATH_ENV = "CAPTAINDATA_EXPORTER_STATE_PATH"
DEMO_POLL_INTERVAL = 5.0
DEMO_SIDE_READ_INTERVAL = 5.0  # credits and accounts (issue 17): the demo's credits run out in minutes
GC_THRESHOLDS = (50_000, 50, 100)  # CPython's defaults: (700 or 2000, 10, 10)
DEMO_V4_RESYNC = 60.0  # the demo forgets runs after 10 minutes; a resync a minute drops them soon
DOCS = "https://github.com/captaindata-exporter/captaindata-exporter/tree/main/docs"

EPILOG = f"""\
The API key: put it in the configuration (api_key: "${{CAPTAINDATA_API_KEY}}" reads the environment
variable CAPTAINDATA_API_KEY; or api_key_file: FILE). It never appears in logs, metrics or pages.

Flags override the configuration file: --web.listen-address over web.listen_address, --log.level over
log.level, --log.format over log.format.

Exit codes: 0 success; {EXIT_POLL_FAILED} --once and a poll failed; {EXIT_USAGE} a wrong command line or
configuration; {EXIT_CANNOT_LISTEN} the listen address cannot be bound.

Documentation: {DOCS} (configuration.md, metrics.md, alerts.md, runbooks.md).
Try it without an account: captaindata-exporter --demo"""

#: Flags that make no sense together, and why (exit code 2).
CONFLICTS: tuple[tuple[str, str, str], ...] = (
    ("demo", "config", "--demo polls its built-in simulator and reads no configuration file"),
    ("demo", "check_config", "--demo has no configuration file to check"),
    ("once", "check_config", "--check-config only validates the configuration; it never polls"),
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
        type=Path,
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
    base_url: str, workspace_uid: str, api_key: str, listen_address: str, v4_api_key: str | None = None
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
    )


@contextlib.asynccontextmanager
async def _demo_simulator(listen_address: str) -> AsyncIterator[Config]:
    from exporter.simulator import build_demo_simulator, start_simulator
    from exporter.simulator.scenarios import DEMO_REQUEST_BUDGET
    from exporter.simulator.v4demo import add_demo_v4_workspace

    sim = build_demo_simulator(request_budget=DEMO_REQUEST_BUDGET)
    workspace = next(iter(sim.workspaces.values()))
    v4_api_key = add_demo_v4_workspace(sim)  # the v3 and v4 demos side by side
    runner, base_url = await start_simulator(sim, "127.0.0.1", 0)
    try:
        yield _demo_config(base_url, workspace.uid, workspace.api_key, listen_address, v4_api_key)
    finally:
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
    return (await published.exposition(openmetrics=False, gzip=False)).decode()


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
    config: Config, web_source: WebConfigSource | None = None, banner: Callable[[], None] | None = None
) -> int:
    from aiohttp import web

    from exporter.listener import start_site

    # Tracked runs are long-lived and acyclic: with the default thresholds, a poll of 100k runs
    # triggers full collections that walk every one of them while holding the GIL, stalling scrapes.
    gc.set_threshold(*GC_THRESHOLDS)
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
    published, pollers = build(config, savers=savers)
    host, port = parse_listen_address(config.web.listen_address)
    app = create_app(published, lambda: unhealthy(pollers))
    if web_source is not None:
        install_web_guard(app, web_source)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access"),
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
    logger.info(
        "serving metrics",
        extra={
            "address": config.web.listen_address,
            "workspaces": len(pollers),
            "version": __version__,
            "tls": web_source is not None and web_source.tls,
        },
    )
    if banner is not None:  # only now: the address is really ours
        banner()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(poller.run_forever(), name=f"poll {poller.workspace.name}") for poller in pollers
    ]
    await stop.wait()
    logger.info("shutting down")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _close(pollers, state_directory, runner)
    return 0


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
    async with _demo_simulator(listen_address) as config:
        setup_logging(args.log_level or "info", args.log_format or "logfmt", config.secrets())
        if args.once:
            return await _poll_once_and_print(config)
        url = _display_url(listen_address, web_source is not None and web_source.tls)

        def banner() -> None:
            print(
                f"captaindata-exporter {__version__} demo: metrics at {url}/metrics, status page at {url}/ "
                f"(polling the built-in Captain Data simulator at {config.workspaces[0].base_url}; "
                "Ctrl-C stops)",
                flush=True,
            )

        return await _serve(config, web_source, banner)


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
        from exporter.webconfig import WebConfigSource, load_web_config

        try:
            if args.check_config:
                load_web_config(args.web_config_file)
            else:
                web_source = WebConfigSource(args.web_config_file)
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
    if args.check_config:
        print(f"{args.config}: OK ({len(config.workspaces)} workspace(s))")
        for line in side_read_summary(config):
            print(line)
        return 0
    if args.listen_address:
        config = dataclasses.replace(
            config, web=dataclasses.replace(config.web, listen_address=args.listen_address)
        )
    state_path = args.state_path
    if state_path is None and config.state.path is None:
        state_path = os.environ.get(STATE_PATH_ENV)  # the container image's default
    if state_path is not None:
        config = dataclasses.replace(config, state=StateConfig(Path(state_path) if state_path else None))
    setup_logging(args.log_level or config.log.level, args.log_format or config.log.format, config.secrets())
    if args.once:
        return asyncio.run(_poll_once_and_print(config))
    return asyncio.run(_serve(config, web_source))
