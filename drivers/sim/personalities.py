"""Vendor personalities as data: what differs between a generic 27.005 modem and real ones.

One :class:`Personality` row per vendor family; the command handlers read these fields
instead of branching on vendor names, so a new vendor is a new row, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class IccidStyle(StrEnum):
    """How an ICCID-reading command prints its answer."""

    BARE = "bare"  # SIM800 AT+CCID: the digits alone on a line
    PREFIXED = "prefixed"  # "+QCCID: 8934...", "^ICCID: 8934...", "+CCID: 8934..."
    # Qualcomm-based Huawei sticks: '^ICCID: "9843..."', digits swapped in pairs as stored
    # on the SIM (F-padded when odd), in quotes.
    SWAPPED = "swapped"


@dataclass(frozen=True)
class IccidCommand:
    """One command that reads the ICCID: its name, how it is invoked, how it answers."""

    name: str  # "+CCID", "^ICCID", "+QCCID"
    style: IccidStyle
    read_form: bool = False  # Huawei: AT^ICCID? (read form), others: exec form


@dataclass(frozen=True)
class Personality:
    """Everything about a modem family that the simulator varies."""

    name: str
    manufacturer: str
    model: str
    revision: str
    ati_lines: tuple[str, ...]
    iccid_commands: tuple[IccidCommand, ...]
    index_base: int = 1  # Huawei numbers storage slots from 0
    # Final result for a command the modem does not know; None: ERROR / +CME ERROR per CMEE.
    unknown_command_final: str | None = None
    boot_urcs: tuple[str, ...] = ("RDY",)
    after_pin_urcs: tuple[str, ...] = ()
    noise_urcs: tuple[str, ...] = ("RING",)
    # Allowed values per AT+CNMI parameter (mode, mt, bm, ds, bfr); others are rejected.
    cnmi_allowed: tuple[frozenset[int], ...] = (
        frozenset({0, 1, 2}),
        frozenset({0, 1, 2, 3}),
        frozenset({0, 2}),
        frozenset({0, 1, 2}),
        frozenset({0, 1}),
    )
    default_cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    default_memory: str = "SM"
    capacities: dict[str, int] = field(default_factory=lambda: {"SM": 30, "ME": 100, "SR": 20})
    # The +CMS ERROR codes injected faults draw from when none are configured.
    default_fault_codes: tuple[int, ...] = (38, 42)
    supports_cereg: bool = False
    # Vendor commands this modem answers (the handlers live in drivers.sim.commands).
    vendor_commands: frozenset[str] = frozenset()
    # Huawei (when configured): an SMS routed with +CMT is also kept in storage.
    cmt_also_stores: bool = False
    # Network technology for +COPS? (0 GSM, 2 UTRAN, 7 E-UTRAN).
    access_technology: int = 0
    # How +CUSD carries the answer: "text" (TE charset), "ucs2" (hex, DCS 72), "packed"
    # (GSM 7-bit septets packed and hex-coded, DCS 15: many Huawei firmwares).
    ussd_coding: str = "text"
    ussd_answer: str = "Su saldo es {balance:.2f} EUR"


GENERIC = Personality(
    name="generic",
    manufacturer="SIMULATED",
    model="SIM-27005",
    revision="1.0",
    ati_lines=("SIMULATED SIM-27005", "Revision: 1.0"),
    iccid_commands=(IccidCommand("+CCID", IccidStyle.PREFIXED),),
)

SIMCOM = Personality(
    name="simcom",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800L",
    revision="Revision:1418B05SIM800L24",
    ati_lines=("SIM800 R14.18",),
    iccid_commands=(IccidCommand("+CCID", IccidStyle.BARE),),
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    after_pin_urcs=("Call Ready", "SMS Ready"),
    noise_urcs=("RING", "+CREG: 1"),
    # SIM800 rejects mt=3 and ds=2 (no +CDSI) in AT+CNMI.
    cnmi_allowed=(
        frozenset({0, 1, 2}),
        frozenset({0, 1, 2}),
        frozenset({0, 2}),
        frozenset({0, 1}),
        frozenset({0, 1}),
    ),
    default_cnmi=(2, 1, 0, 0, 0),
    # SIM800-class modules answer 500 for no credit, barring, a bad SMSC (DESIGN: +CMS classes).
    default_fault_codes=(500,),
    vendor_commands=frozenset({"+SPIC"}),
)

QUECTEL = Personality(
    name="quectel",
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A06M4G",
    ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
    iccid_commands=(IccidCommand("+QCCID", IccidStyle.PREFIXED),),
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
    after_pin_urcs=("+QIND: SMS DONE",),
    noise_urcs=("RING", "+CEREG: 1"),
    default_cnmi=(2, 1, 0, 0, 0),
    default_memory="ME",
    capacities={"SM": 50, "ME": 255, "SR": 50},
    supports_cereg=True,
    vendor_commands=frozenset({"+QPINC"}),
    access_technology=7,
    ussd_coding="ucs2",
    ussd_answer="Saldo: {balance:.2f} €",
)

HUAWEI = Personality(
    name="huawei",
    manufacturer="huawei",
    model="E173",
    revision="11.126.85.00.209",
    ati_lines=(
        "Manufacturer: huawei",
        "Model: E173",
        "Revision: 11.126.85.00.209",
        "GCAP: +CGSM,+DS,+ES",
    ),
    iccid_commands=(IccidCommand("^ICCID", IccidStyle.PREFIXED, read_form=True),),
    index_base=0,
    unknown_command_final="COMMAND NOT SUPPORT",
    # ^BOOT is what a Huawei stick prints when it (re)starts (DESIGN: Modem health).
    boot_urcs=("^BOOT:20952181,0,0,0,72", "^SYSSTART"),
    noise_urcs=("RING", "^RSSI: 18", "^MODE: 5,4", "^DSFLOWRPT:0000001E,00000000,00000000"),
    default_cnmi=(2, 1, 0, 2, 0),
    cmt_also_stores=True,
    vendor_commands=frozenset({"^CURC", "^CPIN", "^PORTSEL"}),
    access_technology=2,
    ussd_coding="packed",
)

HUAWEI_QUALCOMM = replace(
    HUAWEI,
    name="huawei-qualcomm",
    model="E160",
    revision="11.608.12.02.21",
    ati_lines=(
        "Manufacturer: huawei",
        "Model: E160",
        "Revision: 11.608.12.02.21",
        "GCAP: +CGSM,+DS,+ES",
    ),
    iccid_commands=(IccidCommand("^ICCID", IccidStyle.SWAPPED, read_form=True),),
)

PERSONALITIES: dict[str, Personality] = {
    p.name: p for p in (GENERIC, SIMCOM, QUECTEL, HUAWEI, HUAWEI_QUALCOMM)
}


def personality(name: str) -> Personality:
    """The personality called ``name``; ValueError naming the known ones otherwise."""
    try:
        return PERSONALITIES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PERSONALITIES))
        raise ValueError(f"profile: unknown personality {name!r} (known: {known})") from None
