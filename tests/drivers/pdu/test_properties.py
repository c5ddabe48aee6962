"""Property tests: round trips, part limits, cross-check with smspdudecoder, fuzzing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smspdudecoder.easy import read_incoming_sms, read_outgoing_sms

from drivers.pdu import (
    Deliver,
    Encoding,
    PduError,
    StatusReport,
    Submit,
    decode,
    encode_deliver,
    encode_status_report,
    encode_submit,
    segments,
)
from drivers.pdu.gsm7 import DEFAULT_ALPHABET, DEFAULT_EXTENSION, ESCAPE

TO = "+34600111222"
# Octets before TP-UDL in our SUBMIT to TO: first octet, MR, address (2 + 6), PID, DCS, VP.
UDL_INDEX = 1 + 1 + 8 + 2 + 1

GSM_CHARS = [c for i, c in enumerate(DEFAULT_ALPHABET) if i != ESCAPE] + list(
    DEFAULT_EXTENSION.values()
)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700)
any_text = st.text(max_size=400)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _submits(text: str, **kwargs: bool) -> list[Submit]:
    out = []
    for part in encode_submit(TO, text, concat_ref=42, **kwargs):
        msg = decode(part.hex())
        assert isinstance(msg, Submit)
        out.append(msg)
    return out


@SETTINGS
@given(any_text)
def test_any_text_round_trips(text: str) -> None:
    parts = encode_submit(TO, text, concat_ref=42)
    decoded = _submits(text)
    assert "".join(m.text for m in decoded) == text
    assert all(m.recipient == TO for m in decoded)
    info = segments(text)
    assert info.parts == len(parts)
    assert {m.encoding for m in decoded} == {info.encoding}
    for part in parts:
        # TP-UD (UDH included) never exceeds 140 octets.
        assert part.length - UDL_INDEX - 1 <= 140
    if len(parts) > 1:
        assert [m.concat.seq if m.concat else 0 for m in decoded] == list(range(1, len(parts) + 1))
        assert all(m.concat is not None and m.concat.total == len(parts) for m in decoded)


@SETTINGS
@given(gsm_text)
def test_gsm_text_stays_gsm7_and_never_splits_an_escape(text: str) -> None:
    decoded = _submits(text)
    assert "".join(m.text for m in decoded) == text
    assert all(m.encoding is Encoding.GSM7 for m in decoded)
    for msg in decoded:
        # Each part carries whole characters: its own text re-encodes within the limit.
        assert segments(msg.text).parts == 1 or len(decoded) > 1
        assert not msg.data or len(msg.data) <= 140


emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1F64F)


@SETTINGS
@given(st.text(alphabet=emoji, max_size=120), st.sampled_from(["", "a", "ab"]))
def test_surrogate_pairs_are_never_split(text: str, prefix: str) -> None:
    # The prefix shifts the pairs across the 67-unit boundary.
    decoded = _submits(prefix + text, force_ucs2=True)
    for msg in decoded:
        # Strict UTF-16 decoding fails on a pair cut in two.
        assert msg.data.decode("utf-16-be") == msg.text
    assert "".join(m.text for m in decoded) == prefix + text


@SETTINGS
@given(any_text)
def test_smart_mode_round_trips_the_replaced_text(text: str) -> None:
    info = segments(text, smart=True)
    decoded = _submits(text, smart=True)
    joined = "".join(m.text for m in decoded)
    if info.replaced_chars:
        assert info.encoding is Encoding.GSM7
        expected = text
        for original, replacement in info.replaced_chars:
            expected = expected.replace(original, replacement)
        assert joined == expected
    else:
        assert joined == text


def _smspdudecoder_content(content: str, udl: int, escaped: bool) -> str:
    """smspdudecoder's text without its one known artefact.

    It unpacks every whole septet in the octets (one more than UDL when UDL = 8n + 7: the
    7 zero spare bits read as "@") and then cuts the *characters* to UDL; with ESC pairs
    collapsed into single characters that cut no longer drops the extra "@".
    """
    if escaped and udl % 8 == 7:
        return content.removesuffix("@")
    return content


@SETTINGS
@given(any_text, st.booleans())
def test_smspdudecoder_reads_our_submits(text: str, force_ucs2: bool) -> None:
    parts = encode_submit(TO, text, concat_ref=7, force_ucs2=force_ucs2)
    joined = ""
    for part in parts:
        ours = decode(part.hex())
        assert isinstance(ours, Submit)
        theirs = read_outgoing_sms(part.hex())
        assert theirs["recipient"] == TO
        escaped = ours.encoding is Encoding.GSM7 and any(
            ch in DEFAULT_EXTENSION.values() for ch in ours.text
        )
        content = _smspdudecoder_content(theirs["content"], part.tpdu[UDL_INDEX], escaped)
        assert content == ours.text
        joined += content
    assert joined == text


@SETTINGS
@given(any_text, st.sampled_from(["+34600111222", "600111222", "Amazon", "Shop-24"]))
def test_smspdudecoder_reads_our_delivers(text: str, sender: str) -> None:
    scts = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    pdus = encode_deliver(sender, text, scts=scts, smsc="+34609090909", concat_ref=3)
    header_septets = 7 if len(pdus) > 1 else 0  # 6-octet concatenation UDH + 1 fill bit
    joined = ""
    for pdu in pdus:
        ours = decode(pdu)
        assert isinstance(ours, Deliver)
        assert ours.scts == scts
        theirs = read_incoming_sms(pdu.hex())
        # smspdudecoder ignores the semi-octet length of an alphanumeric address and reads the
        # 7 spare bits after a 7-character name as one more "@"; ours honours the length.
        assert theirs["sender"].removesuffix("@") == sender
        assert theirs["date"] == scts
        escaped = ours.encoding is Encoding.GSM7 and any(
            ch in DEFAULT_EXTENSION.values() for ch in ours.text
        )
        udl = header_septets + segments(ours.text).units
        content = _smspdudecoder_content(theirs["content"], udl, escaped)
        assert content == ours.text
        joined += content
    assert joined == text


@SETTINGS
@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(-79, 79),
    st.sampled_from(["+34600111222", "600111222", "123"]),
)
def test_status_reports_round_trip(mr: int, status: int, quarters: int, recipient: str) -> None:
    zone = timezone(timedelta(minutes=15 * quarters))
    scts = datetime(2026, 11, 23, 20, 0, 0, tzinfo=zone)
    done = datetime(2026, 11, 23, 20, 0, 7, tzinfo=zone)
    pdu = encode_status_report(mr, recipient, scts=scts, discharge_time=done, status=status)
    msg = decode(pdu)
    assert isinstance(msg, StatusReport)
    assert (msg.mr, msg.recipient, msg.status) == (mr, recipient, status)
    assert msg.scts == scts
    assert msg.discharge_time == done
    assert msg.scts.utcoffset() == timedelta(minutes=15 * quarters)


def _outcome(data: bytes, has_smsc: bool = True) -> Deliver | Submit | StatusReport | PduError:
    """The decoded message or the PduError; any other exception fails the test."""
    try:
        return decode(data, has_smsc=has_smsc)
    except PduError as exc:
        return exc


def _acceptable(outcome: Deliver | Submit | StatusReport | PduError) -> bool:
    return not isinstance(outcome, PduError) or bool(outcome.reason)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=180), st.booleans())
def test_random_bytes_only_decode_or_raise_pdu_error(data: bytes, has_smsc: bool) -> None:
    assert _acceptable(_outcome(data, has_smsc))


def _valid_pdus() -> list[bytes]:
    scts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    pdus = encode_deliver("Amazon", "x" * 170 + "€ñ", scts=scts, concat_ref=1)
    pdus += encode_deliver("+34600111222", "envío 😀", scts=scts, smsc="+3460900")
    pdus += [b"\x00" + p.tpdu for p in encode_submit(TO, "hola {} " * 30, ref16=True)]
    pdus.append(encode_status_report(9, TO, scts=scts, discharge_time=scts, status=0x46))
    return pdus


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(_valid_pdus()),
    st.integers(0, 200),
    st.integers(0, 255),
    st.integers(0, 200),
)
def test_mutated_pdus_only_decode_or_raise_pdu_error(
    pdu: bytes, flip_at: int, value: int, cut: int
) -> None:
    mutated = bytearray(pdu)
    mutated[flip_at % len(mutated)] = value
    for candidate in (bytes(mutated), pdu[:cut], bytes(mutated[:cut]) + b"\xff" * 3):
        assert _acceptable(_outcome(candidate))


SPANISH_CHARS = [*GSM_CHARS, *"áíóúÁÍÓÚç"]


@SETTINGS
@given(st.text(alphabet=st.sampled_from(SPANISH_CHARS), max_size=500))
def test_spanish_shift_round_trips(text: str) -> None:
    decoded = _submits(text, spanish_shift=True)
    assert "".join(m.text for m in decoded) == text
    assert all(m.encoding is Encoding.GSM7 for m in decoded)
    assert segments(text, spanish_shift=True).parts == len(decoded)
