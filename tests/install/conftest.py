"""Fixtures: a small checkout to install from, and an empty root to install into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.install.rootfs import INSTALL, REPO, seed_accounts


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A small checkout of our own: scripts/install with the real unit and rule, a stub
    project, and a __pycache__ that must not be copied."""
    src = tmp_path / "checkout"
    (src / "scripts").mkdir(parents=True)
    shutil.copy2(INSTALL, src / "scripts" / "install")
    shutil.copytree(REPO / "systemd", src / "systemd")
    (src / "config").mkdir()
    (src / "config" / "gatewayd.toml").write_text('database = "/var/lib/gatewayd/gatewayd.db"\n')
    (src / "pyproject.toml").write_text('[project]\nname = "gatewayd"\nversion = "0"\n')
    (src / "gatewayd" / "__pycache__").mkdir(parents=True)
    (src / "gatewayd" / "__init__.py").write_text("")
    (src / "gatewayd" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("")
    return src


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An empty root with an account database, like a fresh system image."""
    root = tmp_path / "root"
    seed_accounts(root)
    return root
