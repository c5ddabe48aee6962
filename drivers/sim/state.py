"""The settings and SIM state of one simulated modem (what ATZ and a reboot reset or keep)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.sim.personalities import Personality


class SimState(StrEnum):
    """The SIM's lock state as AT+CPIN? reports it."""

    READY = "READY"
    PIN = "SIM PIN"
    PUK = "SIM PUK"
    BLOCKED = "SIM BLOCKED"  # PUK tried 10 times wrong: the SIM is dead (+CME ERROR: 13)


PIN_TRIES = 3
PUK_TRIES = 10


@dataclass
class Settings:
    """Volatile settings: ATZ and a reboot put them back to the personality's defaults."""

    echo: bool
    cmee: int
    cmgf: int
    cscs: str
    csms: int
    cnmi: tuple[int, int, int, int, int]
    creg: int
    cereg: int
    csmp: tuple[int, int, int, int]
    cpms: tuple[str, str, str]
    csca: str
    cfun: int
    curc: int  # Huawei AT^CURC: 0 silences the periodic ^ URCs
    portsel: int  # Huawei AT^PORTSEL: the port URCs go to (remembered only)

    @classmethod
    def defaults(cls, personality: Personality, smsc: str) -> Settings:
        """Power-on values for ``personality`` with the network's SMSC number."""
        mem = personality.default_memory
        return cls(
            echo=True,
            cmee=0,
            cmgf=0,
            cscs="IRA",
            csms=0,
            cnmi=personality.default_cnmi,
            creg=0,
            cereg=0,
            csmp=(17, 167, 0, 0),
            cpms=(mem, mem, mem),
            csca=smsc,
            cfun=1,
            curc=1,
            portsel=0,
        )


@dataclass
class SimCard:
    """The SIM: identity and PIN lock, kept across reboots (its memory is the SM store)."""

    iccid: str
    imsi: str
    pin: str | None
    puk: str
    state: SimState
    pin_tries: int = PIN_TRIES
    puk_tries: int = PUK_TRIES
