"""Flows as typed values (loaded from ``flows.toml`` by :mod:`gatewayd.flows.load`).

A flow starts on a trigger event when its conditions hold, then runs its steps in order:
wait (a duration, the product's usage days, or until an event with a timeout), branch on a
condition, send a template, exit. Exit events end it early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gatewayd.customers import Frequency, MessageKind
from gatewayd.store import Category


class Segment(StrEnum):
    """Segments computed from a customer's history and the triggering order."""

    FIRST_TIME = "first_time"  # this is their only order
    RETURNING = "returning"  # they ordered before
    HIGH_VALUE = "high_value"  # total spend over the configured threshold


class Scope(StrEnum):
    """What an exit or a wait-for event must share with the enrolment."""

    ORDER = "order"  # the same order (shipping, delivery, feedback of one purchase)
    CUSTOMER = "customer"  # any event of the same customer (re-engagement)


@dataclass(frozen=True)
class Condition:
    """All the given tests must hold (an empty condition always holds).

    ``clicked`` / ``replied`` name an earlier send step of the same enrolment.
    """

    segments: tuple[Segment, ...] = ()
    kinds: tuple[str, ...] = ()  # the order has an item of one of these kinds
    categories: tuple[str, ...] = ()  # the order has an item in one of these categories
    locales: tuple[str, ...] = ()  # language prefix of the customer's locale
    countries: tuple[str, ...] = ()  # ISO 3166 region of the customer's number
    delivery_methods: tuple[str, ...] = ()
    consumable: bool | None = None  # the order has an item with usage_days
    clicked: str | None = None
    replied: str | None = None
    answered: str | None = None  # a survey step of the same enrolment ...
    answers: tuple[str, ...] = ()  # ... whose answer is one of these (any, when empty)


@dataclass(frozen=True)
class Wait:
    """Wait a fixed time, or the order's shortest ``usage_days`` less ``before_seconds``, or
    until a time in the triggering event's data (``until_field``) plus ``seconds``
    (negative: before it; a reminder 24 h before ``data.appointment_at``)."""

    seconds: float
    usage_days: bool = False
    before_seconds: float = 0.0
    until_field: str | None = None  # dotted path under the event's ``data``


@dataclass(frozen=True)
class WaitFor:
    """Wait until an event of ``event`` type arrives; after ``timeout_seconds`` go on or exit."""

    event: str
    timeout_seconds: float
    exit_on_timeout: bool = False


@dataclass(frozen=True)
class Branch:
    """If ``condition`` holds go to ``then`` else to ``otherwise`` (a step name, or "exit");
    ``None`` means the next step."""

    condition: Condition
    then: str | None
    otherwise: str | None


@dataclass(frozen=True)
class Survey:
    """A question: a reply from the customer's number within ``window_seconds`` of the send
    that matches ``pattern`` (a regular expression over the trimmed text) is its answer."""

    pattern: str
    window_seconds: float


@dataclass(frozen=True)
class Send:
    """Send ``template`` in ``category`` (marketing adds the opt-out clause); ``kind`` is what
    the customer's preferences are asked about."""

    template: str
    category: Category
    kind: MessageKind = MessageKind.TRANSACTIONAL
    # An experiment: (template, weight) arms, the first the control; empty: ``template``.
    variants: tuple[tuple[str, float], ...] = ()
    # Tone per segment: the first listed segment the customer is in picks the template.
    by_segment: tuple[tuple[Segment, str], ...] = ()
    # Flows whose queued messages for the same order this send cancels (``superseded``),
    # and whose late-arriving older triggers then start nothing.
    supersedes: tuple[str, ...] = ()
    survey: Survey | None = None  # a question whose reply is recorded as the answer

    def templates(self) -> tuple[str, ...]:
        """Every template this step may send."""
        return (self.template, *(t for t, _ in self.variants), *(t for _, t in self.by_segment))


@dataclass(frozen=True)
class Exit:
    """End the enrolment; ``unsubscribe`` adds a marketing-scope opt-out first."""

    reason: str = "done"
    unsubscribe: bool = False


Action = Wait | WaitFor | Branch | Send | Exit


@dataclass(frozen=True)
class Step:
    """One step: its unique name within the flow and what it does."""

    name: str
    action: Action


@dataclass(frozen=True)
class Flow:
    """One flow (see the module docstring)."""

    name: str
    trigger: str
    steps: tuple[Step, ...]
    when: Condition = Condition()
    category: Category = Category.TRANSACTIONAL
    scope: Scope = Scope.ORDER
    exit_on: tuple[str, ...] = ()
    holdout: float = 0.0  # percent of enrolments tracked but sent nothing (the control)

    def index(self, name: str) -> int:
        """The position of the step called ``name`` (KeyError when none)."""
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        raise KeyError(name)


@dataclass(frozen=True)
class Template:
    """A message text per language; ``fold_accents`` lets "envío" go as GSM 7-bit "envio"."""

    name: str
    texts: dict[str, str]  # language -> Jinja2 source
    fold_accents: bool = False


@dataclass(frozen=True)
class PreferenceKeyword:
    """An SMS keyword (folded: lower case, no accents or punctuation) that sets a frequency,
    and the confirmation sent back in its language."""

    word: str
    frequency: Frequency
    language: str
    reply: str


@dataclass(frozen=True)
class FlowSet:
    """Everything ``flows.toml`` defines."""

    flows: tuple[Flow, ...]
    templates: dict[str, Template]
    default_locale: str = "es"
    links: dict[str, str] = field(default_factory=dict)  # named URLs templates may use
    keywords: tuple[PreferenceKeyword, ...] = ()  # preference keywords (MENOS, LESS, ...)

    def triggered_by(self, event_type: str) -> list[Flow]:
        """The flows started by ``event_type``."""
        return [f for f in self.flows if f.trigger == event_type]

    def flow(self, name: str) -> Flow | None:
        """The flow called ``name``."""
        return next((f for f in self.flows if f.name == name), None)
