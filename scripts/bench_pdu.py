#!/usr/bin/env python3
"""Micro-benchmark of the PDU codec: encodes and decodes per second.

Three messages: 1-part GSM 7-bit, 3-part GSM 7-bit, 2-part UCS-2.  Each figure is the median
of several timed repeats (time.perf_counter).  Not part of the test suite.

    .venv/bin/python scripts/bench_pdu.py [--repeats N] [--number N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from drivers.pdu import decode, encode_submit

TO = "+34600111222"
MESSAGES = {
    "gsm7 1 part": "Your order 12345 has shipped. Track it at https://example.com/t/AbC123",
    "gsm7 3 parts": ("Thanks for your order! Your parcel is on its way {ref 42}. " * 7)[:450],
    "ucs2 2 parts": "Tu pedido está en camino 🚚 — llegará el jueves. ¡Gracias por tu compra! "
    "Te avisaremos por SMS.",
}


def _rate(func: Callable[[], object], number: int, repeats: int) -> float:
    """Median calls per second over ``repeats`` runs of ``number`` calls."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            func()
        rates.append(number / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    """Print one line per message: parts, whole-message encodes/s and decodes/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'message':<14} {'parts':>5} {'encodes/s':>12} {'decodes/s':>12}")
    for name, text in MESSAGES.items():
        parts = encode_submit(TO, text, concat_ref=1)
        hexes = [p.hex() for p in parts]

        def encode(text: str = text) -> object:
            return encode_submit(TO, text, concat_ref=1)

        def decode_all(hexes: list[str] = hexes) -> object:
            return [decode(h) for h in hexes]

        enc = _rate(encode, args.number, args.repeats)
        dec = _rate(decode_all, args.number, args.repeats)
        print(f"{name:<14} {len(parts):>5} {enc:>12,.0f} {dec:>12,.0f}")


if __name__ == "__main__":
    main()
