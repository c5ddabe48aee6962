"""Post-purchase flows: events -> enrolments -> scheduled steps -> messages (DESIGN: layers).

Sits above :mod:`gatewayd.core` (it submits through the :class:`~gatewayd.core.Gateway`)
and below :mod:`gatewayd.api` (which posts events to it and serves its short links).
"""

from gatewayd.flows.engine import EventOutcome, FlowEngine
from gatewayd.flows.events import Event, parse_event
from gatewayd.flows.load import check_templates, load_flows, parse_flows
from gatewayd.flows.metrics import FlowMetrics
from gatewayd.flows.model import FlowSet
from gatewayd.flows.templates import Preview

__all__ = [
    "Event",
    "EventOutcome",
    "FlowEngine",
    "FlowMetrics",
    "FlowSet",
    "Preview",
    "check_templates",
    "load_flows",
    "parse_event",
    "parse_flows",
]
