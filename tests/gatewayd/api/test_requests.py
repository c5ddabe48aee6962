"""Request parsing: any JSON gives a SubmitRequest or a FieldError naming a field, nothing else."""

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gatewayd.api.requests import FieldError, SubmitContext, parse_submit
from gatewayd.core import Category, SubmitRequest

CTX = SubmitContext(
    default_region="ES",
    modems=frozenset({"m1"}),
    pools=frozenset({"default"}),
    now=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
)
FIELDS = ["to", "text", "priority", "category", "send_at", "expires_at", "modem", "pool"]
FIELDS += ["metadata", "callback_url", "force_ucs2", "smart", "other"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
field_values = json_values | st.sampled_from(
    [
        "+34611000001",
        "611000001",
        "2026-02-01T10:00:00Z",
        "2020-01-01T00:00:00+00:00",
        "m1",
        "default",
        "marketing",
        "high",
        "https://x.example/cb",
    ]
)


@given(st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=8) | json_values)
def test_any_json_is_a_request_or_a_field_error(body: Any) -> None:
    outcome: SubmitRequest | FieldError
    try:
        outcome = parse_submit(body, CTX, prefix="messages[0].")
    except FieldError as exc:
        outcome = exc
    if isinstance(outcome, FieldError):
        assert outcome.field.startswith("messages[0]")
        assert outcome.reason
    else:
        assert outcome.to.startswith("+")


def test_a_full_body_maps_every_field() -> None:
    req = parse_submit(
        {
            "to": "611 000 001",
            "text": "hola",
            "priority": "low",
            "category": "marketing",
            "send_at": "2026-01-05T10:00:00Z",
            "expires_at": "2026-01-06T10:00:00+01:00",
            "modem": "m1",
            "metadata": {"order": 7},
            "callback_url": "https://shop.example/cb",
            "smart": True,
        },
        CTX,
    )
    assert req.to == "+34611000001"
    assert req.category is Category.MARKETING
    assert req.send_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert (req.modem, req.metadata, req.smart, req.force_ucs2) == ("m1", {"order": 7}, True, False)
