"""The sliding-window limiter as a property: whatever is asked, no window overflows."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.config.model import Limits
from gatewayd.core import Limiter

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def most_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@settings(max_examples=150, deadline=None)
@given(
    per_minute=st.integers(1, 8),
    per_hour=st.integers(8, 40),
    gap=st.sampled_from([0.0, 2.0]),
    requests=st.lists(
        st.tuples(st.integers(1, 4), st.floats(0, 200), st.floats(0, 9)), max_size=60
    ),
)
def test_no_window_ever_holds_more_than_its_maximum(
    per_minute: int,
    per_hour: int,
    gap: float,
    requests: list[tuple[int, float, float]],
) -> None:
    limiter = Limiter(
        Limits(
            max_per_minute=per_minute,
            max_per_hour=per_hour,
            max_per_day=None,
            min_gap_seconds=gap,
            gap_jitter_seconds=1.0,
        ),
        rng=random.Random(7),
    )
    now = T0
    rng = random.Random(len(requests))
    sent: list[float] = []
    for parts, idle, part_time in requests:
        now += timedelta(seconds=idle)
        slot = limiter.earliest(parts, now)
        if slot is None:
            assert parts > per_minute
            continue
        assert slot >= now
        now = slot
        for _ in range(parts):  # parts go one after another, each after the gap
            now = max(now, limiter.gap_ready())
            counted = now
            limiter.record(counted)
            now += timedelta(seconds=part_time)  # prompt, Ctrl-Z, +CMGS
            limiter.settle(counted, now)
            # The network saw it somewhere in between.
            sent.append(counted.timestamp() + rng.uniform(0, part_time))
    assert most_in_window(sent, 60) <= per_minute
    assert most_in_window(sent, 3600) <= per_hour
    if gap:
        assert all(b - a >= gap - 1e-6 for a, b in itertools.pairwise(sent))


def test_history_loaded_at_start_counts() -> None:
    history = [T0 + timedelta(seconds=s) for s in (0, 10, 20)]
    limiter = Limiter(Limits(max_per_minute=3, max_per_hour=None, max_per_day=None), history)
    assert limiter.earliest(1, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=60)
    assert limiter.earliest(2, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=70)
    assert limiter.earliest(4, T0) is None
    assert limiter.headroom(T0 + timedelta(seconds=65)).minute == 1
