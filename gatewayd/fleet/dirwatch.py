"""Change notification for one directory's entries: Linux inotify (asyncinotify) where the
system has it, nothing where not (the caller then polls).

udev creates and removes ``/dev/serial/by-id`` itself with the first and last USB serial
device, so the watch is re-armed whenever the directory comes back.
"""

from __future__ import annotations

import structlog
from asyncinotify import Inotify, Mask

log = structlog.get_logger(__name__)

# Entries appearing or going (a udev symlink is created, or renamed into place, then removed).
_ENTRIES = Mask.CREATE | Mask.DELETE | Mask.MOVED_TO | Mask.MOVED_FROM | Mask.ATTRIB
# The watched directory itself went away: the watch is dead until it is armed again.
_GONE = Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.UNMOUNT


class DirWatch:
    """Wakes a waiter when entries of ``directory`` change; one owner task uses it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._inotify: Inotify | None = None
        self._unavailable = False

    @property
    def active(self) -> bool:
        """True while the directory is watched (else the caller polls)."""
        return self._inotify is not None

    def arm(self) -> bool:
        """Watch the directory if it is not watched yet; True if it is watched now."""
        if self._inotify is not None or self._unavailable:
            return self._inotify is not None
        try:
            inotify = Inotify()
        except (OSError, AttributeError) as exc:  # no inotify on this system: poll
            self._unavailable = True
            log.info("discovery.inotify_unavailable", error=str(exc))
            return False
        try:
            inotify.add_watch(self.directory, _ENTRIES | Mask.ONLYDIR)
        except OSError:
            inotify.close()  # no such directory yet (no stick plugged in): poll until it exists
            return False
        self._inotify = inotify
        log.info("discovery.watching", directory=self.directory)
        return True

    async def changed(self) -> None:
        """Return at the next change of the directory's entries (or when it vanishes)."""
        inotify = self._inotify
        if inotify is None:
            raise RuntimeError("DirWatch.changed() without an armed watch")
        event = await inotify.get()
        if event.mask & _GONE:
            self.close()

    def close(self) -> None:
        """Stop watching (arm() watches again)."""
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            inotify.close()
