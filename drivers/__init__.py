"""The hardware side of gatewayd: PDU codec, AT channel, modems, vendor profiles, simulator.

Nothing here imports :mod:`gatewayd`; the daemon builds on these packages, not the reverse.
"""
