"""The admin commands of ``gatewayd``: thin clients of the running daemon's HTTP API.

``status``, ``send``, ``messages``, ``optouts add|remove|list`` and ``modems pause|resume``
read the daemon's address and its first API token from the config file (``--config``,
default ``/etc/gatewayd/gatewayd.toml``), call the API and print plain text. Exit status:
0 done, 1 refused (the daemon or the config said no, with its reason), 69 (``EX_UNAVAILABLE``)
when no daemon answers at the configured address.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from gatewayd.config import ConfigError, GatewayConfig, load_config, read_secret_file

DEFAULT_CONFIG = Path("/etc/gatewayd/gatewayd.toml")
COMMANDS = frozenset({"status", "send", "messages", "optouts", "modems"})
EX_UNAVAILABLE = 69
TIMEOUT_SECONDS = 10.0
TEXT_COLUMN = 40
MESSAGE_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "expired",
    "cancelled",
    "unconfirmed",
)


class AdminError(Exception):
    """A command that could not be done: ``message`` for the user, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Client:
    """Calls the API at ``base`` with a bearer ``token``."""

    base: str
    token: str
    token_file: str = "the token"
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Client:
        """The daemon's address (a wildcard listen address means this host) and first token."""
        api = config.api
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
            api.listen_host, api.listen_host
        )
        if ":" in host:
            host = f"[{host}]"
        path = api.token_files[0]
        token = read_secret_file(path, key="api.token_files[0]", source=config.source)
        return cls(f"http://{host}:{api.listen_port}", token, str(path))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer (``None`` for 204); :class:`AdminError` otherwise."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refused(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise AdminError(
                f"cannot reach the daemon at {self.base} ({reason}): is it running? "
                "(systemctl status gatewayd)",
                EX_UNAVAILABLE,
            ) from None
        return json.loads(raw) if raw else None

    def _refused(self, exc: urllib.error.HTTPError) -> AdminError:
        if exc.code == 401:
            return AdminError(
                f"the daemon at {self.base} refused the token in {self.token_file} (401): "
                "is it one of the daemon's api.token_files? (a changed file needs a SIGHUP)"
            )
        try:
            error = json.loads(exc.read())["error"]
            field = f" [{error['field']}]" if error.get("field") else ""
            detail = f"{error['message']}{field} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            detail = exc.reason
        return AdminError(f"the daemon answered {exc.code}: {detail}")


def add_commands(sub: Any) -> None:
    """Add the admin sub-commands to the ``gatewayd`` parser's sub-parsers."""

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        parser.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG,
            metavar="FILE",
            help=f"the daemon's config (default: {DEFAULT_CONFIG})",
        )
        return parser

    command("status", "modems and queue of the running daemon, as a table")
    send = command("send", "queue one SMS")
    send.add_argument("number", help="E.164 (+34600000000) or national in default_region")
    send.add_argument("text")
    send.add_argument("--marketing", action="store_true", help="category marketing")
    messages = command("messages", "recent messages, newest first")
    messages.add_argument("--status", choices=MESSAGE_STATUSES)
    messages.add_argument("--limit", type=int, default=20, metavar="N", help="default: 20")
    optouts = command("optouts", "the opt-out list: add, remove, list")
    optouts.add_argument("action", choices=("add", "remove", "list"))
    optouts.add_argument("number", nargs="?")
    optouts.add_argument("--scope", choices=("all", "marketing"), default="all")
    modems = command("modems", "pause or resume a modem")
    modems.add_argument("action", choices=("pause", "resume"))
    modems.add_argument("modem", metavar="ID", help="the modem's name in the config")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one admin command; prints its result to ``out`` or the reason to ``err``."""
    try:
        client = Client.from_config(load_config(args.config))
        for line in _COMMANDS[args.command](client, args):
            print(line, file=out)
    except ConfigError as exc:
        print(f"gatewayd: {exc}", file=err)
        return 1
    except AdminError as exc:
        print(f"gatewayd: {exc.message}", file=err)
        return exc.exit_code
    return 0


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows under headers, columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _time(iso: str) -> str:
    """An API time (ISO 8601, UTC) to the second, for a table."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= TEXT_COLUMN else flat[: TEXT_COLUMN - 1] + "…"


def status(client: Client, _args: argparse.Namespace) -> list[str]:
    """``gatewayd status``"""
    modems = client.call("GET", "/v1/modems")["modems"]
    rows = []
    for m in modems:
        states = (("paused", m["paused"]), ("out-of-service", m["out_of_service"]))
        flags = [flag for flag, on in states if on]
        signal = f"{m['signal_dbm']} dBm" if m["signal_dbm"] is not None else "-"
        head = m["headroom"]
        rows.append(
            [
                m["name"],
                m["state"],
                signal,
                _dash(m["operator"]),
                m["registration"],
                str(m["counters"]["sent"]),
                str(m["counters"]["failed"]),
                f"{_dash(head['minute'])}/{_dash(head['hour'])}/{_dash(head['day'])}",
                ",".join(flags) or "-",
            ]
        )
    lines = table(
        ["MODEM", "STATE", "SIGNAL", "OPERATOR", "REG", "SENT", "FAILED", "LEFT m/h/d", "FLAGS"],
        rows,
    )
    depth = modems[0]["queue_depth"] if modems else "-"
    ready = sum(1 for m in modems if m["state"] == "ready" and not m["paused"])
    return [*lines, "", f"{ready}/{len(modems)} modems ready, queue depth {depth}"]


def send(client: Client, args: argparse.Namespace) -> list[str]:
    """``gatewayd send NUMBER TEXT``"""
    body = {"to": args.number, "text": args.text}
    if args.marketing:
        body["category"] = "marketing"
    r = client.call("POST", "/v1/messages", body)
    parts = f"{r['segments']} part{'s' if r['segments'] != 1 else ''}"
    return [f"{r['status']} {r['id']} ({r['encoding']}, {parts})"]


def messages(client: Client, args: argparse.Namespace) -> list[str]:
    """``gatewayd messages [--status S]``"""
    if not 1 <= args.limit <= 500:
        raise AdminError("--limit: expected 1 to 500")
    query = {"limit": str(args.limit)} | ({"status": args.status} if args.status else {})
    page = client.call("GET", "/v1/messages?" + urllib.parse.urlencode(query))
    rows = [
        [
            m["id"],
            _time(m["created_at"]),
            m["to"],
            m["status"],
            str(m["segments"]),
            _dash(m["error_code"]),
            _short(m["text"]),
        ]
        for m in page["items"]
    ]
    if not rows:
        return ["no messages" + (f" with status {args.status}" if args.status else "")]
    return table(["ID", "CREATED (UTC)", "TO", "STATUS", "PARTS", "ERROR", "TEXT"], rows)


def optouts(client: Client, args: argparse.Namespace) -> list[str]:
    """``gatewayd optouts add|remove|list``"""
    if args.action == "list":
        page = client.call("GET", "/v1/optouts?limit=500")
        rows = [
            [o["number"], o["scope"], o["source"], _time(o["created_at"])] for o in page["items"]
        ]
        return table(["NUMBER", "SCOPE", "SOURCE", "SINCE"], rows) if rows else ["no opt-outs"]
    if not args.number:
        raise AdminError(f"optouts {args.action}: a NUMBER is required")
    if args.action == "add":
        o = client.call("POST", "/v1/optouts", {"number": args.number, "scope": args.scope})
        return [f"opted out {o['number']} (scope {o['scope']})"]
    number = urllib.parse.quote(args.number, safe="")
    client.call("DELETE", f"/v1/optouts/{number}")
    return [f"removed {args.number} from the opt-out list"]


def modems(client: Client, args: argparse.Namespace) -> list[str]:
    """``gatewayd modems pause|resume ID``"""
    name = urllib.parse.quote(args.modem, safe="")
    m = client.call("POST", f"/v1/modems/{name}/{args.action}")
    return [f"{m['name']}: {'paused' if m['paused'] else 'taking work'} (state {m['state']})"]


_COMMANDS = {
    "status": status,
    "send": send,
    "messages": messages,
    "optouts": optouts,
    "modems": modems,
}
