"""flows.toml: the examples load, errors name file and key, templates are costed, and
``gatewayd flows check`` shows every template's sample with its segment count."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gatewayd.cli import main
from gatewayd.config import ConfigError, FlowsConfig
from gatewayd.flows import check_templates, load_flows, parse_flows
from gatewayd.flows.check import check_flows
from gatewayd.flows.model import Branch, Send, WaitFor
from gatewayd.store import Category
from tests.gatewayd.flows.harness import EXAMPLE_FLOWS


def test_the_example_flows_load_with_every_template_in_gsm7_within_budget() -> None:
    flows = load_flows(EXAMPLE_FLOWS)
    names = {f.name for f in flows.flows}
    assert names >= {
        "order_confirmation",
        "shipping",
        "after_delivery",
        "digital_onboarding",
        "loyalty_invite",
        "replenishment",
        "reengagement",
    }
    after = flows.flow("after_delivery")
    assert after is not None
    assert isinstance(after.steps[0].action, WaitFor)
    assert isinstance(after.steps[3].action, Branch)
    previews = check_templates(flows, FlowsConfig(brand="Tienda"))
    assert {(p.template, p.language) for p in previews} >= {("shipped", "es"), ("shipped", "en")}
    for p in previews:
        assert p.flags == (), (p.template, p.language, p.flags)
        assert p.text.startswith("Tienda: ")
    feedback = next(p for p in previews if (p.template, p.language) == ("feedback", "es"))
    assert feedback.text.endswith("Responde BAJA para darte de baja")


def test_accents_without_folding_and_long_texts_are_flagged() -> None:
    flows = parse_flows(
        {
            "templates": {
                "accents": {"es": "Tu envío está en camino"},
                "long": {"en": "x" * 200, "fold_accents": True},
            },
            "flows": [
                {
                    "name": "f",
                    "trigger": "order.placed",
                    "steps": [{"send": "accents"}, {"send": "long", "category": "marketing"}],
                }
            ],
        }
    )
    previews = {p.template: p for p in check_templates(flows, FlowsConfig(segment_budget=1))}
    assert previews["accents"].flags == ("ucs2",)
    assert previews["accents"].encoding.value == "ucs2"
    assert previews["long"].segments == 2
    assert previews["long"].flags == ("over_budget: 2 > 1",)
    step = flows.flows[0].steps[1]
    assert isinstance(step.action, Send)
    assert step.action.category is Category.MARKETING


def _flow(**changes: object) -> dict[str, object]:
    flow: dict[str, object] = {
        "name": "f",
        "trigger": "order.placed",
        "steps": [{"send": "t"}, {"wait": "1d"}, {"if": {"clicked": "t"}, "then": "exit"}],
    }
    flow.update(changes)
    return {"templates": {"t": {"es": "Hola {{ customer.first_name }}"}}, "flows": [flow]}


@pytest.mark.parametrize(
    ("doc", "key", "reason"),
    [
        (_flow(steps=[{"send": "nope"}]), "flows[0].steps[0].send", "no template"),
        (_flow(steps=[{"wait": "soon"}]), "flows[0].steps[0].wait", "duration"),
        (_flow(steps=[{"wait": "0m"}]), "flows[0].steps[0].wait", "longer than 0"),
        (
            _flow(steps=[{"if": {"clicked": "t"}, "then": "exit"}, {"send": "t"}]),
            "flows[0].steps[0].if.clicked",
            "no earlier send step",
        ),
        (
            _flow(steps=[{"send": "t"}, {"if": {}, "then": "nowhere"}]),
            "flows[0].steps[1]",
            "no step",
        ),
        (_flow(steps=[{"wait_for": "order.delivered"}]), "flows[0].steps[0].timeout", "required"),
        (_flow(trigger="placed"), "flows[0].trigger", "event type"),
        (_flow(category="promo"), "flows[0].category", "expected one of"),
        (_flow(when={"segment": "vip"}), "flows[0].when.segment", "expected one of"),
        (_flow(steps=[{"send": "t", "wait": "1d"}]), "flows[0].steps[0]", "exactly one"),
        (_flow(steps=[{"send": "t"}, {"send": "t"}]), "flows[0].steps[1].name", "duplicate"),
        (_flow(colour="red"), "flows[0].colour", "unknown key"),
    ],
)
def test_errors_name_the_key(doc: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_flows(doc, source=Path("flows.toml"))
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith("flows.toml: ")


def test_a_template_syntax_error_and_an_unknown_variable_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_flows({"templates": {"t": {"es": "Hola {{ customer.name"}}})
    assert info.value.key == "templates.t.es"
    flows = parse_flows({"templates": {"t": {"es": "Hola {{ cliente.nombre }}"}}})
    with pytest.raises(ConfigError) as info:
        check_templates(flows, FlowsConfig())
    assert info.value.key == "templates.t.es"
    assert "cliente" in info.value.reason


def test_templates_are_sandboxed() -> None:
    flows = parse_flows({"templates": {"t": {"es": "{{ ''.__class__.__mro__ }}"}}})
    with pytest.raises(ConfigError) as info:
        check_templates(flows, FlowsConfig())
    assert "unsafe" in info.value.reason or "__class__" in info.value.reason


def test_flows_check_prints_each_template_sample_and_segments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["flows", "check", "--config", str(EXAMPLE_FLOWS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {EXAMPLE_FLOWS}: ")
    assert "template shipped [es]: gsm7, 1 segment(s)" in out
    assert "template reengage_60 [en]: gsm7, 1 segment(s)" in out
    assert "Sigue el envío: http://127.0.0.1:8081/s/" in out
    assert "FLAGGED" not in out


def test_flows_check_uses_the_daemon_settings_and_reports_errors(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t" * 20)
    bad = tmp_path / "flows.toml"
    bad.write_text('[templates.t]\nes = "Envío número {{ order.id }}"\n')
    settings = tmp_path / "gatewayd.toml"
    settings.write_text(
        'database = "gw.db"\n[api]\ntoken_files = ["token"]\n'
        '[flows]\nfile = "flows.toml"\nbrand = "MiTienda"\nsegment_budget = 1\n'
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_flows(bad, out, err, settings_file=settings) == 0
    assert "template t [es]: ucs2, 1 segment(s)" in out.getvalue()
    assert "FLAGGED: ucs2" in out.getvalue()
    assert "MiTienda: Envío número 100234" in out.getvalue()
    bad.write_text("[[flows]]\nname = 'x'\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_flows(bad, out, err) == 1
    assert "flows[0].trigger" in err.getvalue()
