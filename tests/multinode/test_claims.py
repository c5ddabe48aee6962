"""Correctness across nodes at the store: claims, fencing, take-over, SIM ownership,
idempotency, opt-outs, inbound duplicates, node names and migrations (docs/multinode.md)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gatewayd.store import (
    Category,
    ClaimLost,
    IdempotencyKeyReused,
    Inserted,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NewPart,
    OptOutScope,
    PartStatus,
    Priority,
    RecipientOptedOut,
    RouteQuery,
    SchemaTooNew,
)
from gatewayd.store.postgres import NodeInUse, PostgresStore, session_name
from gatewayd.store.postgres_migrate import pg_migrations

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = "+34600000001"


def message(mid: str, *, key: str | None = None, body: str = "b", parts: int = 1) -> NewMessage:
    return NewMessage(
        id=mid,
        recipient=A,
        text="hola",
        category=Category.TRANSACTIONAL,
        priority=Priority.NORMAL,
        encoding="gsm7",
        parts=tuple(NewPart(n, f"{n:02d}", 10) for n in range(1, parts + 1)),
        replaced_chars=(),
        send_at=T0,
        expires_at=None,
        modem=None,
        pool=None,
        metadata=None,
        callback_url=None,
        force_ucs2=False,
        smart=False,
        created_at=T0,
        idempotency_key=key,
        request_hash=body if key else None,
    )


def route(sim: str) -> RouteQuery:
    return RouteQuery(identity=sim, modem=f"modem-{sim}", pool="default", others_ready=frozenset())


@pytest.fixture
async def nodes(dsn: str) -> AsyncIterator[Callable[[str], PostgresStore]]:
    """``nodes(name)`` opens one more node's store on the shared database."""
    opened: list[PostgresStore] = []

    def make(name: str) -> PostgresStore:
        store = PostgresStore(dsn, node=name, poll_seconds=0.0)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def open_nodes(make: Callable[[str], PostgresStore], *names: str) -> list[PostgresStore]:
    stores = [make(n) for n in names]
    for s in stores:
        await s.open()
    return stores


async def expire_leases(dsn: str) -> None:
    """Let every lease run out on the database clock (as a stalled node's would)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE messages SET lease_until = clock_timestamp() - interval '1 second'"
            " WHERE lease_until IS NOT NULL"
        )
    finally:
        await conn.close()


async def test_a_message_is_claimed_by_one_node(nodes: Callable[[str], PostgresStore]) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1")])
    got = await asyncio.gather(a.claim("m1", "SIM-A", T0), b.claim("m1", "SIM-B", T0))
    assert sorted(g is not None for g in got) == [False, True]


async def test_an_expired_claim_is_taken_over_and_the_old_node_fenced(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1")])
    assert await a.claim("m1", "SIM-A", T0) is not None
    await expire_leases(dsn)
    # b looks at the queue: the stalled claim goes back (nothing had started sending).
    work = await b.next_work(route("SIM-B"), T0, sticky=False)
    assert work.message is not None
    assert work.message.id == "m1"
    assert await b.claim("m1", "SIM-B", T0) is not None
    # a wakes up: every write about m1 is refused, so it sends nothing more of it.
    with pytest.raises(ClaimLost):
        await a.part_sending("m1", 1, "SIM-A", "modem-a", T0)
    with pytest.raises(ClaimLost):
        await a.requeue(
            "m1",
            T0,
            next_attempt_at=T0,
            count_attempt=True,
            avoid_identity=None,
            bound_until=None,
        )
    await b.part_sending("m1", 1, "SIM-B", "modem-b", T0)
    assert await b.part_sent("m1", 1, 9, T0) is MessageStatus.SENT


async def test_a_part_already_sending_is_not_resent_by_the_taker(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1", parts=2)])
    assert await a.claim("m1", "SIM-A", T0) is not None
    await a.part_sending("m1", 1, "SIM-A", "modem-a", T0)
    await expire_leases(dsn)
    await b.recover(T0, resend_categories=frozenset(), bound_until=T0 + timedelta(minutes=5))
    work = await b.next_work(route("SIM-B"), T0, sticky=False)
    # Part 1 may have left SIM-A: at-most-once marks it unconfirmed, never resends it; the
    # message stays bound to SIM-A (part 2 must follow it), so SIM-B gets nothing now.
    assert work.message is None
    msg = await b.get_message("m1")
    assert msg is not None
    assert [p.status for p in msg.parts] == [PartStatus.UNCONFIRMED, PartStatus.QUEUED]
    assert msg.status is MessageStatus.QUEUED
    with pytest.raises(ClaimLost):
        await a.part_sent("m1", 1, 7, T0)  # the late answer cannot overwrite the take-over


async def test_a_sim_is_driven_by_one_node(nodes: Callable[[str], PostgresStore]) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1")])
    assert (await a.next_work(route("SIM1"), T0, sticky=False)).message is not None
    refused = await b.next_work(route("SIM1"), T0, sticky=False)
    assert refused.message is None
    assert await b.claim("m1", "SIM1", T0) is None
    assert await a.claim("m1", "SIM1", T0) is not None


async def test_one_key_gets_one_message_across_nodes(
    nodes: Callable[[str], PostgresStore],
) -> None:
    stores = await open_nodes(nodes, "a", "b", "c")
    posts = [stores[n % 3].insert_messages([message(f"m{n}", key="k")]) for n in range(1000)]
    results = [r for [r] in await asyncio.gather(*posts)]
    assert all(isinstance(r, Inserted) for r in results)
    ids = {r.message.id for r in results if isinstance(r, Inserted)}
    assert len(ids) == 1
    assert sum(1 for r in results if isinstance(r, Inserted) and not r.duplicate) == 1
    [other] = await stores[1].insert_messages([message("mx", key="k", body="different")])
    assert isinstance(other, IdempotencyKeyReused)


async def test_an_opt_out_on_one_node_stops_the_other_before_its_next_part(
    nodes: Callable[[str], PostgresStore],
) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1", parts=2), message("m2")])
    assert await a.claim("m1", "SIM-A", T0) is not None
    await a.part_sending("m1", 1, "SIM-A", "modem-a", T0)
    await a.part_sent("m1", 1, 1, T0)
    result = await b.add_optout(A, OptOutScope.ALL, "sms", T0)
    assert result.cancelled == ("m2",)  # queued: cancelled in the opt-out's transaction
    with pytest.raises(RecipientOptedOut):
        await a.part_sending("m1", 2, "SIM-A", "modem-a", T0)
    [refused] = await a.insert_messages([message("m3")])
    assert isinstance(refused, RecipientOptedOut)


async def test_a_claim_after_an_opt_out_cancels_instead(
    nodes: Callable[[str], PostgresStore],
) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    await a.insert_messages([message("m1")])
    work = await a.next_work(route("SIM-A"), T0, sticky=False)
    assert work.message is not None
    # The opt-out commits on b between a's look at the queue and its claim.
    await b.add_optout(A, OptOutScope.ALL, "sms", T0)
    assert await a.claim("m1", "SIM-A", T0) is None
    msg = await a.get_message("m1")
    assert msg is not None
    assert msg.status is MessageStatus.CANCELLED


async def test_an_sms_read_by_two_nodes_is_stored_once(
    nodes: Callable[[str], PostgresStore],
) -> None:
    a, b = await open_nodes(nodes, "a", "b")
    part = NewInboundPart("SIM1", "m", A, T0, "h", "hola", None, None, None, T0)
    results = await asyncio.gather(a.record_inbound(part), b.record_inbound(part))
    assert sorted(new for _, new in results) == [False, True]
    assert len({rec.id for rec, _ in results}) == 1


async def test_a_node_name_runs_once(nodes: Callable[[str], PostgresStore]) -> None:
    await open_nodes(nodes, "a")
    with pytest.raises(NodeInUse, match="node 'a' is running elsewhere"):
        await nodes("a").open()


async def test_nodes_starting_together_migrate_once(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    stores = [nodes(f"n{i}") for i in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [m.version for m in pg_migrations()]


async def test_a_newer_schema_is_refused_unless_it_only_adds(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    await open_nodes(nodes, "a")
    newer = pg_migrations()[-1].version + 1
    conn = await asyncpg.connect(dsn)
    try:
        # Version N+1 only added things: version N still runs beside it.
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, additive) VALUES ($1, 'x.sql', true)",
            newer,
        )
        await open_nodes(nodes, "b")
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, additive) VALUES ($1, 'y.sql', false)",
            newer + 1,
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match=f"schema v{newer + 1} is newer"):
        await nodes("c").open()


# A node that claims m1, marks part 1 sending (the Ctrl-Z may have gone) and dies by SIGKILL.
_CRASHING_NODE = """
import asyncio, os, signal, sys
from tests.multinode.test_claims import T0, message
from gatewayd.store.postgres import PostgresStore

async def main():
    store = PostgresStore(sys.argv[1], node="a")
    await store.open()
    await store.insert_messages([message("m1")])
    assert await store.claim("m1", "SIM-A", T0) is not None
    await store.part_sending("m1", 1, "SIM-A", "modem-a", T0)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_killed_node_restarts_at_once_and_resolves_its_own_claims(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASHING_NODE, dsn)
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    # Its heartbeat, SIM and claim rows are still fresh. Its sessions end as the server
    # notices the closed sockets: end any it has not noticed yet (waiting for them to go).
    conn = await asyncpg.connect(dsn)
    try:
        # Only this test's node a (its schema is in the name): tests run side by side.
        await conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE application_name = $1",
            session_name(dsn, "a"),
        )
    finally:
        await conn.close()
    [again] = await open_nodes(nodes, "a")
    unconfirmed, requeued = await again.recover(T0, resend_categories=frozenset(), bound_until=T0)
    assert (unconfirmed, requeued) == (1, 0)
    msg = await again.get_message("m1")
    assert msg is not None
    assert msg.status is MessageStatus.UNCONFIRMED
    assert await again.claim("m1", "SIM-A", T0) is None  # nothing left to send


async def test_a_node_clock_ahead_cannot_take_a_live_claim(
    nodes: Callable[[str], PostgresStore],
) -> None:
    # Leases run on the database clock: a node whose own clock is an hour ahead (and one
    # behind) sees a claim made a moment ago as live, and sends nothing of it.
    a, ahead, behind = await open_nodes(nodes, "a", "ahead", "behind")
    await a.insert_messages([message("m1")])
    assert await a.claim("m1", "SIM-A", T0) is not None
    for node, skew in ((ahead, timedelta(hours=1)), (behind, -timedelta(hours=1))):
        work = await node.next_work(route(f"SIM-{node.node}"), T0 + skew, sticky=False)
        assert work.message is None
        assert await node.claim("m1", f"SIM-{node.node}", T0 + skew) is None
    await a.part_sending("m1", 1, "SIM-A", "modem-a", T0)
    assert await a.part_sent("m1", 1, 3, T0) is MessageStatus.SENT


async def test_a_claim_this_node_lost_track_of_comes_back_after_its_lease(
    dsn: str, nodes: Callable[[str], PostgresStore]
) -> None:
    # The worker's hand-back failed while the database was gone: the claim stays this
    # node's in the database until its lease runs out, then the queue has it again.
    [a] = await open_nodes(nodes, "a")
    await a.insert_messages([message("m1")])
    assert await a.claim("m1", "SIM-A", T0) is not None
    assert (await a.next_work(route("SIM-A"), T0, sticky=False)).message is None
    await expire_leases(dsn)
    work = await a.next_work(route("SIM-A"), T0, sticky=False)
    assert work.message is not None
    assert work.message.id == "m1"
    again = await a.claim("m1", "SIM-A", T0)
    assert again is not None
    assert [h.status for h in (await a.get_message("m1") or again).history][-2:] == [
        "queued",
        "sending",
    ]
