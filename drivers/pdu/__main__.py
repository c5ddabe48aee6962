"""Command line: ``python -m drivers.pdu decode|encode ...`` (JSON on stdout)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from drivers.pdu.decode import decode
from drivers.pdu.deliver import Deliver
from drivers.pdu.errors import PduError
from drivers.pdu.status_report import StatusReport
from drivers.pdu.submit import Submit, encode_submit
from drivers.pdu.udh import Concat, UdhElement


def _concat(concat: Concat | None) -> dict[str, int] | None:
    if concat is None:
        return None
    return {"ref": concat.ref, "total": concat.total, "seq": concat.seq}


def _udh(elements: tuple[UdhElement, ...]) -> list[dict[str, Any]]:
    return [{"iei": e.iei, "data": e.data.hex().upper()} for e in elements]


def to_json(message: Deliver | Submit | StatusReport) -> dict[str, Any]:
    """The JSON object ``decode`` prints for a decoded PDU."""
    if isinstance(message, StatusReport):
        return {
            "type": "status_report",
            "smsc": message.smsc,
            "mr": message.mr,
            "recipient": message.recipient,
            "status": message.status,
            "status_text": message.status_text,
            "category": message.category.value,
            "scts": message.scts.isoformat(),
            "discharge_time": message.discharge_time.isoformat(),
            "pid": message.pid,
            "dcs": message.dcs,
            "text": message.text,
            "udh": _udh(message.udh),
        }
    common = {
        "smsc": message.smsc,
        "text": message.text,
        "encoding": message.encoding.value,
        "concat": _concat(message.concat),
        "pid": message.pid,
        "dcs": message.dcs,
        "message_class": message.message_class,
        "udh": _udh(message.udh),
    }
    if isinstance(message, Deliver):
        ports = list(message.ports) if message.ports is not None else None
        return {
            "type": "deliver",
            "sender": message.sender,
            "scts": message.scts.isoformat(),
            "ports": ports,
            **common,
        }
    return {
        "type": "submit",
        "recipient": message.recipient,
        "mr": message.mr,
        "srr": message.srr,
        "vp_minutes": message.vp_minutes,
        **common,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m drivers.pdu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode a hex PDU to JSON")
    dec.add_argument("--no-smsc", action="store_true", help="the PDU has no SMSC field")
    dec.add_argument("hex", help="the PDU in hex")
    enc = sub.add_parser("encode", help="encode a text to SMS-SUBMIT parts")
    enc.add_argument("--to", required=True, help="recipient, + for international")
    enc.add_argument("--ucs2", action="store_true", help="force UCS-2")
    enc.add_argument("--smart", action="store_true", help="replace look-alikes with GSM ones")
    enc.add_argument(
        "--spanish-shift", action="store_true", help="GSM 7-bit with the Spanish shift table"
    )
    enc.add_argument("--no-srr", action="store_true", help="do not request a status report")
    enc.add_argument("--vp", type=int, default=1440, metavar="MINUTES", help="validity period")
    enc.add_argument("--with-smsc", action="store_true", help="prefix each PDU with 00")
    enc.add_argument("text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on a bad PDU or bad input)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "decode":
            out: Any = to_json(decode(args.hex, has_smsc=not args.no_smsc))
        else:
            parts = encode_submit(
                args.to,
                args.text,
                srr=not args.no_srr,
                vp_minutes=args.vp,
                force_ucs2=args.ucs2,
                smart=args.smart,
                spanish_shift=args.spanish_shift,
            )
            out = [{"pdu": p.hex(with_smsc=args.with_smsc), "length": p.length} for p in parts]
    except ValueError as exc:  # PduError included
        reason = exc.reason if isinstance(exc, PduError) else str(exc)
        print(f"error: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
