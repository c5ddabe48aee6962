"""A small admin tool: ``python -m drivers.modem PORT_OR_URL [--pin-file F] [--profile P]
info | send NUMBER TEXT | listen``.

``info`` prints what the modem says about itself as JSON; ``send`` prints the TP-MR of each
part; ``listen`` prints inbound SMS and status reports (one JSON object a line) until
Ctrl-C. Logs go to stderr so stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from drivers.clock import SystemClock
from drivers.modem.modem import Modem
from drivers.modem.types import InboundSms, ModemNotReady
from drivers.pdu import StatusReport
from drivers.profiles import PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m drivers.modem", description=__doc__)
    parser.add_argument("port", help="device path or pyserial URL (socket://host:port)")
    parser.add_argument("--pin-file", type=Path, help="file holding the SIM PIN")
    parser.add_argument("--profile", default="auto", choices=["auto", *sorted(PROFILES)])
    parser.add_argument("--baudrate", type=int, default=115200)
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print modem, SIM and network facts as JSON")
    send = commands.add_parser("send", help="send an SMS; prints the TP-MR of each part")
    send.add_argument("number")
    send.add_argument("text")
    commands.add_parser("listen", help="print inbound SMS and status reports until Ctrl-C")
    return parser


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), flush=True)


def _sms_json(sms: InboundSms) -> dict[str, Any]:
    msg = sms.message
    return {
        "event": "sms",
        "sender": msg.sender,
        "text": msg.text,
        "scts": msg.scts.isoformat(),
        "concat": dataclasses.asdict(msg.concat) if msg.concat else None,
        "storage": sms.storage,
        "index": sms.index,
        "via": sms.received_via,
    }


def _report_json(report: StatusReport) -> dict[str, Any]:
    return {
        "event": "report",
        "mr": report.mr,
        "recipient": report.recipient,
        "status": report.status,
        "category": str(report.category),
        "status_text": report.status_text,
        "discharge_time": report.discharge_time.isoformat(),
    }


async def _run(args: argparse.Namespace) -> int:
    pin = args.pin_file.read_text(encoding="utf-8").strip() if args.pin_file else None
    modem = Modem(
        args.port,
        name="cli",
        profile=args.profile,
        pin=pin,
        clock=SystemClock(),
        baudrate=args.baudrate,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def on_sms(sms: InboundSms) -> None:
        _emit(_sms_json(sms))

    async def on_report(report: StatusReport) -> None:
        _emit(_report_json(report))

    if args.command == "listen":
        modem.set_inbound_handler(on_sms)
        modem.set_report_handler(on_report)
    await modem.start()
    try:
        try:
            await modem.wait_ready(args.ready_timeout)
        except (ModemNotReady, TimeoutError):
            print(f"modem not ready: {modem.state}: {modem.state_reason}", file=sys.stderr)
            return 1
        if args.command == "info":
            info = dataclasses.asdict(modem.info)
            info.update(
                state=str(modem.state),
                reason=modem.state_reason,
                profile=modem.profile.name,
                identity=modem.identity,
            )
            _emit(info)
        elif args.command == "send":
            mrs = await modem.send_text(args.number, args.text)
            _emit({"event": "sent", "to": args.number, "parts": len(mrs), "mrs": mrs})
        else:
            _emit({"event": "listening", "identity": modem.identity, "state": str(modem.state)})
            await stop.wait()
        return 0
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        await modem.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if args.verbose else logging.WARNING
        ),
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
