"""The AT command set of a simulated modem (3GPP TS 27.007 / 27.005), one handler each.

A handler takes the modem and one parsed :class:`AtCommand`, changes the modem's state,
and returns the information lines to print; failures raise the errors of
:mod:`drivers.sim.errors`. Vendor differences come from the modem's personality (data).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from drivers.pdu import (
    Deliver,
    PduError,
    StatusReport,
    Submit,
    decode,
    encode_submit,
    segments,
)
from drivers.pdu.gsm7 import encode_text, pack
from drivers.sim.engine import AtCommand, Op
from drivers.sim.errors import CmeError, CmsError, SyntaxFailure, UnknownCommand
from drivers.sim.faults import RegStat
from drivers.sim.personalities import IccidCommand, IccidStyle
from drivers.sim.records import OutgoingPart
from drivers.sim.state import PIN_TRIES, PUK_TRIES, Settings, SimState
from drivers.sim.storage import STAT_TEXT, TEXT_STAT, PduKind, Stat, StoredMessage, StoreFull

if TYPE_CHECKING:
    from drivers.sim.modem import SimModem

Handler = Callable[["SimModem", AtCommand], Awaitable[list[str]]]
HANDLERS: dict[str, Handler] = {}
# Commands only the personalities that list them in ``vendor_commands`` answer.
VENDOR_ONLY = frozenset({"+CEREG", "+SPIC", "+QPINC", "^CURC", "^CPIN", "^PORTSEL"})

OPERATOR = "SIMNET"
OPERATOR_NUMERIC = "21499"
CHARSETS = ("IRA", "GSM", "UCS2")
# TS 23.040: an SMS-SUBMIT TPDU is at most 164 octets (7 + 12 address + 1 + 7 VP + 140 UD).
MAX_TPDU = 164


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for command names (``+CGMI``, ``E``...)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = handler
        return handler

    return register


async def dispatch(m: SimModem, c: AtCommand) -> list[str]:
    """Run one command on modem ``m``."""
    for iccid_command in m.personality.iccid_commands:
        if c.name == iccid_command.name:
            return _iccid(m, c, iccid_command)
    handler = HANDLERS.get(c.name)
    if handler is None or (c.name in VENDOR_ONLY and not _vendor_ok(m, c.name)):
        raise UnknownCommand(c.name)
    return await handler(m, c)


def _vendor_ok(m: SimModem, name: str) -> bool:
    if name == "+CEREG":
        return m.personality.supports_cereg
    return name in m.personality.vendor_commands


# -- argument helpers -------------------------------------------------------------------


def _int(c: AtCommand, index: int, *, low: int, high: int, default: int | None = None) -> int:
    if index >= len(c.args) or c.args[index] == "":
        if default is None:
            raise SyntaxFailure(f"{c.name}: argument {index + 1} missing")
        return default
    try:
        value = int(c.args[index])
    except ValueError:
        raise SyntaxFailure(f"{c.name}: argument {index + 1} is not a number") from None
    if not low <= value <= high:
        raise SyntaxFailure(f"{c.name}: argument {index + 1} out of range")
    return value


def _setting(name: str, attr: str, *, high: int, test: str, default: int | None = None) -> None:
    """Register a plain numeric setting: read it, show its range, set it (0..``high``)."""

    async def handler(m: SimModem, c: AtCommand) -> list[str]:
        if c.op is Op.READ:
            return [f"{name}: {getattr(m.settings, attr)}"]
        if c.op is Op.TEST:
            return [f"{name}: {test}"]
        setattr(m.settings, attr, _int(c, 0, low=0, high=high, default=default))
        return []

    handles(name)(handler)


def _only_exec(c: AtCommand) -> bool:
    """True for the exec form; TEST answers OK with nothing; READ/SET are errors."""
    if c.op is Op.TEST:
        return False
    if c.op is not Op.EXEC:
        raise SyntaxFailure(f"{c.name} takes no arguments")
    return True


def _quote(text: str) -> str:
    return f'"{text}"'


def scts_text(when: datetime) -> str:
    """27.005 text-mode time stamp: ``yy/MM/dd,hh:mm:ss±zz`` (zz in quarter hours)."""
    offset = when.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return f"{when:%y/%m/%d,%H:%M:%S}{sign}{abs(quarters):02d}"


def _toa(number: str) -> int:
    return 145 if number.startswith("+") else 129


def _encode_text(m: SimModem, text: str) -> str:
    if m.settings.cscs == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    return text


def _decode_text(m: SimModem, body: bytes) -> str:
    raw = body.decode("latin-1").strip("\r\n")
    if m.settings.cscs == "UCS2":
        try:
            return bytes.fromhex(raw).decode("utf-16-be")
        except ValueError:
            raise CmsError(305) from None
    try:
        return body.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        return raw


def _decode_address(m: SimModem, raw: str) -> str:
    # With AT+CSCS="UCS2" the number is UCS-2 hex too ("002B00330034..." for "+34...").
    if m.settings.cscs == "UCS2" and raw and not raw.startswith("+"):
        try:
            raw = bytes.fromhex(raw).decode("utf-16-be")
        except ValueError:
            raise CmsError(305) from None
    if not raw:
        raise CmsError(305)
    return raw


def text_cmt(m: SimModem, d: Deliver) -> tuple[str, str]:
    """Text-mode +CMT header and body for an SMS-DELIVER."""
    return f"+CMT: {_quote(d.sender)},,{_quote(scts_text(d.scts))}", _encode_text(m, d.text)


def text_status_fields(r: StatusReport) -> str:
    """Text-mode fields of a status report: ``6,<mr>,"<ra>",<tora>,"<scts>","<dt>",<st>``."""
    return (
        f"6,{r.mr},{_quote(r.recipient)},{_toa(r.recipient)},"
        f"{_quote(scts_text(r.scts))},{_quote(scts_text(r.discharge_time))},{r.status}"
    )


def creg_line(name: str, n: int, stat: int, *, read: bool = False) -> str:
    """A +CREG / +CEREG line: the read answer (``read``) or the URC, for mode ``n``."""
    fields = [str(n)] if read else []
    fields.append(str(stat))
    if n == 2 and stat in (RegStat.HOME, RegStat.ROAMING):
        fields += ['"1A2B"', '"C3F0"' if name == "+CREG" else '"00C3F01"']
    return f"{name}: " + ",".join(fields)


# -- basic commands ---------------------------------------------------------------------


@handles("E")
async def _echo(m: SimModem, c: AtCommand) -> list[str]:
    m.settings.echo = _int(c, 0, low=0, high=1) == 1
    return []


@handles("V")
async def _verbose(m: SimModem, c: AtCommand) -> list[str]:
    # Only verbose result codes are simulated; ATV0 is refused rather than ignored.
    if _int(c, 0, low=0, high=1) != 1:
        raise SyntaxFailure("ATV0 not supported")
    return []


@handles("Q")
async def _quiet(m: SimModem, c: AtCommand) -> list[str]:
    if _int(c, 0, low=0, high=1) != 0:
        raise SyntaxFailure("ATQ1 not supported")
    return []


@handles("Z", "&F")
async def _reset(m: SimModem, c: AtCommand) -> list[str]:
    m.settings = Settings.defaults(m.personality, m.network.smsc)
    return []


@handles("&W", "&C", "&D", "&K", "X")
async def _accepted(m: SimModem, c: AtCommand) -> list[str]:
    return []


@handles("I")
async def _ati(m: SimModem, c: AtCommand) -> list[str]:
    return list(m.personality.ati_lines)


@handles(*(f"S{n}" for n in range(0, 13)))
async def _s_register(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.READ:
        return ["000"]
    _int(c, 0, low=0, high=255)
    return []


# -- identification ---------------------------------------------------------------------


@handles("+CGMI", "+GMI")
async def _cgmi(m: SimModem, c: AtCommand) -> list[str]:
    return [m.personality.manufacturer] if _only_exec(c) else []


@handles("+CGMM", "+GMM")
async def _cgmm(m: SimModem, c: AtCommand) -> list[str]:
    return [m.personality.model] if _only_exec(c) else []


@handles("+CGMR", "+GMR")
async def _cgmr(m: SimModem, c: AtCommand) -> list[str]:
    return [m.personality.revision] if _only_exec(c) else []


@handles("+CGSN", "+GSN")
async def _cgsn(m: SimModem, c: AtCommand) -> list[str]:
    return [m.imei] if _only_exec(c) else []


@handles("+GCAP")
async def _gcap(m: SimModem, c: AtCommand) -> list[str]:
    return ["+GCAP: +CGSM"] if _only_exec(c) else []


@handles("+CIMI")
async def _cimi(m: SimModem, c: AtCommand) -> list[str]:
    if not _only_exec(c):
        return []
    m.require_sim(sms=False)
    return [m.imsi]


def _iccid(m: SimModem, c: AtCommand, spec: IccidCommand) -> list[str]:
    if c.op is Op.TEST:
        return []
    if c.op is not (Op.READ if spec.read_form else Op.EXEC):
        raise SyntaxFailure(f"{c.name}: wrong form")
    # The ICCID is readable before the PIN (DESIGN.md, Decisions: Identity).
    if m.sim.state is SimState.BLOCKED:
        raise CmeError(13)
    if spec.style is IccidStyle.BARE:
        return [m.iccid]
    if spec.style is IccidStyle.SWAPPED:
        return [f'{spec.name}: "{swap_nibbles(m.iccid)}"']
    return [f"{spec.name}: {m.iccid}"]


def swap_nibbles(digits: str) -> str:
    """Digits swapped in pairs, F-padded when odd: ``8934...`` -> ``9843...``."""
    padded = digits + "F" if len(digits) % 2 else digits
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))


# -- errors, SIM, registration ----------------------------------------------------------


_setting("+CMEE", "cmee", high=2, test="(0-2)", default=0)


@handles("+CPIN")
async def _cpin(m: SimModem, c: AtCommand) -> list[str]:
    sim = m.sim
    if c.op is Op.TEST:
        return []
    if c.op is Op.READ:
        if sim.state is SimState.BLOCKED:
            raise CmeError(13)
        return [f"+CPIN: {sim.state}"]
    if c.op is not Op.SET or not c.args or not c.args[0]:
        raise SyntaxFailure("+CPIN needs a PIN")
    if sim.state is SimState.READY:
        raise CmeError(3)
    if sim.state is SimState.BLOCKED:
        raise CmeError(13)
    if sim.state is SimState.PIN:
        if c.args[0] != sim.pin:
            sim.pin_tries -= 1
            if sim.pin_tries <= 0:
                sim.state = SimState.PUK
            raise CmeError(16)
    else:
        if len(c.args) < 2 or not c.args[1]:
            raise SyntaxFailure("+CPIN in PUK state needs <puk>,<newpin>")
        if c.args[0] != sim.puk:
            sim.puk_tries -= 1
            if sim.puk_tries <= 0:
                sim.state = SimState.BLOCKED
            raise CmeError(16)
        sim.pin = c.args[1]
    sim.state = SimState.READY
    sim.pin_tries, sim.puk_tries = PIN_TRIES, PUK_TRIES
    m.sim_busy_until = m.clock.timestamp() + m.faults.sim_busy_after_pin
    m.record("pin-accepted", "")
    # After the OK: the URCs follow the command's final result.
    asyncio.get_running_loop().call_soon(m.spawn, _sim_ready(m))
    return []


async def _sim_ready(m: SimModem) -> None:
    # After the PIN a SIM800 prints +CPIN: READY at once and Call Ready / SMS Ready once
    # the SIM has finished its start-up (the busy period).
    m.emit_urc("+CPIN: READY")
    if m.faults.sim_busy_after_pin > 0:
        await m.clock.sleep(m.faults.sim_busy_after_pin)
    for urc in m.personality.after_pin_urcs:
        m.emit_urc(urc)
    m.report_registration()
    m.drain_after_reply()


@handles("+SPIC")
async def _spic(m: SimModem, c: AtCommand) -> list[str]:
    # SIM800: tries left for PIN1, PUK1, PIN2, PUK2.
    if not _only_exec(c):
        return []
    return [f"+SPIC: {m.sim.pin_tries},{m.sim.puk_tries},{PIN_TRIES},{PUK_TRIES}"]


@handles("+QPINC")
async def _qpinc(m: SimModem, c: AtCommand) -> list[str]:
    # Quectel: tries left per facility ("SC" is the SIM PIN).
    if c.op is Op.TEST:
        return ['+QPINC: ("SC","P2")']
    sc = f'+QPINC: "SC",{m.sim.pin_tries},{m.sim.puk_tries}'
    if c.op is Op.READ:
        return [sc, f'+QPINC: "P2",{PIN_TRIES},{PUK_TRIES}']
    if c.op is Op.SET and c.args and c.args[0].upper() == "SC":
        return [sc]
    raise SyntaxFailure("+QPINC: unknown facility")


@handles("^CPIN")
async def _hcpin(m: SimModem, c: AtCommand) -> list[str]:
    # Huawei: ^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>
    if c.op is not Op.READ:
        raise SyntaxFailure("^CPIN: read form only")
    state = "READY" if m.sim.state is SimState.READY else str(m.sim.state)
    times = m.sim.pin_tries if m.sim.state is SimState.PIN else m.sim.puk_tries
    return [f"^CPIN: {state},{times},{m.sim.puk_tries},{m.sim.pin_tries},{PUK_TRIES},{PIN_TRIES}"]


_setting("^CURC", "curc", high=1, test="(0-1)")


# Huawei: which port gets URCs. A simulated stick has one port: remember the choice.
_setting("^PORTSEL", "portsel", high=1, test="(0-1)")


@handles("+CSQ")
async def _csq(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return ["+CSQ: (0-31,99),(0-7,99)"]
    _only_exec(c)
    if m.network_registration() in (RegStat.HOME, RegStat.ROAMING):
        return [f"+CSQ: {m.faults.rssi},99"]
    return ["+CSQ: 99,99"]


@handles("+CREG", "+CEREG")
async def _creg(m: SimModem, c: AtCommand) -> list[str]:
    attr = "creg" if c.name == "+CREG" else "cereg"
    if c.op is Op.TEST:
        return [f"{c.name}: (0-2)"]
    if c.op is Op.READ:
        n = getattr(m.settings, attr)
        return [creg_line(c.name, n, int(m.network_registration()), read=True)]
    setattr(m.settings, attr, _int(c, 0, low=0, high=2, default=0))
    return []


@handles("+COPS")
async def _cops(m: SimModem, c: AtCommand) -> list[str]:
    act = m.personality.access_technology
    if c.op is Op.TEST:
        return [f'+COPS: (2,"{OPERATOR}","{OPERATOR}","{OPERATOR_NUMERIC}",{act}),,(0-4),(0-2)']
    if c.op is Op.READ:
        if m.network_registration() in (RegStat.HOME, RegStat.ROAMING):
            return [f'+COPS: 0,0,"{OPERATOR}",{act}']
        return ["+COPS: 0"]
    if c.op is Op.SET:
        _int(c, 0, low=0, high=4)
    return []


@handles("+CFUN")
async def _cfun(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return ["+CFUN: (0,1,4),(0-1)"]
    if c.op is Op.READ:
        return [f"+CFUN: {m.settings.cfun}"]
    fun = _int(c, 0, low=0, high=4)
    if fun not in (0, 1, 4):
        raise CmeError(4)
    reset = _int(c, 1, low=0, high=1, default=0)
    m.settings.cfun = fun
    if reset:
        # The OK goes out first, then the modem restarts (as AT+CFUN=1,1 does).
        asyncio.get_running_loop().call_soon(m.spawn, m.reboot())
    else:
        m.report_registration()
        m.drain_after_reply()
    return []


# -- SMS settings -------------------------------------------------------------------------


@handles("+CSCA")
async def _csca(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.READ:
        return [f"+CSCA: {_quote(m.settings.csca)},{_toa(m.settings.csca)}"]
    if c.op is Op.SET:
        if not c.args or not c.args[0]:
            raise SyntaxFailure("+CSCA needs a number")
        m.settings.csca = c.args[0]
    return []


_setting("+CMGF", "cmgf", high=1, test="(0,1)", default=0)


@handles("+CSCS")
async def _cscs(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.READ:
        return [f"+CSCS: {_quote(m.settings.cscs)}"]
    if c.op is Op.TEST:
        return ["+CSCS: (" + ",".join(_quote(x) for x in CHARSETS) + ")"]
    if c.op is not Op.SET or not c.args or c.args[0].upper() not in CHARSETS:
        raise SyntaxFailure("+CSCS: unsupported character set")
    m.settings.cscs = c.args[0].upper()
    return []


@handles("+CSMS")
async def _csms(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.READ:
        return [f"+CSMS: {m.settings.csms},1,1,1"]
    if c.op is Op.TEST:
        return ["+CSMS: (0,1)"]
    m.settings.csms = _int(c, 0, low=0, high=1)
    return ["+CSMS: 1,1,1"]


@handles("+CPMS")
async def _cpms(m: SimModem, c: AtCommand) -> list[str]:
    names = list(m.stores)
    if c.op is Op.TEST:
        inbox = [n for n in names if n != "SR"]
        return [
            "+CPMS: ("
            + ",".join(_quote(n) for n in names)
            + "),("
            + ",".join(_quote(n) for n in inbox)
            + "),("
            + ",".join(_quote(n) for n in inbox)
            + ")"
        ]
    m.require_sim(sms=True)
    if c.op is Op.READ:
        parts = [f"{_quote(n)},{m.stores[n].used},{m.stores[n].capacity}" for n in m.settings.cpms]
        return ["+CPMS: " + ",".join(parts)]
    if c.op is not Op.SET or not c.args or not c.args[0]:
        raise SyntaxFailure("+CPMS needs <mem1>")
    wanted = [a.upper() for a in c.args[:3]]
    current = list(m.settings.cpms)
    for slot, name in enumerate(wanted):
        if not name:
            continue
        if name not in m.stores or (slot > 0 and name == "SR"):
            raise CmsError(302)
        current[slot] = name
    m.settings.cpms = (current[0], current[1], current[2])
    m.drain_after_reply()
    return [
        "+CPMS: " + ",".join(f"{m.stores[n].used},{m.stores[n].capacity}" for n in m.settings.cpms)
    ]


@handles("+CNMI")
async def _cnmi(m: SimModem, c: AtCommand) -> list[str]:
    allowed = m.personality.cnmi_allowed
    if c.op is Op.READ:
        return ["+CNMI: " + ",".join(str(v) for v in m.settings.cnmi)]
    if c.op is Op.TEST:
        return ["+CNMI: " + ",".join(_range(a) for a in allowed)]
    if c.op is not Op.SET:
        raise SyntaxFailure("+CNMI needs values")
    values = [_int(c, i, low=0, high=9, default=0) for i in range(5)]
    if len(c.args) > 5:
        raise SyntaxFailure("+CNMI takes five values")
    for value, ok in zip(values, allowed, strict=True):
        if value not in ok:
            # SIM800 refuses combinations it cannot do (e.g. mt=3) with 303.
            raise CmsError(303)
    m.settings.cnmi = (values[0], values[1], values[2], values[3], values[4])
    m.drain_after_reply()
    return []


def _range(values: frozenset[int]) -> str:
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"({ordered[0]}-{ordered[-1]})"
    return "(" + ",".join(str(v) for v in ordered) + ")"


@handles("+CSMP")
async def _csmp(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.READ:
        return ["+CSMP: " + ",".join(str(v) for v in m.settings.csmp)]
    if c.op is Op.SET:
        old = m.settings.csmp
        fo = _int(c, 0, low=0, high=255, default=old[0])
        vp = _int(c, 1, low=0, high=255, default=old[1])
        pid = _int(c, 2, low=0, high=255, default=old[2])
        dcs = _int(c, 3, low=0, high=255, default=old[3])
        m.settings.csmp = (fo, vp, pid, dcs)
    return []


@handles("+CNMA")
async def _cnma(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return ["+CNMA: (0-2)"] if m.settings.cmgf == 0 else []
    if m.settings.csms != 1 or not m.acknowledge():
        raise CmsError(340)
    return []


# -- sending ------------------------------------------------------------------------------


@handles("+CMGS")
async def _cmgs(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return []
    if c.op is not Op.SET or not c.args:
        raise SyntaxFailure("+CMGS needs <length> or <da>")
    m.require_sim(sms=True)
    if m.settings.cmgf == 0:
        length = _pdu_length(c)
        body = await m.engine.prompt()
        if body is None:
            return []
        part = _pdu_part(body, length)
    else:
        recipient = _decode_address(m, c.args[0])
        body = await m.engine.prompt()
        if body is None:
            return []
        part = _text_part(m, recipient, _decode_text(m, body))
    mr = await m.send_part(part)
    return [f"+CMGS: {mr}"]


def _pdu_length(c: AtCommand) -> int:
    try:
        length = int(c.args[0])
    except ValueError:
        raise CmsError(304) from None
    if not 1 <= length <= MAX_TPDU:
        raise CmsError(304)
    return length


def _parse_submit(body: bytes, length: int) -> tuple[Submit, bytes]:
    text = body.decode("latin-1")
    hex_digits = "".join(text.split())
    try:
        raw = bytes.fromhex(hex_digits)
    except ValueError:
        raise CmsError(304) from None
    # <length> counts the TPDU only: the SMSC field (its length octet + that many) is extra.
    if not raw or len(raw) - raw[0] - 1 != length:
        raise CmsError(304)
    try:
        decoded = decode(raw)
    except PduError:
        raise CmsError(304) from None
    if not isinstance(decoded, Submit):
        raise CmsError(304)
    return decoded, raw


def _pdu_part(body: bytes, length: int) -> OutgoingPart:
    submit, _raw = _parse_submit(body, length)
    concat = submit.concat
    return OutgoingPart(
        recipient=submit.recipient,
        text=submit.text,
        encoding=str(submit.encoding),
        concat_ref=concat.ref if concat else None,
        concat_total=concat.total if concat else 1,
        concat_seq=concat.seq if concat else 1,
        status_report=submit.srr,
    )


def _text_part(m: SimModem, recipient: str, text: str) -> OutgoingPart:
    info = segments(text)
    if info.parts > 1:
        # Text mode sends one part; longer texts need PDU mode and concatenation.
        raise CmsError(305)
    return OutgoingPart(
        recipient=recipient,
        text=text,
        encoding=str(info.encoding),
        concat_ref=None,
        concat_total=1,
        concat_seq=1,
        status_report=bool(m.settings.csmp[0] & 0x20),
    )


@handles("+CMGW")
async def _cmgw(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return []
    m.require_sim(sms=True)
    store = m.stores[m.settings.cpms[1]]
    if m.settings.cmgf == 0:
        if c.op is not Op.SET:
            raise SyntaxFailure("+CMGW needs <length> in PDU mode")
        length = _pdu_length(c)
        stat = Stat(_int(c, 1, low=0, high=3, default=int(Stat.STO_UNSENT)))
        body = await m.engine.prompt()
        if body is None:
            return []
        _submit, raw = _parse_submit(body, length)
        message = StoredMessage(stat, raw, PduKind.SUBMIT)
    else:
        recipient = c.args[0] if c.args else ""
        body = await m.engine.prompt()
        if body is None:
            return []
        text = _decode_text(m, body)
        message = StoredMessage(
            Stat.STO_UNSENT, _text_submit_pdu(m, recipient, text), PduKind.SUBMIT
        )
    try:
        index = store.put(message)
    except StoreFull:
        raise CmsError(322) from None
    return [f"+CMGW: {index}"]


def _text_submit_pdu(m: SimModem, recipient: str, text: str) -> bytes:
    if not recipient:
        raise CmsError(305)
    try:
        parts = encode_submit(recipient, text, srr=bool(m.settings.csmp[0] & 0x20))
    except (PduError, ValueError):
        raise CmsError(305) from None
    if len(parts) != 1:
        raise CmsError(305)
    return b"\x00" + parts[0].tpdu


@handles("+CMSS")
async def _cmss(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return []
    m.require_sim(sms=True)
    store = m.stores[m.settings.cpms[1]]
    index = _int(c, 0, low=0, high=100000)
    message = store.get(index) if store.valid_index(index) else None
    if message is None or message.kind is not PduKind.SUBMIT:
        raise CmsError(321)
    submit = decode(message.pdu)
    assert isinstance(submit, Submit)
    recipient = c.args[1] if len(c.args) > 1 and c.args[1] else submit.recipient
    concat = submit.concat
    part = OutgoingPart(
        recipient=recipient,
        text=submit.text,
        encoding=str(submit.encoding),
        concat_ref=concat.ref if concat else None,
        concat_total=concat.total if concat else 1,
        concat_seq=concat.seq if concat else 1,
        status_report=submit.srr,
    )
    mr = await m.send_part(part)
    message.stat = Stat.STO_SENT
    return [f"+CMSS: {mr}"]


# -- reading and deleting -----------------------------------------------------------------


def _entry_lines(m: SimModem, index: int | None, message: StoredMessage) -> list[str]:
    """+CMGR (index None) or +CMGL lines for one stored message, per CMGF."""
    lead = "+CMGR: " if index is None else f"+CMGL: {index},"
    pdu = message.pdu
    if m.settings.cmgf == 0:
        tpdu_len = len(pdu) - pdu[0] - 1
        return [f"{lead}{int(message.stat)},,{tpdu_len}", pdu.hex().upper()]
    stat = _quote(STAT_TEXT[message.stat])
    decoded = decode(pdu)
    if isinstance(decoded, StatusReport):
        return [f"{lead}{stat},{text_status_fields(decoded)}"]
    if isinstance(decoded, Deliver):
        return [
            f"{lead}{stat},{_quote(decoded.sender)},,{_quote(scts_text(decoded.scts))}",
            _encode_text(m, decoded.text),
        ]
    return [f"{lead}{stat},{_quote(decoded.recipient)},", _encode_text(m, decoded.text)]


def _mark_read(message: StoredMessage) -> None:
    if message.stat is Stat.REC_UNREAD:
        message.stat = Stat.REC_READ


@handles("+CMGR")
async def _cmgr(m: SimModem, c: AtCommand) -> list[str]:
    if c.op is Op.TEST:
        return []
    m.require_sim(sms=True)
    store = m.stores[m.settings.cpms[0]]
    index = _int(c, 0, low=0, high=100000)
    message = store.get(index) if store.valid_index(index) else None
    if message is None:
        raise CmsError(321)
    lines = _entry_lines(m, None, message)
    _mark_read(message)
    return lines


@handles("+CMGL")
async def _cmgl(m: SimModem, c: AtCommand) -> list[str]:
    text_mode = m.settings.cmgf == 1
    if c.op is Op.TEST:
        if text_mode:
            return ["+CMGL: (" + ",".join(_quote(t) for t in STAT_TEXT.values()) + ")"]
        return ["+CMGL: (0-4)"]
    m.require_sim(sms=True)
    stat = Stat.REC_UNREAD
    if c.op is Op.SET and c.args and c.args[0] != "":
        if text_mode:
            if not c.quoted[0] or c.args[0].upper() not in TEXT_STAT:
                raise CmsError(302)
            stat = TEXT_STAT[c.args[0].upper()]
        else:
            if c.quoted[0]:
                raise CmsError(302)
            stat = Stat(_int(c, 0, low=0, high=4))
    elif c.op not in (Op.EXEC, Op.SET):
        raise SyntaxFailure("+CMGL: bad form")
    store = m.stores[m.settings.cpms[0]]
    lines: list[str] = []
    for index, message in store.listing(stat):
        lines += _entry_lines(m, index, message)
        _mark_read(message)
    return lines


@handles("+CMGD")
async def _cmgd(m: SimModem, c: AtCommand) -> list[str]:
    store = m.stores[m.settings.cpms[0]]
    if c.op is Op.TEST:
        used = ",".join(str(i) for i, _ in store.listing(Stat.ALL))
        return [f"+CMGD: ({used}),(0-4)"]
    m.require_sim(sms=True)
    index = _int(c, 0, low=0, high=100000)
    delflag = _int(c, 1, low=0, high=4, default=0)
    if delflag:
        store.delete_flagged(delflag)
    else:
        if not store.valid_index(index):
            raise CmsError(321)
        store.delete(index)
    m.drain_after_reply()
    return []


@handles("+CUSD")
async def _cusd(m: SimModem, c: AtCommand) -> list[str]:
    # AT+CUSD=1,"*111#",15: OK at once, the network's answer follows as a URC (TS 27.007
    # 7.15), coded as this modem family gives it; every code answers the prepaid balance.
    if c.op is Op.TEST:
        return ["+CUSD: (0-2)"]
    if c.op is Op.READ:
        return ["+CUSD: 1"]
    mode = _int(c, 0, low=0, high=2, default=0)
    if mode != 1 or len(c.args) < 2 or not c.args[1]:
        return []
    if m.sim.state is not SimState.READY:
        raise CmeError(11)  # SIM PIN required
    text = m.personality.ussd_answer.format(balance=m.balance)
    m.spawn(_cusd_answer(m, _ussd_coded(m.personality.ussd_coding, text)))
    return []


async def _cusd_answer(m: SimModem, answer: str) -> None:
    # The network answers after the modem's OK (clock time: ManualClock tests advance it).
    await m.clock.sleep(m.ussd_delay)
    m.emit_urc(f"+CUSD: 0,{answer}")


def _ussd_coded(coding: str, text: str) -> str:
    if coding == "ucs2":
        return f'"{text.encode("utf-16-be").hex().upper()}",72'
    if coding == "packed":
        septets = encode_text(text)
        if len(septets) % 8 == 7:
            septets.append(0x0D)  # TS 23.038 6.1.2.3.1: CR pads, not '@'
        return f'"{pack(septets).hex().upper()}",15'
    return f'"{text}",15'


@handles("H")
async def _ath(m: SimModem, c: AtCommand) -> list[str]:
    # Hang up: an incoming call stops ringing (the caller hears busy).
    m.hang_up()
    return []


@handles("+CLIP")
async def _clip(m: SimModem, c: AtCommand) -> list[str]:
    # Calling line identification: +CLIP: "<number>",<type> after each RING (27.007 7.18).
    if c.op is Op.TEST:
        return ["+CLIP: (0,1)"]
    if c.op is Op.READ:
        return [f"+CLIP: {int(m.clip)},1"]
    m.clip = _int(c, 0, low=0, high=1) == 1
    return []
