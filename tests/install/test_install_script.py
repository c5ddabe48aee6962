import shutil
import stat
from pathlib import Path

import pytest

from tests.install.rootfs import (
    INSTALL,
    IS_ROOT,
    REPO,
    account,
    run_install,
    snapshot,
)

needs_root = pytest.mark.skipif(not IS_ROOT, reason="useradd --root and chown need root")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@needs_root
def test_install_lays_out_files_with_their_modes_and_owners(checkout: Path, target: Path) -> None:
    out = run_install(checkout, target, "--skip-venv").stdout

    user = account(target, "passwd", "gatewayd")
    assert user is not None
    assert user[5:] == ["/var/lib/gatewayd", "/usr/sbin/nologin"]
    uid, gid = int(user[2]), int(user[3])
    group = account(target, "group", "gatewayd")
    assert group is not None
    assert int(group[2]) == gid
    dialout = account(target, "group", "dialout")
    assert dialout is not None
    assert "gatewayd" in dialout[3].split(",")

    etc = target / "etc" / "gatewayd"
    expected = {
        etc: (0o750, 0, gid),
        etc / "gatewayd.toml": (0o640, 0, gid),
        etc / "api-token": (0o600, uid, gid),
        target / "var/lib/gatewayd": (0o750, uid, gid),
        target / "etc/systemd/system/gatewayd.service": (0o644, 0, 0),
        target / "etc/udev/rules.d/99-gatewayd-modems.rules": (0o644, 0, 0),
        target / "opt/gatewayd/src": (0o755, 0, 0),
    }
    for path, (want_mode, want_uid, want_gid) in expected.items():
        st = path.stat()
        assert (mode(path), st.st_uid, st.st_gid) == (want_mode, want_uid, want_gid), path

    token = (etc / "api-token").read_text().strip()
    assert len(token) >= 43  # 32 random bytes, base64url
    assert token.replace("-", "").replace("_", "").isalnum()
    assert (etc / "gatewayd.toml").read_text() == (checkout / "config/gatewayd.toml").read_text()
    unit = target / "etc/systemd/system/gatewayd.service"
    assert unit.read_bytes() == (REPO / "systemd/gatewayd.service").read_bytes()

    src = target / "opt/gatewayd/src"
    assert (src / "scripts/install").stat().st_mode & stat.S_IXUSR
    assert (src / "gatewayd/__init__.py").is_file()
    assert not (src / "gatewayd/__pycache__").exists()
    assert not (src / "tests").exists()
    assert not (target / "opt/gatewayd/venv").exists()
    assert "not enabling the service" in out


@needs_root
def test_second_run_changes_nothing(checkout: Path, target: Path) -> None:
    run_install(checkout, target, "--skip-venv")
    before = snapshot(target)
    out = run_install(checkout, target, "--skip-venv").stdout
    assert snapshot(target) == before
    assert "kept the existing /etc/gatewayd/gatewayd.toml" in out
    assert "kept the existing API token" in out
    assert "code in /opt/gatewayd/src is up to date" in out


def test_rerun_keeps_edited_config_token_and_rule_and_fixes_token_mode(
    checkout: Path, target: Path
) -> None:
    run_install(checkout, target, "--skip-venv")
    etc = target / "etc/gatewayd"
    rule = target / "etc/udev/rules.d/99-gatewayd-modems.rules"
    (etc / "gatewayd.toml").write_text("# mine\n")
    token = (etc / "api-token").read_text()
    (etc / "api-token").chmod(0o644)
    rule.write_text("# my modems\n")

    run_install(checkout, target, "--skip-venv")
    assert (etc / "gatewayd.toml").read_text() == "# mine\n"
    assert (etc / "api-token").read_text() == token
    assert mode(etc / "api-token") == 0o600
    assert rule.read_text() == "# my modems\n"


def test_upgrade_replaces_code_and_unit(checkout: Path, target: Path) -> None:
    run_install(checkout, target, "--skip-venv")
    src = target / "opt/gatewayd/src"
    (src / "gatewayd/stale.py").write_text("")
    (checkout / "gatewayd/new.py").write_text("VALUE = 2\n")
    unit = target / "etc/systemd/system/gatewayd.service"
    unit.write_text("[Service]\n")

    out = run_install(checkout, target, "--skip-venv").stdout
    assert (src / "gatewayd/new.py").read_text() == "VALUE = 2\n"
    assert not (src / "gatewayd/stale.py").exists()
    assert not (target / "opt/gatewayd/src.new").exists()
    assert unit.read_bytes() == (REPO / "systemd/gatewayd.service").read_bytes()
    assert "copied the checkout" in out
    assert "installed /etc/systemd/system/gatewayd.service" in out


def test_uninstall_keeps_config_state_and_user(checkout: Path, target: Path) -> None:
    run_install(checkout, target, "--skip-venv")
    token = (target / "etc/gatewayd/api-token").read_text()

    run_install(checkout, target, "--uninstall")
    assert not (target / "etc/systemd/system/gatewayd.service").exists()
    assert not (target / "etc/udev/rules.d/99-gatewayd-modems.rules").exists()
    assert not (target / "opt/gatewayd").exists()
    assert (target / "etc/gatewayd/api-token").read_text() == token
    assert (target / "etc/gatewayd/gatewayd.toml").is_file()
    assert (target / "var/lib/gatewayd").is_dir()
    if IS_ROOT:
        assert account(target, "passwd", "gatewayd") is not None

    # Installing again after an uninstall keeps the same token.
    run_install(checkout, target, "--skip-venv")
    assert (target / "etc/gatewayd/api-token").read_text() == token


def test_purge_removes_everything_it_created(checkout: Path, target: Path) -> None:
    before = snapshot(target / "etc")
    run_install(checkout, target, "--skip-venv")
    run_install(checkout, target, "--uninstall", "--purge")
    for path in ("etc/gatewayd", "var/lib/gatewayd", "opt/gatewayd"):
        assert not (target / path).exists(), path
    assert account(target, "passwd", "gatewayd") is None
    assert account(target, "group", "gatewayd") is None
    dialout = account(target, "group", "dialout")
    assert dialout is not None
    assert dialout[3] == ""
    # Only the account tools' backups and lock, and empty parent directories, remain.
    left = set(snapshot(target / "etc")) - set(before)
    assert left <= {
        ".pwd.lock",
        "passwd-",
        "group-",
        "shadow-",
        "gshadow-",
        "systemd",
        "systemd/system",
        "udev",
        "udev/rules.d",
    }


def test_root_without_account_database_skips_the_user(checkout: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    out = run_install(checkout, bare, "--skip-venv").stdout
    assert "not creating the gatewayd user" in out
    assert not (bare / "etc/passwd").exists()
    assert mode(bare / "etc/gatewayd/api-token") == 0o600
    assert mode(bare / "etc/gatewayd") == 0o750


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--purge",), "--purge only goes with --uninstall"),
        (("--bogus",), "unknown option: --bogus"),
    ],
)
def test_bad_options_fail_with_a_reason(
    checkout: Path, target: Path, args: tuple[str, ...], message: str
) -> None:
    proc = run_install(checkout, target, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (target / "opt").exists()


def test_missing_root_directory_is_an_error(checkout: Path, tmp_path: Path) -> None:
    proc = run_install(checkout, tmp_path / "nowhere", check=False)
    assert proc.returncode != 0
    assert "no such directory" in proc.stderr


@pytest.mark.slow
@needs_root
def test_venv_install_of_the_real_project(tmp_path: Path, target: Path) -> None:
    # A frozen copy of the real project (the working tree may change while this runs);
    # pip resolves its dependencies from the pip cache or the registry.
    project = tmp_path / "project"
    project.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")
    for item in ("pyproject.toml", "README.md", "gatewayd", "drivers", "config", "systemd"):
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, project / item, ignore=ignore)
        elif (REPO / item).exists():
            shutil.copy2(REPO / item, project / item)
    (project / "scripts").mkdir()
    shutil.copy2(INSTALL, project / "scripts/install")

    out = run_install(project, target).stdout
    gatewayd = target / "opt/gatewayd/venv/bin/gatewayd"
    assert gatewayd.is_file()
    assert "pip-installing" in out
    assert not (target / "opt/gatewayd/src/build").exists()

    again = run_install(project, target).stdout
    assert "venv is up to date" in again
    assert "pip-installing" not in again
