"""Realism and faults of one simulated modem, switchable at run time.

:class:`Faults` holds the knobs the command handlers consult on every command; the
modem's methods (``disconnect``, ``reboot``, ``set_registration``...) cover the faults that
are events rather than settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

DEFAULT_LATENCY = (1.5, 4.0)


class RegStat(IntEnum):
    """Registration status as +CREG/+CEREG print it (27.007 section 7.2)."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5


@dataclass
class Faults:
    """Per-modem settings that make the modem slow, flaky or broken."""

    # Seconds between Ctrl-Z and +CMGS: <mr>, drawn uniformly; (0, 0) for benchmarks.
    latency: tuple[float, float] = DEFAULT_LATENCY
    # Chance that one AT+CMGS fails with a code drawn from cms_error_codes.
    cms_error_rate: float = 0.0
    # Codes to fail with; empty means the personality's usual ones.
    cms_error_codes: tuple[int, ...] = ()
    # Seconds the SIM stays busy (+CME ERROR: 14) after a correct PIN.
    sim_busy_after_pin: float = 0.0
    # The modem reads and ignores everything and prints nothing (a hung firmware).
    unresponsive: bool = False
    # Chance that a response is preceded by a few garbage bytes on the line.
    garbage_rate: float = 0.0
    # Echo even after ATE0 (some firmware forgets ATE0).
    force_echo: bool = False
    # Signal quality for +CSQ (0-31, 99 unknown).
    rssi: int = 20
    # Seconds between noise URCs (RING, ^RSSI...); 0: none. Set it with SimModem.set_fault.
    noise_interval: float = 0.0
    # Take each part's Ctrl-Z but answer +CMGS only once this is cleared (a stalled network;
    # a send in flight when its host dies). The part leaves when released, as it would.
    hold_sends: bool = False
    # Print the ``> `` prompt after AT+CMGS only once this is cleared (a modem slow to
    # prompt: the host waits there with the part ready).
    hold_prompt: bool = False

    def update(self, **changes: Any) -> None:
        """Set several knobs at once; ValueError naming an unknown or invalid one."""
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"faults: unknown setting {name!r}")
            setattr(self, name, _coerce(name, value))

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able values."""
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any) -> Any:
    # Values arrive from Python tests and from JSON (lists, ints): check and normalise.
    if name == "latency":
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError("faults.latency: expected two numbers (low, high)") from None
        if not 0 <= low <= high:
            raise ValueError("faults.latency: need 0 <= low <= high")
        return (low, high)
    if name == "cms_error_codes":
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError("faults.cms_error_codes: expected a list of integers") from None
    if name in ("cms_error_rate", "garbage_rate"):
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"faults.{name}: expected a probability in [0, 1]")
        return rate
    if name in ("sim_busy_after_pin", "noise_interval"):
        seconds = float(value)
        if seconds < 0:
            raise ValueError(f"faults.{name}: expected seconds >= 0")
        return seconds
    if name == "rssi":
        rssi = int(value)
        if not (0 <= rssi <= 31 or rssi == 99):
            raise ValueError("faults.rssi: expected 0-31 or 99")
        return rssi
    if not isinstance(value, bool):
        raise ValueError(f"faults.{name}: expected true or false")
    return value
