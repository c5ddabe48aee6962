"""systemd's readiness and watchdog protocol (``sd_notify``), without libsystemd.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET``: an ``AF_UNIX`` datagram socket (a
filesystem path, or ``@name`` for the abstract namespace). Each datagram is newline-separated
``KEY=VALUE`` fields: ``READY=1``, ``STATUS=...``, ``STOPPING=1``, ``WATCHDOG=1``. Outside
systemd the variable is unset and every call is a no-op, so the daemon calls these
unconditionally.

A notification is advisory: a failed send is logged and never raised into the caller, because
the daemon must keep serving messages whether or not systemd hears it.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Mapping

import structlog

from drivers.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

# sd_notify(3): variable names are upper-case letters, digits and underscores.
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class NotifyFieldError(ValueError):
    """A notification field that cannot be encoded; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"sd_notify field {field!r}: {reason}")
        self.field = field
        self.reason = reason


def _socket_address(value: str) -> str | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or ``None`` if unsupported."""
    if value.startswith("@") and len(value) > 1:
        # Abstract namespace: the kernel name starts with a NUL byte instead of '@'.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. systemd 254+ "vsock:CID:PORT" (VMs): not needed on our hosts


class Notifier:
    """Sends ``sd_notify`` datagrams to systemd; a no-op without a notify socket."""

    def __init__(self, address: str | None) -> None:
        """``address`` is a ``NOTIFY_SOCKET`` value (``/path`` or ``@abstract``), or ``None``."""
        self._address = _socket_address(address) if address else None
        if address and self._address is None:
            log.warning("sdnotify.unsupported_socket", notify_socket=address)
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for the ``NOTIFY_SOCKET`` in ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify (we run under ``Type=notify``)."""
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram of ``KEY=VALUE`` fields; ``True`` if it was handed to the socket.

        Raises :class:`NotifyFieldError` for a field that cannot be encoded (a caller bug);
        a send failure is logged and returns ``False``.
        """
        payload = _encode(fields)
        if self._address is None:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop: a full receive queue drops this one notification.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sdnotify.send_failed", fields=sorted(fields), error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up is complete (``READY=1``), optionally with a status."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=_one_line(status))

    def status(self, text: str) -> bool:
        """Set the free-form status line ``systemctl status`` shows."""
        return self.notify(STATUS=_one_line(text))

    def reloading(self) -> bool:
        """Announce a configuration reload; send :meth:`ready` when it is done.

        ``MONOTONIC_USEC`` lets systemd 253+ tell this reload from an earlier one.
        """
        return self.notify(
            RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def stopping(self) -> bool:
        """Tell systemd that shutdown has begun (``STOPPING=1``)."""
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """Ping the service watchdog (``WATCHDOG=1``)."""
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket (the notifier reopens it if used again)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    # A newline would end the field and start a bogus one.
    return " ".join(text.splitlines())


def _encode(fields: Mapping[str, str | int]) -> bytes:
    if not fields:
        raise NotifyFieldError("", "no fields given")
    lines = []
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            raise NotifyFieldError(name, "name must be upper-case letters, digits, '_'")
        text = str(value)
        if "\n" in text or "\0" in text:
            raise NotifyFieldError(name, "value contains a newline or NUL")
        lines.append(f"{name}={text}")
    return "\n".join(lines).encode("utf-8")


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between watchdog pings, or ``None`` when the watchdog is not ours.

    Like ``sd_watchdog_enabled(3)``: ``WATCHDOG_USEC`` must be a positive integer, and
    ``WATCHDOG_PID``, when set, must be our pid. We ping at half the timeout, as systemd advises.
    """
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID")
    if raw_pid:
        try:
            owner = int(raw_pid)
        except ValueError:
            log.warning("sdnotify.bad_watchdog_pid", watchdog_pid=raw_pid)
            return None
        if owner != (os.getpid() if pid is None else pid):
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("sdnotify.bad_watchdog_usec", watchdog_usec=raw_usec)
        return None
    return usec / 2_000_000


class WatchdogPinger:
    """A task on the event loop that pings the watchdog every ``interval`` seconds.

    It runs on the loop it guards on purpose: if the loop hangs, the pings stop and systemd
    kills and restarts the service (``WatchdogSec=`` with ``Restart=on-failure``).
    """

    def __init__(self, notifier: Notifier, interval: float, clock: Clock | None = None) -> None:
        """Ping through ``notifier`` every ``interval`` seconds of ``clock`` (default: real)."""
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval}")
        self.notifier = notifier
        self.interval = interval
        self._clock: Clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(
        cls,
        notifier: Notifier,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> WatchdogPinger | None:
        """A pinger when systemd asked this process for watchdog pings, else ``None``."""
        if not notifier.enabled:
            return None
        interval = watchdog_interval(environ)
        if interval is None:
            return None
        return cls(notifier, interval, clock)

    def start(self) -> None:
        """Start pinging (one ping at once, then one per interval); idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sdnotify-watchdog"
            )
            log.info("sdnotify.watchdog_started", interval_s=self.interval)

    async def stop(self) -> None:
        """Stop pinging and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancellation of the pinger is expected; re-raise if *we* are cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    @property
    def running(self) -> bool:
        """Whether the ping task is alive."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            self.notifier.watchdog()
            await self._clock.sleep(self.interval)
