"""``python -m gatewayd.bench`` (what ``scripts/bench`` runs): measure, print a table, write JSON.

Sections: pdu (codec micro-benchmark), ingest, e2e, figures (DESIGN's two latencies), util,
scale, footprint, multinode (1-3 daemons on one throwaway PostgreSQL). The daemon and the
simulator run as subprocesses from this source tree; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gatewayd.bench import multinode, sections
from gatewayd.bench.report import render

ALL = ("pdu", "ingest", "e2e", "figures", "util", "scale", "footprint", "multinode")


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and Python of this host."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as fh:
        mem_kib = int(fh.readline().split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "mem_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="about 3.5 minutes (shorter runs, 100,000 backlog)"
    )
    mode.add_argument("--tiny", action="store_true", help="seconds: for the smoke test")
    p.add_argument("--sections", default=",".join(ALL), help=f"comma-separated of {ALL}")
    p.add_argument("--json", type=Path, help="write the results here (default: stdout only)")
    p.add_argument("--workdir", type=Path, help="keep databases and logs here")
    p.add_argument("--profile", action="store_true", help="py-spy the daemon in e2e")
    args = p.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(ALL)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the chosen sections in order; the results document."""
    sizes = sections.TINY if args.tiny else sections.QUICK if args.quick else sections.FULL
    chosen = [s for s in ALL if s in args.sections.split(",")]
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    doc: dict[str, Any] = {
        "mode": mode,
        "command": " ".join(["scripts/bench", *sys.argv[1:]]),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": sizes.__dict__,
        "results": {},
    }
    res = doc["results"]
    t0 = time.monotonic()
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        here = work / name
        if name == "pdu":
            res[name] = sections.pdu_codec(args.quick or args.tiny)
        elif name == "ingest":
            res[name] = await sections.ingest(here, sizes)
        elif name == "e2e":
            runs = [
                await sections.end_to_end(
                    here / f"run{i}", sizes.e2e_modems, sizes.e2e_messages, profile=args.profile
                )
                for i in range(sizes.repeats)
            ]
            res[name] = {"runs": runs, "median": _medians(runs)}
        elif name == "figures":
            solo = await sections.end_to_end(here / "solo", 1, sizes.solo_messages)
            res[name] = {
                "idle_submit_to_cmgs": await sections.idle_latency(
                    here / "idle", sizes.idle_probes
                ),
                "one_modem": solo,
            }
        elif name == "util":
            res[name] = await sections.utilisation(here, sizes)
        elif name == "scale":
            res[name] = await sections.scale(here, sizes)
        elif name == "footprint":
            big = work / "scale" / f"backlog-{sizes.backlogs[-1]}" / "gatewayd.db"
            res[name] = await sections.footprint(here, sizes, big)
        elif name == "multinode":
            res[name] = await multinode.multinode(here, sizes)
    doc["seconds"] = round(time.monotonic() - t0, 1)
    return doc


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {}
    for key in keys:
        values = sorted(r[key] for r in runs if r.get(key) is not None)
        out[key] = values[len(values) // 2] if values else None
    out["all_delivered"] = all(r["all_delivered"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 when every section ran."""
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gatewayd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        doc = asyncio.run(run(args, work.resolve()))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(doc, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(render(doc))
    if not args.json:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
