"""Known PDUs from public documentation and real modems decode to their documented values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drivers.pdu import (
    Concat,
    Deliver,
    Encoding,
    PduError,
    StatusCategory,
    StatusReport,
    Submit,
    UdhElement,
    decode,
    encode_submit,
)


def _tz(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


# The classic SMS-SUBMIT of the PDU tutorials ("SMS messages and the PDU format", Lars Pettersson,
# mirrored at turbocontrol.com/CoolStuff and subnets.ru/saved/sms_pdu_format.html): "hellohello"
# to +46708251358, TP-VP AA = 4 days.
HELLOHELLO_SUBMIT = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_tutorial_submit_decodes() -> None:
    msg = decode(HELLOHELLO_SUBMIT)
    assert isinstance(msg, Submit)
    assert msg.smsc is None
    assert msg.recipient == "+46708251358"
    assert msg.text == "hellohello"
    assert msg.encoding is Encoding.GSM7
    assert msg.mr == 0
    assert msg.srr is False
    assert msg.vp_minutes == 4 * 24 * 60


def test_our_encoder_reproduces_the_tutorial_submit() -> None:
    (part,) = encode_submit("+46708251358", "hellohello", srr=False, vp_minutes=4 * 24 * 60)
    assert part.hex() == HELLOHELLO_SUBMIT
    assert part.length == 23


def test_tutorial_deliver_decodes() -> None:
    # Same tutorial (luteus.biz LoriotPro SMS_PDU doc, subnets.ru): SMS-DELIVER from SMSC
    # +27381000015, sender 27838890001 (TON 4, not international), 1999-03-29 15:16:59 +02:00.
    msg = decode("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    assert isinstance(msg, Deliver)
    assert msg.smsc == "+27381000015"
    assert msg.sender == "27838890001"
    assert msg.text == "hellohello"
    assert msg.scts == datetime(1999, 3, 29, 15, 16, 59, tzinfo=_tz(2))
    assert msg.concat is None
    assert msg.ports is None


def test_neoway_manual_ucs2_submit() -> None:
    # Neoway N11 AT manual (easymanua.ls/neoway/n11-v2, p. 131): UCS-2 "hello" to 13421839693,
    # with and without the SMSC field; AT+CMGS=23 in both cases.
    with_smsc = decode("0891683108705505F001000B813124819396F300080A00680065006C006C006F")
    assert isinstance(with_smsc, Submit)
    assert with_smsc.smsc == "+8613800755500"
    assert with_smsc.recipient == "13421839693"
    assert with_smsc.text == "hello"
    assert with_smsc.encoding is Encoding.UCS2
    without = "0001000B813124819396F300080A00680065006C006C006F"
    (part,) = encode_submit("13421839693", "hello", srr=False, vp_minutes=None, force_ucs2=True)
    assert part.hex() == without
    assert part.length == 23


def test_nokia_forum_ucs2_deliver() -> None:
    # Nokia developer forum thread "how to send UCS character": an Arabic two-letter message
    # read with AT+CMGR, SCTS 2002-12-19 03:25:51 +02:00.
    msg = decode("07910201956905F0040B910201014160F3000820219130521580040628062A")
    assert isinstance(msg, Deliver)
    assert msg.sender == "+20101014063"
    assert msg.text == "\u0628\u062a"
    assert msg.encoding is Encoding.UCS2
    assert msg.scts == datetime(2002, 12, 19, 3, 25, 51, tzinfo=_tz(2))


def test_concatenated_submit_from_blog() -> None:
    # shekharbiradar.wordpress.com "Send and Receive Concatenated SMS in PDU mode": part 1 of 3,
    # 8-bit reference 0, 153 septets after the UDH.
    msg = decode(
        "0041000C911999083196670000A0050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB"
        "741668FC76CFCB637A995E9783C2E4343C3D4F8FD3EE33A8CC4ED359A079990C22BF41E5747DDE7E9341"
        "F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C36777181466A7E3"
        "F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7E7"
    )
    assert isinstance(msg, Submit)
    assert msg.recipient == "+919980136976"
    assert msg.concat == Concat(ref=0, total=3, seq=1)
    assert msg.text.startswith("Lorem ipsum dolor sit amet, consectetur adipisicing elit")
    assert len(msg.text) == 153


def test_wavecom_deliver_with_negative_timezone_and_mangled_udh() -> None:
    # Stack Overflow "Reading Multipart SMS with AT+CMGL using Wavecom modem" (mirrored at
    # example-a.com/answer/30002782), part 3: SCTS 2015-04-27 23:59:25 -07:00 (timezone octet
    # 8A), and a UDH whose element C0 claims more octets than the header holds.  The header
    # length still says where the text starts, so the text survives and the element is kept.
    msg = decode(
        "07914140540500F9440B917130263521F600005140723295528A"
        "1805C01B5B0303CEEEB3DB7D769FDD67B7D96D76ABD5"
    )
    assert isinstance(msg, Deliver)
    assert msg.smsc == "+14044550009"
    assert msg.sender == "+17036253126"
    assert msg.scts == datetime(2015, 4, 27, 23, 59, 25, tzinfo=_tz(-7))
    assert msg.scts.utcoffset() == timedelta(hours=-7)
    assert msg.udh == (UdhElement(0xC0, bytes.fromhex("5B0303")),)
    assert msg.concat is None
    assert msg.text == "gngnngngngnfnfnjj"


def test_status_report_from_blog() -> None:
    # amro.blogspot.com "receiving an SMS status report message" (2007): a +CDS PDU without
    # SMSC field, MR 0, recipient +20121875612, delivered (TP-ST 00).
    msg = decode("06000B910221815716F2709021510121807090215101718000", has_smsc=False)
    assert isinstance(msg, StatusReport)
    assert msg.mr == 0
    assert msg.recipient == "+20121875612"
    assert msg.scts == datetime(2007, 9, 12, 15, 10, 12, tzinfo=_tz(2))
    assert msg.discharge_time == datetime(2007, 9, 12, 15, 10, 17, tzinfo=_tz(2))
    assert msg.status == 0
    assert msg.category is StatusCategory.DELIVERED
    assert msg.status_text == "short message received by the SME"


def test_same_status_report_with_smsc_field() -> None:
    # The same report as most modems show it in +CDS: with an empty SMSC field in front.
    msg = decode("0006000B910221815716F2709021510121807090215101718000")
    assert isinstance(msg, StatusReport)
    assert msg.smsc is None
    assert msg.recipient == "+20121875612"


@pytest.mark.parametrize(
    ("pdu", "smsc"),
    [
        ("0006D60B911326880736F4111011719551401110117195714000", None),
        ("07911326040000F006D60B911326880736F4111011719551401110117195714000", "+31624000000"),
    ],
)
def test_status_report_from_atlib_tests(pdu: str, smsc: str | None) -> None:
    # HeboTech/ATLib SmsStatusReportDecoderTests: MR 214 to +31628870634, SCTS 17:59:15,
    # discharge 17:59:17 on 2011-01-11 +01:00, "message received by SME".
    msg = decode(pdu)
    assert isinstance(msg, StatusReport)
    assert msg.smsc == smsc
    assert (msg.mr, msg.recipient, msg.status) == (214, "+31628870634", 0)
    assert msg.scts == datetime(2011, 1, 11, 17, 59, 15, tzinfo=_tz(1))
    assert msg.discharge_time == datetime(2011, 1, 11, 17, 59, 17, tzinfo=_tz(1))
    assert msg.category is StatusCategory.DELIVERED


def test_status_report_from_fkgi_sms_tests() -> None:
    # fkgi/sms statusreport_test.go: MR 0, recipient "1234" with type-of-address 0x80,
    # SCTS = DT = 2011-03-22 14:25:40 +09:00 (timezone octet 63 = 36 quarters).
    msg = decode("060004802143113022415204631130224152046300", has_smsc=False)
    assert isinstance(msg, StatusReport)
    assert (msg.mr, msg.recipient, msg.status) == (0, "1234", 0)
    assert msg.scts == datetime(2011, 3, 22, 14, 25, 40, tzinfo=_tz(9))
    assert msg.discharge_time == msg.scts


def test_nordic_doc_report_missing_its_mr_is_a_pdu_error() -> None:
    # Nordic nRF9160 AT docs, +CDS example "060C9153481032547617116031625500171160315212000 0":
    # <length> says 25 octets but the PDU has 24 - the TP-MR octet is missing, so the address
    # length lands on the type-of-address octet (0x91 = 145 digits).  That must be a typed error.
    with pytest.raises(PduError, match="recipient"):
        decode("060C91534810325476171160316255001711603152120000", has_smsc=False)


def test_reply_address_udh_from_usenet_is_kept_and_fill_bits_honoured() -> None:
    # alt.cellular.gsm "change sms id" thread: UD "190A22080B912143658709F180B2CBE17919242FC3D979"
    # = 25 septets, an 11-octet header with element 22 (reply address, unknown to us), 3 fill
    # bits, then "Please reply".  Wrapped here in a DELIVER frame (UDHI set).
    frame = "00440B915121551532F400006240621050000019"
    ud = "0A22080B912143658709F180B2CBE17919242FC3D979"
    msg = decode(frame + ud)
    assert isinstance(msg, Deliver)
    assert msg.text == "Please reply"
    assert msg.udh == (UdhElement(0x22, bytes.fromhex("0B912143658709F1")),)
