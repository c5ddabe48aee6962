import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from gatewayd.config import LoggingConfig
from gatewayd.logs import configure_logging, mask_number, mask_phone_numbers, wants_json


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+34600000012", "+3460*****12"),
        ("+14155550123", "+141******23"),
        ("+351912345678", "+35191*****78"),
        ("600000012", "60*****12"),
    ],
)
def test_mask_number_keeps_country_code_two_digits_and_last_two(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_processor_masks_numbers_anywhere_in_the_event() -> None:
    event = {
        "event": "sms.sent to +34600000012",
        "to": "+34600000012",
        "sender": "600111222",
        "mr": 17,
        "imei": "356938035643809",
        "parts": [{"to": "+447700900123"}],
    }
    out = mask_phone_numbers(None, "info", event)
    assert out["event"] == "sms.sent to +3460*****12"
    assert out["to"] == "+3460*****12"
    assert out["sender"] == "60*****22"
    assert out["parts"] == [{"to": "+4477******23"}]
    # Identifiers that are not numbers with '+' stay readable.
    assert (out["mr"], out["imei"]) == (17, "356938035643809")


def test_json_lines_when_not_a_terminal_with_masking() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(), stream=out, environ={})
    structlog.get_logger("t").info("sms.sent", to="+34600000012", mr=3)
    logging.getLogger("aiohttp.server").warning("peer +34600000099 hung up")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "sms.sent"
    assert first["to"] == "+3460*****12"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert second["event"] == "peer +3460*****99 hung up"
    assert second["logger"] == "aiohttp.server"


def test_numbers_in_tracebacks_are_masked_in_json() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=out)
    try:
        raise ValueError("cannot reach +34600000012")
    except ValueError:
        structlog.get_logger("t").exception("sms.failed")
    event = json.loads(out.getvalue())
    assert "cannot reach +3460*****12" in event["exception"]
    assert "+34600000012" not in out.getvalue()


def test_masking_can_be_switched_off_and_level_filters() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json", level="warning", mask_numbers=False), stream=out)
    log = structlog.get_logger("t")
    log.info("hidden")
    log.warning("shown", to="+34600000012")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["to"]) for e in lines] == [("shown", "+34600000012")]


def test_console_on_a_terminal_and_json_under_systemd() -> None:
    assert wants_json(Tty(), {}) is False
    assert wants_json(Tty(), {"JOURNAL_STREAM": "8:1234"}) is True
    assert wants_json(Tty(), {"INVOCATION_ID": "abc"}) is True
    assert wants_json(io.StringIO(), {}) is True
    out = Tty()
    configure_logging(LoggingConfig(), stream=out, environ={})
    structlog.get_logger("t").info("modem.ready", modem="m1")
    text = out.getvalue()
    assert "modem.ready" in text
    assert "modem" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
