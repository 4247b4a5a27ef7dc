"""Property-based fuzzing of POST /v1/webhooks/transactions (hypothesis).

Whatever the body and headers: never a 5xx, and a 202 only for a valid webhook,
which is then stored exactly as sent; anything refused stores nothing. Bounded to
200 examples a test; FUZZ_PROFILE=long runs 5,000 (docs/development.md: Fuzzing).
"""

import json
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from transactions import signatures
from transactions.models import IDENTIFIER_PATTERN, Transaction
from transactions.serializers import TransactionWebhookSerializer

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

URL = "/v1/webhooks/transactions"
SECRET = signatures.generate_secret()

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
valid_identifiers = st.from_regex(rf"\A{IDENTIFIER_PATTERN}\Z")
wild_identifiers = st.text(max_size=70) | json_scalars
# Amounts as JSON number text, so exact decimals, huge and malformed numbers all occur.
valid_amounts = st.decimals(min_value="0.01", max_value="999999999999.99", places=2).map(str) | st.integers(
    1, 10**11
).map(str)
wild_amounts = (
    st.decimals(min_value=-10, max_value=10**13, places=3, allow_nan=False).map(str)
    | st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.integers().map(str)
    | st.floats().map(repr)
    | st.sampled_from(["1e3", "1E-2", "0.001", "-0", "01", '"12"', "true", "null", "[]", "{}", "NaN"])
)
valid_currencies = st.sampled_from(["USD", "INR", "EUR", "JPY"])
wild_currencies = st.sampled_from(["usd", "XXX", "ZZZ", "", "US", "USDD"]) | st.text(max_size=4)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=nonsense",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ]
)


@st.composite
def webhook_bodies(draw: Any) -> bytes:
    """Half meant to be valid (each field right 9 times in 10), half wild; now and then
    not webhook-shaped, not UTF-8 or not JSON at all."""
    meant_valid = draw(st.booleans())
    # sampled_from, not integers(): hypothesis draws integers' bounds far more often.
    mostly = st.sampled_from([True] * 9 + [False])

    def field(valid: st.SearchStrategy, wild: st.SearchStrategy) -> Any:
        right = draw(mostly) if meant_valid else draw(st.booleans())
        return draw(valid if right else wild)

    body = {
        "transaction_id": field(valid_identifiers, wild_identifiers),
        "source_account": field(valid_identifiers, wild_identifiers),
        "destination_account": field(valid_identifiers, wild_identifiers),
        "amount": "__AMOUNT__",
        "currency": field(valid_currencies, wild_currencies),
    }
    if draw(st.booleans()):
        body["metadata"] = draw(json_values)
    for name in list(body):
        if not draw(mostly):
            del body[name]
    text = json.dumps(body).replace('"__AMOUNT__"', field(valid_amounts, wild_amounts))
    shape = draw(st.sampled_from(["webhook"] * 7 + ["binary", "json", "mangled"]))
    if shape == "binary":
        return draw(st.binary(max_size=200))
    if shape == "json":
        return json.dumps(draw(json_values)).encode()
    if shape == "mangled":
        return draw(st.sampled_from([text.encode("utf-16"), text.encode()[: len(text) // 2]]))
    return text.encode()


# Settings are changed once per test, in fixtures: an override inside a @given body
# would stack one more layer of settings per example (a RecursionError in long runs).
@pytest.fixture
def unsigned(settings: Any) -> None:
    settings.WEBHOOK_SECRETS = []


@pytest.fixture
def signed(settings: Any) -> None:
    settings.WEBHOOK_SECRETS = [SECRET]


def assert_stored_only_if_valid(response: Any, before: int, body: bytes) -> None:
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows the mix
    assert response.status_code < 500, (response.status_code, response.content, body)
    assert response["Content-Type"] == "application/json"
    if response.status_code != 202:
        assert Transaction.objects.count() == before
        return
    stored = Transaction.objects.get(transaction_id=response.json()["transaction_id"])
    # Re-read as the parser reads a body (exact decimals), then judged by the same rules.
    check = TransactionWebhookSerializer(data=json.loads(json.dumps(stored.payload), parse_float=Decimal))
    assert check.is_valid(), (check.errors, stored.payload)
    if stored.delivery_count == 1:  # the first delivery is what was kept
        sent = json.loads(body, parse_float=Decimal)
        for name in ("transaction_id", "source_account", "destination_account", "currency", "amount"):
            assert getattr(stored, name) == sent[name]


@given(body=webhook_bodies(), content_type=st.just("application/json") | content_types)
@example(
    body=b'{"transaction_id":"t1","source_account":"a","destination_account":"b","amount":1,"currency":"USD"}',
    content_type="application/json",
)
def test_any_unsigned_body_is_stored_only_if_valid_and_never_a_5xx(api, unsigned, body, content_type):
    before = Transaction.objects.count()

    response = api.generic("POST", URL, data=body, content_type=content_type)

    assert_stored_only_if_valid(response, before, body)


header_values = st.text(max_size=120) | st.from_regex(r"\Av1,[A-Za-z0-9+/=]{0,60}\Z") | st.integers().map(str)


@given(
    body=webhook_bodies(),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "webhook-id": header_values,
            "webhook-timestamp": header_values | st.just(str(int(time.time()))),
            "webhook-signature": header_values,
        },
    ),
)
def test_with_secrets_arbitrary_signature_headers_are_refused_and_nothing_is_stored(
    api, signed, body, headers
):
    headers = {k: v for k, v in headers.items() if v.isascii() and v.isprintable()}  # what HTTP can carry

    response = api.generic("POST", URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code in {401, 413}, response.content
    assert Transaction.objects.count() == 0


@given(
    body=webhook_bodies(), flip=st.integers(min_value=0), field=st.sampled_from(["body", "id", "signature"])
)
def test_a_signed_webhook_altered_in_any_byte_is_refused(api, signed, body, flip, field):
    try:
        headers = signatures.signed_headers(secret=SECRET, msg_id="msg_fuzz", body=body)
    except UnicodeDecodeError:
        return  # the sender could not sign it either
    if field == "body" and body:
        i = flip % len(body)
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    elif field == "id":
        headers["webhook-id"] += "x"
    else:
        sig = headers["webhook-signature"]
        i = 3 + flip % (len(sig) - 4)  # inside the base64 digest, before the padding
        headers["webhook-signature"] = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]

    response = api.generic("POST", URL, data=body, content_type="application/json", headers=headers)

    if field == "body" and not body:
        assert response.status_code < 500
    else:
        assert response.status_code == 401, response.content
    assert Transaction.objects.count() == 0 or response.status_code == 202


@given(body=webhook_bodies())
def test_correctly_signed_bodies_are_judged_on_their_content_alone(api, signed, body):
    try:
        headers = signatures.signed_headers(secret=SECRET, msg_id="msg_fuzz", body=body)
    except UnicodeDecodeError:
        return
    before = Transaction.objects.count()

    response = api.generic("POST", URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code != 401
    assert_stored_only_if_valid(response, before, body)
