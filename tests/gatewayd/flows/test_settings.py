"""The [flows] section of gatewayd.toml: defaults, paths, and errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd.config import ConfigError, load_config
from gatewayd.daemon import restart_needed

BASE = 'database = "gw.db"\n[api]\ntoken_files = ["token"]\n'


def write(tmp_path: Path, flows: str) -> Path:
    (tmp_path / "token").write_text("t" * 20)
    path = tmp_path / "gatewayd.toml"
    path.write_text(BASE + "[flows]\n" + flows)
    return path


def test_the_flows_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'file = "flows.toml"\nbrand = "Tienda"\n'))
    assert config.flows.file == tmp_path / "flows.toml"
    assert config.flows.brand == "Tienda"
    assert config.flows.quiet_start == "21:00"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('short_link_listen = "8081"', "flows.short_link_listen"),
        ('public_base_url = "go.example.com"', "flows.public_base_url"),
        ('quiet_start = "9pm"', "flows.quiet_start"),
        ('quiet_end = "24:00"', "flows.quiet_end"),
        ('default_timezone = "Mars/Olympus"', "flows.default_timezone"),
        ("marketing_per_day = 0", "flows.marketing_per_day"),
        ("conversion_window_days = 0", "flows.conversion_window_days"),
        ("min_gap_seconds = -1", "flows.min_gap_seconds"),
        ('brand = ""', "flows.brand"),
        ("colour = 1", "flows.colour"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, line + "\n"))
    assert info.value.key == key


def test_a_changed_flows_section_needs_a_restart(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, 'brand = "A"\n'))
    new = load_config(write(tmp_path, 'brand = "B"\n'))
    assert "flows" in restart_needed(old, new)
    assert "flows" not in restart_needed(old, old)
