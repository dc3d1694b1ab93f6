"""`python -m sim up --state-dir DIR [--boot-seconds S] [--byoh N]`: run the SIMULATED twin.

Starts `sim.twin.Twin` in the foreground (cluster, AWS, Azure, Windows hosts), prints a short
ready summary and runs until SIGTERM/SIGINT, then shuts down cleanly (the env file is removed).
Used by `make sim` and by developers; logs go through `logging`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from sim.twin import Twin

log = logging.getLogger("sim")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole twin until SIGTERM/SIGINT")
    up.add_argument("--state-dir", required=True, help="where kubeconfig, ca.crt and env go")
    up.add_argument(
        "--boot-seconds",
        type=float,
        default=3.0,
        help="how long a new cloud VM takes to accept SSH (default 3)",
    )
    up.add_argument("--byoh", type=int, default=2, help="number of BYOH hosts (default 2)")
    up.add_argument("--aws-cidr", default="127.10.0.0/16", help="AWS subnet (loopback range)")
    up.add_argument("--azure-cidr", default="127.20.0.0/16", help="Azure subnet (loopback)")
    up.add_argument("--byoh-cidr", default="127.30.0.0/16", help="BYOH hosts' range (loopback)")
    up.add_argument("--log-level", default="INFO")
    return parser


def _summary(twin: Twin) -> str:
    env = twin.env
    return "\n".join(
        [
            "winfleet twin is up (SIMULATED)",
            f"  kubernetes   {twin.kube.url}   kubeconfig {env['KUBECONFIG']}",
            f"  mcs          {env['WINFLEET_MCS_URL']}",
            f"  aws (moto)   {env['AWS_ENDPOINT_URL']}   image {env['WINFLEET_AWS_IMAGE_ID']}",
            f"  azure (arm)  {env['AZURE_ARM_ENDPOINT']}   "
            f"rg {env['WINFLEET_AZURE_RESOURCE_GROUP']}",
            f"  byoh hosts   {env['WINFLEET_BYOH_HOSTS'] or '(none)'}",
            f"  source {twin.env_path}",
            "Ctrl-C to stop.",
        ]
    )


async def _up(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    twin = Twin(
        args.state_dir,
        boot_seconds=args.boot_seconds,
        byoh_hosts=args.byoh,
        aws_cidr=args.aws_cidr,
        azure_cidr=args.azure_cidr,
        byoh_cidr=args.byoh_cidr,
    )
    async with twin:
        print(_summary(twin), flush=True)
        await stop.wait()
        log.info("shutting down")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "up":
        asyncio.run(_up(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
