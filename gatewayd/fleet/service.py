"""The fleet as the API and the status page see it: alarms, watched ports, modem details."""

from __future__ import annotations

from gatewayd.core import Gateway, ModemStatusView
from gatewayd.fleet.alarms import Alarm, AlarmMonitor
from gatewayd.fleet.discovery import Discovery, PortStatus


class Fleet:
    """Read-only views over the gateway's modems, the alarm monitor and discovery."""

    def __init__(
        self, gateway: Gateway, alarms: AlarmMonitor, discovery: Discovery | None = None
    ) -> None:
        self._gateway = gateway
        self.alarms = alarms
        self.discovery = discovery

    def active_alarms(self) -> list[Alarm]:
        """Every raised alarm, oldest first."""
        return self.alarms.active()

    def ports(self) -> list[PortStatus]:
        """Every port discovery watched, with what became of it (none without discovery)."""
        return self.discovery.ports() if self.discovery is not None else []

    def modem_json(self, view: ModemStatusView) -> dict[str, object]:
        """``GET /v1/modems``'s entry: the core's view plus port, identities, storage, alarms."""
        out = view.to_json()
        worker = next((w for w in self._gateway.workers if w.name == view.name), None)
        if worker is None:
            return out
        modem, limits = worker.modem, worker.config.limits
        info = modem.info
        out.update(
            port=worker.config.port or None,
            imei=info.imei,
            iccid=info.iccid,
            imsi=info.imsi,
            storage={"used": info.storage_used, "total": info.storage_total},
            limits={
                "minute": limits.max_per_minute,
                "hour": limits.max_per_hour,
                "day": limits.max_per_day,
            },
            sent_today=(
                limits.max_per_day - view.headroom.day
                if limits.max_per_day is not None and view.headroom.day is not None
                else None
            ),
            alarms=[a.kind.value for a in self.alarms.active() if a.modem == view.name],
        )
        return out
