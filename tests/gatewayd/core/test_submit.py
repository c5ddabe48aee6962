"""Submit: validation, idempotency, group commit under concurrency, cancel, listing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from gatewayd.config.model import Limits
from gatewayd.core import (
    Gateway,
    IdempotencyConflict,
    MessageStatus,
    NotCancellable,
    NotFound,
    SubmitRequest,
    SubmitResult,
    ValidationError,
)
from gatewayd.store import SqliteStore
from tests.gatewayd.core.fakes import FakeModem, Harness, config, modem_config, start

A = "+34600000001"


async def paused(tmp_path: Path, clock: ManualClock, limits: Limits | None = None) -> Harness:
    mc = modem_config("m1") if limits is None else modem_config("m1", limits=limits)
    h = await start(config(tmp_path, mc), clock, [FakeModem("m1", "SIM1", clock)])
    await h.gateway.pause("m1")
    return h


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (SubmitRequest(to="12", text="x"), "to"),
        (SubmitRequest(to="not a number", text="x"), "to"),
        (SubmitRequest(to=A, text=""), "text"),
        (SubmitRequest(to=A, text="x", modem="nope"), "modem"),
        (SubmitRequest(to=A, text="x", pool="nope"), "pool"),
        (SubmitRequest(to=A, text="x", callback_url="ftp://x"), "callback_url"),
        (SubmitRequest(to=A, text="x" * 2000), "text"),
    ],
)
async def test_bad_input_names_the_field(
    tmp_path: Path, clock: ManualClock, req: SubmitRequest, field: str
) -> None:
    h = await paused(tmp_path, clock)
    try:
        with pytest.raises(ValidationError) as err:
            await h.gateway.submit(req)
        assert err.value.field == field
        assert err.value.http_status == 422
        assert h.gateway.queue_depth() == 0
    finally:
        await h.close()


async def test_national_numbers_use_the_default_region_and_spanish_costs_ucs2(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await paused(tmp_path, clock)
    try:
        res = await h.gateway.submit(SubmitRequest(to="600 000 001", text="envío"))
        assert (res.encoding, res.segments) == ("ucs2", 1)
        assert (await h.gateway.get_message(res.id)).to == A
    finally:
        await h.close()


async def test_more_parts_than_any_limit_allows_is_refused(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await paused(tmp_path, clock, Limits(max_per_minute=2))
    try:
        with pytest.raises(ValidationError) as err:
            await h.gateway.submit(SubmitRequest(to=A, text="q" * 400))
        assert err.value.field == "text"
    finally:
        await h.close()


async def test_idempotency_same_key_same_id_different_body_conflict(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await paused(tmp_path, clock)
    try:
        req = SubmitRequest(to=A, text="order 1 shipped", metadata={"order": 1})
        first = await h.gateway.submit(req, idempotency_key="k-1")
        again = await h.gateway.submit(req, idempotency_key="k-1")
        assert (again.id, again.duplicate, first.duplicate) == (first.id, True, False)
        with pytest.raises(IdempotencyConflict) as err:
            await h.gateway.submit(
                SubmitRequest(to=A, text="order 2 shipped"), idempotency_key="k-1"
            )
        assert err.value.http_status == 422
        assert h.gateway.queue_depth() == 1
    finally:
        await h.close()


async def test_200_concurrent_submits_commit_in_groups_without_losing_any(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await paused(tmp_path, clock)
    try:
        reqs = [SubmitRequest(to=f"+34600{n:06d}", text=f"m{n}") for n in range(200)]
        # A conflicting key inside the same group must not fail the others.
        await h.gateway.submit(SubmitRequest(to=A, text="original"), idempotency_key="dup")
        tasks = [asyncio.create_task(h.gateway.submit(r)) for r in reqs]
        bad = asyncio.create_task(
            h.gateway.submit(SubmitRequest(to=A, text="different"), idempotency_key="dup")
        )
        results = await asyncio.gather(*tasks)
        with pytest.raises(IdempotencyConflict):
            await bad
        assert len({r.id for r in results}) == 200
        assert h.store.max_group > 50  # many submits shared one transaction
        assert h.gateway.queue_depth() == 201
        page = await h.gateway.list_messages(limit=1000)
        assert len(page.items) == 201
        assert {m.text for m in page.items} == {f"m{n}" for n in range(200)} | {"original"}
    finally:
        await h.close()
    # Durable: a new store on the same file counts them at start.
    store = SqliteStore(str(tmp_path / "gw.db"))
    await store.open()
    try:
        assert store.queue_depth() == 201
    finally:
        await store.close()


async def test_a_batch_returns_a_result_or_an_error_per_item(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await paused(tmp_path, clock)
    try:
        out = await h.gateway.submit_batch(
            [SubmitRequest(to=A, text="ok"), SubmitRequest(to="x", text="bad")]
        )
        assert isinstance(out[0], SubmitResult)
        assert isinstance(out[1], ValidationError)
        assert out[1].field == "to"
    finally:
        await h.close()


async def test_cancel_only_while_queued(tmp_path: Path, clock: ManualClock) -> None:
    h = await paused(tmp_path, clock)
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="cancel me"))
        view = await h.gateway.cancel(res.id)
        assert view.status is MessageStatus.CANCELLED
        assert h.gateway.queue_depth() == 0
        with pytest.raises(NotCancellable):
            await h.gateway.cancel(res.id)
        with pytest.raises(NotFound):
            await h.gateway.cancel("nope")
        await h.gateway.resume("m1")
        await h.idle()
        assert h.modems["m1"].sends == []
    finally:
        await h.close()


async def test_list_pages_newest_first_with_filters(tmp_path: Path, clock: ManualClock) -> None:
    h = await paused(tmp_path, clock)
    try:
        ids = []
        for n in range(5):
            ids.append((await h.gateway.submit(SubmitRequest(to=A, text=f"{n}"))).id)
            await clock.advance(1)
        await h.gateway.submit(SubmitRequest(to="+34600000009", text="other"))
        first = await h.gateway.list_messages(to=A, limit=3)
        assert [m.id for m in first.items] == ids[::-1][:3]
        second = await h.gateway.list_messages(to=A, limit=3, cursor=first.next_cursor)
        assert [m.id for m in second.items] == ids[::-1][3:]
        since = await h.gateway.list_messages(since=clock.now() - timedelta(seconds=1.5))
        assert [m.text for m in since.items] == ["other", "4"]
        with pytest.raises(ValidationError):
            await h.gateway.list_messages(cursor="abc")
        assert first.to_json()["next_cursor"] == first.next_cursor
    finally:
        await h.close()


async def test_readiness_and_modem_status(tmp_path: Path, clock: ManualClock) -> None:
    h = await paused(tmp_path, clock, Limits(max_per_minute=6, max_per_hour=None, max_per_day=50))
    gw: Gateway = h.gateway
    try:
        ok, reasons = await gw.readiness()
        assert (ok, reasons) == (False, ["no modem ready"])
        await gw.resume("m1")
        assert await gw.readiness() == (True, [])
        await gw.submit(SubmitRequest(to=A, text="one"))
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        [status] = gw.modem_status()
        js = status.to_json()
        assert (js["name"], js["sim"], js["state"], js["paused"]) == ("m1", "SIM1", "ready", False)
        assert js["headroom"] == {"minute": 5, "hour": None, "day": 49}
        assert js["counters"] == {"sent": 1, "failed": 0}
        with pytest.raises(NotFound):
            await gw.pause("nope")
    finally:
        await h.close()
