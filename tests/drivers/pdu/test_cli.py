"""The ``python -m drivers.pdu`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drivers.pdu import Submit, decode
from drivers.pdu.__main__ import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_submit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["decode", "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"], capsys)
    assert code == 0
    obj = json.loads(out)
    assert obj["type"] == "submit"
    assert obj["recipient"] == "+46708251358"
    assert obj["text"] == "hellohello"
    assert obj["encoding"] == "gsm7"
    assert obj["concat"] is None
    assert (obj["mr"], obj["pid"], obj["dcs"], obj["udh"]) == (0, 0, 0, [])


def test_decode_deliver_with_concat(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = (
        "07914140540500F9440B917130263521F600005140723295528A"
        "1805C01B5B0303CEEEB3DB7D769FDD67B7D96D76ABD5"
    )
    code, out, _ = _run(["decode", pdu], capsys)
    obj = json.loads(out)
    assert code == 0
    assert obj["type"] == "deliver"
    assert obj["sender"] == "+17036253126"
    assert obj["smsc"] == "+14044550009"
    assert obj["scts"] == "2015-04-27T23:59:25-07:00"
    assert obj["udh"] == [{"iei": 0xC0, "data": "5B0303"}]


def test_decode_status_report_without_smsc(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = "06000B910221815716F2709021510121807090215101718000"
    code, out, _ = _run(["decode", "--no-smsc", pdu], capsys)
    obj = json.loads(out)
    assert code == 0
    assert obj["type"] == "status_report"
    assert (obj["mr"], obj["recipient"], obj["status"]) == (0, "+20121875612", 0)
    assert obj["status_text"] == "short message received by the SME"
    assert obj["scts"] == "2007-09-12T15:10:12+02:00"
    assert obj["discharge_time"] == "2007-09-12T15:10:17+02:00"


def test_decode_bad_pdu_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["decode", "0004"], capsys)
    assert code == 2
    assert out == ""
    assert "sender" in err


def test_encode_multipart_ucs2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["encode", "--to", "+34600111222", "--ucs2", "x" * 100], capsys)
    parts = json.loads(out)
    assert code == 0
    assert len(parts) == 2
    decoded = [decode(p["pdu"], has_smsc=False) for p in parts]
    assert all(isinstance(m, Submit) and m.recipient == "+34600111222" for m in decoded)
    assert "".join(m.text for m in decoded if isinstance(m, Submit)) == "x" * 100
    assert [p["length"] for p in parts] == [len(p["pdu"]) // 2 for p in parts]


def test_encode_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["encode", "--to", "600111222", "--smart", "--no-srr", "--vp", "60", "--with-smsc"]
    code, out, _ = _run([*argv, "“hola”"], capsys)
    (part,) = json.loads(out)
    assert code == 0
    assert part["pdu"].startswith("0011")  # SMSC 00, SUBMIT + relative VP, no SRR
    msg = decode(part["pdu"])
    assert isinstance(msg, Submit)
    assert (msg.text, msg.srr, msg.vp_minutes, msg.recipient) == ('"hola"', False, 60, "600111222")
    assert part["length"] == len(part["pdu"]) // 2 - 1


def test_encode_bad_number_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["encode", "--to", "Amazon", "hi"], capsys)
    assert code == 2
    assert "not a phone number" in err


def test_module_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "drivers.pdu", "encode", "--to", "+34600111222", "hellohello"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0
    (part,) = json.loads(result.stdout)
    assert part["pdu"].endswith("0AE8329BFD4697D9EC37")
    assert part["length"] == 23


def test_encode_spanish_shift(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["encode", "--to", "+34600111222", "--spanish-shift", "Envío"], capsys)
    (part,) = json.loads(out)
    assert code == 0
    code, out, _ = _run(["decode", "--no-smsc", part["pdu"]], capsys)
    obj = json.loads(out)
    assert (obj["text"], obj["encoding"]) == ("Envío", "gsm7")
    assert obj["udh"] == [{"iei": 0x24, "data": "02"}]


def test_decode_8bit_with_ports(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = "00440B914306101122F20004621132125000400A0605040B8423F0010203"
    code, out, _ = _run(["decode", pdu], capsys)
    obj = json.loads(out)
    assert code == 0
    assert (obj["encoding"], obj["ports"], obj["dcs"]) == ("8bit", [2948, 9200], 4)
