"""Smoke test of the benchmark harness in its tiny mode: JSON shape and counting, no timing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gatewayd.bench import sections
from gatewayd.bench.__main__ import main
from gatewayd.bench.prefill import prefill, prepare_schema
from tests.multinode.pgserver import require_postgres_binaries


def test_max_in_window_counts_a_half_open_window() -> None:
    assert sections.max_in_window([]) == 0
    assert sections.max_in_window([0.0, 59.9, 60.0, 119.95]) == 2
    assert sections.max_in_window([0.0, 1.0, 2.0, 61.5]) == 3


async def test_prefill_writes_queued_rows_the_next_message_query_finds_by_index(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    await prepare_schema(db)
    prefill(db, 120)
    conn = sqlite3.connect(db)
    try:
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("messages", "parts", "history")
        ]
    finally:
        conn.close()
    assert counts == [120, 120, 120]
    plan = sections.next_work_plan(db)
    assert plan["uses_queue_index"]
    assert not plan["full_scan"]


@pytest.mark.slow
def test_tiny_run_counts_every_accepted_message_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--sections", "ingest,e2e", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["mode"] == "tiny"
    assert set(doc["machine"]) >= {"cores", "cpu_model"}
    ingest = doc["results"]["ingest"]
    assert ingest["accepted_total"] > 0
    assert ingest["found_in_store"] == ingest["accepted_total"]
    assert {r["kind"] for r in ingest["runs"]} == {"single", "batch"}
    for kind in ("single", "batch"):
        assert set(ingest[kind]) == {"accepted_per_s", "p50_ms", "p99_ms", "cpu_ms_per_msg"}
    e2e = doc["results"]["e2e"]
    assert e2e["median"]["all_delivered"] is True
    assert all(r["messages"] == sections.TINY.e2e_messages for r in e2e["runs"])
    assert "ingest single: accepted/s" in capsys.readouterr().out


@pytest.mark.slow
def test_tiny_multinode_run_sends_every_part_once_on_each_node_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres_binaries()
    out = tmp_path / "bench.json"
    work = tmp_path / "work"
    args = ["--tiny", "--sections", "multinode", "--workdir", str(work), "--json", str(out)]
    assert main(args) == 0
    mn = json.loads(out.read_text())["results"]["multinode"]
    assert "skipped" not in mn
    assert set(mn["postgres"]) == {str(n) for n in sections.TINY.multinode_nodes}
    for n, run in [*mn["postgres"].items(), ("1", mn["sqlite_1"])]:
        ingest = run["ingest"]
        assert ingest["accepted_total"] > 0
        assert ingest["found_in_store"] == ingest["accepted_total"]
        assert all(len(r["accepted_per_node"]) == int(n) for r in ingest["runs"])
        assert all(sum(r["accepted_per_node"]) == r["accepted"] for r in ingest["runs"])
        e2e = run["e2e"]
        assert e2e["messages"] == sections.TINY.multinode_messages
        assert e2e["parts"] == e2e["sent_parts"]
        assert e2e["every_part_sent_once"]
        assert e2e["all_delivered"]
        assert sum(e2e["parts_per_node"]) == e2e["parts"]
        assert len(e2e["parts_per_node"]) == int(n)
    # PostgreSQL's own CPU is counted on PostgreSQL runs, never on SQLite.
    assert "postgres" in mn["postgres"]["1"]["e2e"]["cpu_s"]
    assert "postgres" not in mn["sqlite_1"]["e2e"]["cpu_s"]
    assert set(mn["ratio_to_1_node"]) == {"2"}
    assert mn["every_part_sent_once"]
    assert mn["all_accepted_found"]
    assert "multinode 2 node(s) on PostgreSQL: e2e parts/s" in capsys.readouterr().out
