"""gatewayd: a self-hosted SMS gateway daemon for pools of GSM modems."""

__version__ = "0.1.0"
