"""Load ``gatewayd.toml`` into a :class:`GatewayConfig`, refusing anything doubtful at start.

Every error is a :class:`ConfigError` naming the file, the key as a dotted path
(``modems[2].limits.max_per_minute``) and what is wrong. Unknown keys are errors: a typo
must not silently fall back to a default. Secrets (SIM PIN, API tokens, webhook secret) are
only ever named by file, never written inline, and never appear in an error message.

Relative paths (database, pin and token files, webhook secret) are resolved against the
directory of the config file, so a config and its secrets can move together.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import zoneinfo
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import phonenumbers

from drivers.profiles import PROFILES
from gatewayd.config.model import (
    AlarmsConfig,
    ApiConfig,
    ClusterConfig,
    DiscoveryConfig,
    FlowsConfig,
    GatewayConfig,
    Keyword,
    Limits,
    LoggingConfig,
    ModemConfig,
    SimConfig,
)

T = TypeVar("T")

# Keys that must never hold a secret inline: the hint names the file key to use instead.
_INLINE_SECRETS = {
    "pin": "pin_file",
    "token": "token_files",
    "tokens": "token_files",
    "secret": "secret_file",
    "password": "a *_file key",
}
# Fields of the model that are not TOML keys (set by the loader, or spelt differently).
_NOT_KEYS: dict[type[Any], frozenset[str]] = {
    GatewayConfig: frozenset({"source"}),
    ApiConfig: frozenset({"listen_host", "listen_port"}),
}
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_ICCID = re.compile(r"^[0-9]{18,21}[0-9Ff]?$")
_PIN = re.compile(r"^[0-9]{4,8}$")
_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class ConfigError(Exception):
    """A configuration that cannot be used: which file, which key, and why."""

    def __init__(self, source: Path | None, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: " if source is not None else ""
        super().__init__(f"{where}{key}: {reason}" if key else f"{where}{reason}")


def load_config(path: str | Path) -> GatewayConfig:
    """Read, validate and return the configuration in ``path`` (raises :class:`ConfigError`)."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", "the file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
    return parse_config(raw, source=source)


def parse_config(raw: dict[str, Any], *, source: Path | None = None) -> GatewayConfig:
    """Validate an already-parsed TOML document (``source`` names it in errors)."""
    loader = _Loader(source)
    config = loader.build(GatewayConfig, raw, "")
    config = loader.resolve_paths(config)
    loader.validate(config)
    return dataclasses.replace(config, source=source)


def read_secret_file(path: Path, *, key: str, source: Path | None = None) -> str:
    """The secret held in ``path`` without surrounding whitespace (never echoed in errors)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, key, f"{path} is not UTF-8 text") from exc
    if not value:
        raise ConfigError(source, key, f"{path} is empty")
    return value


class _Loader:
    """Builds the dataclasses from TOML values, naming the dotted key of every error."""

    def __init__(self, source: Path | None) -> None:
        self.source = source

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def build(self, cls: type[T], value: Any, key: str) -> T:
        """One dataclass from a TOML table: unknown keys and missing ones are errors."""
        if cls is Keyword and isinstance(value, str):
            value = {"word": value}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_kind(value)}")
        value = dict(value)
        hints = get_type_hints(cls)
        fields = {
            f.name: f
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name not in _NOT_KEYS.get(cls, frozenset())
        }
        kwargs: dict[str, Any] = {}
        if cls is ApiConfig and "listen" in value:
            kwargs["listen_host"], kwargs["listen_port"] = self._listen(
                value.pop("listen"), _join(key, "listen")
            )
        for name, item in value.items():
            sub = _join(key, name)
            if name not in fields:
                if name in _INLINE_SECRETS:
                    raise self.error(
                        sub, f"secrets are never written inline: use {_INLINE_SECRETS[name]}"
                    )
                allowed = sorted([*fields, *(["listen"] if cls is ApiConfig else [])])
                raise self.error(sub, f"unknown key (expected one of: {', '.join(allowed)})")
            kwargs[name] = self.convert(item, hints[name], sub)
        missing = [
            name
            for name, f in fields.items()
            if name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.error(_join(key, missing[0]), "required key is missing")
        return cls(**kwargs)

    def convert(self, value: Any, tp: Any, key: str) -> Any:
        """A TOML value converted to the type hint ``tp``."""
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            # TOML has no null: `false` switches an optional setting off.
            if value is False and bool not in options:
                return None
            return self.convert(value, options[0], key)
        if origin is tuple:
            if not isinstance(value, list):
                raise self.error(key, f"expected an array, got {_kind(value)}")
            (item_type, _ellipsis) = get_args(tp)
            return tuple(self.convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)  # type: ignore[arg-type]
        if isinstance(tp, type) and issubclass(tp, Enum):
            allowed = [str(m.value) for m in tp]
            if not isinstance(value, str) or value not in allowed:
                raise self.error(key, f"expected one of {', '.join(allowed)}, got {value!r}")
            return tp(value)
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {_kind(value)}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(key, f"expected an integer, got {_kind(value)}")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(key, f"expected a number, got {_kind(value)}")
            return float(value)
        if tp is str or tp is Path:
            if not isinstance(value, str):
                raise self.error(key, f"expected a string, got {_kind(value)}")
            if not value.strip():
                raise self.error(key, "must not be empty")
            return Path(value) if tp is Path else value
        raise self.error(key, f"unsupported type {tp!r}")  # pragma: no cover - model bug

    def _listen(self, value: Any, key: str) -> tuple[str, int]:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string host:port, got {_kind(value)}")
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise self.error(key, f"expected host:port (e.g. 127.0.0.1:8080), got {value!r}")
        return host, int(port)

    def resolve_paths(self, config: GatewayConfig) -> GatewayConfig:
        """Relative paths are read relative to the config file's directory."""
        if self.source is None:
            return config
        base = self.source.resolve().parent

        def rel(p: Path) -> Path:
            return p if p.is_absolute() else base / p

        database = config.database
        if "://" not in database and database != ":memory:":
            database = str(rel(Path(database)))
        modems = tuple(
            dataclasses.replace(m, pin_file=rel(m.pin_file) if m.pin_file else None)
            for m in config.modems
        )
        sims = tuple(
            dataclasses.replace(s, pin_file=rel(s.pin_file) if s.pin_file else None)
            for s in config.sims
        )
        api = dataclasses.replace(config.api, token_files=tuple(map(rel, config.api.token_files)))
        hooks = config.webhooks
        if hooks.secret_file is not None:
            hooks = dataclasses.replace(hooks, secret_file=rel(hooks.secret_file))
        flows = config.flows
        if flows.file is not None:
            flows = dataclasses.replace(flows, file=rel(flows.file))
        return dataclasses.replace(
            config,
            database=database,
            modems=modems,
            sims=sims,
            api=api,
            webhooks=hooks,
            flows=flows,
        )

    def validate(self, config: GatewayConfig) -> None:
        """Checks across keys and of values' meaning, beyond their types."""
        if "://" in config.database and not config.database.startswith(
            ("sqlite://", "postgresql://", "postgres://")
        ):
            raise self.error(
                "database", "expected an SQLite file path, sqlite:///path or postgresql://..."
            )
        self._validate_api(config.api)
        names: dict[str, int] = {}
        for i, modem in enumerate(config.modems):
            self._validate_modem(modem, f"modems[{i}]", names)
            names[modem.name] = i
        self._validate_discovery(config.discovery)
        self._validate_alarms(config.alarms)
        self._positive(config.calls.hangup_delay_seconds, "calls.hangup_delay_seconds", 0)
        self._positive(config.calls.reply_per_day, "calls.reply_per_day")
        seen: dict[str, int] = {}
        for i, sim in enumerate(config.sims):
            self._validate_sim(sim, f"sims[{i}]", seen)
        pools = config.pools
        for i, rule in enumerate(config.routing):
            if not _PREFIX.match(rule.prefix):
                raise self.error(f"routing[{i}].prefix", "expected '+' and digits, e.g. '+34'")
            if rule.pool not in pools:
                known = ", ".join(sorted(pools)) or "none"
                raise self.error(
                    f"routing[{i}].pool", f"no modem is in pool {rule.pool!r} ({known})"
                )
        self._validate_sending(config)
        for family in ("stop", "start", "help"):
            for i, word in enumerate(getattr(config.keywords, family)):
                if not word.word.strip():
                    raise self.error(f"keywords.{family}[{i}]", "must not be empty")
        self._positive(config.keywords.auto_reply_per_hour, "keywords.auto_reply_per_hour", 0)
        hooks = config.webhooks
        if hooks.url is not None:
            if not hooks.url.startswith(("http://", "https://")):
                raise self.error("webhooks.url", "expected an http:// or https:// URL")
            if hooks.secret_file is None:
                raise self.error("webhooks.secret_file", "required when webhooks.url is set")
        if hooks.secret_file is not None:
            read_secret_file(hooks.secret_file, key="webhooks.secret_file", source=self.source)
        self._above_zero(hooks.timeout_seconds, "webhooks.timeout_seconds")
        self._positive(hooks.max_attempts, "webhooks.max_attempts")
        self._above_zero(hooks.backoff_base_seconds, "webhooks.backoff_base_seconds")
        self._above_zero(hooks.backoff_max_seconds, "webhooks.backoff_max_seconds")
        self._validate_logging(config.logging)
        self._validate_flows(config.flows)
        self._validate_cluster(config.cluster)

    def _validate_cluster(self, cluster: ClusterConfig) -> None:
        # Heartbeats go every third of the node lease; a poll slower than the lease would
        # let a live node's SIMs look abandoned.
        self._positive(cluster.claim_lease_seconds, "cluster.claim_lease_seconds", 2)
        self._positive(cluster.node_lease_seconds, "cluster.node_lease_seconds", 3)
        self._above_zero(cluster.poll_seconds, "cluster.poll_seconds")
        if cluster.poll_seconds * 3 > cluster.node_lease_seconds:
            raise self.error(
                "cluster.poll_seconds",
                f"must be at most a third of cluster.node_lease_seconds "
                f"({cluster.node_lease_seconds:g}), got {cluster.poll_seconds:g}",
            )

    def _validate_flows(self, flows: FlowsConfig) -> None:
        # The flows file itself is validated by gatewayd.flows.load when the engine starts.
        self._listen(flows.short_link_listen, "flows.short_link_listen")
        if not flows.public_base_url.startswith(("http://", "https://")):
            raise self.error("flows.public_base_url", "expected an http:// or https:// URL")
        for key in ("quiet_start", "quiet_end"):
            if not _HHMM.match(getattr(flows, key)):
                raise self.error(f"flows.{key}", "expected a local time HH:MM, e.g. '21:00'")
        try:
            zoneinfo.ZoneInfo(flows.default_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise self.error("flows.default_timezone", "unknown IANA time zone") from exc
        for key in ("marketing_per_day", "marketing_per_week", "segment_budget"):
            self._positive(getattr(flows, key), f"flows.{key}")
        for key in ("min_gap_seconds", "high_value_threshold", "preview_window_seconds"):
            self._positive(getattr(flows, key), f"flows.{key}", 0)
        for key in ("conversion_window_days", "reply_window_days"):
            self._above_zero(getattr(flows, key), f"flows.{key}")
        if flows.retention_days is not None:
            self._above_zero(flows.retention_days, "flows.retention_days")

    def _validate_api(self, api: ApiConfig) -> None:
        if not api.token_files:
            raise self.error("api.token_files", "at least one token file is required")
        for i, path in enumerate(api.token_files):
            read_secret_file(path, key=f"api.token_files[{i}]", source=self.source)
        if not 0 <= api.listen_port <= 65535:
            raise self.error("api.listen", "port out of range")
        self._positive(api.max_body_bytes, "api.max_body_bytes")
        self._positive(api.max_batch, "api.max_batch")

    def _validate_modem(self, modem: ModemConfig, key: str, names: dict[str, int]) -> None:
        if modem.name in names:
            raise self.error(
                f"{key}.name", f"{modem.name!r} is already modems[{names[modem.name]}]"
            )
        if not (modem.port.startswith("/") or "://" in modem.port):
            raise self.error(
                f"{key}.port",
                "expected a device path (/dev/serial/by-id/...) or a URL (socket://host:port)",
            )
        if modem.profile != "auto" and modem.profile.strip().lower() not in PROFILES:
            known = ", ".join(["auto", *sorted(PROFILES)])
            raise self.error(f"{key}.profile", f"unknown profile {modem.profile!r} ({known})")
        if modem.pin_file is not None:
            if modem.iccid is None:
                # DESIGN: a PIN is bound to a SIM, never to a port (sticks get swapped).
                raise self.error(f"{key}.iccid", "required with pin_file: a PIN belongs to a SIM")
            pin = read_secret_file(modem.pin_file, key=f"{key}.pin_file", source=self.source)
            if not _PIN.match(pin):
                raise self.error(f"{key}.pin_file", f"{modem.pin_file} must hold 4 to 8 digits")
        if modem.iccid is not None and not _ICCID.match(modem.iccid):
            raise self.error(f"{key}.iccid", "expected 18 to 22 digits")
        self._positive(modem.baudrate, f"{key}.baudrate")
        self._above_zero(modem.health_interval_seconds, f"{key}.health_interval_seconds")
        self._validate_limits(modem.limits, f"{key}.limits")

    def _validate_discovery(self, discovery: DiscoveryConfig) -> None:
        for i, pattern in enumerate(discovery.patterns):
            if not pattern.startswith("/"):
                raise self.error(
                    f"discovery.patterns[{i}]",
                    "expected an absolute glob, e.g. /dev/serial/by-id/usb-*Huawei*-if00*",
                )
        if discovery.profile != "auto" and discovery.profile.strip().lower() not in PROFILES:
            known = ", ".join(["auto", *sorted(PROFILES)])
            raise self.error(
                "discovery.profile", f"unknown profile {discovery.profile!r} ({known})"
            )
        self._above_zero(discovery.poll_seconds, "discovery.poll_seconds")
        self._above_zero(discovery.probe_timeout_seconds, "discovery.probe_timeout_seconds")
        self._positive(discovery.baudrate, "discovery.baudrate")
        self._validate_limits(discovery.limits, "discovery.limits")

    def _validate_alarms(self, alarms: AlarmsConfig) -> None:
        for key in ("check_seconds", "signal_low_minutes"):
            self._above_zero(getattr(alarms, key), f"alarms.{key}")
        for key in ("raise_after_seconds", "clear_after_seconds"):
            self._positive(getattr(alarms, key), f"alarms.{key}", 0)
        if not 0 < alarms.storage_clear_ratio <= alarms.storage_raise_ratio <= 1:
            raise self.error(
                "alarms.storage_clear_ratio", "expected 0 < storage_clear_ratio <= raise_ratio <= 1"
            )
        if alarms.signal_clear_dbm < alarms.signal_low_dbm:
            raise self.error("alarms.signal_clear_dbm", "must be at least signal_low_dbm")
        self._positive(alarms.no_reports_after_parts, "alarms.no_reports_after_parts")
        self._positive(alarms.error_window, "alarms.error_window")
        if not 0 < alarms.error_rate <= 1:
            raise self.error("alarms.error_rate", "expected a fraction above 0, at most 1")

    def _validate_sim(self, sim: SimConfig, key: str, seen: dict[str, int]) -> None:
        ident = sim.iccid or sim.imei
        if ident is None:
            raise self.error(f"{key}.iccid", "an entry needs iccid (or imei where none is read)")
        if ident in seen:
            raise self.error(key, f"{ident} is already sims[{seen[ident]}]")
        seen[ident] = len(seen)
        if sim.iccid is not None and not _ICCID.match(sim.iccid):
            raise self.error(f"{key}.iccid", "expected 18 to 22 digits")
        if sim.imei is not None and not re.fullmatch(r"[0-9]{14,16}", sim.imei):
            raise self.error(f"{key}.imei", "expected 14 to 16 digits")
        if sim.pin_file is not None:
            if sim.iccid is None:
                # DESIGN: a PIN is bound to a SIM, never to a port or a stick.
                raise self.error(f"{key}.iccid", "required with pin_file: a PIN belongs to a SIM")
            pin = read_secret_file(sim.pin_file, key=f"{key}.pin_file", source=self.source)
            if not _PIN.match(pin):
                raise self.error(f"{key}.pin_file", f"{sim.pin_file} must hold 4 to 8 digits")
        self._validate_limits(sim.limits, f"{key}.limits")
        if sim.monthly_quota is not None:
            self._positive(sim.monthly_quota, f"{key}.monthly_quota")
            if sim.iccid is None:
                raise self.error(f"{key}.iccid", "required with monthly_quota (counted per SIM)")
        if sim.warmup is not None:
            try:
                date.fromisoformat(sim.warmup.start)
            except ValueError as exc:
                raise self.error(f"{key}.warmup.start", "expected a date YYYY-MM-DD") from exc
            self._positive(sim.warmup.days, f"{key}.warmup.days")
            self._positive(sim.warmup.first_day, f"{key}.warmup.first_day")
        if sim.credit is not None:
            credit = sim.credit
            if not re.fullmatch(r"[0-9*#+]{1,40}", credit.ussd):
                raise self.error(f"{key}.credit.ussd", "expected digits, '*' and '#', e.g. *111#")
            try:
                compiled = re.compile(credit.pattern)
            except re.error as exc:
                raise self.error(
                    f"{key}.credit.pattern", f"not a regular expression: {exc}"
                ) from exc
            if compiled.groups < 1:
                raise self.error(f"{key}.credit.pattern", "needs one group around the amount")
            self._positive(credit.floor, f"{key}.credit.floor", 0)
            self._positive(credit.every_sends, f"{key}.credit.every_sends")
            self._above_zero(credit.every_hours, f"{key}.credit.every_hours")

    def _validate_limits(self, limits: Limits, key: str) -> None:
        for name in ("max_per_minute", "max_per_hour", "max_per_day"):
            value = getattr(limits, name)
            if value is not None:
                self._positive(value, f"{key}.{name}")
        self._positive(limits.min_gap_seconds, f"{key}.min_gap_seconds", 0)
        self._positive(limits.gap_jitter_seconds, f"{key}.gap_jitter_seconds", 0)

    def _validate_sending(self, config: GatewayConfig) -> None:
        sending = config.sending
        if sending.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise self.error("sending.default_region", "expected an ISO region code, e.g. 'ES'")
        if not 1 <= sending.max_segments <= 255:
            raise self.error("sending.max_segments", "expected 1 to 255")
        if sending.validity_minutes is not None:
            self._positive(sending.validity_minutes, "sending.validity_minutes")
        self._positive(sending.retry_max_attempts, "sending.retry_max_attempts")
        for name in (
            "retry_base_seconds",
            "retry_max_seconds",
            "report_timeout_seconds",
            "report_match_window_seconds",
            "inbound_incomplete_after_seconds",
        ):
            self._above_zero(getattr(sending, name), f"sending.{name}")
        self._positive(sending.failover_wait_seconds, "sending.failover_wait_seconds", 0)
        if not 0.0 <= sending.urgent_reserved_share < 1.0:
            raise self.error("sending.urgent_reserved_share", "expected 0 to below 1")
        self._above_zero(sending.otp_validity_seconds, "sending.otp_validity_seconds")

    def _validate_logging(self, logging: LoggingConfig) -> None:
        if logging.format not in _LOG_FORMATS:
            raise self.error("logging.format", f"expected one of {', '.join(_LOG_FORMATS)}")
        if logging.level not in _LOG_LEVELS:
            raise self.error("logging.level", f"expected one of {', '.join(_LOG_LEVELS)}")

    def _above_zero(self, value: float, key: str) -> None:
        if value <= 0:
            raise self.error(key, f"must be greater than 0, got {value:g}")

    def _positive(self, value: float, key: str, minimum: float = 1) -> None:
        if value < minimum:
            raise self.error(key, f"must be at least {minimum:g}, got {value:g}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)
