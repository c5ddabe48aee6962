"""Simulated GSM modems and a simulated network, over real ptys and TCP sockets.

A :class:`SimNetwork` holds modems (each a :class:`SimModem` speaking AT over a pseudo-
terminal and/or a TCP port) and scripted handsets. Drivers and third-party tools open a
modem exactly as they open hardware: its ``/dev/pts/N`` path (or a symlink) or
``socket://127.0.0.1:PORT`` with pyserial.

Start a network and add modems::

    from drivers.clock import ManualClock, SystemClock
    from drivers.sim import SimNetwork

    net = SimNetwork(clock=SystemClock(), seed=1)   # ManualClock() in tests: no real waits
    m = await net.add_modem(
        profile="simcom",            # "generic" | "simcom" | "quectel" | "huawei"
                                     # | "huawei-qualcomm" (^ICCID digits pair-swapped)
        msisdn="+34600000001",       # default: +3460000000N
        transport="pty",             # "pty" | "tcp" | "both"
        latency=(1.5, 4.0),          # seconds between Ctrl-Z and +CMGS (0, 0 for benchmarks)
        pin=None,                    # "1234": the SIM starts locked (AT+CPIN needed)
        link_path=None,              # e.g. "/tmp/sim/modem1": a stable symlink to the pty
        tcp_port=0,                  # 0: any free port
    )
    m.url        # the pty path, its symlink, or "socket://127.0.0.1:PORT" (tcp only)
    m.pty_path, m.tcp_url
    m.iccid, m.imei, m.imsi, m.msisdn, m.id

Script the numbers outside the simulation (any other number gets a handset with the
network's defaults on first use: delivered after 5 s)::

    h = net.add_handset(
        "+34611111111",
        report="delivered",          # or "failed" / "expired", or {"delivered": .9, "failed": .1}
        report_delay=5.0,            # seconds, or (low, high)
        reports=True,                # False: the network never sends status reports
        pending_first=False,         # True: a "still trying" (TP-ST 0x20) report first
        replies=["BAJA"],            # replies[n] answers the n-th message received
        reply_delay=2.0,
    )
    net.handset("+34611111111").received   # [ReceivedSms(time, sender, text, parts)]
    await h.wait_received(1, timeout=5)

Traffic and the oracle::

    await net.inject_inbound(to=m.msisdn, sender="+34611111111", text="hola")  # long -> parts
    m.sent         # [SentRecord(time, modem, iccid, sender, recipient, text, encoding,
                   #             mr, part, parts, concat_ref)], one per part, in order
    net.sent       # every modem's log, by time; SimNetwork(sent_log=path) also writes JSONL
    await m.wait_sent(2, timeout=5)
    await m.wait_event("prompt")          # events: command, prompt, latency, sent, urc,
                                          # reboot, disconnect, reconnect, stored, cnma,
                                          # cnma-timeout, store-full, ignored (hung modem)...
    m.events       # [SimEvent(time, kind, detail)]
    m.stores["SM"].used, m.held_inbound   # storage fill; SMS the network holds (store full)

Faults, switchable at run time::

    m.set_fault(latency=(0, 0), cms_error_rate=0.5, cms_error_codes=[38, 42],
                sim_busy_after_pin=10, unresponsive=True, garbage_rate=0.1,
                force_echo=True, rssi=5,
                noise_interval=30)                # RING / ^RSSI... every 30 s (clock time)
    # m.faults.<name> = value works too, except noise_interval (needs set_fault)
    m.set_registration(RegStat.NOT_REGISTERED)   # +CREG: 0 when AT+CREG=1; held inbound
    m.disconnect(); await m.reconnect()          # pty path gone / TCP reset, then back
    await m.reboot()                             # RDY, SMS Ready...; forgets CMGF/CNMI/ATE
    m.emit_urc("RING"); m.noise()                # URCs at any moment
    m.urc_after_next_echo("+CMTI: \\"SM\\",3")     # between the next echo and its result
    m.inject_garbage(b"\\xff\\xfe")

    await net.close()

The command ``python -m drivers.sim --modems 3`` runs a network with an HTTP control API
(see :mod:`drivers.sim.control_http` and drivers/sim/README.md).
"""

from drivers.sim.events import SimEvent
from drivers.sim.faults import Faults, RegStat
from drivers.sim.handsets import Handset, Outcome, ReceivedPart, ReceivedSms
from drivers.sim.modem import SimModem
from drivers.sim.network import SimNetwork
from drivers.sim.personalities import PERSONALITIES, Personality
from drivers.sim.records import SentRecord
from drivers.sim.state import SimState

__all__ = [
    "PERSONALITIES",
    "Faults",
    "Handset",
    "Outcome",
    "Personality",
    "ReceivedPart",
    "ReceivedSms",
    "RegStat",
    "SentRecord",
    "SimEvent",
    "SimModem",
    "SimNetwork",
    "SimState",
]
