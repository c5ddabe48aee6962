"""The benchmark sections: each starts its own processes and returns a JSON-able dict."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from gatewayd.bench import load
from gatewayd.bench.prefill import prefill, prepare_schema
from gatewayd.bench.procs import (
    BenchError,
    DaemonProc,
    ModemSpec,
    Profiler,
    SimProc,
    cpu_seconds,
    memory_kib,
)
from gatewayd.store.sqlite import _CANDIDATES
from gatewayd.store.timefmt import from_db

Json = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """How long and how much each section runs (``full``, ``quick`` or ``tiny``)."""

    repeats: int
    ingest_seconds: float
    ingest_workers: int
    batch_seconds: float
    batch_workers: int
    batch_size: int
    e2e_modems: int
    e2e_messages: int
    solo_messages: int
    util_modems: int
    util_per_minute: int
    util_minutes: int
    util_latency: tuple[float, float]
    backlogs: tuple[int, int]
    scale_seconds: float
    footprint_modems: int
    idle_probes: int
    multinode_nodes: tuple[int, ...]
    multinode_modems: int  # per node
    multinode_messages: int  # end to end, over all nodes


FULL = Sizes(
    3, 10, 32, 8, 4, 500, 8, 4000, 600, 4, 10, 4, (2.0, 6.0), (1000, 1_000_000), 5, 16, 40,
    multinode_nodes=(1, 2, 3), multinode_modems=4, multinode_messages=3000,
)  # fmt: skip
QUICK = Sizes(
    1, 4, 32, 3, 4, 500, 8, 1500, 200, 4, 10, 1, (2.0, 6.0), (1000, 100_000), 4, 16, 15,
    multinode_nodes=(1, 2, 3), multinode_modems=4, multinode_messages=1000,
)  # fmt: skip
TINY = Sizes(
    1, 0.5, 4, 0.5, 2, 20, 2, 20, 10, 2, 60, 0, (0.0, 0.0), (50, 200), 0.5, 2, 3,
    multinode_nodes=(1, 2), multinode_modems=2, multinode_messages=30,
)  # fmt: skip


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _move_db(src: Path, dst: Path) -> bool:
    """Move an SQLite file with its WAL files; ``False`` if ``src`` does not exist."""
    if not src.exists():
        return False
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            Path(f"{src}{suffix}").rename(f"{dst}{suffix}")
    return True


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def count_in_store(db: Path, ids: list[str]) -> int:
    """How many of ``ids`` are rows of ``messages`` (run after the daemon stopped)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(i,) for i in ids])
        row = conn.execute("SELECT COUNT(*) FROM messages JOIN wanted USING (id)").fetchone()
        return int(row[0])
    finally:
        conn.close()


@contextmanager
def _cpu(pid: int) -> Iterator[Callable[[], float]]:
    """CPU seconds ``pid`` used inside the block (call the yielded function afterwards)."""
    start = cpu_seconds(pid)
    end: list[float] = []
    yield lambda: end[0] - start
    end.append(cpu_seconds(pid))


def _sent_records(sim: SimProc) -> list[Json]:
    if not sim.sent_log.exists():
        return []
    with sim.sent_log.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _sent_more(sim: SimProc, than: int) -> bool:
    return _sent_count(sim) > than


def _sent_count(sim: SimProc) -> int:
    if not sim.sent_log.exists():
        return 0
    with sim.sent_log.open("rb") as fh:
        return sum(1 for _ in fh)


def _status_count(db: Path, status: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM messages WHERE status = ?", (status,)).fetchone()[0]
        )
    finally:
        conn.close()


async def _post_json(daemon: DaemonProc, path: str, body: Json | None = None) -> Json:
    async with (
        aiohttp.ClientSession(headers=daemon.headers) as http,
        http.post(f"{daemon.url}{path}", json=body or {}) as resp,
    ):
        if resp.status >= 300:
            raise BenchError(f"POST {path}: {resp.status} {await resp.text()}")
        answer: Json = await resp.json()
        return answer


async def _queue(daemon: DaemonProc, count: int, first: int) -> list[str]:
    """Queue ``count`` messages through the batch endpoint; their ids."""
    ids: list[str] = []
    for lo in range(0, count, 1000):
        size = min(1000, count - lo)
        body = {
            "messages": [
                {"to": load.number(i), "text": load.TEXT.format(n=i)}
                for i in range(first + lo, first + lo + size)
            ]
        }
        answer = await _post_json(daemon, "/v1/messages/batch", body)
        ids += [r["message"]["id"] for r in answer["results"] if r["status"] == 202]
    return ids


async def _wait_until(check: Callable[[], bool], within: float, step: float = 0.2) -> bool:
    # The harness looks at files and the database from outside the daemon: no event to await.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(step)
    return check()


# -- 1. ingest -----------------------------------------------------------------------------


async def ingest(work: Path, sizes: Sizes, kinds: tuple[str, ...] = ("single", "batch")) -> Json:
    """Single and batch submits against a daemon with no modems; every accepted id counted.

    The daemon uses ``work/gatewayd.db`` as it is (a scale run pre-fills it).
    """
    _mkdir(work)
    daemon = DaemonProc(work, [])
    runs: list[Json] = []
    accepted: list[str] = []
    await daemon.start()
    try:
        first = 0
        for kind in kinds:
            for _ in range(sizes.repeats):
                with _cpu(daemon.pid) as used:
                    if kind == "single":
                        res = await load.post_singles(
                            daemon.url,
                            daemon.headers,
                            workers=sizes.ingest_workers,
                            seconds=sizes.ingest_seconds,
                            first=first,
                        )
                    else:
                        res = await load.post_batches(
                            daemon.url,
                            daemon.headers,
                            workers=sizes.batch_workers,
                            seconds=sizes.batch_seconds,
                            size=sizes.batch_size,
                            first=first,
                        )
                first += res.requests * (1 if kind == "single" else sizes.batch_size)
                n = len(res.accepted_ids)
                accepted += res.accepted_ids
                runs.append(
                    {
                        "kind": kind,
                        "seconds": round(res.seconds, 2),
                        "requests": res.requests,
                        "accepted": n,
                        "errors": res.errors,
                        "accepted_per_s": round(n / res.seconds, 1),
                        "requests_per_s": round(res.requests / res.seconds, 1),
                        "p50_ms": _round(res.percentile(0.5)),
                        "p99_ms": _round(res.percentile(0.99)),
                        "cpu_ms_per_msg": _round(1000 * used() / n) if n else None,
                    }
                )
        rss = memory_kib(daemon.pid)
    finally:
        daemon.stop()
    found = count_in_store(daemon.db, accepted)
    out: Json = {"runs": runs, "rss_kib": rss}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        out[kind] = {
            key: _median([r[key] for r in mine if r[key] is not None])
            for key in ("accepted_per_s", "p50_ms", "p99_ms", "cpu_ms_per_msg")
        }
    out["accepted_total"] = len(accepted)
    out["found_in_store"] = found
    return out


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 3)


# -- 2. end to end, zero-latency modems -------------------------------------------------


async def _modem_rig(
    work: Path,
    modems: int,
    *,
    latency: tuple[float, float],
    per_minute: int | None,
    level: str = "info",
) -> tuple[SimProc, DaemonProc]:
    _mkdir(work)
    # Reports 1 s after the part: a real network takes seconds (the SMSC must reach the
    # handset first), and a report cannot be matched before the part's +CMGS is committed.
    sim = SimProc(work, modems, latency=latency, report_delay=(1.0, 1.0))
    await sim.start()
    specs = [ModemSpec(f"m{i + 1}", port, per_minute) for i, port in enumerate(sim.ports)]
    daemon = DaemonProc(work, specs, level=level)
    try:
        await daemon.start()
        await daemon.modems_ready([s.name for s in specs])
    except BaseException:
        daemon.stop()
        sim.stop()
        raise
    return sim, daemon


async def _paused_then_run(
    daemon: DaemonProc, names: list[str], count: int
) -> tuple[list[str], float]:
    """Pause every modem, queue ``count`` messages, resume; the ids and the resume time."""
    for name in names:
        await _post_json(daemon, f"/v1/modems/{name}/pause")
    ids = await _queue(daemon, count, 0)
    t0 = time.time()
    for name in names:
        await _post_json(daemon, f"/v1/modems/{name}/resume")
    return ids, t0


async def end_to_end(work: Path, modems: int, messages: int, *, profile: bool = False) -> Json:
    """``messages`` queued, ``modems`` zero-latency modems: rate to ``delivered``, CPU/1000."""
    sim, daemon = await _modem_rig(work, modems, latency=(0.0, 0.0), per_minute=None)
    names = [f"m{i + 1}" for i in range(modems)]
    profiler: Profiler | None = None
    try:
        ids, t0 = await _paused_then_run(daemon, names, messages)
        if profile:
            profiler = Profiler(daemon.pid, work / "daemon-profile.txt")
        d0, s0 = cpu_seconds(daemon.pid), cpu_seconds(sim.pid)
        sent_done = await _wait_until(lambda: _sent_count(sim) >= len(ids), 30 + messages / 20)
        t_sent = time.time()
        delivered = await _wait_until(
            lambda: _status_count(daemon.db, "delivered") >= len(ids), 30 + messages / 20
        )
        t1 = time.time()
        d1, s1 = cpu_seconds(daemon.pid), cpu_seconds(sim.pid)
        rss = memory_kib(daemon.pid)
    finally:
        if profiler is not None:
            profiler.stop()
        daemon.stop()
        sim.stop()
    records = _sent_records(sim)
    times = sorted(datetime.fromisoformat(r["time"]).timestamp() for r in records)
    gaps = _per_modem_gaps(records)
    n = len(ids)
    return {
        "modems": modems,
        "messages": n,
        "all_sent": sent_done,
        "all_delivered": delivered,
        "sent_per_s": round(n / (t_sent - t0), 1),
        "delivered_per_s": round(n / (t1 - t0), 1),
        "sim_send_span_s": round(times[-1] - times[0], 2) if times else None,
        "daemon_cpu_s_per_1000": round(1000 * (d1 - d0) / n, 3),
        "sim_cpu_s_per_1000": round(1000 * (s1 - s0) / n, 3),
        "median_gap_between_parts_ms": _ms(_median(gaps)),
        "rss_kib": rss,
    }


def _per_modem_gaps(records: list[Json]) -> list[float]:
    by: dict[str, list[float]] = {}
    for r in records:
        by.setdefault(r["iccid"], []).append(datetime.fromisoformat(r["time"]).timestamp())
    gaps: list[float] = []
    for times in by.values():
        times.sort()
        gaps += [b - a for a, b in itertools.pairwise(times)]
    return gaps


# -- 3. utilisation, realistic modems ---------------------------------------------------


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most entries of sorted ``times`` in any half-open window of ``window`` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def utilisation(work: Path, sizes: Sizes) -> Json:
    """Modems with send latency and a per-minute limit, more work than they may send.

    Achieved = parts the simulator logged in ``[resume, resume + minutes * 60 s)``; the
    most the limits allow in that span is ``sum(limits) * minutes`` (each 60 s slice of it
    holds at most the limit).
    """
    k, per_minute, minutes = sizes.util_modems, sizes.util_per_minute, sizes.util_minutes
    sim, daemon = await _modem_rig(work, k, latency=sizes.util_latency, per_minute=per_minute)
    names = [f"m{i + 1}" for i in range(k)]
    span = 60.0 * max(minutes, 1) if minutes else 2.0
    try:
        ids, t0 = await _paused_then_run(daemon, names, int(k * per_minute * max(minutes, 1) * 1.5))
        d0 = cpu_seconds(daemon.pid)
        await asyncio.sleep(span + 2.0)
        cpu = cpu_seconds(daemon.pid) - d0
    finally:
        daemon.stop()
        sim.stop()
    by: dict[str, list[float]] = {}
    for r in _sent_records(sim):
        by.setdefault(r["iccid"], []).append(datetime.fromisoformat(r["time"]).timestamp())
    for times in by.values():
        times.sort()
    achieved = sum(1 for times in by.values() for t in times if t0 <= t < t0 + span)
    allowed = k * per_minute * (span / 60.0)
    worst = max((max_in_window(t) for t in by.values()), default=0)
    return {
        "modems": k,
        "latency_s": list(sizes.util_latency),
        "limit_per_minute": per_minute,
        "seconds": span,
        "queued": len(ids),
        "achieved_parts": achieved,
        "allowed_parts": allowed,
        "utilisation": round(achieved / allowed, 4) if allowed else None,
        "max_in_any_60s": worst,
        "limit_held": worst <= per_minute,
        "daemon_cpu_s": round(cpu, 2),
    }


# -- 4. scale: backlog 1,000 vs 1,000,000 ----------------------------------------------


NEXT_WORK_PARAMS = {
    "me": "bench-sim",
    "now": "9999-12-31T00:00:00.000000Z",
    "modem": "m1",
    "pool": "default",
    "max_parts": None,
    "others": "[]",
    "sticky": 1,
    "alone": 1,
    "alone_in_pool": 1,
}


def next_work_plan(db: Path) -> Json:
    """EXPLAIN QUERY PLAN of the store's next-message query, and its median time."""
    sql = (
        f"SELECT * FROM ({_CANDIDATES}) WHERE due <= :now"
        " ORDER BY priority DESC, send_at, seq LIMIT 1"
    )
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        plan = [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", NEXT_WORK_PARAMS)]
        times = []
        for _ in range(200):
            t = time.perf_counter()
            conn.execute(sql, NEXT_WORK_PARAMS).fetchall()
            times.append(time.perf_counter() - t)
    finally:
        conn.close()
    return {
        "plan": plan,
        "uses_queue_index": any("messages_queue" in line for line in plan),
        "full_scan": any(line.startswith("SCAN m") and "INDEX" not in line for line in plan),
        "median_ms": round(1000 * statistics.median(times), 4),
    }


async def dispatch_rate(work: Path, modems: int, seconds: float) -> Json:
    """Parts per second ``modems`` zero-latency modems send from the backlog in ``work``."""
    sim, daemon = await _modem_rig(work, modems, latency=(0.0, 0.0), per_minute=None)
    try:
        await asyncio.sleep(1.0)  # past the start-up burst
        ta, c0, n0 = time.time(), cpu_seconds(daemon.pid), _sent_count(sim)
        rss_max = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rss_max = max(rss_max, memory_kib(daemon.pid)["VmRSS"])
            await asyncio.sleep(0.25)
        tb, c1, n1 = time.time(), cpu_seconds(daemon.pid), _sent_count(sim)
        rss = memory_kib(daemon.pid)
    finally:
        daemon.stop()
        sim.stop()
    sent = n1 - n0
    return {
        "modems": modems,
        "seconds": round(tb - ta, 2),
        "sent": sent,
        "sent_per_s": round(sent / (tb - ta), 1),
        "cpu_ms_per_part": round(1000 * (c1 - c0) / sent, 3) if sent else None,
        "rss_max_kib": max(rss_max, rss["VmRSS"]),
        "rss_peak_kib": rss["VmHWM"],
    }


async def scale(work: Path, sizes: Sizes) -> Json:
    """Enqueue and dispatch costs with each backlog; the ratio large/small."""
    out: Json = {"backlogs": {}}
    for backlog in sizes.backlogs:
        here = work / f"backlog-{backlog}"
        _mkdir(here)
        db = here / "gatewayd.db"
        await prepare_schema(db)
        fill_s = prefill(db, backlog)
        plan = next_work_plan(db)
        enq = await ingest(here, dataclasses.replace(sizes, repeats=1), kinds=("single",))
        disp = await dispatch_rate(here, sizes.e2e_modems, sizes.scale_seconds)
        out["backlogs"][str(backlog)] = {
            "prefill_s": round(fill_s, 1),
            "db_mib": round(db.stat().st_size / 2**20, 1),
            "next_work": plan,
            "enqueue": enq["single"],
            "enqueue_all_found": enq["found_in_store"] == enq["accepted_total"],
            "dispatch": disp,
        }
    small, large = (out["backlogs"][str(b)] for b in sizes.backlogs)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(b / a, 3) if a and b else None

    out["ratio_large_to_small"] = {
        "enqueue_cpu_per_msg": ratio(
            small["enqueue"]["cpu_ms_per_msg"], large["enqueue"]["cpu_ms_per_msg"]
        ),
        "enqueue_p99": ratio(small["enqueue"]["p99_ms"], large["enqueue"]["p99_ms"]),
        "enqueue_rate_inverse": ratio(
            large["enqueue"]["accepted_per_s"], small["enqueue"]["accepted_per_s"]
        ),
        "dispatch_cpu_per_part": ratio(
            small["dispatch"]["cpu_ms_per_part"], large["dispatch"]["cpu_ms_per_part"]
        ),
        "dispatch_rate_inverse": ratio(
            large["dispatch"]["sent_per_s"], small["dispatch"]["sent_per_s"]
        ),
        "next_work_query": ratio(small["next_work"]["median_ms"], large["next_work"]["median_ms"]),
    }
    return out


# -- 5. footprint ----------------------------------------------------------------------


async def footprint(work: Path, sizes: Sizes, backlog_db: Path | None) -> Json:
    """VmRSS idle (modems ready, empty queue) and while sending from the large backlog."""
    idle_dir = work / "idle"
    sim, daemon = await _modem_rig(
        idle_dir, sizes.footprint_modems, latency=(0.0, 0.0), per_minute=None
    )
    try:
        await asyncio.sleep(2.0)
        idle = memory_kib(daemon.pid)
    finally:
        daemon.stop()
        sim.stop()
    load_dir = work / "load"
    _mkdir(load_dir)
    db = load_dir / "gatewayd.db"
    if not (backlog_db is not None and _move_db(backlog_db, db)):
        await prepare_schema(db)
        prefill(db, sizes.backlogs[-1])
    busy = await dispatch_rate(load_dir, sizes.footprint_modems, sizes.scale_seconds)
    return {
        "modems": sizes.footprint_modems,
        "backlog": sizes.backlogs[-1],
        "idle_rss_kib": idle["VmRSS"],
        "load_rss_max_kib": busy["rss_max_kib"],
        "load_rss_peak_kib": busy["rss_peak_kib"],
        "load_sent_per_s": busy["sent_per_s"],
    }


# -- DESIGN's two figures ----------------------------------------------------------------


async def idle_latency(work: Path, probes: int) -> Json:
    """Submit to ``AT+CMGS`` on an idle daemon: the store's accept time (``created_at``) to
    the simulator's log of the part (written as it answers ``+CMGS``, zero send latency)."""
    sim, daemon = await _modem_rig(work, 1, latency=(0.0, 0.0), per_minute=None)
    ids: list[str] = []
    try:
        async with aiohttp.ClientSession(headers=daemon.headers) as http:
            for n in range(probes):
                async with http.post(
                    f"{daemon.url}/v1/messages",
                    json={"to": load.number(9_000_000 + n), "text": load.TEXT.format(n=n)},
                ) as resp:
                    ids.append((await resp.json())["id"])
                # Idle between probes: the previous part is out before the next submit.
                await _wait_until(partial(_sent_more, sim, n), 10.0, step=0.05)
                await asyncio.sleep(0.1)
    finally:
        daemon.stop()
        sim.stop()
    conn = sqlite3.connect(daemon.db)
    try:
        accepted = {
            r[0]: from_db(r[1]).timestamp()
            for r in conn.execute("SELECT recipient, created_at FROM messages")
        }
    finally:
        conn.close()
    lat = sorted(
        datetime.fromisoformat(r["time"]).timestamp() - accepted[r["recipient"]]
        for r in _sent_records(sim)
        if r["recipient"] in accepted
    )
    return {
        "probes": len(lat),
        "p50_ms": _ms(_median(lat)),
        "max_ms": _ms(lat[-1]) if lat else None,
        "p90_ms": _ms(lat[int(0.9 * (len(lat) - 1))]) if lat else None,
    }


# -- the PDU codec micro-benchmark (scripts/bench_pdu.py) ----------------------------------


def pdu_codec(quick: bool) -> Json:
    """Run ``scripts/bench_pdu.py``; its rows as JSON."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_pdu.py"
    if not script.exists():
        return {"skipped": "scripts/bench_pdu.py not found"}
    args = ["--repeats", "3", "--number", "300"] if quick else ["--repeats", "5"]
    text = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in text.splitlines()[1:]:
        name, parts, enc, dec = line.rsplit(None, 3)
        rows.append(
            {
                "message": name.strip(),
                "parts": int(parts),
                "encodes_per_s": int(enc.replace(",", "")),
                "decodes_per_s": int(dec.replace(",", "")),
            }
        )
    return {"rows": rows}
