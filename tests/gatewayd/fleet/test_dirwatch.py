"""DirWatch on Linux inotify: a link appearing wakes the waiter; a directory that is not there
(yet) is not watched, and one that vanishes ends the watch until it is armed again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gatewayd.fleet.dirwatch import DirWatch


async def test_a_link_appearing_wakes_the_waiter(tmp_path: Path) -> None:
    watch = DirWatch(str(tmp_path))
    assert watch.arm()
    try:
        waiter = asyncio.create_task(watch.changed())
        os.symlink("/dev/null", tmp_path / "usb-stick-if00-port0")
        async with asyncio.timeout(5):
            await waiter
        assert watch.active
    finally:
        watch.close()


async def test_a_missing_directory_is_armed_once_it_exists(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    watch = DirWatch(str(by_id))
    assert not watch.arm()
    assert not watch.active
    by_id.mkdir()
    assert watch.arm()
    try:
        by_id.rmdir()  # udev removes by-id with the last stick
        async with asyncio.timeout(5):
            while watch.active:
                await watch.changed()
        assert not watch.arm()
    finally:
        watch.close()
