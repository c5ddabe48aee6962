"""The readable table of a results document: each figure next to its target."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _row(
    rows: list[tuple[str, str, str, str]], name: str, value: Any, target: str, ok: Any
) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    rows.append((name, _fmt(value), target, verdict))


def _ge(value: Any, bound: float) -> bool | None:
    return None if value is None else bool(value >= bound)


def _le(value: Any, bound: float) -> bool | None:
    return None if value is None else bool(value <= bound)


def render(doc: dict[str, Any]) -> str:
    """A plain-text table of ``doc`` (see ``gatewayd.bench.__main__``)."""
    m = doc["machine"]
    res = doc["results"]
    rows: list[tuple[str, str, str, str]] = []
    if "pdu" in res:
        for r in res["pdu"].get("rows", []):
            _row(rows, f"pdu {r['message']}: encodes/s", r["encodes_per_s"], "", None)
            _row(rows, f"pdu {r['message']}: decodes/s", r["decodes_per_s"], "", None)
    if "ingest" in res:
        ing = res["ingest"]
        s, b = ing.get("single", {}), ing.get("batch", {})
        _row(
            rows,
            "ingest single: accepted/s",
            s.get("accepted_per_s"),
            ">= 2,000",
            _ge(s.get("accepted_per_s"), 2000),
        )
        _row(rows, "ingest single: p50 ms", s.get("p50_ms"), "", None)
        _row(rows, "ingest single: p99 ms", s.get("p99_ms"), "< 25", _le(s.get("p99_ms"), 25))
        _row(rows, "ingest single: daemon CPU ms/msg", s.get("cpu_ms_per_msg"), "", None)
        _row(
            rows,
            "ingest batch: accepted msgs/s",
            b.get("accepted_per_s"),
            ">= 20,000",
            _ge(b.get("accepted_per_s"), 20000),
        )
        _row(rows, "ingest batch: p99 ms per request", b.get("p99_ms"), "", None)
        _row(rows, "ingest batch: daemon CPU ms/msg", b.get("cpu_ms_per_msg"), "", None)
        _row(
            rows,
            "ingest: accepted all found in store",
            ing["found_in_store"] == ing["accepted_total"],
            f"{_fmt(ing['accepted_total'])} accepted",
            ing["found_in_store"] == ing["accepted_total"],
        )
    if "e2e" in res:
        e = res["e2e"]["median"]
        _row(
            rows,
            f"e2e {e['modems']} modems: sent/s",
            e["sent_per_s"],
            ">= 300",
            _ge(e["sent_per_s"], 300),
        )
        _row(
            rows,
            f"e2e {e['modems']} modems: delivered/s",
            e["delivered_per_s"],
            "(1 s report delay)",
            None,
        )
        _row(rows, "e2e: daemon CPU s per 1,000 msgs", e["daemon_cpu_s_per_1000"], "", None)
        _row(rows, "e2e: all delivered", e["all_delivered"], "", e["all_delivered"])
    if "figures" in res:
        f = res["figures"]
        idle = f["idle_submit_to_cmgs"]
        _row(rows, "idle submit -> AT+CMGS p50 ms", idle["p50_ms"], "< 20", _le(idle["p50_ms"], 20))
        _row(rows, "idle submit -> AT+CMGS max ms", idle["max_ms"], "", None)
        gap = f["one_modem"]["median_gap_between_parts_ms"]
        _row(rows, "own cost per part (1 modem, ms)", gap, "< 20", _le(gap, 20))
    if "util" in res:
        u = res["util"]
        _row(
            rows,
            f"utilisation ({u['seconds']:.0f} s, {u['modems']} modems)",
            u["utilisation"],
            ">= 0.98",
            _ge(u["utilisation"], 0.98),
        )
        _row(
            rows,
            "most parts in any 60 s (one SIM)",
            u["max_in_any_60s"],
            f"<= {u['limit_per_minute']}",
            u["limit_held"],
        )
    if "scale" in res:
        sc = res["scale"]
        for backlog, r in sc["backlogs"].items():
            _row(
                rows,
                f"backlog {int(backlog):,}: enqueue/s",
                r["enqueue"]["accepted_per_s"],
                "",
                None,
            )
            _row(
                rows,
                f"backlog {int(backlog):,}: dispatch parts/s",
                r["dispatch"]["sent_per_s"],
                "",
                None,
            )
            _row(
                rows,
                f"backlog {int(backlog):,}: next-message query ms",
                r["next_work"]["median_ms"],
                "index",
                r["next_work"]["uses_queue_index"],
            )
        for key, value in sc["ratio_large_to_small"].items():
            _row(rows, f"scale ratio {key}", value, "<= 1.5", _le(value, 1.5))
    if "footprint" in res:
        fp = res["footprint"]
        _row(rows, f"RSS idle, {fp['modems']} modems (MiB)", fp["idle_rss_kib"] / 1024, "", None)
        _row(
            rows,
            f"RSS max, {fp['modems']} modems + {fp['backlog']:,} queued (MiB)",
            fp["load_rss_max_kib"] / 1024,
            "< 100",
            _le(fp["load_rss_max_kib"] / 1024, 100),
        )
    if "multinode" in res:
        _multinode_rows(rows, res["multinode"])
    width = max((len(r[0]) for r in rows), default=10)
    head = (
        f"gatewayd benchmarks ({doc['mode']}): {m['cores']} cores, {m['cpu_model']}, "
        f"Python {m['python']}, {doc.get('seconds', '-')} s"
    )
    lines = [head, ""]
    lines += [f"{n:<{width}}  {v:>12}  {t:<20} {ok}".rstrip() for n, v, t, ok in rows]
    return "\n".join(lines)


def _multinode_rows(rows: list[tuple[str, str, str, str]], mn: dict[str, Any]) -> None:
    if "skipped" in mn:
        _row(rows, "multinode: skipped", mn["skipped"], "", None)
        return
    runs = [(f"{n} node(s) on PostgreSQL", r) for n, r in mn["postgres"].items()]
    if "sqlite_1" in mn:
        runs.append(("1 node on SQLite", mn["sqlite_1"]))
    for label, r in runs:
        e2e = r["e2e"]
        _row(
            rows, f"multinode {label}: ingest batch msgs/s", r["ingest"]["accepted_per_s"], "", None
        )
        _row(
            rows,
            f"multinode {label}: e2e parts/s",
            e2e["sent_per_s"],
            f"{e2e['modems']} modems",
            None,
        )
        cpu = e2e["cpu_s_per_1000"]
        split = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        _row(rows, f"multinode {label}: e2e CPU s/1,000", sum(cpu.values()), split, None)
        if e2e.get("pg_transactions_per_part") is not None:
            tx = e2e["pg_transactions_per_part"]
            _row(rows, f"multinode {label}: PostgreSQL transactions/part", tx, "", None)
    for n, ratio in mn["ratio_to_1_node"].items():
        _row(rows, f"multinode {n} nodes / 1: ingest", ratio["ingest"], "", None)
        _row(rows, f"multinode {n} nodes / 1: e2e", ratio["e2e"], "", None)
    _row(
        rows,
        "multinode: every part sent once",
        mn["every_part_sent_once"],
        "",
        mn["every_part_sent_once"],
    )
    _row(
        rows,
        "multinode: all accepted found in store",
        mn["all_accepted_found"],
        "",
        mn["all_accepted_found"],
    )
