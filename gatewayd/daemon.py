"""The daemon: builds the store, modems, gateway, webhook worker and API, and runs them.

Start order: secrets (so a missing file fails before anything opens), store, gateway, modems
(each opens and initialises in its own background task, so a dead port never blocks the
start), webhook worker, API listener, then ``READY=1`` to systemd. Stop order is the
reverse, in a bounded time: the API stops taking submissions (503) at once, the gateway lets
sends in flight finish and hands the rest back to the store, then the listener, the worker,
the modems and the store close.
SIGTERM and SIGINT stop; SIGHUP reloads what may change while running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import structlog
from aiohttp import web

from drivers.clock import Clock, OffsetClock
from drivers.modem import Modem
from gatewayd.api import ApiSettings, ApiState, create_app
from gatewayd.api.events import create_short_link_app
from gatewayd.config import (
    ConfigError,
    GatewayConfig,
    Limits,
    ModemConfig,
    load_config,
    read_secret_file,
)
from gatewayd.core import Gateway
from gatewayd.core.journal import OutcomeJournal
from gatewayd.core.webhooks import WebhookWorker
from gatewayd.fleet.alarms import AlarmMonitor
from gatewayd.fleet.binding import sim_pins
from gatewayd.fleet.calls import CallService
from gatewayd.fleet.credit import CreditMonitor
from gatewayd.fleet.discovery import Discovery
from gatewayd.fleet.quota import QuotaMonitor
from gatewayd.fleet.service import Fleet
from gatewayd.fleet.warmup import Warmup
from gatewayd.flows import FlowEngine, check_templates, load_flows
from gatewayd.logs import configure_logging
from gatewayd.sdnotify import Notifier, WatchdogPinger
from gatewayd.store import Store, StoreError, open_store
from gatewayd.store.conversations_base import Conversations, open_conversations
from gatewayd.store.flows_base import FlowStore
from gatewayd.store.flows_open import open_flow_store
from gatewayd.store.quota_base import SentCounts, open_sent_counts
from gatewayd.store.readers import sqlite_path

log = structlog.get_logger(__name__)

# We promise an exit within 10 s of SIGTERM: sends in flight get DRAIN_SECONDS to finish,
# then each of the four closes (listener, webhooks, modems together, store) at most
# CLOSE_SECONDS. A GSM modem answers +CMGS in 2-6 s, so most sends in flight complete.
DRAIN_SECONDS = 5.0
CLOSE_SECONDS = 1.0
# systemd's STATUS= line is refreshed at once when a modem changes state, else this often
# (the queue depth moves all the time; systemctl status needs no more).
STATUS_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Secrets:
    """What the config names by file, read once at start (and again on SIGHUP)."""

    tokens: tuple[bytes, ...]
    webhook_secret: bytes | None
    pins: dict[str, str]  # ICCID -> PIN (DESIGN: a PIN is bound to a SIM, never to a port)

    @classmethod
    def read(cls, config: GatewayConfig) -> Secrets:
        """Read every secret file the config names (raises :class:`ConfigError`)."""
        src = config.source
        tokens = tuple(
            read_secret_file(p, key=f"api.token_files[{i}]", source=src).encode()
            for i, p in enumerate(config.api.token_files)
        )
        hook = config.webhooks.secret_file
        secret = (
            read_secret_file(hook, key="webhooks.secret_file", source=src).encode()
            if hook is not None
            else None
        )
        return cls(tokens, secret, sim_pins(config))


class Daemon:
    """One running gatewayd: :meth:`start`, then :meth:`stop` (or :meth:`run_until_stopped`)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        # Wall-clock time, following the database's clock when several nodes share one.
        self.clock: Clock = clock or OffsetClock()
        self.notifier = notifier or Notifier.from_env()
        self.api_state: ApiState | None = None
        self.store: Store | None = None
        self.modems: list[Modem] = []
        self.gateway: Gateway | None = None
        self.discovery: Discovery | None = None
        self.alarms: AlarmMonitor | None = None
        self.credit: CreditMonitor | None = None
        self.calls: CallService | None = None
        self.warmup: Warmup | None = None
        self._inbox: Conversations | None = None
        self.quota: QuotaMonitor | None = None
        self._sent_counts: SentCounts | None = None
        self.webhooks: WebhookWorker | None = None
        self._runner: web.AppRunner | None = None
        self.flows: FlowEngine | None = None
        self._flow_store: FlowStore | None = None
        self._links_runner: web.AppRunner | None = None
        self._watchdog: WatchdogPinger | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._status_changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = False
        self._reloading: asyncio.Task[None] | None = None
        self._pins: dict[str, str] = {}  # ICCID -> PIN as last read (start, SIGHUP)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the API listens on (the real port when the config said 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the API is not listening")
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Open everything in order; on a failure close what was opened and re-raise."""
        config = self.config
        secrets = await asyncio.to_thread(Secrets.read, config)
        self._pins = secrets.pins
        try:
            self.store = await open_store(
                config.database,
                node=config.node_name,
                claim_lease_seconds=config.cluster.claim_lease_seconds,
                node_lease_seconds=config.cluster.node_lease_seconds,
                poll_seconds=config.cluster.poll_seconds,
            )
            if isinstance(self.clock, OffsetClock):
                # Before anything reads the time: limits, send_at and expiry then mean the
                # same on every node, however far off this host's clock is.
                self.store.on_clock_offset(self.clock.set_offset)
            self.modems = [self._make_modem(m, secrets.pins) for m in config.modems]
            self.gateway = Gateway(
                config,
                self.store,
                clock=self.clock,
                modems=self.modems,
                journal=OutcomeJournal(journal_path(config)),
            )
            # The gateway's handlers are in place before a modem can hand over an SMS.
            await self.gateway.start()
            calls = self.calls = CallService(
                config.calls, self.gateway, self.store, clock=self.clock
            )
            warmup = self.warmup = Warmup(config, self.gateway, clock=self.clock)
            await self._start_quota()
            for modem in self.modems:
                calls.attach(modem)
                warmup.attach(modem)
                await modem.start()
            warmup.start()
            if config.discovery.enabled:

                def discovered(m: ModemConfig) -> Modem:
                    modem = self._make_modem(m, self._pins)
                    calls.attach(modem)
                    warmup.attach(modem)
                    if self.quota is not None:
                        self.quota.attach(modem)
                    return modem

                self.discovery = Discovery(
                    config,
                    self.gateway,
                    clock=self.clock,
                    pins=secrets.pins,
                    make_modem=discovered,
                )
                self.discovery.start()
            gateway = self.gateway
            if any(s.credit is not None for s in config.sims):
                self.credit = CreditMonitor(config, gateway, clock=self.clock)
                self.credit.start()
            self.alarms = AlarmMonitor(
                config.alarms,
                workers=lambda: gateway.workers,
                store=self.store,
                observers=gateway.observers,
                clock=self.clock,
                credit_low=self.credit.low if self.credit is not None else None,
            )
            self.alarms.start()
            self.webhooks = WebhookWorker(
                self.store,
                config.webhooks,
                secret=secrets.webhook_secret,
                clock=self.clock,
                observers=self.gateway.observers,
            )
            self.store.on_outbox(self.webhooks.wake)
            await self._start_flows()
            self.api_state = ApiState(ApiSettings.from_config(config, secrets.tokens))
            app = create_app(
                self.gateway,
                failures=self.store,
                state=self.api_state,
                clock=self.clock,
                max_body_bytes=config.api.max_body_bytes,
                resources=[self._webhooks_running],
                flows=self.flows,
                fleet=Fleet(self.gateway, self.alarms, self.discovery, self.credit, self.quota),
                inbox=await self._open_inbox(),
            )
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_SECONDS / 2)
            await self._runner.setup()
            site = web.TCPSite(self._runner, config.api.listen_host, config.api.listen_port)
            await site.start()
        except BaseException:
            await self._close()
            raise
        host, port = self.address
        log.info("gatewayd.started", api=f"http://{host}:{port}", modems=len(self.modems))
        status = self.status_line()
        self.notifier.ready(status)
        self._watchdog = WatchdogPinger.from_env(self.notifier)
        if self._watchdog is not None:
            self._watchdog.start()
        if self.notifier.enabled:
            for modem in self.modems:
                modem.on_state_change(lambda _state, _reason: self._status_changed.set())
            self._status_task = asyncio.create_task(self._status_loop(status), name="sd-status")

    async def _start_flows(self) -> None:
        """Flows, when configured: the engine and the short-link listener (its own port)."""
        settings = self.config.flows
        if settings.file is None or self.gateway is None:
            return
        flows = load_flows(settings.file)
        for p in check_templates(flows, settings):
            log.info(
                "flows.template",
                name=p.template,
                lang=p.language,
                encoding=p.encoding.value,
                segments=p.segments,
                flags=list(p.flags),
            )
        self._flow_store = await open_flow_store(self.config.database, node=self.config.node_name)
        self.flows = FlowEngine(self.gateway, self._flow_store, flows, settings, clock=self.clock)
        self.flows.start()
        host, _, port = settings.short_link_listen.rpartition(":")
        self._links_runner = web.AppRunner(
            create_short_link_app(self.flows), access_log=None, shutdown_timeout=CLOSE_SECONDS / 2
        )
        await self._links_runner.setup()
        await web.TCPSite(self._links_runner, host.strip("[]"), int(port)).start()

    async def _start_quota(self) -> None:
        # Loaded before the modems start, so that no SIM sends past its quota at start.
        if self.gateway is None or not any(s.monthly_quota is not None for s in self.config.sims):
            return
        self._sent_counts = await open_sent_counts(self.config.database)
        if self._sent_counts is None:  # in-memory SQLite: no second connection sees it
            return
        self.quota = QuotaMonitor(self.config, self.gateway, self._sent_counts, clock=self.clock)
        await self.quota.start()

    async def _open_inbox(self) -> Conversations | None:
        # The inbox reads the store's tables on a connection (pool) of its own.
        self._inbox = await open_conversations(self.config.database)
        return self._inbox

    @property
    def short_link_address(self) -> tuple[str, int]:
        """The (host, port) short links are served on (the real port when the config said 0)."""
        if self._links_runner is None or not self._links_runner.addresses:
            raise RuntimeError("short links are not served")
        host, port = self._links_runner.addresses[0][:2]
        return str(host), int(port)

    def status_line(self) -> str:
        """The one-line state systemd shows: modems ready and queue depth."""
        gateway = self.gateway
        if gateway is None:
            return "starting"
        ready = sum(w.usable() for w in gateway.workers)
        return f"{ready}/{len(gateway.workers)} modems ready, queue depth {gateway.queue_depth()}"

    async def _status_loop(self, sent: str) -> None:
        while True:
            self._status_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_SECONDS):
                    await self._status_changed.wait()
            line = self.status_line()
            if line != sent:
                self.notifier.status(line)
                sent = line

    async def _webhooks_running(self, _app: web.Application) -> AsyncIterator[None]:
        # A cleanup_ctx of the API app: posts start with the listener and stop after it
        # closed, so events of the last requests are still handed to the worker.
        if self.webhooks is None:
            raise RuntimeError("the webhook worker is built before the API")
        await self.webhooks.start()
        try:
            yield
        finally:
            await self.webhooks.stop()

    def _make_modem(self, m: ModemConfig, pins: dict[str, str]) -> Modem:
        return Modem(
            m.port,
            name=m.name,
            profile=m.profile,
            pins=pins,
            baudrate=m.baudrate,
            clock=self.clock,
            hangup_delay=self.config.calls.hangup_delay_seconds,
            health_interval=m.health_interval_seconds,
        )

    def request_stop(self) -> None:
        """Ask :meth:`run_until_stopped` to stop (a signal handler calls this)."""
        if not self._stopping.is_set():
            log.info("gatewayd.stopping")
            # New submissions get 503 from now on; the listener closes during stop().
            if self.api_state is not None:
                self.api_state.accepting = False
            self.notifier.stopping()
            self._stopping.set()

    async def run_until_stopped(self) -> None:
        """Serve until :meth:`request_stop`, then stop in bounded time."""
        await self._stopping.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop taking work, drain, close everything, in about 10 s at most."""
        if self._stopped:
            return
        self._stopped = True
        if self.api_state is not None:
            self.api_state.accepting = False
        try:
            async with asyncio.timeout(DRAIN_SECONDS + CLOSE_SECONDS):
                if self.gateway is not None:
                    await self.gateway.stop(drain_timeout=DRAIN_SECONDS)
        except TimeoutError:
            log.warning("gatewayd.drain_timeout", drain_s=DRAIN_SECONDS)
        await self._close()
        log.info("gatewayd.stopped")

    async def _close(self) -> None:
        # Each close is bounded and independent: one failing must not keep the others open.
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        if self._watchdog is not None:
            await self._watchdog.stop()
        task, self._status_task = self._status_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await _bounded("api", self._runner.cleanup())
            self._runner = None
        if self._links_runner is not None:
            await _bounded("short links", self._links_runner.cleanup())
            self._links_runner = None
        if self.flows is not None:
            await _bounded("flows", self.flows.stop())
        if self._flow_store is not None:
            await _bounded("flows store", self._flow_store.close())
            self._flow_store = None
        if self.webhooks is not None:  # stopped with the API already, unless start failed
            await _bounded("webhooks", self.webhooks.stop())
        if self.alarms is not None:
            await _bounded("alarms", self.alarms.stop())
            self.alarms = None
        if self.quota is not None:
            await _bounded("quota", self.quota.stop())
            self.quota = None
        if self._sent_counts is not None:
            await _bounded("sent counts", self._sent_counts.close())
            self._sent_counts = None
        if self._inbox is not None:
            await _bounded("inbox", self._inbox.close())
            self._inbox = None
        if self.warmup is not None:
            await _bounded("warmup", self.warmup.stop())
            self.warmup = None
        if self.calls is not None:
            await _bounded("calls", self.calls.stop())
            self.calls = None
        if self.credit is not None:
            await _bounded("credit", self.credit.stop())
            self.credit = None
        if self.discovery is not None:
            await _bounded("discovery", self.discovery.stop())
            self.discovery = None
        if self.modems:
            await _bounded("modems", asyncio.gather(*(m.stop() for m in self.modems)))
        if self.store is not None:
            await _bounded("store", self.store.close())
            self.store = None

    def request_reload(self) -> None:
        """SIGHUP: reload in a task of its own (reading files never blocks the loop)."""
        if self._reloading is not None and not self._reloading.done():
            log.warning("config.reload_ignored", reason="a reload is already running")
            return
        self._reloading = asyncio.create_task(self._reload_logged(), name="config-reload")

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:
            # A bug in applying a reload must not take the running daemon down.
            log.exception("config.reload_crashed")
            self.notifier.ready()

    async def reload(self) -> None:
        """Apply what may change at run time, refuse (and name) what may not."""
        old = self.config
        source = old.source
        if source is None or self.gateway is None or self.api_state is None:
            log.warning("config.reload_ignored", reason="not running (yet)")
            return
        self.notifier.reloading()
        try:
            new = await asyncio.to_thread(load_config, source)
            secrets = await asyncio.to_thread(Secrets.read, new)
        except ConfigError as exc:
            log.error("config.reload_failed", error=str(exc))
            self.notifier.ready()
            return
        needs_restart = restart_needed(old, new)
        applied = merge_reloadable(old, new)
        changed = self.gateway.reload(applied)
        if secrets.tokens != self.api_state.settings.tokens:
            changed.append("api.token_files")
        self.api_state.settings = ApiSettings.from_config(applied, secrets.tokens)
        if self.webhooks is not None:
            self.webhooks.reconfigure(applied.webhooks, secrets.webhook_secret)
        if applied.logging != old.logging:
            configure_logging(applied.logging)
            changed.append("logging")
        if secrets.pins != self._pins:
            self._apply_pins(secrets.pins)
            changed.append("pins")
        self.config = applied
        log.info("config.reloaded", changed=changed or ["nothing"])
        if needs_restart:
            log.warning(
                "config.reload_refused",
                keys=needs_restart,
                reason="these take effect only after a restart; the running values stay",
            )
        self.notifier.ready()

    def _apply_pins(self, pins: dict[str, str]) -> None:
        # A modem FAILED for its SIM's PIN gets one new attempt when its PIN changed: the
        # admin's edit is the human action a PIN failure waits for (DESIGN: Identity).
        self._pins = pins
        modems = list(self.modems)
        if self.discovery is not None:
            self.discovery.set_pins(pins)
            modems += self.discovery.modems
        for modem in modems:
            if modem.apply_pins(pins):
                log.info("config.pin_retry", modem=modem.name)


def journal_path(config: GatewayConfig) -> Path | None:
    """Where +CMGS answers wait while the database is unreachable (core/journal.py): next
    to an SQLite file; on PostgreSQL in systemd's state directory, else beside the config."""
    path = sqlite_path(config.database)
    if path == ":memory:":
        return None
    if path is not None:
        return Path(path).with_name(Path(path).name + ".outcomes")
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    base = Path(state) if state else (config.source.parent if config.source else Path.cwd())
    return base / f"outcomes-{config.node_name}.journal"


def restart_needed(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """Keys changed between ``old`` and ``new`` that a running daemon cannot apply."""
    keys = []
    if old.database != new.database:
        keys.append("database")
    if old.node_name != new.node_name:
        keys.append("node_name")
    if old.cluster != new.cluster:  # the store is opened with them
        keys.append("cluster")
    if (old.api.listen_host, old.api.listen_port) != (new.api.listen_host, new.api.listen_port):
        keys.append("api.listen")
    if old.api.max_body_bytes != new.api.max_body_bytes:
        keys.append("api.max_body_bytes")
    if old.flows != new.flows:  # the engine and its listener are built at start
        keys.append("flows")
    old_modems = {m.name: _hardware(m) for m in old.modems}
    new_modems = {m.name: _hardware(m) for m in new.modems}
    for name in sorted(old_modems.keys() | new_modems.keys()):
        if old_modems.get(name) != new_modems.get(name):
            keys.append(f"modems[{name}]")
    return keys


def _hardware(m: ModemConfig) -> ModemConfig:
    # Limits apply at run time; everything else about a modem needs it reopened.
    return dataclasses.replace(m, limits=Limits())


def merge_reloadable(old: GatewayConfig, new: GatewayConfig) -> GatewayConfig:
    """``new`` with the restart-only keys kept at their running values."""
    limits = {m.name: m.limits for m in new.modems}
    modems = tuple(dataclasses.replace(m, limits=limits.get(m.name, m.limits)) for m in old.modems)
    api = dataclasses.replace(
        new.api,
        listen_host=old.api.listen_host,
        listen_port=old.api.listen_port,
        max_body_bytes=old.api.max_body_bytes,
    )
    pools = {m.pool for m in modems}
    routing = tuple(r for r in new.routing if r.pool in pools)
    return dataclasses.replace(
        new,
        database=old.database,
        node_name=old.node_name,
        cluster=old.cluster,
        api=api,
        modems=modems,
        routing=routing,
    )


async def _bounded(what: str, closing: Awaitable[object]) -> None:
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await closing
    except Exception as exc:
        log.warning("gatewayd.close_failed", what=what, error=repr(exc))


async def serve(config: GatewayConfig) -> None:
    """Run a daemon for ``config`` until SIGTERM/SIGINT; SIGHUP reloads."""
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    # Handlers first: a signal that arrives while starting must not kill the process.
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    try:
        await daemon.start()
        await daemon.run_until_stopped()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def run_daemon(config: GatewayConfig) -> int:
    """``gatewayd run``: configure logging, serve, return the exit status."""
    configure_logging(config.logging)
    try:
        asyncio.run(serve(config))
    except ConfigError as exc:
        log.error("gatewayd.config_error", error=str(exc))
        return 1
    except (OSError, StoreError) as exc:
        # A port in use, an unwritable database, a schema from a newer gatewayd.
        log.error("gatewayd.start_failed", error=str(exc))
        return 1
    return 0
