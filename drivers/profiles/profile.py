"""Vendor differences as data: one frozen :class:`Profile` per modem family."""

from __future__ import annotations

from dataclasses import dataclass

# Printed by a modem that has just (re)booted (DESIGN.md, Decisions: "Modem health").
COMMON_REBOOT_MARKERS = ("RDY", "SMS Ready", "+CFUN: 1", "+CPIN: READY")


@dataclass(frozen=True)
class Profile:
    """How one family of modems differs from TS 27.005 / 27.007."""

    name: str
    # Substrings of the AT+CGMI answer (upper case) that identify the family.
    manufacturers: tuple[str, ...] = ()
    # Vendor commands run after the standard init (URC routing, noise off).
    init_commands: tuple[str, ...] = ()
    # How to read the ICCID before a PIN is entered (DESIGN.md, Decisions: "Identity").
    iccid_command: str = "AT+CCID"
    # How to read PIN tries left; the first integer in the answer is the count.
    pin_tries_command: str | None = None
    # AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>; DESIGN default 2,1,0,<ds>,0 (store, +CMTI).
    cnmi_mode: int = 2
    cnmi_mt: int = 1
    cnmi_ds: int = 1  # 1: +CDS with the PDU; 2: +CDSI index (read and delete)
    # +CSMS=1 makes +CMT need +CNMA; used only with mt=2 (direct delivery).
    csms: int = 0
    # Message storage, most preferred first: the modem's memory over the SIM's 20-50 slots.
    storage_preference: tuple[str, ...] = ("ME", "MT", "SM")
    extra_finals: tuple[str, ...] = ()
    # Unsolicited lines that carry nothing the driver uses.
    ignore_urcs: tuple[str, ...] = ()
    # Command-prefix -> seconds, before the channel's defaults.
    timeouts: tuple[tuple[str, float], ...] = ()
    # Whether storage indexes start at 0 (else 1).
    index_zero: bool = False
    hangup_command: str = "ATH"
    reset_command: str = "AT+CFUN=1,1"
    reboot_markers: tuple[str, ...] = COMMON_REBOOT_MARKERS
    # An SMS whose PDU does not decode stays on the SIM and is reported unless this is set.
    delete_undecodable: bool = False
    # Text-mode status report request; PDU mode carries SRR in the PDU itself.
    csmp: str | None = None
    # Registration: also ask +CEREG (LTE-only modules register there, not in +CREG).
    uses_cereg: bool = False

    def cnmi(self) -> str:
        """The AT+CNMI command for this profile."""
        return f"AT+CNMI={self.cnmi_mode},{self.cnmi_mt},0,{self.cnmi_ds},0"


GENERIC = Profile(name="generic")

SIMCOM = Profile(
    name="simcom",
    manufacturers=("SIMCOM",),
    # SIM800 Series AT Command Manual: AT+CCID reads the ICCID; AT+SPIC gives PIN/PUK tries.
    iccid_command="AT+CCID",
    pin_tries_command="AT+SPIC",
    # SIM800 prints "Call Ready" / "SMS Ready" after boot; +CMGS may take 60 s.
    reboot_markers=(*COMMON_REBOOT_MARKERS, "Call Ready"),
    timeouts=(("AT+CMGS", 60.0),),
    # SIM800 storages: "SM", "ME", "SM_P", "ME_P", "MT"; ME first.
    storage_preference=("ME", "MT", "SM"),
    ignore_urcs=("Call Ready", "+CIEV:", "*PSUTTZ:", "DST:"),
    cnmi_ds=1,
)

QUECTEL = Profile(
    name="quectel",
    manufacturers=("QUECTEL",),
    # EC25 AT Commands Manual: AT+QCCID; AT+QPINC="SC" gives PIN/PUK tries; URCs go to the
    # port named by AT+QURCCFG, so route them to the AT port we hold.
    iccid_command="AT+QCCID",
    pin_tries_command='AT+QPINC="SC"',
    init_commands=('AT+QURCCFG="urcport","usbat"',),
    # EC25: +CMGS and +CMSS may take 120 s; AT+COPS=? 180 s.
    timeouts=(("AT+CMGS", 120.0), ("AT+COPS=?", 180.0)),
    reboot_markers=(*COMMON_REBOOT_MARKERS, "+QIND: SMS DONE"),
    ignore_urcs=("+QIND: PB DONE", '+QIND: "csq"', "+QUSIM:", "POWERED DOWN"),
    storage_preference=("ME", "MT", "SM"),
    uses_cereg=True,
    cnmi_ds=2,
)

HUAWEI = Profile(
    name="huawei",
    manufacturers=("HUAWEI",),
    # E-series: AT^ICCID? reads the ICCID; AT^CPIN? gives the tries left after the code;
    # AT^CURC=0 stops the periodic ^RSSI/^DSFLOWRPT/^MODE noise on the PC UI port.
    iccid_command="AT^ICCID?",
    pin_tries_command="AT^CPIN?",
    init_commands=("AT^CURC=0",),
    extra_finals=("COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"),
    # ^BOOT / ^SYSSTART: the stick (re)started (DESIGN.md, Decisions: "Modem health").
    reboot_markers=(*COMMON_REBOOT_MARKERS, "^BOOT", "^SYSSTART"),
    # ^RSSI stays: the driver reads the signal from it.
    ignore_urcs=("^DSFLOWRPT:", "^MODE:", "^SRVST:", "^SIMST:", "^HCSQ:", "^STIN:"),
    # Some sticks keep the SIM store only ("SM"), others offer "ME".
    storage_preference=("ME", "SM"),
    # E-series number storage slots from 0.
    index_zero=True,
    cnmi_ds=2,
)

TELIT = Profile(
    name="telit",
    manufacturers=("TELIT",),
    # Telit AT Commands Reference Guide: AT#CCID for the ICCID, AT#PCT for PIN tries left.
    iccid_command="AT#CCID",
    pin_tries_command="AT#PCT",
    # Telit boots silently unless #QSS is enabled: rely on +CPIN: READY and health probes.
    ignore_urcs=("#QSS:",),
    storage_preference=("ME", "SM"),
    cnmi_ds=1,
)

WAVECOM = Profile(
    name="wavecom",
    manufacturers=("WAVECOM", "SIERRA"),
    iccid_command="AT+CCID",
    # Wavecom/Sierra AT+CPINC: "+CPINC: <pin1>,<pin2>,<puk1>,<puk2>".
    pin_tries_command="AT+CPINC",
    # +WIND: 3 is printed when the product has reset; other +WIND lines are progress noise.
    reboot_markers=(*COMMON_REBOOT_MARKERS, "+WIND: 3"),
    ignore_urcs=("+WIND:",),
    storage_preference=("ME", "SM"),
    cnmi_ds=1,
)

PROFILES: dict[str, Profile] = {
    p.name: p for p in (GENERIC, SIMCOM, QUECTEL, HUAWEI, TELIT, WAVECOM)
}


class UnknownProfile(ValueError):
    """A config names a profile that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown modem profile {name!r}; known: {', '.join(sorted(PROFILES))}")
        self.name = name


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (case-insensitive)."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise UnknownProfile(name) from None


def detect_profile(manufacturer: str) -> Profile:
    """The profile whose manufacturer marker appears in an ``AT+CGMI`` answer; else generic."""
    upper = manufacturer.upper()
    for profile in PROFILES.values():
        if any(marker in upper for marker in profile.manufacturers):
            return profile
    return GENERIC
