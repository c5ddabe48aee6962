"""Running scripts/install in a throwaway root, and reading what it left there."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install"
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Entry:
    """What a second run must not change about one path."""

    mode: int
    uid: int
    gid: int
    content: str  # sha256 of a file, target of a link, "" for a directory


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` with its mode, owner and content (not its times)."""
    result: dict[str, Entry] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content = os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = ""
        result[str(path.relative_to(root))] = Entry(st.st_mode, st.st_uid, st.st_gid, content)
    return result


def run_install(
    checkout: Path, root: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``checkout``'s scripts/install into ``root`` (never systemctl, never the real /)."""
    proc = subprocess.run(
        [str(checkout / "scripts" / "install"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"scripts/install {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def seed_accounts(root: Path) -> None:
    """A minimal Debian-like account database in ``root``/etc (root and dialout only)."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)


def account(root: Path, file: str, name: str) -> list[str] | None:
    """The fields of ``name``'s line in ``root``/etc/``file``, or ``None``."""
    for line in (root / "etc" / file).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None
