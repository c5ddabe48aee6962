"""The ``gatewayd`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gatewayd import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``gatewayd`` sub-command."""
    parser = argparse.ArgumentParser(prog="gatewayd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gatewayd`` console script."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
