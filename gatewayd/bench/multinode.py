"""The ``multinode`` section: 1, 2 and 3 daemons on one PostgreSQL, each with its own modems.

A throwaway cluster (:mod:`gatewayd.devpg`) serves every run; each run gets a database of its
own, so every count starts at zero. Per node count:

* **ingest**: daemons with no modems; a fixed number of clients (6) spread evenly over the
  nodes' APIs post batches for a fixed time; accepted messages/s over all nodes, median of
  the repeats; afterwards every accepted id is looked up in the database.
* **end to end**: the simulator (one process) with 4 zero-latency modems per node, status
  reports 1 s after each part (as the ``e2e`` section); every modem paused, messages queued
  through the nodes' batch endpoints in turn, every modem resumed: parts/s from the resume
  to the simulator's log holding every part; the log must hold every part exactly once.

CPU seconds of the daemons, the simulator, PostgreSQL (postmaster and backends) and this
harness (the load generator) are read from ``/proc`` around each measurement, to show what
limits the rate on this machine. The same 1-node runs on SQLite give the comparison.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from gatewayd.bench import load, sections
from gatewayd.bench.procs import (
    DaemonProc,
    ModemSpec,
    SimProc,
    cpu_seconds,
    tree_cpu_seconds,
)
from gatewayd.bench.sections import (
    Sizes,
    _median,
    _mkdir,
    _post_json,
    _sent_count,
    _sent_records,
    _wait_until,
    count_in_store,
)
from gatewayd.devpg import DevPostgres, PostgresUnavailable, throwaway_postgres

Json = dict[str, Any]
Snapshot = dict[str, dict[int, float]]

CLIENTS = 6  # ingest clients in all, split evenly over 1, 2 or 3 nodes
SQL_SECONDS = 30.0  # any one look at the database from the harness


def _cpu_now(groups: dict[str, list[int]], postmaster: int | None) -> Snapshot:
    snap = {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}
    if postmaster is not None:
        snap["postgres"] = tree_cpu_seconds(postmaster)
    snap["harness"] = {os.getpid(): time.process_time()}
    return snap


def _cpu_used(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per group between two snapshots (a process new since counts whole)."""
    return {
        name: round(sum(v - before[name].get(pid, 0.0) for pid, v in pids.items()), 3)
        for name, pids in after.items()
    }


def _postmaster_pid(server: DevPostgres) -> int:
    # The first line of postmaster.pid is the server's process id.
    return int((server.data / "postmaster.pid").read_text().split()[0])


async def _database(server: DevPostgres, name: str) -> str:
    """A new empty database ``name`` on ``server``; its URL."""
    conn = await asyncpg.connect(server.dsn, timeout=SQL_SECONDS)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"', timeout=SQL_SECONDS)
    finally:
        await conn.close(timeout=SQL_SECONDS)
    return f"{server.dsn.rsplit('/', 1)[0]}/{name}"


async def _pg_count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn, timeout=SQL_SECONDS)
    try:
        return int(await conn.fetchval(sql, *args, timeout=SQL_SECONDS))
    finally:
        await conn.close(timeout=SQL_SECONDS)


async def _transactions(database: str | None) -> int:
    """Transactions committed or rolled back in ``database`` so far (0 on SQLite).

    PostgreSQL publishes a backend's counts when it goes idle, at most once a second, so a
    figure read right after a burst may lack the last second's share.
    """
    if database is None:
        return 0
    return await _pg_count(
        database,
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()",
    )


async def _found(database: str | None, db: Path, ids: list[str]) -> int:
    """How many of ``ids`` are rows of ``messages`` (PostgreSQL URL, or the SQLite file)."""
    if database is not None:
        return await _pg_count(database, "SELECT COUNT(*) FROM messages WHERE id = ANY($1)", ids)
    return await asyncio.to_thread(count_in_store, db, ids)


async def _status_count(database: str | None, db: Path, status: str) -> int:
    if database is not None:
        return await _pg_count(database, "SELECT COUNT(*) FROM messages WHERE status = $1", status)
    return await asyncio.to_thread(sections._status_count, db, status)


async def _start_nodes(
    work: Path, n: int, database: str | None, sim: SimProc | None, per_node: int
) -> list[DaemonProc]:
    """``n`` daemons ``node-1`` .. ``node-n``; with ``sim``, ``per_node`` of its modems each."""
    daemons: list[DaemonProc] = []
    try:
        for k in range(n):
            here = work / f"node-{k + 1}"
            _mkdir(here)
            ports = sim.ports[k * per_node : (k + 1) * per_node] if sim is not None else []
            specs = [ModemSpec(f"n{k + 1}m{j + 1}", port) for j, port in enumerate(ports)]
            daemon = DaemonProc(
                here, specs, database=database or "gatewayd.db", node_name=f"node-{k + 1}"
            )
            daemons.append(daemon)
            # One after the other: the first migrates the empty database.
            await daemon.start()
            if specs:
                await daemon.modems_ready([s.name for s in specs])
    except BaseException:
        _stop_all(daemons)
        raise
    return daemons


def _stop_all(daemons: list[DaemonProc]) -> None:
    for daemon in daemons:
        daemon.stop()


async def ingest(
    work: Path, n: int, database: str | None, postmaster: int | None, *, repeats: int,
    seconds: float, size: int,
) -> Json:  # fmt: skip
    """Batches of ``size`` posted to ``n`` daemons at once by :data:`CLIENTS` clients."""
    _mkdir(work)
    daemons = await _start_nodes(work, n, database, None, 0)
    runs: list[Json] = []
    accepted: list[str] = []
    try:
        for r in range(repeats):
            before = _cpu_now({"daemons": [d.pid for d in daemons]}, postmaster)
            results = await asyncio.gather(
                *(
                    load.post_batches(
                        d.url,
                        d.headers,
                        workers=CLIENTS // n,
                        seconds=seconds,
                        size=size,
                        first=1_000_000 * (r * n + k),
                    )
                    for k, d in enumerate(daemons)
                )
            )
            used = _cpu_used(before, _cpu_now({"daemons": [d.pid for d in daemons]}, postmaster))
            span = max(res.seconds for res in results)
            count = sum(len(res.accepted_ids) for res in results)
            errors: Counter[str] = Counter()
            for res in results:
                accepted += res.accepted_ids
                errors.update(res.errors)
            runs.append(
                {
                    "seconds": round(span, 2),
                    "accepted": count,
                    "accepted_per_node": [len(res.accepted_ids) for res in results],
                    "errors": dict(errors),
                    "accepted_per_s": round(count / span, 1),
                    "cpu_s": used,
                    "cpu_ms_per_msg": {
                        k: round(1000 * v / count, 3) if count else None for k, v in used.items()
                    },
                }
            )
    finally:
        _stop_all(daemons)
    found = await _found(database, daemons[0].db, accepted)
    return {
        "runs": runs,
        "accepted_per_s": _median([r["accepted_per_s"] for r in runs]),
        "accepted_total": len(accepted),
        "found_in_store": found,
    }


async def end_to_end(
    work: Path, n: int, database: str | None, postmaster: int | None, *, per_node: int,
    messages: int, chunk: int,
) -> Json:  # fmt: skip
    """``messages`` queued over ``n`` paused daemons, then sent by ``per_node`` modems each."""
    _mkdir(work)
    sim = SimProc(work, n * per_node, latency=(0.0, 0.0), report_delay=(1.0, 1.0))
    await sim.start()
    try:
        daemons = await _start_nodes(work, n, database, sim, per_node)
    except BaseException:
        sim.stop()
        raise
    names = [[f"n{k + 1}m{j + 1}" for j in range(per_node)] for k in range(n)]
    segments: dict[str, int] = {}
    try:
        for d, mine in zip(daemons, names, strict=True):
            for name in mine:
                await _post_json(d, f"/v1/modems/{name}/pause")
        for i, lo in enumerate(range(0, messages, chunk)):
            body = {
                "messages": [
                    {"to": load.number(j), "text": load.TEXT.format(n=j)}
                    for j in range(lo, min(messages, lo + chunk))
                ]
            }
            # Chunks go to the nodes in turn.
            answer = await _post_json(daemons[i % n], "/v1/messages/batch", body)
            for item in answer["results"]:
                if item["status"] == 202:
                    segments[item["message"]["id"]] = int(item["message"]["segments"])
        parts = sum(segments.values())
        groups = {"daemons": [d.pid for d in daemons], "simulator": [sim.pid]}
        xacts = await _transactions(database)
        before = _cpu_now(groups, postmaster)
        t0 = time.monotonic()
        for d, mine in zip(daemons, names, strict=True):
            for name in mine:
                await _post_json(d, f"/v1/modems/{name}/resume")
        all_sent = await _wait_until(lambda: _sent_count(sim) >= parts, 30 + parts / 20, 0.1)
        t_sent = time.monotonic()
        used = _cpu_used(before, _cpu_now(groups, postmaster))
        db = daemons[0].db

        polls = 0

        async def delivered() -> bool:
            nonlocal polls
            polls += 1
            return await _status_count(database, db, "delivered") >= len(segments)

        all_delivered = await _until_async(delivered, 30 + parts / 20)
        # From the resume until every report is in: what each part cost the database
        # (less the harness's own looks, one transaction each).
        xacts = await _transactions(database) - xacts - polls - 1
    finally:
        _stop_all(daemons)
        sim.stop()
    records = _sent_records(sim)
    once = Counter((r["recipient"], r["part"]) for r in records)
    by_node = Counter((int(r["modem"].rsplit("-", 1)[1]) - 1) // per_node for r in records)
    span = t_sent - t0
    return {
        "nodes": n,
        "modems": n * per_node,
        "messages": len(segments),
        "parts": parts,
        "all_sent": all_sent,
        "all_delivered": all_delivered,
        "sent_parts": len(records),
        "every_part_sent_once": len(records) == parts and max(once.values(), default=0) == 1,
        "parts_per_node": [by_node.get(k, 0) for k in range(n)],
        "seconds": round(span, 2),
        "sent_per_s": round(parts / span, 1),
        "cpu_s": used,
        "cpu_s_per_1000": {k: round(1000 * v / parts, 3) for k, v in used.items()},
        "pg_transactions_per_part": round(xacts / parts, 2) if database is not None else None,
        "busy_fraction_of_machine": round(sum(used.values()) / (span * (os.cpu_count() or 1)), 3),
    }


async def _until_async(
    check: Callable[[], Awaitable[bool]], within: float, step: float = 0.1
) -> bool:
    # The harness looks at files and the database from outside the daemons: no event to await.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(step)
    return bool(await check())


async def multinode(work: Path, sizes: Sizes) -> Json:
    """Ingest and end to end with each node count on one PostgreSQL; 1 node on SQLite."""
    m = sizes.multinode_modems

    async def both(
        here: Path, n: int, databases: tuple[str | None, str | None], postmaster: int | None
    ) -> Json:
        return {
            "ingest": await ingest(
                here / "ingest", n, databases[0], postmaster, repeats=sizes.repeats,
                seconds=sizes.batch_seconds, size=sizes.batch_size,
            ),
            "e2e": await end_to_end(
                here / "e2e", n, databases[1], postmaster, per_node=m,
                messages=sizes.multinode_messages, chunk=sizes.batch_size,
            ),
        }  # fmt: skip

    out: Json = {
        "modems_per_node": m,
        "latency_s": [0.0, 0.0],
        "clients": CLIENTS,
        "batch_size": sizes.batch_size,
        "messages": sizes.multinode_messages,
        "postgres": {},
    }
    try:
        async with throwaway_postgres() as server:
            out["postgres_version"] = server.bindir.parent.name
            postmaster = _postmaster_pid(server)
            for n in sizes.multinode_nodes:
                # A database per run: every count and the queue start from nothing.
                databases = (
                    await _database(server, f"ingest_{n}"),
                    await _database(server, f"e2e_{n}"),
                )
                pg_runs = await both(work / f"postgres-{n}", n, databases, postmaster)
                out["postgres"][str(n)] = pg_runs
    except PostgresUnavailable as exc:
        out["skipped"] = str(exc)
        return out
    out["sqlite_1"] = await both(work / "sqlite-1", 1, (None, None), None)
    pg = out["postgres"]
    one = pg.get("1")

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(b / a, 3) if a and b else None

    out["ratio_to_1_node"] = {
        n: {
            "ingest": ratio(one["ingest"]["accepted_per_s"], r["ingest"]["accepted_per_s"]),
            "e2e": ratio(one["e2e"]["sent_per_s"], r["e2e"]["sent_per_s"]),
        }
        for n, r in pg.items()
        if one is not None and n != "1"
    }
    sq = out["sqlite_1"]
    out["postgres_1_to_sqlite_1"] = (
        {
            "ingest": ratio(sq["ingest"]["accepted_per_s"], one["ingest"]["accepted_per_s"]),
            "e2e": ratio(sq["e2e"]["sent_per_s"], one["e2e"]["sent_per_s"]),
        }
        if one is not None
        else None
    )
    every = [r["e2e"] for r in pg.values()] + [sq["e2e"]]
    ingests = [r["ingest"] for r in pg.values()] + [sq["ingest"]]
    out["every_part_sent_once"] = all(e["every_part_sent_once"] for e in every)
    out["all_delivered"] = all(e["all_delivered"] for e in every)
    out["all_accepted_found"] = all(i["found_in_store"] == i["accepted_total"] for i in ingests)
    return out
