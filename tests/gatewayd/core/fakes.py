"""A fake modem (the ModemPort the core drives) and a harness around a real SQLite Gateway."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from drivers.at import CmsError
from drivers.clock import ManualClock
from drivers.modem import InboundSms, ModemInfo, ModemNotReady, ModemState, SendAborted
from drivers.pdu import Concat, StatusReport, Submit, decode, encode_deliver
from gatewayd.config.model import GatewayConfig, Limits, ModemConfig
from gatewayd.core import Gateway
from gatewayd.store import SqliteStore

UNLIMITED = Limits(max_per_minute=None, max_per_hour=None, max_per_day=None)
TIMEOUT = 5.0


@dataclass(frozen=True)
class Sent:
    """One SMS the fake modem sent."""

    at: datetime
    pdu: str
    length: int
    mr: int

    @property
    def submit(self) -> Submit:
        msg = decode(self.pdu)
        assert isinstance(msg, Submit)
        return msg

    @property
    def recipient(self) -> str:
        return self.submit.recipient

    @property
    def text(self) -> str:
        return self.submit.text

    @property
    def concat(self) -> Concat:
        assert self.submit.concat is not None
        return self.submit.concat


def cms(code: int) -> CmsError:
    """A +CMS ERROR as the AT layer raises it."""
    return CmsError("AT+CMGS", f"+CMS ERROR: {code}", code, str(code))


@dataclass
class FakeModem:
    """An in-memory ModemPort: records sends, raises on demand, emits reports and inbound."""

    name: str
    sim: str | None
    clock: ManualClock
    state: ModemState = ModemState.READY
    state_reason: str = ""
    sends: list[Sent] = field(default_factory=list)
    failures: deque[BaseException | None] = field(default_factory=deque)
    attempts: int = 0
    attempt_times: list[datetime] = field(default_factory=list)
    gone_after: int | None = None  # go GONE right after this many successful sends
    before_send: Callable[[], Awaitable[None]] | None = None  # runs before the '> ' prompt
    _mr: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _state_cbs: list[Callable[[ModemState, str], None]] = field(default_factory=list)
    _inbound: Callable[[InboundSms], Awaitable[None]] | None = None
    _report: Callable[[StatusReport], Awaitable[None]] | None = None
    _mrs: deque[int] = field(default_factory=deque)

    @property
    def identity(self) -> str | None:
        return self.sim if self.state is not ModemState.OPENING else None

    @property
    def info(self) -> ModemInfo:
        return ModemInfo(iccid=self.sim, operator="Fake", signal_dbm=-70, registration="home")

    async def send_pdu(
        self, pdu_hex: str, length: int, *, before_submit: Callable[[], bool] | None = None
    ) -> int:
        self.attempts += 1
        self.attempt_times.append(self.clock.now())
        self._changed.set()
        if self.before_send is not None:
            await self.before_send()
        if self.state is not ModemState.READY:
            raise ModemNotReady(self.name, self.state, "fake")
        if before_submit is not None and not before_submit():
            raise SendAborted("aborted at prompt")
        if self.failures:
            exc = self.failures.popleft()
            if exc is not None:
                self._changed.set()
                raise exc
        if self._mrs:
            mr = self._mrs.popleft()
        else:
            mr, self._mr = self._mr, (self._mr + 1) % 256
        self.sends.append(Sent(self.clock.now(), pdu_hex, length, mr))
        self._changed.set()
        if self.gone_after is not None and len(self.sends) >= self.gone_after:
            self.gone_after = None
            self.set_state(ModemState.GONE, "unplugged")
        return mr

    def next_mrs(self, *mrs: int) -> None:
        """The TP-MRs the next sends answer with."""
        self._mrs.extend(mrs)

    def set_state(self, state: ModemState, reason: str = "test") -> None:
        self.state, self.state_reason = state, reason
        for cb in self._state_cbs:
            cb(state, reason)

    def on_state_change(self, cb: Callable[[ModemState, str], None]) -> None:
        self._state_cbs.append(cb)

    def set_inbound_handler(self, cb: Callable[[InboundSms], Awaitable[None]]) -> None:
        self._inbound = cb

    def set_report_handler(self, cb: Callable[[StatusReport], Awaitable[None]]) -> None:
        self._report = cb

    async def receive(self, pdu: bytes) -> None:
        """Hand an SMS-DELIVER PDU to the gateway as the driver would (+CMTI, read)."""
        assert self._inbound is not None
        msg = decode(pdu)
        assert not isinstance(msg, StatusReport)
        await self._inbound(InboundSms("ME", 1, pdu.hex().upper(), msg, "cmti"))  # type: ignore[arg-type]

    async def receive_text(self, sender: str, text: str, scts: datetime) -> None:
        for pdu in encode_deliver(sender, text, scts=scts):
            await self.receive(pdu)

    async def report(self, rep: StatusReport) -> None:
        assert self._report is not None
        await self._report(rep)

    async def wait_sends(self, n: int) -> None:
        """Until at least ``n`` SMS went out."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.sends) < n:
                self._changed.clear()
                await self._changed.wait()

    async def wait_attempts(self, n: int) -> None:
        """Until ``send_pdu`` was called at least ``n`` times."""
        async with asyncio.timeout(TIMEOUT):
            while self.attempts < n:
                self._changed.clear()
                await self._changed.wait()


def config(
    tmp_path: Path,
    *modems: ModemConfig,
    **kwargs: object,
) -> GatewayConfig:
    return GatewayConfig(database=str(tmp_path / "gw.db"), modems=modems, **kwargs)  # type: ignore[arg-type]


def modem_config(name: str, *, pool: str = "default", limits: Limits = UNLIMITED) -> ModemConfig:
    return ModemConfig(name=name, port=f"/dev/fake-{name}", pool=pool, limits=limits)


@dataclass
class Harness:
    """A Gateway on a real SQLite file, driven by fake modems and a manual clock."""

    gateway: Gateway
    store: SqliteStore
    clock: ManualClock
    modems: dict[str, FakeModem]

    async def idle(self) -> None:
        """Until every worker waits (for work, a limiter slot or a due time)."""
        async with asyncio.timeout(TIMEOUT):
            for worker in self.gateway.workers:
                await worker.idle.wait()
            await self.gateway.sweep_idle.wait()

    async def advance(self, seconds: float) -> None:
        """Move the clock, stopping at every sleeper's deadline until the workers settle.

        The workers' store calls run in a thread, so ManualClock's own settling (event-loop
        turns) cannot wait for them: without the stops the clock would run ahead of a worker
        woken at its deadline, and its sends would carry later times than real ones.
        """
        target = self.clock.now() + timedelta(seconds=seconds)
        while True:
            # ManualClock keeps its sleepers in a heap of (deadline, seq, future).
            due = [d for d, _, f in self.clock._sleepers if not f.done() and d <= target]
            if not due:
                break
            await self.clock.advance_to(min(due))
            await self.idle()
        await self.clock.advance_to(target)
        await self.idle()

    async def close(self) -> None:
        await self.gateway.stop(drain_timeout=1.0)
        await self.store.close()


async def start(
    cfg: GatewayConfig,
    clock: ManualClock,
    fakes: Iterable[FakeModem],
) -> Harness:
    store = SqliteStore(cfg.database, webhook_url=cfg.webhooks.url)
    await store.open()
    modems = {m.name: m for m in fakes}
    gateway = Gateway(cfg, store, clock=clock, modems=list(modems.values()))
    await gateway.start()
    h = Harness(gateway, store, clock, modems)
    await h.idle()
    return h
