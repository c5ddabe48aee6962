"""Experiments: weighted template variants and a holdout, assigned from a hash of (flow,
customer), with per-arm metrics, intervals and revenue."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from gatewayd.config import ConfigError
from gatewayd.flows import Event, FlowSet, parse_event, parse_flows
from gatewayd.flows.experiments import HOLDOUT, choose_template, in_holdout
from gatewayd.flows.metrics import compare, wilson
from gatewayd.flows.model import Segment, Send
from tests.gatewayd.flows.harness import FlowHarness, event, start_flows

DOC = {
    "templates": {
        "thanks_a": {"es": "Gracias por tu pedido {{ order.id }}", "en": "Thanks {{ order.id }}"},
        "thanks_b": {"es": "¡Gracias! Pedido {{ order.id }}", "en": "Thank you! {{ order.id }}"},
        "thanks_vip": {"es": "Gracias, cliente VIP", "en": "Thanks, VIP"},
    },
    "flows": [
        {
            "name": "thanks",
            "trigger": "order.delivered",
            "holdout": 20,
            "steps": [{"send": "thanks_a", "variants": {"thanks_a": 50, "thanks_b": 50}}],
        }
    ],
}
FLOWS = parse_flows(DOC)


def phone(i: int) -> str:
    return f"+3460000{i:04d}"


async def test_a_holdout_and_two_variants_split_1000_enrolments_and_report_per_arm(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock, FLOWS)
    try:
        await fh.h.gateway.pause("m1")  # what is measured here is the assignment, not sending
        for i in range(1000):
            await fh.engine.post_event(
                _parse(fh, "order.delivered", i, order=f"O-{i}", total="10.00")
            )
        await fh.engine.run_due()
        arms = Counter(arm_of(i) for i in range(1000))
        # Within ±5 percentage points of the weights: 20 % holdout, 40 % / 40 %.
        assert abs(arms[HOLDOUT] / 1000 - 0.20) <= 0.05
        assert abs(arms["thanks_a"] / 1000 - 0.40) <= 0.05
        assert abs(arms["thanks_b"] / 1000 - 0.40) <= 0.05
        # Every 4th customer orders again (EUR 25.50): conversions and revenue per arm.
        expected_conv: Counter[str] = Counter()
        await clock.advance(3600)
        for i in range(0, 1000, 4):
            await fh.engine.post_event(_parse(fh, "order.placed", i, order=f"R-{i}", total="25.50"))
            expected_conv[arm_of(i)] += 1
        metrics = (await fh.engine.metrics(clock.now().replace(year=2025))).to_json()
    finally:
        await fh.close()
    (thanks,) = [f for f in metrics["flows"] if f["flow"] == "thanks"]
    assert thanks["enrolled"] == 1000
    (step,) = thanks["steps"]
    assert step["control"] == HOLDOUT
    by_arm = {v["variant"]: v for v in step["variants"]}
    assert set(by_arm) == {HOLDOUT, "thanks_a", "thanks_b"}
    assert by_arm[HOLDOUT]["sent"] == 0
    assert by_arm[HOLDOUT]["n"] == arms[HOLDOUT]
    for arm in ("thanks_a", "thanks_b"):
        assert by_arm[arm]["sent"] == arms[arm]
    for arm, v in by_arm.items():
        assert v["converted"] == expected_conv[arm]
        assert Decimal(v["revenue"]) == Decimal("25.50") * expected_conv[arm]
        low, high = v["ci95"]["converted"]
        assert low <= v["rates"]["converted"] <= high
    vs = by_arm["thanks_b"]["vs_control"]["converted"]
    assert vs["ci95"][0] <= vs["diff"] <= vs["ci95"][1]
    assert set(by_arm["thanks_a"]["vs_control"]) == {"converted"}  # a holdout got no link
    assert step["sent"] == arms["thanks_a"] + arms["thanks_b"]


def send_step(flows: FlowSet) -> Send:
    action = flows.flows[0].steps[0].action
    assert isinstance(action, Send)
    return action


def arm_of(i: int) -> str:
    """The arm customer ``c-i`` is in, from the assignment functions alone."""
    if in_holdout(FLOWS.flows[0], f"c-{i}"):
        return HOLDOUT
    return choose_template("thanks", f"c-{i}", send_step(FLOWS), frozenset())[0]


def _parse(fh: FlowHarness, type: str, i: int, **kw: str) -> Event:
    now = fh.clock.now()
    body = event(type, at=now, customer=f"c-{i}", phone=phone(i), **kw)
    return parse_event(body, region="ES", now=now)


def test_assignment_is_a_pure_function_of_flow_and_customer() -> None:
    action = send_step(FLOWS)
    first = [choose_template("thanks", f"c-{i}", action, frozenset()) for i in range(50)]
    again = [choose_template("thanks", f"c-{i}", action, frozenset()) for i in range(50)]
    assert first == again
    other = [choose_template("other", f"c-{i}", action, frozenset()) for i in range(50)]
    assert other != first  # another flow draws its own split


def test_a_step_picks_its_tone_by_segment_without_a_branch() -> None:
    doc = {
        "templates": DOC["templates"],
        "flows": [
            {
                "name": "tone",
                "trigger": "order.delivered",
                "steps": [
                    {
                        "send": "thanks_a",
                        "by_segment": {"high_value": "thanks_vip", "returning": "thanks_b"},
                    }
                ],
            }
        ],
    }
    action = send_step(parse_flows(doc))
    vip = frozenset({Segment.HIGH_VALUE, Segment.RETURNING})
    assert choose_template("tone", "c", action, vip) == ("thanks_vip", None)
    returning = frozenset({Segment.RETURNING})
    assert choose_template("tone", "c", action, returning)[0] == "thanks_b"
    first_time = frozenset({Segment.FIRST_TIME})
    assert choose_template("tone", "c", action, first_time)[0] == "thanks_a"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"holdout": 100}, "flows[0].holdout"),
        (
            {"steps": [{"send": "thanks_a", "variants": {"nope": 1, "thanks_b": 1}}]},
            "flows[0].steps[0].variants.nope",
        ),
        (
            {"steps": [{"send": "thanks_a", "variants": {"thanks_a": 0, "thanks_b": 1}}]},
            "flows[0].steps[0].variants.thanks_a",
        ),
        (
            {"steps": [{"send": "thanks_a", "by_segment": {"rich": "thanks_b"}}]},
            "flows[0].steps[0].by_segment.rich",
        ),
    ],
)
def test_a_bad_experiment_is_refused_at_load_naming_the_key(
    patch: dict[str, object], field: str
) -> None:
    flow = dict(DOC["flows"][0]) | patch  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as err:
        parse_flows({"templates": DOC["templates"], "flows": [flow]})
    assert err.value.key == field


def test_intervals() -> None:
    assert wilson(0, 0) is None
    low, high = wilson(50, 100)  # type: ignore[misc]
    assert low == pytest.approx(0.4038, abs=1e-4)
    assert high == pytest.approx(0.5962, abs=1e-4)
    out = compare(60, 100, 40, 100)
    assert out is not None
    assert out["diff"] == 0.2
    assert out["ci95"] == [pytest.approx(0.0642, abs=1e-4), pytest.approx(0.3358, abs=1e-4)]
    assert out["z"] == pytest.approx(2.828, abs=1e-3)
    assert out["p_value"] < 0.01
