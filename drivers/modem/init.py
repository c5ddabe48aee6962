"""The init sequence: echo off, verbose errors, identity, PIN, SIM ready, PDU mode, storage,
new-message indications. Runs on a fresh port and again after a spontaneous reboot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from drivers.at import AtChannel, AtError, AtResponse, AtTimeout, CmeError, CmsError, timeout_for
from drivers.clock import Clock
from drivers.modem import parsing
from drivers.modem.types import ModemInfo, NeedsHuman, PinRejected
from drivers.profiles import Profile, detect_profile

log = structlog.get_logger(__name__)

# CME 14 / CMS 314: SIM busy; CMS 302 / CME 3 right after the PIN on SIM800-class modules
# until "SMS Ready": all mean "ask again shortly".
_BUSY_CME = frozenset({3, 14})
_BUSY_CMS = frozenset({302, 314})
BUSY_RETRY_DELAY = 0.5


@dataclass(frozen=True)
class InitResult:
    """What the sequence found and set."""

    profile: Profile
    info: ModemInfo
    storage: tuple[str, str, str]
    cnmi: str
    # Every memory SMS may sit in (the sweep lists each), the chosen one first.
    memories: tuple[str, ...]
    # Where stored status reports go ("SR" where the modem has it), when <ds>=2.
    report_store: str | None


class Initialiser:
    """One run of the init sequence over an open channel."""

    def __init__(
        self,
        channel: AtChannel,
        *,
        profile: Profile | None,
        pin: str | None,
        clock: Clock,
        busy_wait: float,
        name: str,
        pins: Mapping[str, str] | None = None,
    ) -> None:
        self._ch = channel
        self._profile = profile
        self._pin = pin
        # ICCID -> PIN: a PIN belongs to a SIM, never to a port (DESIGN: Identity).
        self._pins = dict(pins or {})
        self._clock = clock
        self._busy_wait = busy_wait
        self._log = log.bind(modem=name)

    async def run(self) -> InitResult:
        """The whole sequence; NeedsHuman / PinRejected for what only a person can fix."""
        await self._wake()
        await self._ch.command("ATE0")  # some firmware ignores it: the channel skips echoes
        await self._ch.command("AT+CMEE=1")
        manufacturer = parsing.parse_text((await self._ch.command("AT+CGMI")).lines, "+CGMI:")
        profile = self._profile or detect_profile(manufacturer or "")
        self._ch.configure(
            extra_finals=profile.extra_finals, ignore=profile.ignore_urcs, timeouts=profile.timeouts
        )
        model = parsing.parse_text(await self._lines("AT+CGMM"), "+CGMM:")
        revision = parsing.parse_text(await self._lines("AT+CGMR"), "+CGMR:")
        imei = parsing.parse_identity(await self._lines("AT+CGSN"))
        # DESIGN.md, Decisions "Identity": the ICCID is read before any PIN is entered.
        iccid = await self._iccid(profile)
        await self._unlock(profile, iccid)
        imsi = parsing.parse_identity((await self._busy("AT+CIMI")).lines)
        await self._busy("AT+CMGF=0")  # PDU mode
        storage, memories, report_store = await self._storage(profile)
        if profile.cnmi_mt == 2 and profile.csms:
            # Direct delivery with +CSMS=1: every +CMT needs +CNMA (DESIGN: Inbound storage).
            await self._busy(f"AT+CSMS={profile.csms}")
        cnmi = await self._cnmi(profile)
        if profile.csmp:
            await self._optional(profile.csmp)
        for command in profile.init_commands:
            await self._optional(command)
        await self._optional("AT+CREG=1")
        await self._optional("AT+CLIP=1")  # the caller's number after RING (missed calls)
        if profile.uses_cereg:
            await self._optional("AT+CEREG=1")
        info = ModemInfo(
            manufacturer=manufacturer,
            model=model,
            revision=revision,
            imei=imei,
            imsi=imsi,
            iccid=iccid,
        )
        self._log.info("modem.initialised", profile=profile.name, iccid=iccid, storage=storage)
        if cnmi.split(",")[3:4] != ["2"]:
            report_store = None
        return InitResult(profile, info, storage, cnmi, memories, report_store)

    async def _wake(self) -> None:
        # A modem still booting may miss the first AT; three tries before giving up.
        for attempt in range(3):
            try:
                await self._ch.command("AT")
                return
            except AtTimeout:
                self._log.info("modem.no_answer", attempt=attempt + 1)
            except AtError:
                return  # it answered (with an error): it is alive
        raise AtTimeout("AT", timeout_for("AT"))

    async def _lines(self, command: str) -> tuple[str, ...]:
        try:
            return (await self._ch.command(command)).lines
        except AtTimeout:
            raise
        except AtError as exc:
            self._log.info("modem.optional_failed", command=command, final=exc.final)
            return ()

    async def _optional(self, command: str) -> None:
        await self._lines(command)

    async def _busy(self, command: str) -> AtResponse:
        """Run ``command``, asking again while the SIM is busy (up to ``busy_wait`` seconds)."""
        waited = 0.0
        while True:
            try:
                return await self._ch.command(command)
            except CmeError as exc:
                if exc.code not in _BUSY_CME or waited >= self._busy_wait:
                    raise
            except CmsError as exc:
                if exc.code not in _BUSY_CMS or waited >= self._busy_wait:
                    raise
            self._log.info("modem.sim_busy", command=command, waited=waited)
            await self._clock.sleep(BUSY_RETRY_DELAY)
            waited += BUSY_RETRY_DELAY

    async def _iccid(self, profile: Profile) -> str | None:
        for command in dict.fromkeys((profile.iccid_command, "AT+CCID", "AT+ICCID")):
            iccid = parsing.parse_iccid(await self._lines(command))
            if iccid:
                return iccid
        return None

    async def _sim_state(self) -> str:
        waited = 0.0
        while True:
            try:
                response = await self._ch.command("AT+CPIN?")
                return (response.first("+CPIN:") or "").upper()
            except CmeError as exc:
                if exc.code == 10:
                    raise NeedsHuman("SIM not inserted (CME 10)") from exc
                if exc.code == 13:
                    raise NeedsHuman("SIM failure (CME 13)") from exc
                if exc.code == 15:
                    raise NeedsHuman("SIM wrong (CME 15)") from exc
                if exc.code not in _BUSY_CME or waited >= self._busy_wait:
                    raise
            self._log.info("modem.sim_busy", command="AT+CPIN?", waited=waited)
            await self._clock.sleep(BUSY_RETRY_DELAY)
            waited += BUSY_RETRY_DELAY

    async def _tries_left(self, profile: Profile) -> int | None:
        if profile.pin_tries_command is None:
            return None
        for line in await self._lines(profile.pin_tries_command):
            tries = parsing.first_int(line.partition(":")[2] if ":" in line else line)
            if tries is not None:
                return tries
        return None

    async def _unlock(self, profile: Profile, iccid: str | None) -> None:
        state = await self._sim_state()
        if state == "READY":
            return
        if "PUK" in state:
            raise PinRejected(
                "SIM PUK required", await self._tries_left(profile), iccid=iccid, wants_puk=True
            )
        if state != "SIM PIN":
            raise NeedsHuman(f"SIM wants {state or 'an unknown code'}")
        pin = self._pins.get(iccid or "", self._pin)
        if pin is None:
            raise PinRejected(
                f"SIM PIN required and none configured for ICCID {iccid or 'unreadable'}",
                await self._tries_left(profile),
                iccid=iccid,
            )
        try:
            await self._ch.command(f'AT+CPIN="{pin}"')
        except CmeError as exc:
            # Never retried: three wrong PINs lock the SIM (DESIGN.md, Decisions: Identity).
            tries = await self._tries_left(profile)
            self._log.error("modem.pin_rejected", iccid=iccid, code=exc.code, tries_left=tries)
            raise PinRejected(f"PIN rejected ({exc.meaning})", tries, iccid=iccid) from exc
        self._log.info("modem.pin_accepted", iccid=iccid)
        waited = 0.0
        while (state := await self._sim_state()) != "READY":
            if waited >= self._busy_wait:
                raise NeedsHuman(f"SIM not ready after the PIN: {state}")
            await self._clock.sleep(BUSY_RETRY_DELAY)
            waited += BUSY_RETRY_DELAY

    async def _storage(
        self, profile: Profile
    ) -> tuple[tuple[str, str, str], tuple[str, ...], str | None]:
        options_line = (await self._busy("AT+CPMS=?")).first("+CPMS:")
        options = parsing.parse_cpms_options(options_line or '("SM"),("SM"),("SM")')
        # Reports (SR) are never a place to read SMS from.
        inbox = [tuple(m for m in group if m.upper() != "SR") or group for group in options]
        m1, m2, m3 = (parsing.choose_storage(inbox, profile.storage_preference) + ["SM"] * 3)[:3]
        await self._busy(f'AT+CPMS="{m1}","{m2}","{m3}"')
        # MT is ME and SM together: listing it would list both twice.
        others = [m for m in inbox[0] if m.upper() not in (m1.upper(), "MT")]
        report_store = next((m for m in options[0] if m.upper() == "SR"), None)
        return (m1, m2, m3), (m1, *others), report_store

    async def _cnmi(self, profile: Profile) -> str:
        # The profile's <ds> first; if the firmware refuses it, fall back to 1, then 0.
        candidates = [profile.cnmi()]
        for ds in (1, 0):
            if ds != profile.cnmi_ds:
                base = f"AT+CNMI={profile.cnmi_mode},{profile.cnmi_mt},0,{ds},0"
                candidates.append(base)
        for command in candidates:
            try:
                await self._busy(command)
                return command
            except (CmsError, CmeError) as exc:
                self._log.warning("modem.cnmi_refused", command=command, final=exc.final)
        raise NeedsHuman("modem refuses every AT+CNMI setting: no new-message indications")
