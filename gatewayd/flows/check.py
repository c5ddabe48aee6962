"""``gatewayd flows check``: validate a flows file and show each template as it would go."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from gatewayd.config import ConfigError, FlowsConfig, load_config
from gatewayd.flows.load import check_templates, load_flows


def add_command(sub: Any) -> None:
    """Add ``flows check`` to the ``gatewayd`` sub-command parsers."""
    flows = sub.add_parser("flows", help="post-purchase flows")
    flows_sub = flows.add_subparsers(dest="flows_command", metavar="COMMAND", required=True)
    check = flows_sub.add_parser(
        "check", help="validate flows.toml and show every template rendered with a sample"
    )
    check.add_argument("--config", required=True, type=Path, metavar="FILE", help="flows.toml")
    check.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="gatewayd.toml whose [flows] section gives brand, base URL and budget",
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``flows check``: exit 0 when the file loads (flags are warnings), 1 on an error."""
    return check_flows(args.config, out, err, settings_file=args.settings)


def check_flows(path: Path, out: TextIO, err: TextIO, *, settings_file: Path | None = None) -> int:
    """Print OK, the flows and every template's sample with its alphabet and SMS parts."""
    try:
        settings = load_config(settings_file).flows if settings_file else FlowsConfig(file=path)
        flows = load_flows(path)
        previews = check_templates(flows, settings)
    except ConfigError as exc:
        print(f"gatewayd: {exc}", file=err)
        return 1
    print(f"OK {path}: {len(flows.flows)} flow(s), {len(flows.templates)} template(s)", file=out)
    for flow in flows.flows:
        steps = ", ".join(step.name for step in flow.steps)
        print(f"  flow {flow.name}: on {flow.trigger} ({flow.category.value}): {steps}", file=out)
    flagged = 0
    for p in previews:
        flags = f"  FLAGGED: {', '.join(p.flags)}" if p.flags else ""
        flagged += bool(p.flags)
        print(
            f"  template {p.template} [{p.language}]: {p.encoding.value}, "
            f"{p.segments} segment(s), {len(p.text)} chars{flags}",
            file=out,
        )
        print(f"    {p.text}", file=out)
    if flagged:
        print(f"{flagged} template text(s) flagged (UCS-2 or over the segment budget)", file=out)
    return 0
