import subprocess
import sys
from pathlib import Path

import pytest

from gatewayd import __version__
from gatewayd.cli import main


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gatewayd {__version__}"


def write_config(tmp_path: Path, body: str = "") -> Path:
    (tmp_path / "token").write_text("t0ken-value\n")
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n[api]\ntoken_files = ["token"]\n'
        '[[modems]]\nname = "m1"\nport = "socket://127.0.0.1:7001"\npool = "es"\n' + body
    )
    return path


def test_check_config_prints_ok_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, '[[routing]]\nprefix = "+34"\npool = "es"\n')
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {path}\n")
    assert "m1: socket://127.0.0.1:7001 profile=auto pool=es limits=6/min 200/h 1000/day" in out
    assert "routing: +34 -> es" in out
    assert "http://127.0.0.1:8080 (1 token file(s))" in out
    assert "t0ken-value" not in out


def test_check_config_exits_1_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "[modems.limits]\nmax_per_minute = -1\n")
    assert main(["check-config", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}: modems[0].limits.max_per_minute: must be at least 1" in captured.err


def test_run_refuses_a_bad_config_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err


def test_python_dash_m_gatewayd_is_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gatewayd", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"gatewayd {__version__}")
