"""Vendor quirks as data: generic, SIMCom, Quectel, Huawei, Telit, Wavecom."""

from drivers.profiles.profile import (
    GENERIC,
    HUAWEI,
    PROFILES,
    QUECTEL,
    SIMCOM,
    TELIT,
    WAVECOM,
    Profile,
    UnknownProfile,
    detect_profile,
    get_profile,
)

__all__ = [
    "GENERIC",
    "HUAWEI",
    "PROFILES",
    "QUECTEL",
    "SIMCOM",
    "TELIT",
    "WAVECOM",
    "Profile",
    "UnknownProfile",
    "detect_profile",
    "get_profile",
]
