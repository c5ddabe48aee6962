import tomllib
from pathlib import Path

import pytest

from gatewayd.config import (
    ConfigError,
    Keyword,
    UnknownOutcomeRule,
    load_config,
    parse_config,
    read_secret_file,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gatewayd.toml"


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "pin").write_text("1234\n")
    (tmp_path / "hook").write_text("hook-secret")
    return tmp_path


def write(cfg_dir: Path, body: str) -> Path:
    path = cfg_dir / "gatewayd.toml"
    path.write_text('database = "gw.db"\n[api]\ntoken_files = ["token"]\n' + body)
    return path


def error_of(cfg_dir: Path, body: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_config(write(cfg_dir, body))
    return exc.value


def test_full_config_builds_typed_values_and_resolves_relative_paths(cfg_dir: Path) -> None:
    config = load_config(
        write(
            cfg_dir,
            """listen = "0.0.0.0:9000"
[[modems]]
name = "m1"
port = "socket://127.0.0.1:7001"
pin_file = "pin"
iccid = "8934071234567890123"
pool = "es"
[modems.limits]
max_per_minute = 3
max_per_day = false
[[modems]]
name = "m2"
port = "/dev/serial/by-id/usb-x"
[[routing]]
prefix = "+34"
pool = "es"
[sending]
unknown_outcome_marketing = "at_least_once"
retry_base_seconds = 2
[keywords]
stop = ["BAJA", { word = "stop", first_word = true }]
[webhooks]
url = "http://127.0.0.1:9/hook"
secret_file = "hook"
""",
        )
    )
    assert config.database == str(cfg_dir / "gw.db")
    assert (config.api.listen_host, config.api.listen_port) == ("0.0.0.0", 9000)
    assert config.api.token_files == (cfg_dir / "token",)
    m1, m2 = config.modems
    assert m1.pin_file == cfg_dir / "pin"
    assert (m1.limits.max_per_minute, m1.limits.max_per_hour, m1.limits.max_per_day) == (
        3,
        200,
        None,
    )
    assert m2.pool == "default"
    assert config.pools == {"es", "default"}
    assert config.sending.unknown_outcome_marketing is UnknownOutcomeRule.AT_LEAST_ONCE
    assert config.sending.retry_base_seconds == 2.0
    assert config.keywords.stop == (Keyword("BAJA"), Keyword("stop", first_word=True))
    assert config.webhooks.secret_file == cfg_dir / "hook"
    assert config.source == cfg_dir / "gatewayd.toml"


def test_example_config_is_valid_once_its_secret_files_exist(cfg_dir: Path) -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["api"]["token_files"] = [str(cfg_dir / "token")]
    config = parse_config(raw, source=EXAMPLE)
    assert config.api.listen_host == "127.0.0.1"
    assert [m.name for m in config.modems] == ["m1"]
    assert Keyword("BAJA") in config.keywords.stop


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (
            '[[modems]]\nname="a"\nport="/dev/x"\n[[modems]]\nname="b"\nport="/dev/y"\n'
            '[[modems]]\nname="c"\nport="/dev/z"\n[modems.limits]\nmax_per_minute="6"\n',
            "modems[2].limits.max_per_minute",
            "expected an integer",
        ),
        ('[[modems]]\nname="a"\nport="/dev/x"\nspeed=9600\n', "modems[0].speed", "unknown key"),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\npin="1234"\n',
            "modems[0].pin",
            "never written inline",
        ),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\npin_file="pin"\n',
            "modems[0].iccid",
            "belongs to a SIM",
        ),
        ('[[modems]]\nname="a"\nport="ttyUSB0"\n', "modems[0].port", "device path"),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\nprofile="nokia"\n',
            "modems[0].profile",
            "unknown profile 'nokia' (auto, generic, huawei",
        ),
        ('[[modems]]\nport="/dev/x"\n', "modems[0].name", "required key is missing"),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\n[[modems]]\nname="a"\nport="/dev/y"\n',
            "modems[1].name",
            "already modems[0]",
        ),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\n[modems.limits]\nmax_per_hour=0\n',
            "modems[0].limits.max_per_hour",
            "at least 1",
        ),
        (
            '[[modems]]\nname="a"\nport="/dev/x"\n[[routing]]\nprefix="+34"\npool="es"\n',
            "routing[0].pool",
            "no modem is in pool 'es'",
        ),
        ('[[routing]]\nprefix="34"\npool="default"\n', "routing[0].prefix", "'+' and digits"),
        (
            '[sending]\nunknown_outcome_marketing="maybe"\n',
            "sending.unknown_outcome_marketing",
            "expected one of at_most_once, at_least_once",
        ),
        ('[sending]\ndefault_region="XX"\n', "sending.default_region", "ISO region"),
        ('[webhooks]\nurl="http://h/x"\n', "webhooks.secret_file", "required when"),
        ('[webhooks]\nurl="ftp://h/x"\nsecret_file="hook"\n', "webhooks.url", "http"),
        ('[webhooks]\nsecret="abc"\n', "webhooks.secret", "never written inline"),
        ('[logging]\nformat="xml"\n', "logging.format", "expected one of"),
        ("[keywords]\nstop=[3]\n", "keywords.stop[0]", "expected a table"),
        ("[[modems]]\nname = 'a'\nport = '/dev/x'\n[nonsense]\nx = 1\n", "nonsense", "unknown key"),
    ],
)
def test_errors_name_the_file_the_dotted_key_and_the_reason(
    cfg_dir: Path, body: str, key: str, reason: str
) -> None:
    err = error_of(cfg_dir, body)
    assert err.key == key
    assert reason in err.reason
    assert str(err).startswith(f"{cfg_dir / 'gatewayd.toml'}: {key}: ")


def test_api_errors(cfg_dir: Path) -> None:
    path = cfg_dir / "gatewayd.toml"
    path.write_text('database = "mysql://db/gw"\n[api]\ntoken_files = ["token"]\n')
    with pytest.raises(ConfigError, match=r"database: expected an SQLite file path"):
        load_config(path)
    path.write_text('database = "x.db"\n')
    with pytest.raises(ConfigError, match=r"api\.token_files: at least one token file"):
        load_config(path)
    path.write_text('database = "x.db"\n[api]\ntoken_files = ["missing"]\nlisten = "localhost"\n')
    with pytest.raises(ConfigError, match=r"api\.listen: expected host:port"):
        load_config(path)
    path.write_text('database = "x.db"\n[api]\ntoken_files = ["missing"]\n')
    with pytest.raises(ConfigError, match=r"api\.token_files\[0\]: cannot read"):
        load_config(path)
    path.write_text('[api]\ntoken_files = ["token"]\n')
    with pytest.raises(ConfigError, match="database: required key is missing"):
        load_config(path)


def test_secret_values_never_appear_in_errors(cfg_dir: Path) -> None:
    (cfg_dir / "pin").write_text("12ab-secret")
    err = error_of(
        cfg_dir,
        '[[modems]]\nname="a"\nport="/dev/x"\npin_file="pin"\niccid="8934071234567890123"\n',
    )
    assert err.key == "modems[0].pin_file"
    assert "12ab-secret" not in str(err)
    (cfg_dir / "empty").write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret_file(cfg_dir / "empty", key="k")


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("database = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as exc:
        load_config(bad)
    assert exc.value.source == bad
    bad.write_bytes(b"database = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_cluster_settings_are_read_and_checked(cfg_dir: Path) -> None:
    config = load_config(
        write(cfg_dir, "[cluster]\nclaim_lease_seconds = 20\nnode_lease_seconds = 9\n")
    )
    assert (config.cluster.claim_lease_seconds, config.cluster.node_lease_seconds) == (20, 9)
    assert config.cluster.poll_seconds == 1.0
    err = error_of(cfg_dir, "[cluster]\nclaim_lease_seconds = 0\n")
    assert err.key == "cluster.claim_lease_seconds"
    err = error_of(cfg_dir, "[cluster]\nnode_lease_seconds = 6\npoll_seconds = 2.5\n")
    assert err.key == "cluster.poll_seconds"
    assert "a third of cluster.node_lease_seconds" in err.reason
