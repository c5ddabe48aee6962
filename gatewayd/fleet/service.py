"""The fleet as the API and the status page see it: alarms, watched ports, modem details."""

from __future__ import annotations

from drivers.modem import Modem
from gatewayd.core import Gateway, ModemStatusView
from gatewayd.fleet.alarms import Alarm, AlarmMonitor
from gatewayd.fleet.credit import USSD_SECONDS, Balance, CreditMonitor
from gatewayd.fleet.discovery import Discovery, PortStatus
from gatewayd.fleet.quota import QuotaMonitor


class Fleet:
    """Views over the gateway's modems, the alarm monitor, discovery and credit checks."""

    def __init__(
        self,
        gateway: Gateway,
        alarms: AlarmMonitor,
        discovery: Discovery | None = None,
        credit: CreditMonitor | None = None,
        quota: QuotaMonitor | None = None,
    ) -> None:
        self._gateway = gateway
        self.alarms = alarms
        self.discovery = discovery
        self.credit = credit
        self.quota = quota

    def active_alarms(self) -> list[Alarm]:
        """Every raised alarm, oldest first."""
        return self.alarms.active()

    async def run_ussd(self, name: str, code: str) -> tuple[str, Balance | None]:
        """Run ``code`` on modem ``name`` (KeyError if unknown); a balance code also applies."""
        if self.credit is not None:
            return await self.credit.run_code(name, code)
        worker = next((w for w in self._gateway.workers if w.name == name), None)
        if worker is None or not isinstance(worker.modem, Modem):
            raise KeyError(name)
        return await worker.modem.ussd(code, limit=USSD_SECONDS), None

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
        month = self.quota.sent_this_month(info.iccid) if self.quota is not None else None
        out.update(
            port=worker.config.port or None,
            imei=info.imei,
            iccid=info.iccid,
            imsi=info.imsi,
            technology=info.technology,
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
            credit=self._credit_json(view.name),
            sent_this_month=month[0] if month is not None else None,
            monthly_quota=month[1] if month is not None else None,
            alarms=[a.kind.value for a in self.alarms.active() if a.modem == view.name],
        )
        return out

    def _credit_json(self, name: str) -> dict[str, object] | None:
        balance = self.credit.balance(name) if self.credit is not None else None
        if balance is None:
            return None
        return {
            "balance": balance.amount,
            "checked_at": balance.at.isoformat().replace("+00:00", "Z"),
            "below_floor": balance.below_floor,
        }
