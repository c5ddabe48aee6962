from datetime import UTC, datetime, timedelta

from tests.gatewayd.api.client import wait_for_message
from tests.gatewayd.api.conftest import Stack

TO = "+34611000001"


async def test_submit_returns_202_and_the_message_is_delivered(stack: Stack) -> None:
    reply = await stack.api.call("POST", "/v1/messages", {"to": TO, "text": "Tu pedido ha salido"})
    assert reply.status == 202
    assert reply.body["status"] == "queued"
    assert (reply.body["encoding"], reply.body["segments"]) == ("gsm7", 1)
    message = await wait_for_message(stack.api, reply.body["id"], {"delivered"})
    assert message["to"] == TO
    assert [p["status"] for p in message["parts"]] == ["delivered"]
    received = await stack.net.handset(TO).wait_received(1)
    assert received[0].text == "Tu pedido ha salido"


async def test_national_numbers_are_read_in_the_default_region(stack: Stack) -> None:
    reply = await stack.api.call("POST", "/v1/messages", {"to": "611 000 002", "text": "hola"})
    assert reply.status == 202
    got = await stack.api.call("GET", f"/v1/messages/{reply.body['id']}")
    assert got.body["to"] == "+34611000002"


async def test_idempotent_resubmission_returns_the_same_id(stack: Stack) -> None:
    body = {"to": TO, "text": "Pedido 7 confirmado"}
    first = await stack.api.call("POST", "/v1/messages", body, headers={"Idempotency-Key": "o-7"})
    again = await stack.api.call("POST", "/v1/messages", body, headers={"Idempotency-Key": "o-7"})
    assert first.status == again.status == 202
    assert again.body["id"] == first.body["id"]
    other = await stack.api.call("POST", "/v1/messages", body, headers={"Idempotency-Key": "o-8"})
    assert other.body["id"] != first.body["id"]
    changed = await stack.api.call(
        "POST", "/v1/messages", {**body, "text": "otro"}, headers={"Idempotency-Key": "o-7"}
    )
    assert (changed.status, changed.body["error"]["code"]) == (422, "idempotency_conflict")
    assert changed.body["error"]["field"] == "Idempotency-Key"
    listed = await stack.api.call("GET", "/v1/messages?to=%2B34611000001&limit=10")
    assert sorted(m["id"] for m in listed.body["items"]) == sorted(
        [first.body["id"], other.body["id"]]
    )


async def test_missing_or_wrong_token_is_401(stack: Stack) -> None:
    for kwargs in ({"auth": False}, {"token": "wrong"}, {"token": ""}):
        reply = await stack.api.call("GET", "/v1/messages", **kwargs)
        assert reply.status == 401
        assert reply.body["error"]["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await stack.api.call("GET", "/healthz", auth=False)).status == 200


async def test_malformed_json_is_400_and_a_large_body_413(stack: Stack) -> None:
    bad = await stack.api.call("POST", "/v1/messages", raw=b'{"to": "+34611000001", ')
    assert bad.status == 400
    assert bad.body["error"]["code"] == "invalid_json"
    for raw in (b"", b"\xff\xfe", b"[" * 20_000 + b"]" * 20_000):
        reply = await stack.api.call("POST", "/v1/messages", raw=raw)
        assert (reply.status, reply.body["error"]["code"]) == (400, "invalid_json"), raw[:4]
    big = await stack.api.call("POST", "/v1/messages", {"to": TO, "text": "x" * 70_000})
    assert big.status == 413
    assert big.body["error"]["code"] == "payload_too_large"


async def test_bad_fields_are_422_naming_the_field(stack: Stack) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases = [
        ({"to": "+34 12", "text": "x"}, "to"),
        ({"to": "hello", "text": "x"}, "to"),
        ({"text": "x"}, "to"),
        ({"to": TO, "text": ""}, "text"),
        ({"to": TO, "text": "   "}, "text"),
        ({"to": TO, "text": 5}, "text"),
        ({"to": TO, "text": "x" * 2000}, "text"),
        ({"to": TO, "text": "x", "modem": "m9"}, "modem"),
        ({"to": TO, "text": "x", "pool": "fr"}, "pool"),
        ({"to": TO, "text": "x", "send_at": past}, "send_at"),
        ({"to": TO, "text": "x", "expires_at": past}, "expires_at"),
        ({"to": TO, "text": "x", "send_at": "tomorrow"}, "send_at"),
        ({"to": TO, "text": "x", "send_at": "2030-01-01T10:00:00"}, "send_at"),
        ({"to": TO, "text": "x", "category": "spam"}, "category"),
        ({"to": TO, "text": "x", "priority": 3}, "priority"),
        ({"to": TO, "text": "x", "metadata": [1]}, "metadata"),
        ({"to": TO, "text": "x", "callback_url": "ftp://x"}, "callback_url"),
        ({"to": TO, "text": "x", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        reply = await stack.api.call("POST", "/v1/messages", body)
        assert (reply.status, reply.body["error"].get("field")) == (422, field), body
        assert reply.body["error"]["message"]
    not_object = await stack.api.call("POST", "/v1/messages", [1, 2])
    assert (not_object.status, not_object.body["error"]["field"]) == (422, "body")
    key = await stack.api.call(
        "POST", "/v1/messages", {"to": TO, "text": "x"}, headers={"Idempotency-Key": "k" * 300}
    )
    assert (key.status, key.body["error"]["field"]) == (422, "Idempotency-Key")


async def test_opted_out_numbers_get_409(stack: Stack) -> None:
    added = await stack.api.call("POST", "/v1/optouts", {"number": "+34611000003"})
    assert added.status == 201
    reply = await stack.api.call("POST", "/v1/messages", {"to": "+34611000003", "text": "hola"})
    assert reply.status == 409
    assert reply.body["error"]["code"] == "opted_out"


async def test_unknown_ids_routes_and_methods_use_the_error_shape(stack: Stack) -> None:
    missing = await stack.api.call("GET", "/v1/messages/does-not-exist")
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
    cancel = await stack.api.call("DELETE", "/v1/messages/does-not-exist")
    assert cancel.status == 404
    route = await stack.api.call("GET", "/v1/nothing-here")
    assert (route.status, route.body["error"]["code"]) == (404, "not_found")
    method = await stack.api.call("PUT", "/v1/messages")
    assert (method.status, method.body["error"]["code"]) == (405, "method_not_allowed")


async def test_cancel_a_scheduled_message_but_not_a_sent_one(stack: Stack) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    queued = await stack.api.call("POST", "/v1/messages", {"to": TO, "text": "x", "send_at": later})
    cancelled = await stack.api.call("DELETE", f"/v1/messages/{queued.body['id']}")
    assert (cancelled.status, cancelled.body["status"]) == (200, "cancelled")
    sent = await stack.api.call("POST", "/v1/messages", {"to": TO, "text": "now"})
    await wait_for_message(stack.api, sent.body["id"], {"delivered"})
    refused = await stack.api.call("DELETE", f"/v1/messages/{sent.body['id']}")
    assert (refused.status, refused.body["error"]["code"]) == (409, "not_cancellable")


async def test_batch_gives_one_result_per_item_in_order(stack: Stack) -> None:
    await stack.api.call("POST", "/v1/optouts", {"number": "+34611000004"})
    reply = await stack.api.call(
        "POST",
        "/v1/messages/batch",
        {
            "messages": [
                {"to": TO, "text": "uno"},
                {"to": "nope", "text": "dos"},
                {"to": "+34611000004", "text": "tres"},
                {"to": "+34611000005", "text": "envío"},
            ]
        },
    )
    assert reply.status == 200
    assert (reply.body["accepted"], reply.body["rejected"]) == (2, 2)
    results = reply.body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == [202, 422, 409, 202]
    assert results[1]["error"]["field"] == "messages[1].to"
    assert results[2]["error"]["code"] == "opted_out"
    assert results[3]["message"]["encoding"] == "ucs2"
    too_many = await stack.api.call(
        "POST", "/v1/messages/batch", {"messages": [{"to": TO, "text": "x"}] * 6}
    )
    assert (too_many.status, too_many.body["error"]["field"]) == (422, "messages")


async def test_list_filters_and_pages_with_a_cursor(stack: Stack) -> None:
    ids = []
    for i in range(3):
        reply = await stack.api.call("POST", "/v1/messages", {"to": TO, "text": f"m{i}"})
        ids.append(reply.body["id"])
    first = await stack.api.call("GET", "/v1/messages?limit=2")
    assert len(first.body["items"]) == 2
    assert first.body["next_cursor"]
    second = await stack.api.call("GET", f"/v1/messages?limit=2&cursor={first.body['next_cursor']}")
    seen = [m["id"] for m in first.body["items"] + second.body["items"]]
    assert sorted(seen) == sorted(ids)
    since = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    future = await stack.api.call("GET", f"/v1/messages?since={since}")
    assert (future.status, future.body["items"]) == (200, [])
    queued = await stack.api.call("GET", "/v1/messages?status=delivered&to=611000001")
    assert all(m["status"] == "delivered" for m in queued.body["items"])
    bad_since = await stack.api.call("GET", "/v1/messages?since=yesterday")
    assert (bad_since.status, bad_since.body["error"]["field"]) == (422, "since")
    bad = await stack.api.call("GET", "/v1/messages?status=lost")
    assert (bad.status, bad.body["error"]["field"]) == (422, "status")
    bad_limit = await stack.api.call("GET", "/v1/messages?limit=0")
    assert (bad_limit.status, bad_limit.body["error"]["field"]) == (422, "limit")
