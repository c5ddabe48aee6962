"""The daemon's configuration as typed values (loaded from ``gatewayd.toml`` by ``load``).

Every section is a frozen dataclass with the defaults a fresh install runs with; the TOML
loader validates input and builds these, so the rest of the daemon never sees raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class UnknownOutcomeRule(StrEnum):
    """What to do with a part whose send outcome is unknown (DESIGN: unknown outcomes)."""

    AT_MOST_ONCE = "at_most_once"  # mark `unconfirmed`, never resend
    AT_LEAST_ONCE = "at_least_once"  # resend: the recipient may get it twice


@dataclass(frozen=True)
class Limits:
    """Throughput limits of one SIM. ``None`` means no limit at that scale.

    A limit counts SMS parts, as the operator does (DESIGN: sending).
    """

    max_per_minute: int | None = 6
    max_per_hour: int | None = 200
    max_per_day: int | None = 1000
    min_gap_seconds: float = 0.0
    gap_jitter_seconds: float = 0.0


@dataclass(frozen=True)
class ModemConfig:
    """One modem: where it is plugged in and how it may be used."""

    name: str
    port: str  # device path (prefer /dev/serial/by-id/...) or pyserial URL (socket://host:port)
    profile: str = "auto"
    pin_file: Path | None = None
    iccid: str | None = None  # the PIN file is used only when the SIM has this ICCID
    pool: str = "default"
    limits: Limits = field(default_factory=Limits)
    baudrate: int = 115200
    health_interval_seconds: float = 30.0  # signal, registration, storage: looked at this often


@dataclass(frozen=True)
class SimConfig:
    """Settings bound to one SIM (by ICCID) or, where no ICCID can be read, to one modem
    (by IMEI): they follow the SIM into whichever stick or port it turns up in.
    """

    iccid: str | None = None
    imei: str | None = None
    name: str | None = None  # the modem's name once attached (default: "sim-<last 6 digits>")
    pin_file: Path | None = None  # needs ``iccid``: a PIN belongs to a SIM (DESIGN: Identity)
    pool: str = "default"
    limits: Limits = field(default_factory=Limits)
    credit: CreditConfig | None = None  # prepaid balance check by USSD (off without it)
    warmup: WarmupConfig | None = None  # a new SIM's daily limit rising over days
    monthly_quota: int | None = None  # SMS parts per calendar month (UTC); then it pauses


@dataclass(frozen=True)
class WarmupConfig:
    """A new SIM sends little at first (operators bar SIMs that start at full volume).

    On day ``k`` after ``start`` (0-based) the daily limit is ``first_day`` plus ``k/days`` of
    the way to ``limits.max_per_day``; from day ``days`` on, the SIM's own limits apply.
    """

    start: str  # the SIM's first day in service, YYYY-MM-DD (UTC)
    days: int = 14
    first_day: int = 20


@dataclass(frozen=True)
class CreditConfig:
    """A prepaid SIM's balance check: USSD code, how to read the amount, and its floor."""

    ussd: str  # e.g. "*111#"
    # The amount in the decoded answer: the first group of the first match ("4,90" is 4.90).
    pattern: str = r"(\d+(?:[.,]\d{1,2})?)"
    floor: float = 1.0  # below it the SIM pauses itself and credit_low is raised
    every_sends: int = 50  # check again after this many parts sent
    every_hours: float = 6.0  # and at least this often


@dataclass(frozen=True)
class DiscoveryConfig:
    """Modems found at run time: ports appearing in ``directory`` and matching a pattern.

    ``patterns`` are shell globs over the full path (``/dev/serial/by-id/usb-*Huawei*-if00*``);
    ``auto = true`` takes every port there. Each new port is probed with a short AT sequence
    and attached with the ``[[sims]]`` settings of its ICCID (or IMEI), else the defaults here.
    """

    auto: bool = False
    patterns: tuple[str, ...] = ()
    directory: Path = Path("/dev/serial/by-id")
    poll_seconds: float = 2.0  # where inotify is unavailable; also the rescan period
    probe_timeout_seconds: float = 2.0  # per AT command while probing a new port
    profile: str = "auto"
    pool: str = "default"
    limits: Limits = field(default_factory=Limits)
    baudrate: int = 115200

    @property
    def enabled(self) -> bool:
        """Whether any port is to be watched."""
        return self.auto or bool(self.patterns)


@dataclass(frozen=True)
class CallsConfig:
    """Incoming calls: an SMS gateway takes none; it hangs up and reports ``call.missed``."""

    hangup_delay_seconds: float = 0.0  # let it ring this long first (0: at the first RING)
    reply_text: str = ""  # an SMS to the caller ("" sends none)
    reply_per_day: int = 1  # per caller, so that a robot calling back cannot loop


@dataclass(frozen=True)
class AlarmsConfig:
    """Health alarms of each modem/SIM: when they raise and when they clear (hysteresis)."""

    check_seconds: float = 10.0  # how often conditions are looked at
    raise_after_seconds: float = 60.0  # a condition holds this long before it raises
    clear_after_seconds: float = 120.0  # ... and is gone this long before it clears
    storage_raise_ratio: float = 0.8  # DESIGN: Inbound storage (a full store stops +CMTI)
    storage_clear_ratio: float = 0.7
    signal_low_dbm: int = -105
    signal_clear_dbm: int = -100
    signal_low_minutes: float = 5.0  # signal below the threshold this long raises
    no_reports_after_parts: int = 10  # parts sent in a row without a report (often barring)
    error_rate: float = 0.5  # send errors / attempts over the last ``error_window`` attempts
    error_window: int = 20


@dataclass(frozen=True)
class RoutingRule:
    """Messages to numbers starting with ``prefix`` (E.164, with '+') go to ``pool``."""

    prefix: str
    pool: str


@dataclass(frozen=True)
class ApiConfig:
    """The HTTP API listener."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    token_files: tuple[Path, ...] = ()
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000


@dataclass(frozen=True)
class SendingConfig:
    """How messages are encoded, retried and tracked."""

    default_region: str = "ES"  # region for numbers written without '+'
    max_segments: int = 10
    validity_minutes: int | None = 1440
    request_status_report: bool = True
    retry_max_attempts: int = 5
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 1800.0
    report_timeout_seconds: float = 172_800.0
    report_match_window_seconds: float = 259_200.0
    failover_wait_seconds: float = 600.0
    unknown_outcome_transactional: UnknownOutcomeRule = UnknownOutcomeRule.AT_MOST_ONCE
    unknown_outcome_marketing: UnknownOutcomeRule = UnknownOutcomeRule.AT_MOST_ONCE
    sticky_recipients: bool = True
    inbound_incomplete_after_seconds: float = 86_400.0
    # Share of each SIM's limits kept free for otp/alert messages: marketing never uses it.
    urgent_reserved_share: float = 0.2
    otp_validity_seconds: float = 300.0  # an otp's expires_at when the request gives none


@dataclass(frozen=True)
class Keyword:
    """One keyword: the word, and whether its first word is enough (off for common words)."""

    word: str
    first_word: bool = False


@dataclass(frozen=True)
class KeywordConfig:
    """STOP / START / HELP families and the replies to them (DESIGN: keywords)."""

    stop: tuple[Keyword, ...] = ()
    start: tuple[Keyword, ...] = ()
    help: tuple[Keyword, ...] = ()
    stop_reply: str = ""
    start_reply: str = ""
    help_reply: str = ""
    auto_reply_per_hour: int = 3  # per number, so two robots cannot ping-pong


@dataclass(frozen=True)
class WebhookConfig:
    """Where events go and how they are signed."""

    url: str | None = None
    secret_file: Path | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 12
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True)
class LoggingConfig:
    """Log output: ``json`` under systemd, ``console`` on a terminal, ``auto`` picks."""

    format: str = "auto"
    level: str = "info"
    mask_numbers: bool = True


@dataclass(frozen=True)
class FlowsConfig:
    """Post-purchase flows: where they are defined and the rules the engine enforces."""

    file: Path | None = None  # flows.toml; without it no flow runs
    public_base_url: str = "http://127.0.0.1:8081"  # what short links in messages start with
    short_link_listen: str = "127.0.0.1:8081"  # the short-link listener, apart from the API
    brand: str = "gatewayd"  # sender identification added to every flow message
    quiet_start: str = "21:00"  # recipient's local time (HH:MM) from which marketing waits
    quiet_end: str = "09:00"  # ... until this local time
    quiet_transactional: bool = False  # also hold transactional flow messages in quiet hours
    default_timezone: str = "Europe/Madrid"  # when neither event nor number tells
    marketing_per_day: int = 1  # per customer, rolling 24 h
    marketing_per_week: int = 3  # per customer, rolling 7 days
    min_gap_seconds: float = 300.0  # between any two flow messages to one customer
    high_value_threshold: float = 300.0  # total spend above which a customer is high_value
    segment_budget: int = 2  # templates over this many SMS parts are flagged at load
    conversion_window_days: float = 7.0  # an order this soon after a message converts
    reply_window_days: float = 7.0  # a reply this soon after a message counts for it
    preview_window_seconds: float = 10.0  # hits this soon after delivery are link scanners
    retention_days: float | None = None  # purge message texts and inbound bodies this old


@dataclass(frozen=True)
class ClusterConfig:
    """Several nodes on one PostgreSQL database (ignored on SQLite): docs/multinode.md."""

    # A claimed message stays this node's this long after its last part started (renewed at
    # every part). Longer than any modem takes to answer +CMGS (Quectel EC25: 120 s), or a
    # live node's slow send would be taken over and follow the unknown-outcome rule.
    claim_lease_seconds: float = 150.0
    # A node (and the SIMs it drives) counts as gone when its heartbeat is this old.
    node_lease_seconds: float = 30.0
    # An idle worker looks at the shared queue at least this often (NOTIFY is a hint only).
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class GatewayConfig:
    """The whole daemon configuration."""

    database: str
    node_name: str = "gatewayd"
    api: ApiConfig = field(default_factory=ApiConfig)
    modems: tuple[ModemConfig, ...] = ()
    sims: tuple[SimConfig, ...] = ()
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    routing: tuple[RoutingRule, ...] = ()
    sending: SendingConfig = field(default_factory=SendingConfig)
    keywords: KeywordConfig = field(default_factory=KeywordConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: Path | None = None  # the file it was loaded from, for error messages

    @property
    def pools(self) -> frozenset[str]:
        """Every pool a modem belongs to."""
        found = (s.pool for s in self.sims) if self.discovery.enabled else ()
        extra = (self.discovery.pool,) if self.discovery.enabled else ()
        return frozenset((*(m.pool for m in self.modems), *found, *extra))
