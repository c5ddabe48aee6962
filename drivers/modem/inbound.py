"""Inbound work of one modem: read, decode, hand on, and only then delete.

One task owns this work so reads never interleave with each other (``AT+CPMS`` switches
the read memory for ``+CDSI``). DESIGN.md, data path 5: ``+CMTI`` -> ``AT+CMGR`` ->
decode -> callback commits -> only then ``AT+CMGD``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from drivers.at import AtChannel, AtError, PortGone
from drivers.modem import parsing
from drivers.modem.init import InitResult
from drivers.modem.types import InboundSms
from drivers.pdu import Deliver, PduError, StatusReport, decode
from drivers.profiles import Profile

log = structlog.get_logger(__name__)

InboundHandler = Callable[[InboundSms], Awaitable[None]]
ReportHandler = Callable[[StatusReport], Awaitable[None]]

SEEN_LIMIT = 4096  # PDU hashes remembered for duplicate detection


@dataclass(frozen=True)
class Job:
    """One piece of inbound work: a stored index to read, a routed PDU, or a sweep."""

    kind: str  # "cmti" | "cdsi" | "cmt" | "cds" | "sweep" | "hangup" (a call: ATH)
    memory: str | None = None
    index: int | None = None
    pdu: str | None = None


class Inbound:
    """Reads and hands on inbound SMS and status reports for one modem."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._log = log.bind(modem=name)
        self.on_sms: InboundHandler | None = None
        self.on_report: ReportHandler | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._undecodable: set[str] = set()

    async def run(self, job: Job, channel: AtChannel, init: InitResult) -> None:
        """Do one job. AT errors are logged; the sweep finds what a failed job left."""
        profile = init.profile
        csms = profile.csms if profile.cnmi_mt == 2 else 0
        ctx = _Context(channel, profile, init.storage, csms, init.memories, init.report_store)
        try:
            if job.kind in ("cmti", "cdsi") and job.index is not None:
                await self._read_stored(ctx, job.memory, job.index, "cmti")
            elif job.kind in ("cmt", "cds") and job.pdu is not None:
                await self._direct(ctx, job.pdu)
            elif job.kind == "sweep":
                await self.sweep(ctx)
        except PortGone:
            raise
        except AtError as exc:
            self._log.warning("sms.inbound_failed", job=job.kind, index=job.index, error=str(exc))

    async def sweep(self, ctx: _Context) -> int:
        """``AT+CMGL=4`` on the inbox (and the report store): hand on what a URC missed."""
        handled = 0
        memories = list(ctx.memories)
        if ctx.report_store and ctx.report_store not in memories:
            memories.append(ctx.report_store)
        for memory in memories:
            async with _ReadMemory(ctx, memory):
                response = await ctx.channel.command("AT+CMGL=4", prefixes=("+CMGL:",))
                found, bad = parsing.parse_cmgl(response.lines)
                for line in bad:
                    self._log.warning("sms.unreadable_listing", line=line[:200])
                for stored in found:
                    if await self._handle(ctx, stored.pdu, memory, stored.index, "sweep"):
                        handled += 1
        self._log.info("sms.sweep", found=handled)
        return handled

    async def _read_stored(self, ctx: _Context, memory: str | None, index: int, via: str) -> None:
        memory = memory or ctx.storage[0]
        if index == 0 and not ctx.profile.index_zero:
            self._log.warning("sms.index_zero", memory=memory, profile=ctx.profile.name)
        async with _ReadMemory(ctx, memory):
            response = await ctx.channel.command(f"AT+CMGR={index}", prefixes=("+CMGR:",))
            stored = parsing.parse_cmgr(response.lines, index)
            if stored is None:
                self._log.info("sms.empty_slot", memory=memory, index=index)
                return
            await self._handle(ctx, stored.pdu, memory, index, via)

    async def _direct(self, ctx: _Context, pdu: str) -> None:
        ok = await self._handle(ctx, pdu, None, None, "cmt")
        if ctx.csms == 1:
            # +CSMS=1: ack each routed message, or the modem stops routing; a negative ack
            # (2) makes the network send it again later when we could not take it.
            await ctx.channel.command("AT+CNMA" if ok else "AT+CNMA=2")

    async def _handle(
        self, ctx: _Context, pdu: str, memory: str | None, index: int | None, via: str
    ) -> bool:
        """Decode and hand on one PDU; delete it from storage after the handler returned.

        Returns True when the PDU was handed on (or was a duplicate of one that was).
        """
        digest = hashlib.sha256(pdu.strip().upper().encode()).hexdigest()
        try:
            decoded = decode(pdu)
        except PduError as exc:
            if digest not in self._undecodable:
                self._undecodable.add(digest)
                self._log.error(
                    "sms.undecodable", memory=memory, index=index, pdu=pdu, reason=exc.reason
                )
            if ctx.profile.delete_undecodable and index is not None:
                await self._delete(ctx, index)
            return False
        if isinstance(decoded, StatusReport):
            if self.on_report is None:
                self._log.warning("sms.no_report_handler", index=index)
                return False
            if not await self._call(self.on_report(decoded), "report", index):
                return False
        elif isinstance(decoded, Deliver):
            if digest in self._seen:
                # Some Huawei sticks both route (+CMT) and store the same SMS.
                self._log.info("sms.duplicate", memory=memory, index=index, via=via)
            else:
                if self.on_sms is None:
                    self._log.warning("sms.no_inbound_handler", index=index)
                    return False
                sms = InboundSms(memory, index, pdu.strip().upper(), decoded, via)
                if not await self._call(self.on_sms(sms), "sms", index):
                    return False
                self._remember(digest)
        else:
            return False  # an SMS-SUBMIT kept in storage: not ours to hand on or delete
        if index is not None:
            await self._delete(ctx, index)
        return True

    async def _call(self, awaitable: Awaitable[None], what: str, index: int | None) -> bool:
        try:
            await awaitable
        except Exception:
            # Not committed: keep it on the modem; the next sweep hands it on again.
            self._log.exception("sms.handler_failed", what=what, index=index)
            return False
        return True

    async def _delete(self, ctx: _Context, index: int) -> None:
        await ctx.channel.command(f"AT+CMGD={index}")

    def _remember(self, digest: str) -> None:
        self._seen[digest] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)


@dataclass(frozen=True)
class _Context:
    channel: AtChannel
    profile: Profile
    storage: tuple[str, str, str]
    csms: int
    memories: tuple[str, ...]
    report_store: str | None


class _ReadMemory:
    """Switch the read/delete memory (``<mem1>``) for a block, then switch it back."""

    def __init__(self, ctx: _Context, memory: str) -> None:
        self._ctx = ctx
        self._memory = memory
        self._switched = memory.upper() != ctx.storage[0].upper()

    async def __aenter__(self) -> None:
        if self._switched:
            await self._ctx.channel.command(f'AT+CPMS="{self._memory}"')

    async def __aexit__(self, *exc: object) -> None:
        if self._switched:
            m1, m2, m3 = self._ctx.storage
            await self._ctx.channel.command(f'AT+CPMS="{m1}","{m2}","{m3}"')
