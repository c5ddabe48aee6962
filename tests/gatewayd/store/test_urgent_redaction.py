"""otp/alert texts and PDUs are wiped in the store once final, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from gatewayd.store import Category, MessageStatus, Priority, Store
from tests.gatewayd.store.test_store import T0, B, message, send_all


async def test_urgent_texts_are_wiped_once_final_and_others_kept(store: Store) -> None:
    await store.insert_messages(
        [
            message("otp", category=Category.OTP, priority=Priority.URGENT),
            message("late", B, category=Category.ALERT, expires_at=T0 + timedelta(minutes=5)),
            message("plain", B),
        ]
    )
    queued = await store.get_message("otp")
    assert queued is not None
    assert queued.text == "text of otp"  # kept while it may still go
    await send_all(store, "otp", "S1", T0)
    await send_all(store, "plain", "S1", T0)
    assert await store.expire_due(T0 + timedelta(minutes=5)) == ["late"]
    for mid, status in (("otp", MessageStatus.SENT), ("late", MessageStatus.EXPIRED)):
        msg = await store.get_message(mid)
        assert msg is not None
        assert msg.status is status
        assert msg.text == ""
        assert [p.pdu for p in msg.parts] == [""]
    plain = await store.get_message("plain")
    assert plain is not None
    assert plain.text == "text of plain"
    assert [p.pdu for p in plain.parts] == ["01"]
