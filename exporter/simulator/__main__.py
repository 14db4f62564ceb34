"""Run the simulator on its own: ``python -m exporter.simulator --listen 127.0.0.1:8080``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from exporter.config import parse_listen_address
from exporter.simulator import Simulator, build_demo_simulator, serve_until_stopped
from exporter.simulator.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter.simulator", description=__doc__)
    parser.add_argument(
        "--listen", default="127.0.0.1:0", help="host:port to serve on (default: a free loopback port)"
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace-uid", default=None)
    parser.add_argument(
        "--api-key-file",
        default=None,
        help="file holding the API key to accept (default: a random key, printed)",
    )
    args = parser.parse_args(argv)
    api_key = Path(args.api_key_file).read_text().strip() if args.api_key_file else None
    if args.scenario == "demo":
        sim = build_demo_simulator(args.seed, api_key, args.workspace_uid)
    else:
        sim = Simulator(seed=args.seed)
        sim.add_workspace(args.workspace_uid, api_key)
    if api_key is None:
        print(f"accepted API key: {next(iter(sim.workspaces.values())).api_key}", flush=True)
    host, port = parse_listen_address(args.listen)
    workspace = next(iter(sim.workspaces.values()))

    def announce(url: str) -> None:
        print(f"simulated Captain Data API on {url} (workspace_uid {workspace.uid})", flush=True)

    asyncio.run(serve_until_stopped(sim, host or "127.0.0.1", port, announce))
    return 0


if __name__ == "__main__":
    sys.exit(main())
