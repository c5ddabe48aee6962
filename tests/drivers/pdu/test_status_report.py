"""SMS-STATUS-REPORT: TP-ST meanings and categories, optional parameters after TP-ST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drivers.pdu import (
    PduError,
    StatusCategory,
    StatusReport,
    decode,
    encode_status_report,
    status_category,
    status_text,
)

TZ = timezone(timedelta(hours=-4))
SCTS = datetime(2026, 11, 23, 16, 0, 1, tzinfo=TZ)
DONE = datetime(2026, 11, 23, 16, 0, 9, tzinfo=TZ)


def _report(data: bytes | str, has_smsc: bool = True) -> StatusReport:
    msg = decode(data, has_smsc=has_smsc)
    assert isinstance(msg, StatusReport)
    return msg


@pytest.mark.parametrize(
    ("status", "category", "text"),
    [
        (0x00, StatusCategory.DELIVERED, "short message received by the SME"),
        (0x01, StatusCategory.DELIVERED, "delivery not confirmed"),
        (0x1F, StatusCategory.DELIVERED, "SC-specific"),
        (0x20, StatusCategory.PENDING, "congestion, still trying"),
        (0x30, StatusCategory.PENDING, "SC-specific"),
        (0x41, StatusCategory.FAILED_PERMANENT, "incompatible destination"),
        (0x46, StatusCategory.FAILED_PERMANENT, "validity period expired"),
        (0x4A, StatusCategory.FAILED_PERMANENT, "reserved"),
        (0x62, StatusCategory.FAILED_TEMPORARY, "no response from SME, SC gave up"),
        (0x7F, StatusCategory.FAILED_TEMPORARY, "SC-specific"),
        (0x80, StatusCategory.FAILED_TEMPORARY, "service rejected"),
    ],
)
def test_status_meanings(status: int, category: StatusCategory, text: str) -> None:
    assert status_category(status) is category
    assert text in status_text(status)
    msg = _report(
        encode_status_report(3, "+34600111222", scts=SCTS, discharge_time=DONE, status=status)
    )
    assert (msg.status, msg.category) == (status, category)
    assert text in msg.status_text


def test_fields_and_smsc() -> None:
    pdu = encode_status_report(
        200, "600111222", scts=SCTS, discharge_time=DONE, status=0, smsc="+34609090909"
    )
    msg = _report(pdu)
    assert msg.smsc == "+34609090909"
    assert (msg.mr, msg.recipient) == (200, "600111222")
    assert msg.scts == SCTS
    assert msg.discharge_time == DONE
    assert (msg.pid, msg.dcs, msg.text, msg.udh) == (None, None, "", ())


def _base() -> bytes:
    return encode_status_report(7, "+34600111222", scts=SCTS, discharge_time=DONE, status=0x20)


def test_optional_parameters_after_status() -> None:
    # TP-PI 07: PID, DCS and UDL/UD follow TP-ST (TS 23.040 9.2.3.27).
    msg = _report(_base() + bytes.fromhex("07 00 00 02 C834".replace(" ", "")))
    assert (msg.pid, msg.dcs, msg.text) == (0, 0, "Hi")
    assert msg.category is StatusCategory.PENDING


def test_parameter_indicator_with_only_dcs() -> None:
    msg = _report(_base() + bytes.fromhex("0208"))
    assert (msg.pid, msg.dcs, msg.text) == (None, 8, "")


def test_extended_parameter_indicator_is_skipped() -> None:
    msg = _report(_base() + bytes.fromhex("81" + "00" + "7F"))
    assert msg.pid == 0x7F


def test_zero_parameter_indicator_and_sim_padding() -> None:
    assert _report(_base() + b"\x00").pid is None
    assert _report(_base() + b"\xff" * 20).status == 0x20


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        ("01", "pid"),
        ("02", "dcs"),
        ("040041", "follow"),
        ("04", "udl"),
        ("014243", "pi"),
        ("80", "pi"),
    ],
)
def test_broken_parameters(tail: str, reason: str) -> None:
    with pytest.raises(PduError, match=reason):
        _report(_base() + bytes.fromhex(tail))


def test_truncated_before_status() -> None:
    with pytest.raises(PduError, match="status"):
        _report(_base()[:-1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mr"):
        encode_status_report(256, "+34600111222", scts=SCTS, discharge_time=DONE, status=0)
    with pytest.raises(ValueError, match="status"):
        encode_status_report(1, "+34600111222", scts=SCTS, discharge_time=DONE, status=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_status_report(
            1, "+34600111222", scts=SCTS.replace(tzinfo=None), discharge_time=DONE, status=0
        )
