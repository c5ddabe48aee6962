"""The ``gatewayd`` command line: run, check-config, demo, and the admin commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from gatewayd import __version__, admin
from gatewayd.config import ConfigError, GatewayConfig, load_config
from gatewayd.flows import check as flows_check
from gatewayd.store import transfer


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``gatewayd`` sub-command."""
    parser = argparse.ArgumentParser(prog="gatewayd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, type=Path, metavar="FILE")

    check = sub.add_parser("check-config", help="validate a config file and summarise it")
    check.add_argument("--config", required=True, type=Path, metavar="FILE")

    demo = sub.add_parser(
        "demo", help="run the daemon on a simulated modem network (no hardware needed)"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".demo"),
        metavar="DIR",
        help="where the config, token and database go (default: .demo)",
    )
    demo.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="API address (default: 127.0.0.1:8080; port 0 picks a free one)",
    )
    demo.add_argument(
        "--modems",
        type=int,
        default=2,
        metavar="N",
        help="simulated modems, per node (default: 2)",
    )
    demo.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="N",
        help="daemons on one PostgreSQL, API ports from --listen's +1 each (default: 1, SQLite)",
    )
    demo.add_argument(
        "--database",
        metavar="URL",
        help="postgresql://... for the nodes (default with --nodes: a throwaway local cluster)",
    )
    admin.add_commands(sub)
    flows_check.add_command(sub)
    transfer.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gatewayd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.config, sys.stdout, sys.stderr)
    if args.command == "flows":
        return flows_check.run(args, sys.stdout, sys.stderr)
    if args.command in ("migrate", "store"):
        return transfer.run(args, sys.stdout, sys.stderr)
    if args.command in admin.COMMANDS:
        return admin.run(args, sys.stdout, sys.stderr)
    if args.command == "run":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"gatewayd: {exc}", file=sys.stderr)
            return 1
        # Imported here: check-config and --version need none of the daemon's machinery.
        from gatewayd.daemon import run_daemon

        return run_daemon(config)
    if args.command == "demo":
        from gatewayd.demo import run_demo

        if not 1 <= args.modems <= 16:
            parser.error("--modems: expected 1 to 16")
        if not 1 <= args.nodes <= 16:
            parser.error("--nodes: expected 1 to 16")
        if args.database is not None and not args.database.startswith(
            ("postgresql://", "postgres://")
        ):
            parser.error("--database: expected a postgresql://... URL")
        host, sep, port = args.listen.rpartition(":")
        if not (host and sep and port.isdigit() and int(port) + args.nodes - 1 <= 65535):
            parser.error("--listen: expected HOST:PORT (with room for a port per node)")
        return run_demo(
            data_dir=args.data_dir,
            listen=args.listen,
            modems=args.modems,
            nodes=args.nodes,
            database=args.database,
        )
    parser.print_help(sys.stdout)
    return 0


def check_config(path: Path, out: TextIO, err: TextIO) -> int:
    """Validate ``path``: print OK and a summary (exit 0) or the error (exit 1)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"gatewayd: {exc}", file=err)
        return 1
    print(f"OK {path}", file=out)
    for line in summarise(config):
        print(f"  {line}", file=out)
    return 0


def summarise(config: GatewayConfig) -> list[str]:
    """What a config sets up, in a few lines (never a secret, only file names)."""
    api = config.api
    lines = [
        f"database: {config.database}",
        f"api: http://{api.listen_host}:{api.listen_port} ({len(api.token_files)} token file(s))",
        f"modems: {len(config.modems)} in pools {', '.join(sorted(config.pools)) or '-'}",
    ]
    for m in config.modems:
        limits = m.limits
        pin = f", PIN for ICCID {m.iccid}" if m.pin_file else ""
        lines.append(
            f"  {m.name}: {m.port} profile={m.profile} pool={m.pool} "
            f"limits={_limit(limits.max_per_minute)}/min {_limit(limits.max_per_hour)}/h "
            f"{_limit(limits.max_per_day)}/day{pin}"
        )
    lines.append(
        "routing: "
        + (", ".join(f"{r.prefix} -> {r.pool}" for r in config.routing) or "none (any modem)")
    )
    kw = config.keywords
    lines.append(f"keywords: {len(kw.stop)} stop, {len(kw.start)} start, {len(kw.help)} help")
    lines.append(f"webhooks: {config.webhooks.url or 'none'}")
    return lines


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
