"""Settings bound to the SIM: which PIN, pool and limits a modem gets, found by ICCID/IMEI.

DESIGN, Decisions "Identity": the SIM, not the port, is the unit of limits and PIN. A stick
found at run time gets the ``[[sims]]`` entry of the SIM inside it (by ICCID, else the
modem's IMEI), or the ``[discovery]`` defaults.
"""

from __future__ import annotations

from gatewayd.config.load import read_secret_file
from gatewayd.config.model import GatewayConfig, ModemConfig, SimConfig
from gatewayd.fleet.probe import ProbeResult


def sim_pins(config: GatewayConfig) -> dict[str, str]:
    """ICCID -> PIN from every ``pin_file`` the config binds to an ICCID (reads files)."""
    pins: dict[str, str] = {}
    for i, m in enumerate(config.modems):
        if m.pin_file is not None and m.iccid is not None:
            key = f"modems[{i}].pin_file"
            pins[m.iccid] = read_secret_file(m.pin_file, key=key, source=config.source)
    for i, s in enumerate(config.sims):
        if s.pin_file is not None and s.iccid is not None:
            key = f"sims[{i}].pin_file"
            pins[s.iccid] = read_secret_file(s.pin_file, key=key, source=config.source)
    return pins


def find_sim(config: GatewayConfig, iccid: str | None, imei: str | None) -> SimConfig | None:
    """The ``[[sims]]`` entry for this ICCID, else for this IMEI, else None."""
    if iccid:
        for sim in config.sims:
            if sim.iccid == iccid:
                return sim
    if imei:
        for sim in config.sims:
            if sim.iccid is None and sim.imei == imei:
                return sim
    return None


def modem_config(config: GatewayConfig, found: ProbeResult) -> ModemConfig:
    """The settings a discovered modem runs with: its SIM's entry, else the defaults."""
    d = config.discovery
    sim = find_sim(config, found.iccid, found.imei)
    ident = found.identity or found.path.rsplit("/", 1)[-1]
    name = (sim.name if sim is not None else None) or f"sim-{ident[-6:]}"
    return ModemConfig(
        name=name,
        port=found.path,
        profile=d.profile,
        iccid=found.iccid,
        pool=sim.pool if sim is not None else d.pool,
        limits=sim.limits if sim is not None else d.limits,
        baudrate=d.baudrate,
    )
