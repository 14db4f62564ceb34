"""The command line: serve, ``--demo``, ``--once``, ``--check-config``, ``--version``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from exporter import __version__
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    LOG_FORMATS,
    LOG_LEVELS,
    ApiConfig,
    Config,
    ConfigError,
    PollConfig,
    Secret,
    StateConfig,
    V4Config,
    WebConfig,
    WorkspaceConfig,
    load_config,
    parse_listen_address,
)
from exporter.logs import setup_logging
from exporter.persist import StateDirectoryError
from exporter.poller import build, unhealthy
from exporter.restore import open_state
from exporter.server import create_app
from exporter.simulator import build_demo_simulator, start_simulator
from exporter.simulator.v4demo import add_demo_v4_workspace

logger = logging.getLogger("exporter")

EXIT_CONFIG_ERROR = 1
#: The state directory when neither --state.path nor state.path sets one (the container image sets it).
STATE_PATH_ENV = "CAPTAINDATA_EXPORTER_STATE_PATH"
EXIT_POLL_FAILED = 1
DEMO_POLL_INTERVAL = 5.0
DEMO_V4_RESYNC = 60.0  # the demo forgets runs after 10 minutes; a resync a minute drops them soon


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captaindata-exporter",
        description="Prometheus exporter for Captain Data runs.",
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file (see config.example.yaml)")
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        help=f"where to serve (default: the config's web.listen_address, else {DEFAULT_LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--state.path",
        dest="state_path",
        help="directory of the state that survives restarts (overrides state.path; empty: off)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, help="default: info")
    parser.add_argument("--log.format", dest="log_format", choices=LOG_FORMATS, help="default: logfmt")
    parser.add_argument(
        "--demo", action="store_true", help="no config needed: start the built-in API simulator and poll it"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll every workspace once, print the metrics, exit 0 only if all succeeded",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def _demo_config(
    base_url: str, workspace_uid: str, api_key: str, listen_address: str, v4_api_key: str | None = None
) -> Config:
    v4 = WorkspaceConfig(
        name="demo-v4",
        workspace_uid="",
        api_key=Secret(v4_api_key or ""),
        api_version="v4",
        base_url=base_url,
        v4=V4Config(resync_interval=DEMO_V4_RESYNC),
    )
    return Config(
        workspaces=(
            WorkspaceConfig(
                name="demo", workspace_uid=workspace_uid, api_key=Secret(api_key), base_url=base_url
            ),
            *((v4,) if v4_api_key else ()),
        ),
        poll=PollConfig(interval=DEMO_POLL_INTERVAL),
        api=ApiConfig(requests_per_second=100.0, burst=100, retry_backoff=0.2, retry_backoff_max=2.0),
        web=WebConfig(listen_address),
    )


@contextlib.asynccontextmanager
async def _demo_simulator(listen_address: str) -> AsyncIterator[Config]:
    sim = build_demo_simulator()
    workspace = next(iter(sim.workspaces.values()))
    v4_api_key = add_demo_v4_workspace(sim)  # the v3 and v4 demos side by side
    runner, base_url = await start_simulator(sim, "127.0.0.1", 0)
    try:
        yield _demo_config(base_url, workspace.uid, workspace.api_key, listen_address, v4_api_key)
    finally:
        await runner.cleanup()


def _display_url(listen_address: str) -> str:
    host, port = parse_listen_address(listen_address)
    shown = "localhost" if host in (None, "0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


async def _poll_once_and_print(config: Config) -> int:
    published, pollers = build(config)
    try:
        results = await asyncio.gather(*(poller.poll_once() for poller in pollers))
    finally:
        for poller in pollers:
            await poller.aclose()
    sys.stdout.write((await published.exposition(openmetrics=False, gzip=False)).decode())
    sys.stdout.flush()
    return 0 if all(results) else EXIT_POLL_FAILED


async def _serve(config: Config) -> int:
    try:
        state_directory, savers = open_state(config)
    except StateDirectoryError as error:
        logger.error("cannot use the state directory (state.path)", extra={"error": str(error)})
        return EXIT_CONFIG_ERROR
    published, pollers = build(config, savers=savers)
    host, port = parse_listen_address(config.web.listen_address)
    runner = web.AppRunner(
        create_app(published, lambda: unhealthy(pollers)),
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access"),
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, shutdown_timeout=5.0).start()
    except OSError as error:
        logger.error("cannot listen", extra={"address": config.web.listen_address, "error": str(error)})
        await runner.cleanup()
        return 1
    logger.info(
        "serving metrics",
        extra={"address": config.web.listen_address, "workspaces": len(pollers), "version": __version__},
    )
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
    for poller in pollers:
        await poller.aclose()
    if state_directory is not None:
        state_directory.close()
    await runner.cleanup()
    return 0


async def _run_demo(args: argparse.Namespace, listen_address: str) -> int:
    async with _demo_simulator(listen_address) as config:
        setup_logging(args.log_level or "info", args.log_format or "logfmt", config.secrets())
        if args.once:
            return await _poll_once_and_print(config)
        url = _display_url(listen_address)
        print(
            f"captaindata-exporter {__version__} demo: metrics at {url}/metrics, status page at {url}/ "
            f"(polling the built-in Captain Data simulator at {config.workspaces[0].base_url}; Ctrl-C stops)",
            flush=True,
        )
        return await _serve(config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        print(f"captaindata-exporter {__version__} (Python {platform.python_version()})")
        return 0
    if args.listen_address is not None:
        try:
            parse_listen_address(args.listen_address)
        except ValueError as error:
            print(f"captaindata-exporter: --web.listen-address: {error}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
    if args.demo:
        return asyncio.run(_run_demo(args, args.listen_address or DEFAULT_LISTEN_ADDRESS))
    if args.config is None:
        print("captaindata-exporter: --config FILE is required (or --demo to try it out)", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"captaindata-exporter: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.check_config:
        print(f"{args.config}: OK ({len(config.workspaces)} workspace(s))")
        return 0
    if args.listen_address:
        config = dataclasses.replace(config, web=WebConfig(args.listen_address))
    state_path = args.state_path
    if state_path is None and config.state.path is None:
        state_path = os.environ.get(STATE_PATH_ENV)  # the container image's default
    if state_path is not None:
        config = dataclasses.replace(config, state=StateConfig(Path(state_path) if state_path else None))
    setup_logging(args.log_level or config.log.level, args.log_format or config.log.format, config.secrets())
    if args.once:
        return asyncio.run(_poll_once_and_print(config))
    return asyncio.run(_serve(config))
