"""Byte stream -> frames: lines and the ``> `` prompt (zigpy-znp uart.py style).

The framer only cuts frames; it never interprets them. It keeps a buffer, extracts frames
until what is left is too short, and resynchronises on garbage: a line ends at CR, LF,
Ctrl-Z or Esc (so an echoed PDU ends too), NULs are dropped, bytes that are not ASCII
(AT is ASCII text) become U+FFFD and are cut from the ends of a line, and a run without
a line end longer than :data:`MAX_LINE` is thrown away.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 4096  # far above the longest real line (a +CMGL PDU line is < 400 characters)
_ENDS = b"\r\n\x1a\x1b"


@dataclass(frozen=True)
class Line:
    """One non-empty line, stripped of surrounding whitespace."""

    text: str


@dataclass(frozen=True)
class Prompt:
    """The ``> `` prompt after ``AT+CMGS=<len>``: it has no line end."""


Frame = Line | Prompt


class Framer:
    """Cuts a byte stream into :class:`Line` and :class:`Prompt` frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped = 0  # bytes thrown away by resynchronisation

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every complete frame now in the buffer."""
        self._buf += data.replace(b"\x00", b"")
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                break
            frames.append(frame)
        if len(self._buf) > MAX_LINE:
            self.dropped += len(self._buf)
            self._buf.clear()
        return frames

    def reset(self) -> None:
        """Forget any partial line (after a reconnect)."""
        self._buf.clear()

    def _next(self) -> Frame | None:
        while True:
            # Leading line ends and blanks are separators, never content.
            stripped = self._buf.lstrip(b" \t" + _ENDS)
            del self._buf[: len(self._buf) - len(stripped)]
            if not self._buf:
                return None
            if self._buf[0:1] == b">":
                # The prompt: ">" then usually one space and no line end.
                cut = 2 if self._buf[1:2] == b" " else 1
                del self._buf[:cut]
                return Prompt()
            end = _find_end(self._buf)
            if end < 0:
                return None
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            text = _trim(raw.decode("ascii", errors="replace"))
            if text:
                return Line(text)


def _trim(text: str) -> str:
    # AT lines are printable text: noise glued to either end of a line is cut off, so
    # "\ufffd\ufffdOK" still reads as OK and a line of pure noise disappears.
    start, end = 0, len(text)
    while start < end and _noise(text[start]):
        start += 1
    while end > start and _noise(text[end - 1]):
        end -= 1
    return text[start:end]


def _noise(ch: str) -> bool:
    return ch == "\ufffd" or ch.isspace() or not ch.isprintable()


def _find_end(buf: bytearray) -> int:
    positions = [p for p in (buf.find(b) for b in _ENDS) if p >= 0]
    return min(positions) if positions else -1
