"""``python -m drivers.sim``: run a simulated modem network until SIGTERM or SIGINT.

Prints one line per modem (id, MSISDN, ICCID, pty path or symlink, TCP URL), then serves
the modems and, with ``--control``, the HTTP control API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import structlog

from drivers.clock import SystemClock
from drivers.sim.control_http import bound_port, start_control
from drivers.sim.faults import DEFAULT_LATENCY
from drivers.sim.network import SimNetwork
from drivers.sim.personalities import PERSONALITIES


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:8765")
    return host or "127.0.0.1", int(port)


def _latency(text: str) -> tuple[float, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected SECONDS or LOW,HIGH") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError("expected SECONDS or LOW,HIGH with 0 <= LOW <= HIGH")
    return values[0], values[1]


def _profiles(text: str) -> list[str]:
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in PERSONALITIES:
            raise argparse.ArgumentTypeError(
                f"unknown profile {name!r} (known: {', '.join(sorted(PERSONALITIES))})"
            )
    return names or ["generic"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m drivers.sim", description=__doc__)
    p.add_argument("--modems", type=int, default=1, help="how many modems (default 1)")
    p.add_argument("--link-dir", type=Path, help="create symlinks DIR/modem-N to the ptys")
    p.add_argument(
        "--tcp-base-port",
        type=int,
        help="also serve modem N on TCP port P+N-1 of 127.0.0.1 (0: free ports)",
    )
    p.add_argument(
        "--latency",
        type=_latency,
        default=DEFAULT_LATENCY,
        help="seconds from Ctrl-Z to +CMGS: S or LOW,HIGH (default 1.5,4)",
    )
    p.add_argument(
        "--report-delay",
        type=_latency,
        help="seconds from a part to its status report for numbers not scripted: S or LOW,HIGH"
        " (default 5)",
    )
    p.add_argument("--control", type=_host_port, help="HTTP control API on HOST:PORT")
    p.add_argument(
        "--profile",
        type=_profiles,
        default=["generic"],
        help="personalities, comma-separated, assigned round-robin (default generic)",
    )
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    p.add_argument("--msisdn-base", default="+34600000", help="numbers are BASE + NNN")
    p.add_argument("--pin", help="every SIM starts locked with this PIN")
    p.add_argument("--noise", type=float, default=0.0, help="a noise URC every S seconds per modem")
    p.add_argument("--sent-log", type=Path, help="append every sent part to this JSONL file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    args = p.parse_args(argv)
    if args.modems < 1:
        p.error("--modems must be at least 1")
    return args


async def run(args: argparse.Namespace) -> None:
    """Start the network, print the modems, serve until SIGTERM/SIGINT."""
    net = SimNetwork(
        clock=SystemClock(),
        seed=args.seed,
        sent_log=args.sent_log,
        default_latency=args.latency,
        default_handset={} if args.report_delay is None else {"report_delay": args.report_delay},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    try:
        if args.link_dir:
            args.link_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, args.modems + 1):
            profile = args.profile[(n - 1) % len(args.profile)]
            tcp = args.tcp_base_port is not None
            modem = await net.add_modem(
                profile,
                msisdn=f"{args.msisdn_base}{n:03d}",
                transport="both" if tcp else "pty",
                pin=args.pin,
                link_path=str(args.link_dir / f"modem-{n}") if args.link_dir else None,
                # Base 0: every modem gets a free port of its own.
                tcp_port=args.tcp_base_port + n - 1 if args.tcp_base_port else 0,
            )
            if args.noise > 0:
                modem.set_fault(noise_interval=args.noise)
            print(
                f"{modem.id} profile={profile} msisdn={modem.msisdn} iccid={modem.iccid} "
                f"pty={modem.url} tcp={modem.tcp_url or '-'}",
                flush=True,
            )
        if args.control:
            host, port = args.control
            runner = await start_control(net, host, port)
            print(f"control http://{host}:{bound_port(runner)}", flush=True)
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await net.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    # stdout carries the modem lines scripts parse; logs go to stderr.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if args.verbose else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
