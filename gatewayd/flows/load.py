"""Load ``flows.toml`` into a :class:`FlowSet`, refusing anything doubtful at start.

Errors are :class:`~gatewayd.config.ConfigError` (file, dotted key, reason), like the main
config's. Templates are compiled here and rendered with a sample by :func:`check_templates`,
which reports each one's alphabet and SMS parts and flags UCS-2 and budget overruns.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from gatewayd.config import ConfigError, FlowsConfig
from gatewayd.core.keywords import fold
from gatewayd.customers import Frequency, MessageKind
from gatewayd.flows.model import (
    Action,
    Branch,
    Condition,
    Exit,
    Flow,
    FlowSet,
    PreferenceKeyword,
    Scope,
    Segment,
    Send,
    Step,
    Survey,
    Template,
    Wait,
    WaitFor,
)
from gatewayd.flows.templates import Preview, Renderer, TemplateRenderError, preview
from gatewayd.store import Category

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ACTIONS = ("wait", "until", "wait_for", "if", "send", "exit")
# A reminder's time: a field of the event's data, plus or minus a duration.
_UNTIL = re.compile(r"^data\.([A-Za-z_][A-Za-z0-9_.]*)\s*(?:([+-])\s*(\S+))?$")
EXIT = "exit"


def load_flows(path: str | Path) -> FlowSet:
    """Read and validate ``path`` (raises ConfigError)."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", "the file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
    return parse_flows(raw, source=source)


def parse_flows(raw: dict[str, Any], *, source: Path | None = None) -> FlowSet:
    """Validate an already-parsed ``flows.toml`` document."""
    return _Parser(source).flowset(raw)


def parse_duration(value: Any) -> float:
    """``"30d"``, ``"2h"``, ``"15m"``, ``"45s"``, ``"1w"`` as seconds (ValueError otherwise)."""
    if not isinstance(value, str) or not (m := _DURATION.match(value)):
        raise ValueError(f"expected a duration such as '30d', '2h', '15m', got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def check_templates(flows: FlowSet, settings: FlowsConfig) -> list[Preview]:
    """Every template rendered with the sample as the engine would send it (ConfigError when
    one cannot render). Marketing is inferred from the steps that send the template."""
    renderer = Renderer(flows.default_locale)
    marketing = {
        template
        for flow in flows.flows
        for step in flow.steps
        if isinstance(step.action, Send) and step.action.category is Category.MARKETING
        for template in step.action.templates()
    }
    out: list[Preview] = []
    for name, template in flows.templates.items():
        try:
            out.extend(
                preview(
                    renderer,
                    template,
                    brand=settings.brand,
                    marketing=name in marketing,
                    budget=settings.segment_budget,
                    base_url=settings.public_base_url,
                    links=flows.links,
                )
            )
        except TemplateRenderError as exc:
            raise ConfigError(
                settings.file, f"templates.{name}.{exc.language}", exc.reason
            ) from exc
    return out


class _Parser:
    def __init__(self, source: Path | None) -> None:
        self.source = source
        self._env = SandboxedEnvironment()

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def _table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, "expected a table")
        return value

    def _keys(self, table: dict[str, Any], allowed: Iterable[str], key: str) -> None:
        allowed = tuple(allowed)
        for name in table:
            if name not in allowed:
                sub = f"{key}.{name}" if key else name
                raise self.error(sub, f"unknown key (expected one of: {', '.join(allowed)})")

    def _str(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "expected a non-empty string")
        return value

    def _strs(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a string or a non-empty array of strings")
        return tuple(self._str(v, f"{key}[{i}]") for i, v in enumerate(value))

    def flowset(self, raw: dict[str, Any]) -> FlowSet:
        self._keys(raw, ("default_locale", "links", "templates", "flows", "preferences"), "")
        default_locale = self._str(raw.get("default_locale", "es"), "default_locale")
        links = {
            name: self._url(url, f"links.{name}")
            for name, url in self._table(raw.get("links", {}), "links").items()
        }
        templates = {
            name: self.template(name, value, f"templates.{name}")
            for name, value in self._table(raw.get("templates", {}), "templates").items()
        }
        flows_raw = raw.get("flows", [])
        if not isinstance(flows_raw, list):
            raise self.error("flows", "expected an array of tables ([[flows]])")
        flows: list[Flow] = []
        names: set[str] = set()
        for i, value in enumerate(flows_raw):
            flow = self.flow(self._table(value, f"flows[{i}]"), f"flows[{i}]", templates)
            if flow.name in names:
                raise self.error(f"flows[{i}].name", f"duplicate flow name {flow.name!r}")
            names.add(flow.name)
            flows.append(flow)
        keywords = self.preference_keywords(raw.get("preferences", {}))
        for i, flow in enumerate(flows):
            for j, step in enumerate(flow.steps):
                if isinstance(step.action, Send):
                    for other in step.action.supersedes:
                        if other not in names:
                            where = f"flows[{i}].steps[{j}].supersedes"
                            raise self.error(where, f"no flow named {other!r}")
        return FlowSet(tuple(flows), templates, default_locale, links, keywords)

    def preference_keywords(self, value: Any) -> tuple[PreferenceKeyword, ...]:
        """``[preferences.keywords.<lang>]``: ``reduced = ["MENOS"]`` and a ``reduced_reply``
        per frequency that has words."""
        table = self._table(value, "preferences")
        self._keys(table, ("keywords",), "preferences")
        out: list[PreferenceKeyword] = []
        seen: dict[str, str] = {}
        langs = self._table(table.get("keywords", {}), "preferences.keywords")
        for lang, raw in langs.items():
            key = f"preferences.keywords.{lang}"
            if not re.match(r"^[a-z]{2,3}$", lang):
                raise self.error(key, "expected a language code such as 'es'")
            words = self._table(raw, key)
            names = [f.value for f in Frequency]
            self._keys(words, [*names, *(f"{n}_reply" for n in names)], key)
            for freq in Frequency:
                if freq.value not in words:
                    continue
                reply_key = f"{freq.value}_reply"
                if reply_key not in words:
                    raise self.error(f"{key}.{reply_key}", "a keyword needs its confirmation")
                reply = self._str(words[reply_key], f"{key}.{reply_key}")
                for i, word in enumerate(self._strs(words[freq.value], f"{key}.{freq.value}")):
                    folded = fold(word)
                    where = f"{key}.{freq.value}[{i}]"
                    if not folded:
                        raise self.error(where, "a keyword needs a letter or digit")
                    if folded in seen:
                        raise self.error(where, f"{word!r} is already a keyword ({seen[folded]})")
                    seen[folded] = where
                    out.append(PreferenceKeyword(folded, freq, lang, reply))
        return tuple(out)

    def _url(self, value: Any, key: str) -> str:
        url = self._str(value, key)
        if not url.startswith(("http://", "https://")):
            raise self.error(key, "expected an http:// or https:// URL")
        return url

    def template(self, name: str, value: Any, key: str) -> Template:
        if not _NAME.match(name):
            raise self.error(key, "template names are lower_case words")
        table = self._table(value, key)
        fold = table.get("fold_accents", False)
        if not isinstance(fold, bool):
            raise self.error(f"{key}.fold_accents", "expected true or false")
        texts: dict[str, str] = {}
        for lang, text in table.items():
            if lang == "fold_accents":
                continue
            if not re.match(r"^[a-z]{2,3}$", lang):
                raise self.error(f"{key}.{lang}", "expected a language code such as 'es'")
            source = self._str(text, f"{key}.{lang}")
            try:
                self._env.parse(source)
            except TemplateSyntaxError as exc:
                raise self.error(f"{key}.{lang}", f"template syntax: {exc.message}") from exc
            texts[lang] = source
        if not texts:
            raise self.error(key, "needs a text in at least one language (es = '...')")
        return Template(name, texts, fold)

    def flow(self, table: dict[str, Any], key: str, templates: dict[str, Template]) -> Flow:
        allowed = ("name", "trigger", "when", "category", "scope", "exit_on", "steps", "holdout")
        self._keys(table, allowed, key)
        name = self._str(table.get("name"), f"{key}.name")
        if not _NAME.match(name):
            raise self.error(f"{key}.name", "flow names are lower_case words")
        trigger = self._event(table.get("trigger"), f"{key}.trigger")
        category = self._enum(Category, table.get("category", "transactional"), f"{key}.category")
        scope = self._enum(Scope, table.get("scope", "order"), f"{key}.scope")
        exit_on = tuple(
            self._event(v, f"{key}.exit_on[{i}]")
            for i, v in enumerate(table.get("exit_on", []) or [])
        )
        when = self.condition(table.get("when", {}), f"{key}.when", sends=())
        steps_raw = table.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise self.error(f"{key}.steps", "expected a non-empty array of steps")
        steps: list[Step] = []
        for i, raw in enumerate(steps_raw):
            steps.append(self.step(raw, f"{key}.steps[{i}]", steps, templates, category))
        holdout = table.get("holdout", 0)
        if isinstance(holdout, bool) or not isinstance(holdout, int | float):
            raise self.error(f"{key}.holdout", "expected a percentage from 0 to below 100")
        if not 0 <= holdout < 100:
            raise self.error(f"{key}.holdout", "expected a percentage from 0 to below 100")
        flow = Flow(name, trigger, tuple(steps), when, category, scope, exit_on, float(holdout))
        for i, step in enumerate(flow.steps):
            if isinstance(step.action, Branch):
                for target in (step.action.then, step.action.otherwise):
                    if target not in (None, EXIT) and all(s.name != target for s in flow.steps):
                        raise self.error(f"{key}.steps[{i}]", f"no step named {target!r}")
        return flow

    def _event(self, value: Any, key: str) -> str:
        text = self._str(value, key)
        if not _EVENT.match(text):
            raise self.error(key, "expected an event type such as 'order.placed'")
        return text

    def _survey(self, value: Any, key: str) -> Survey:
        """``{ pattern = "^[1-5]$", window = "3d" }``: what counts as an answer, how long."""
        table = self._table(value, key)
        self._keys(table, ("pattern", "window"), key)
        pattern = self._str(table.get("pattern"), f"{key}.pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error(f"{key}.pattern", f"not a regular expression: {exc}") from exc
        window = self._duration(table.get("window", "3d"), f"{key}.window")
        return Survey(pattern, window)

    def _variants(
        self, value: Any, key: str, templates: dict[str, Template]
    ) -> tuple[tuple[str, float], ...]:
        """``{ template = weight, ... }``: the arms of an experiment, the first the control."""
        table = self._table(value, key)
        out: list[tuple[str, float]] = []
        for name, weight in table.items():
            if name not in templates:
                raise self.error(f"{key}.{name}", f"no template named {name!r}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise self.error(f"{key}.{name}", "expected a weight above 0")
            out.append((name, float(weight)))
        if len(out) == 1:
            raise self.error(key, "an experiment needs at least two variants")
        return tuple(out)

    def _by_segment(
        self, value: Any, key: str, templates: dict[str, Template]
    ) -> tuple[tuple[Segment, str], ...]:
        """``{ high_value = "template", ... }``: a template per segment, in the order given."""
        table = self._table(value, key)
        out: list[tuple[Segment, str]] = []
        for seg, name in table.items():
            segment = self._enum(Segment, seg, f"{key}.{seg}")
            if self._str(name, f"{key}.{seg}") not in templates:
                raise self.error(f"{key}.{seg}", f"no template named {name!r}")
            out.append((segment, name))
        return tuple(out)

    def _enum(self, cls: Any, value: Any, key: str) -> Any:
        allowed = [m.value for m in cls]
        if value not in allowed:
            raise self.error(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return cls(value)

    def _duration(self, value: Any, key: str, *, zero: bool = False) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from exc
        # A zero wait in a loop of branches would spin: every wait takes some time.
        if seconds <= 0 and not zero:
            raise self.error(key, "must be longer than 0")
        return seconds

    def step(
        self,
        raw: Any,
        key: str,
        earlier: list[Step],
        templates: dict[str, Template],
        category: Category,
    ) -> Step:
        table = self._table(raw, key)
        kinds = [k for k in _ACTIONS if k in table]
        if len(kinds) != 1:
            raise self.error(key, f"a step has exactly one of: {', '.join(_ACTIONS)}")
        kind = kinds[0]
        action: Action
        if kind == "wait":
            self._keys(table, ("name", "wait", "before"), key)
            if table["wait"] == "usage_days":
                before = self._duration(table.get("before", "0s"), f"{key}.before", zero=True)
                action = Wait(0.0, usage_days=True, before_seconds=before)
            else:
                action = Wait(self._duration(table["wait"], f"{key}.wait"))
            default = f"wait_{len(earlier) + 1}"
        elif kind == "until":
            self._keys(table, ("name", "until"), key)
            raw = self._str(table["until"], f"{key}.until")
            if not (m := _UNTIL.match(raw.strip())):
                raise self.error(f"{key}.until", "expected 'data.FIELD' or 'data.FIELD - 24h'")
            offset = self._duration(m.group(3), f"{key}.until") if m.group(3) else 0.0
            sign = -1.0 if m.group(2) == "-" else 1.0
            action = Wait(sign * offset, until_field=m.group(1))
            default = f"until_{len(earlier) + 1}"
        elif kind == "wait_for":
            self._keys(table, ("name", "wait_for", "timeout", "on_timeout"), key)
            on_timeout = table.get("on_timeout", "continue")
            if on_timeout not in ("continue", EXIT):
                raise self.error(f"{key}.on_timeout", "expected 'continue' or 'exit'")
            if "timeout" not in table:
                raise self.error(f"{key}.timeout", "required: every wait ends")
            action = WaitFor(
                self._event(table["wait_for"], f"{key}.wait_for"),
                self._duration(table["timeout"], f"{key}.timeout"),
                exit_on_timeout=on_timeout == EXIT,
            )
            default = f"wait_for_{len(earlier) + 1}"
        elif kind == "if":
            self._keys(table, ("name", "if", "then", "else"), key)
            sends = tuple(s.name for s in earlier if isinstance(s.action, Send))
            cond = self.condition(table["if"], f"{key}.if", sends=sends)
            then = self._str(table["then"], f"{key}.then") if "then" in table else None
            other = self._str(table["else"], f"{key}.else") if "else" in table else None
            action = Branch(cond, then, other)
            default = f"branch_{len(earlier) + 1}"
        elif kind == "send":
            send_keys = ("category", "kind", "variants", "by_segment", "supersedes", "ask")
            self._keys(table, ("name", "send", *send_keys), key)
            template = self._str(table["send"], f"{key}.send")
            if template not in templates:
                raise self.error(f"{key}.send", f"no template named {template!r}")
            variants = self._variants(table.get("variants", {}), f"{key}.variants", templates)
            by_segment = self._by_segment(
                table.get("by_segment", {}), f"{key}.by_segment", templates
            )
            cat = self._enum(Category, table.get("category", category.value), f"{key}.category")
            # Without a kind, a marketing step is "marketing" and any other "transactional".
            fallback = "marketing" if cat is Category.MARKETING else "transactional"
            kind = self._enum(MessageKind, table.get("kind", fallback), f"{key}.kind")
            supersedes = self._opt_strs(table, "supersedes", key)
            survey = self._survey(table["ask"], f"{key}.ask") if "ask" in table else None
            action = Send(template, cat, kind, variants, by_segment, supersedes, survey)
            default = template
        else:
            self._keys(table, ("name", "exit", "unsubscribe"), key)
            reason = table["exit"]
            if reason is True:
                reason = "done"
            unsub = table.get("unsubscribe", False)
            if not isinstance(unsub, bool):
                raise self.error(f"{key}.unsubscribe", "expected true or false")
            action = Exit(self._str(reason, f"{key}.exit"), unsub)
            default = f"exit_{len(earlier) + 1}"
        name = self._str(table.get("name", default), f"{key}.name")
        if not _NAME.match(name) or name == EXIT:
            raise self.error(f"{key}.name", "step names are lower_case words other than 'exit'")
        if any(s.name == name for s in earlier):
            raise self.error(f"{key}.name", f"duplicate step name {name!r}: name the step")
        return Step(name, action)

    def condition(self, raw: Any, key: str, *, sends: tuple[str, ...]) -> Condition:
        table = self._table(raw, key)
        allowed = ["segment", "kind", "category", "locale", "country", "delivery_method"]
        self._keys(table, [*allowed, "consumable", "clicked", "replied", "answered", "answer"], key)
        segments = tuple(
            self._enum(Segment, s, f"{key}.segment")
            for s in (self._strs(table["segment"], f"{key}.segment") if "segment" in table else ())
        )
        kinds = self._strs(table["kind"], f"{key}.kind") if "kind" in table else ()
        for k in kinds:
            if k not in ("physical", "digital"):
                raise self.error(f"{key}.kind", "expected physical or digital")
        consumable = table.get("consumable")
        if consumable is not None and not isinstance(consumable, bool):
            raise self.error(f"{key}.consumable", "expected true or false")
        refs: dict[str, str | None] = {}
        for ref in ("clicked", "replied", "answered"):
            value = table.get(ref)
            if value is not None:
                value = self._str(value, f"{key}.{ref}")
                if value not in sends:
                    raise self.error(f"{key}.{ref}", f"no earlier send step named {value!r}")
            refs[ref] = value
        return Condition(
            segments=segments,
            kinds=kinds,
            categories=self._opt_strs(table, "category", key),
            locales=self._opt_strs(table, "locale", key),
            countries=tuple(c.upper() for c in self._opt_strs(table, "country", key)),
            delivery_methods=self._opt_strs(table, "delivery_method", key),
            consumable=consumable,
            clicked=refs.get("clicked"),
            replied=refs.get("replied"),
            answered=refs.get("answered"),
            answers=self._answers(table, key),
        )

    def _answers(self, table: dict[str, Any], key: str) -> tuple[str, ...]:
        if "answer" not in table:
            return ()
        if "answered" not in table:
            raise self.error(f"{key}.answer", "names the answers of the step in 'answered'")
        return self._strs(table["answer"], f"{key}.answer")

    def _opt_strs(self, table: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
        return self._strs(table[name], f"{key}.{name}") if name in table else ()
