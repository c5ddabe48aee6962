"""Prometheus metrics of one gateway, and the last 24 hours of activity for the status page.

Each :class:`GatewayMetrics` owns its own ``CollectorRegistry`` (never the process-wide
one), so several daemons in one test process keep separate numbers. Counters and histograms
are fed by the core's events (:mod:`gatewayd.core.observe`); what is state (queue depth, a
modem's state, signal, registration, limiter headroom) is read from the :class:`Gateway`
when Prometheus scrapes, by a custom collector.

Counters start at zero with the process, as Prometheus expects (``rate()`` handles resets);
:class:`Activity` likewise covers the time since start when the daemon is younger than 24 h.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from drivers.modem import ModemState
from gatewayd import __version__
from gatewayd.core import Gateway, MessageStatus, ModemStatusView
from gatewayd.core.observe import (
    AlarmChanged,
    GatewayEvent,
    InboundReceived,
    MessageQueued,
    MessageStatusChanged,
    OptOutChanged,
    PartSent,
    ReportMatched,
    SendFailed,
    WebhookAttempted,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# A GSM modem answers AT+CMGS in about 2-6 s; the buckets resolve that range.
SEND_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0)
# Reports come seconds to days after the send (a phone switched off).
REPORT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 172800.0)
# Remembered send times waiting for their report, and final statuses already counted:
# bounded so a network that never reports cannot grow memory.
MAX_TRACKED = 100_000
HOUR = timedelta(hours=1)

K = TypeVar("K")
V = TypeVar("V")


def is_registered(registration: str) -> bool:
    """Whether a modem's registration lets it send (home network or roaming)."""
    return registration in ("home", "roaming")


def is_ready(view: ModemStatusView) -> bool:
    """Ready to send: state ready with a known SIM, not paused, in service."""
    return (
        view.state == ModemState.READY.value
        and view.sim is not None
        and not view.paused
        and not view.out_of_service
    )


@dataclass(frozen=True)
class HourCounts:
    """Messages and opt-outs in one hour (``start``: the hour's first instant, UTC)."""

    start: datetime
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    optouts: int = 0


@dataclass(frozen=True)
class ActivitySummary:
    """The last 24 hours (or the time since ``since`` when the daemon is younger)."""

    hours: tuple[HourCounts, ...]
    since: datetime
    sent: int
    delivered: int
    failed: int
    optouts: int

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among messages whose outcome became known (``None``: none yet)."""
        known = self.delivered + self.failed
        return self.delivered / known if known else None

    @property
    def optout_rate(self) -> float | None:
        """Opt-outs per message sent (``None``: nothing sent)."""
        return self.optouts / self.sent if self.sent else None


class Activity:
    """Hourly counts of sent, delivered, failed and opt-outs, kept for the last 24 hours."""

    def __init__(self, started: datetime) -> None:
        self.started = started
        self._hours: dict[datetime, dict[str, int]] = {}

    @staticmethod
    def _hour(at: datetime) -> datetime:
        return at.replace(minute=0, second=0, microsecond=0)

    def add(self, at: datetime, what: str) -> None:
        """Count one ``what`` (sent, delivered, failed, optouts) in the hour of ``at``."""
        hour = self._hour(at)
        counts = self._hours.setdefault(hour, {})
        counts[what] = counts.get(what, 0) + 1
        # Drop what is older than the window (at most one hour falls out per new hour).
        for old in [h for h in self._hours if h <= hour - 24 * HOUR]:
            del self._hours[old]

    def summary(self, now: datetime) -> ActivitySummary:
        """The 24 hours up to ``now``, oldest first."""
        current = self._hour(now)
        hours = tuple(
            HourCounts(start, **self._hours.get(start, {}))
            for start in (current - (23 - i) * HOUR for i in range(24))
        )
        return ActivitySummary(
            hours=hours,
            since=max(self.started, now - 24 * HOUR),
            sent=sum(h.sent for h in hours),
            delivered=sum(h.delivered for h in hours),
            failed=sum(h.failed for h in hours),
            optouts=sum(h.optouts for h in hours),
        )


class _StateCollector(Collector):
    """Gauges read from the gateway at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self._gateway
        views = gw.modem_status()
        info = InfoMetricFamily("gatewayd_build", "Version and node name.", labels=["node"])
        info.add_metric([gw.config.node_name], {"version": __version__})
        yield info
        yield GaugeMetricFamily(
            "gatewayd_queue_depth", "Messages queued or being sent.", value=gw.queue_depth()
        )
        ready = GaugeMetricFamily(
            "gatewayd_modem_ready", "1 when the modem can send now.", labels=["modem"]
        )
        state = GaugeMetricFamily(
            "gatewayd_modem_state", "1 for the modem's current state.", labels=["modem", "state"]
        )
        signal = GaugeMetricFamily(
            "gatewayd_modem_signal_dbm", "Signal strength (absent when unknown).", labels=["modem"]
        )
        registered = GaugeMetricFamily(
            "gatewayd_modem_registered",
            "1 when registered (home or roaming).",
            labels=["modem", "registration"],
        )
        paused = GaugeMetricFamily("gatewayd_modem_paused", "1 when paused.", labels=["modem"])
        oos = GaugeMetricFamily(
            "gatewayd_modem_out_of_service",
            "1 when its SIM was taken out of service (a SIM fault).",
            labels=["modem"],
        )
        headroom = GaugeMetricFamily(
            "gatewayd_limiter_headroom_parts",
            "Parts the SIM may still send in each window (absent: no limit).",
            labels=["modem", "window"],
        )
        for v in views:
            ready.add_metric([v.name], float(is_ready(v)))
            for s in ModemState:
                state.add_metric([v.name, s.value], float(v.state == s.value))
            if v.signal_dbm is not None:
                signal.add_metric([v.name], float(v.signal_dbm))
            registered.add_metric([v.name, v.registration], float(is_registered(v.registration)))
            paused.add_metric([v.name], float(v.paused))
            oos.add_metric([v.name], float(v.out_of_service))
            for window in ("minute", "hour", "day"):
                left = getattr(v.headroom, window)
                if left is not None:
                    headroom.add_metric([v.name, window], float(left))
        yield from (ready, state, signal, registered, paused, oos, headroom)


class GatewayMetrics:
    """The metrics of one gateway in a registry of their own; :meth:`close` unsubscribes."""

    def __init__(self, gateway: Gateway) -> None:
        self.registry = CollectorRegistry()
        self.activity = Activity(gateway.clock.now())
        r = self.registry
        self.messages = Counter(
            "gatewayd_messages",
            "Messages reaching a status (queued at submit; modem: the one that caused it).",
            ["status", "modem"],
            registry=r,
        )
        self.parts_sent = Counter(
            "gatewayd_parts_sent", "SMS parts the modem accepted (+CMGS).", ["modem"], registry=r
        )
        self.send_seconds = Histogram(
            "gatewayd_send_duration_seconds",
            "From AT+CMGS to the modem's +CMGS answer.",
            ["modem"],
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.report_seconds = Histogram(
            "gatewayd_delivery_report_latency_seconds",
            "From +CMGS to the final status report (parts sent by this process).",
            ["modem"],
            buckets=REPORT_BUCKETS,
            registry=r,
        )
        self.reports = Counter(
            "gatewayd_delivery_reports",
            "Status reports matched to a part, by outcome.",
            ["modem", "outcome"],
            registry=r,
        )
        self.send_errors = Counter(
            "gatewayd_send_errors",
            "Failed send attempts by code (cms_<n> for +CMS ERROR <n>).",
            ["modem", "code"],
            registry=r,
        )
        self.inbound = Counter(
            "gatewayd_inbound_parts", "Inbound SMS parts committed.", ["modem"], registry=r
        )
        self.optouts = Counter(
            "gatewayd_optouts",
            "Numbers added to the opt-out list.",
            ["source", "scope"],
            registry=r,
        )
        self.optout_removals = Counter(
            "gatewayd_optout_removals",
            "Numbers taken off the opt-out list.",
            ["source"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "gatewayd_webhook_deliveries", "Webhook POSTs answered 2xx.", ["event"], registry=r
        )
        self.webhook_failures = Counter(
            "gatewayd_webhook_failures",
            "Webhook POSTs that failed (gave_up: no further attempt).",
            ["event", "gave_up"],
            registry=r,
        )
        self.alarms = Gauge(
            "gatewayd_modem_alarm",
            "1 while a health alarm of the modem is raised (gatewayd.fleet.alarms).",
            ["modem", "alarm"],
            registry=r,
        )
        r.register(_StateCollector(gateway))
        self._sent_at: OrderedDict[tuple[str, int], datetime] = OrderedDict()
        self._counted: OrderedDict[tuple[str, MessageStatus], None] = OrderedDict()
        self._unsubscribe = gateway.observers.subscribe(self.observe)

    def close(self) -> None:
        """Stop listening to the gateway."""
        self._unsubscribe()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def observe(self, event: GatewayEvent) -> None:
        """Count one event of the gateway."""
        match event:
            case MessageQueued():
                self.messages.labels(MessageStatus.QUEUED.value, "").inc()
            case MessageStatusChanged(message_id=mid, status=status, modem=modem, at=at):
                self._status(mid, status, modem or "", at)
            case PartSent(message_id=mid, part=part, modem=modem, seconds=seconds, at=at):
                self.parts_sent.labels(modem).inc()
                self.send_seconds.labels(modem).observe(seconds)
                _remember(self._sent_at, (mid, part), at)
            case ReportMatched(message_id=mid, part=part, modem=modem, final=final, at=at):
                outcome = "pending" if not final else "delivered" if event.delivered else "failed"
                self.reports.labels(modem, outcome).inc()
                sent_at = self._sent_at.pop((mid, part), None) if final else None
                if sent_at is not None:
                    seconds = max((at - sent_at).total_seconds(), 0.0)
                    self.report_seconds.labels(modem).observe(seconds)
            case SendFailed(modem=modem, code=code):
                self.send_errors.labels(modem, code).inc()
            case InboundReceived(modem=modem):
                self.inbound.labels(modem).inc()
            case OptOutChanged(added=True, scope=scope, source=source, at=at):
                self.optouts.labels(source, scope.value if scope else "").inc()
                self.activity.add(at, "optouts")
            case OptOutChanged(added=False, source=source):
                self.optout_removals.labels(source).inc()
            case AlarmChanged(modem=modem, alarm=alarm, raised=raised):
                self.alarms.labels(modem, alarm).set(1 if raised else 0)
            case WebhookAttempted(event=hook, outcome="delivered"):
                self.webhook_deliveries.labels(hook).inc()
            case WebhookAttempted(event=hook, outcome=outcome):
                self.webhook_failures.labels(hook, str(outcome == "gave_up").lower()).inc()

    def _status(self, message_id: str, status: MessageStatus, modem: str, at: datetime) -> None:
        # A report for a second part of a failed message repeats "failed": count it once.
        key = (message_id, status)
        if key in self._counted:
            return
        _remember(self._counted, key, None)
        self.messages.labels(status.value, modem).inc()
        if status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED):
            self.activity.add(at, status.value)


def _remember(table: OrderedDict[K, V], key: K, value: V) -> None:
    table[key] = value
    if len(table) > MAX_TRACKED:
        table.popitem(last=False)
