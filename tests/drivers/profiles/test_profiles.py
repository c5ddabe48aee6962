"""Profiles: lookup, auto-detection from AT+CGMI, and the facts the driver relies on."""

from __future__ import annotations

import dataclasses

import pytest

from drivers.profiles import (
    GENERIC,
    HUAWEI,
    PROFILES,
    QUECTEL,
    SIMCOM,
    TELIT,
    WAVECOM,
    UnknownProfile,
    detect_profile,
    get_profile,
)


@pytest.mark.parametrize(
    ("cgmi", "expected"),
    [
        ("SIMCOM_Ltd", SIMCOM),
        ("Quectel", QUECTEL),
        ("huawei", HUAWEI),
        ("Manufacturer: huawei", HUAWEI),
        ("Telit", TELIT),
        ("WAVECOM MODEM", WAVECOM),
        ("SIMULATED", GENERIC),
        ("", GENERIC),
    ],
)
def test_detect_from_cgmi(cgmi: str, expected: object) -> None:
    assert detect_profile(cgmi) is expected


def test_get_profile_by_name_and_unknown() -> None:
    assert get_profile(" Quectel ") is QUECTEL
    with pytest.raises(UnknownProfile) as err:
        get_profile("nokia")
    assert "generic" in str(err.value)


def test_profiles_are_frozen_and_complete() -> None:
    assert set(PROFILES) >= {"generic", "simcom", "quectel", "huawei", "telit", "wavecom"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENERIC.cnmi_ds = 2  # type: ignore[misc]


def test_cnmi_follows_design_default() -> None:
    # DESIGN.md: AT+CNMI=2,1,0,<ds>,0 with <ds> per profile; SIM800 has no ds=2.
    assert SIMCOM.cnmi() == "AT+CNMI=2,1,0,1,0"
    assert HUAWEI.cnmi() == "AT+CNMI=2,1,0,2,0"


def test_every_profile_prefers_modem_memory_and_knows_reboots() -> None:
    for profile in PROFILES.values():
        assert profile.storage_preference[0] == "ME"
        assert "RDY" in profile.reboot_markers
        assert profile.iccid_command.startswith("AT")
