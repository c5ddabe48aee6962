import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from gatewayd.sdnotify import Notifier, NotifyFieldError, WatchdogPinger, watchdog_interval


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = _receiver(path)
    yield path, sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"gatewayd-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + name)
    yield "@" + name, sock
    sock.close()


async def _recv(sock: socket.socket) -> str:
    async with asyncio.timeout(2):
        data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    return data.decode()


def _pending(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None


async def test_path_socket_receives_datagrams_in_order(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("3 modems up")
    assert notifier.watchdog()
    assert notifier.stopping()
    got = [await _recv(sock) for _ in range(4)]
    assert got == ["READY=1", "STATUS=3 modems up", "WATCHDOG=1", "STOPPING=1"]
    notifier.close()


async def test_abstract_socket_receives_datagrams(
    abstract_socket: tuple[str, socket.socket],
) -> None:
    address, sock = abstract_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    notifier.ready(status="serving")
    notifier.notify(STATUS="draining", ERRNO=0)
    assert await _recv(sock) == "READY=1\nSTATUS=serving"
    assert await _recv(sock) == "STATUS=draining\nERRNO=0"
    notifier.close()


async def test_reloading_sends_monotonic_time(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    notifier = Notifier(address)
    notifier.reloading()
    fields = dict(line.split("=", 1) for line in (await _recv(sock)).splitlines())
    assert fields["RELOADING"] == "1"
    assert int(fields["MONOTONIC_USEC"]) > 0
    notifier.close()


def test_status_text_is_kept_on_one_line(path_socket: tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    notifier = Notifier(address)
    notifier.status("modem a down\nmodem b up")
    assert sock.recv(4096) == b"STATUS=modem a down modem b up"
    notifier.close()


def test_unset_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_unsupported_address_disables_notifier() -> None:
    assert not Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert not Notifier.from_env({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_send_failure_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("still fine") is False


def test_send_recovers_once_the_socket_appears(tmp_path: Path) -> None:
    path = str(tmp_path / "late.sock")
    notifier = Notifier(path)
    assert notifier.ready() is False
    sock = _receiver(path)
    try:
        assert notifier.ready() is True
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()
        notifier.close()


@pytest.mark.parametrize(
    ("fields", "bad"),
    [({"ready": 1}, "ready"), ({"STATUS": "a\nb"}, "STATUS"), ({"A=B": 1}, "A=B"), ({}, "")],
)
def test_bad_fields_raise_typed_error(fields: dict[str, str | int], bad: str) -> None:
    with pytest.raises(NotifyFieldError) as info:
        Notifier(None).notify(**fields)
    assert info.value.field == bad


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env) == expected


def test_pinger_needs_socket_and_watchdog() -> None:
    env = {"WATCHDOG_USEC": "2000000"}
    assert WatchdogPinger.from_env(Notifier(None), env) is None
    assert WatchdogPinger.from_env(Notifier("/run/x.sock"), {}) is None
    pinger = WatchdogPinger.from_env(Notifier("/run/x.sock"), env)
    assert pinger is not None
    assert pinger.interval == 1.0


async def test_pinger_pings_every_interval_and_stops_clean(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    clock = ManualClock()
    pinger = WatchdogPinger.from_env(
        Notifier(address), {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, clock
    )
    assert pinger is not None
    pinger.start()
    pinger.start()  # a second start does not add a second task
    assert await _recv(sock) == "WATCHDOG=1"
    assert _pending(sock) is None
    await clock.advance(4.9)
    assert _pending(sock) is None
    await clock.advance(0.1)
    assert await _recv(sock) == "WATCHDOG=1"
    await clock.advance(10)
    assert [await _recv(sock), await _recv(sock)] == ["WATCHDOG=1", "WATCHDOG=1"]
    assert _pending(sock) is None

    await pinger.stop()
    assert not pinger.running
    assert clock.pending == 0
    await clock.advance(60)
    assert _pending(sock) is None
    await pinger.stop()  # stopping twice is harmless
    pinger.notifier.close()


async def test_pinger_stop_propagates_outer_cancellation() -> None:
    clock = ManualClock()
    pinger = WatchdogPinger(Notifier(None), 1.0, clock)
    pinger.start()

    async def stopper() -> None:
        await pinger.stop()

    outer = asyncio.create_task(stopper())
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer


def test_pinger_rejects_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        WatchdogPinger(Notifier(None), 0)
