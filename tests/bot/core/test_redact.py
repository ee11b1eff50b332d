"""Redaction of cards (Luhn), e-mail addresses and phone numbers; what must survive."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from bot.core.redact import luhn_valid, redact, redact_value, structlog_redactor

# Well-known Luhn-valid test numbers of several brands and lengths.
VALID_CARDS = [
    "4111111111111111",  # Visa, 16
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5555 5555 5555 4444",  # Mastercard
    "3782 822463 10005",  # Amex, 15, 4-6-5 grouping
    "6011-0009-9013-9424",  # Discover
    "4222222222222",  # Visa, 13
    "6304 0000 0000 0000 018",  # Maestro, 19
]


@pytest.mark.parametrize("number", VALID_CARDS)
def test_luhn_valid_cards_are_redacted(number: str) -> None:
    assert redact(f"my card is {number}, expires 12/27") == "my card is [card], expires 12/27"


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # one digit off
        "4111 1111 1111 1112",
        "1234-5678-9012-3456",
        "9400100000000000000000",  # 22-digit tracking number
    ],
)
def test_luhn_invalid_long_numbers_survive(number: str) -> None:
    assert redact(f"tracking {number}") == f"tracking {number}"


def test_luhn_helper() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("4111-1111")


def test_card_next_to_an_order_number_keeps_the_order_number() -> None:
    assert redact("order 1001 4111 1111 1111 1111") == "order 1001 [card]"
    assert redact("Order 1001, paid with 4111111111111111.") == "Order 1001, paid with [card]."


def test_several_cards_in_one_text() -> None:
    text = "first 4111111111111111 then 5555-5555-5555-4444"
    assert redact(text) == "first [card] then [card]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at maya.patel@example.com", "mail me at [email]"),
        ("john.doe+orders@mail.example.co.uk.", "[email]."),
        ("<JONAS_WEBER@Example.DE>", "<[email]>"),
        ("two: a@b.io, c-d@e-f.org", "two: [email], [email]"),
    ],
)
def test_emails(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "phone",
    [
        "+1 (555) 123-4567",
        "+44 20 7946 0958",
        "+49-30-1234567",
        "+4915112345678",
        "+33 1 23 45 67 89",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "5551234567",
        "555-1234",
        "030 1234567",
        "07946 095858",
        "1-800-555-0199",
        "0151 123 45 67",
    ],
)
def test_phones(phone: str) -> None:
    assert redact(f"call me on {phone} please") == "call me on [phone] please"


def test_phone_in_parentheses_keeps_the_parentheses() -> None:
    assert redact("(mobile 555 123 4567)") == "(mobile [phone])"


@pytest.mark.parametrize(
    "text",
    [
        "order 1001",
        "my order number is 123456",
        "orders 1001 and 1002",
        "orders 1001 1002 1003",
        "serial SN100234",
        "SN123456 and SN482910",
        "delivered on 2026-11-23",
        "delivered on 23.11.2026 at 15:00",
        "bought 11/23/2026",
        "it was 2026-11-23 15:00:30",
        "2026-11-23T15:00:00.123456+00:00",
        "it cost $129.00",
        "it cost €1,299.99",
        "paid 1299.99 EUR",
        "1234567.89 dollars",
        "router at 192.168.1.10",
        "firmware v2.14.1",
        "volume at 40%",
        "model AUR-1 and PLS-1",
        "conversation 123e4567-e89b-12d3-a456-426614174000",
        "",
        "no digits at all",
    ],
)
def test_things_that_must_survive(text: str) -> None:
    assert redact(text) == text


def test_list_of_numbers_is_a_phone_when_the_customer_says_so() -> None:
    assert redact("call me at 5550 1234") == "call me at [phone]"


def test_everything_at_once() -> None:
    text = (
        "Hi, order 1001 (SN100234) from 2026-11-23 for $129.00. Card 4111 1111 1111 1111, "
        "mail maya@example.com, phone +1 555 123 4567."
    )
    assert redact(text) == (
        "Hi, order 1001 (SN100234) from 2026-11-23 for $129.00. Card [card], "
        "mail [email], phone [phone]."
    )


def test_redact_is_idempotent() -> None:
    once = redact("4111111111111111 a@b.com +44 20 7946 0958")
    assert redact(once) == once == "[card] [email] [phone]"


def test_redact_value_recurses_and_keeps_other_types() -> None:
    value: dict[str, Any] = {
        "order_number": "1001",
        "note": "card 4111111111111111",
        "nested": {"list": ["a@b.com", 7, None, True, ("+44 20 7946 0958",)]},
        "count": 3,
        "card_as_int": 4111111111111111,
        "tracking_as_int": 4111111111111112,
    }
    assert redact_value(value) == {
        "order_number": "1001",
        "note": "card [card]",
        "nested": {"list": ["[email]", 7, None, True, ("[phone]",)]},
        "count": 3,
        "card_as_int": "[card]",
        "tracking_as_int": 4111111111111112,
    }
    assert value["note"] == "card 4111111111111111"  # the input is not modified


def test_structlog_redactor_redacts_every_string_value() -> None:
    event = {
        "event": "customer wrote maya@example.com",
        "text": "4111 1111 1111 1111",
        "extra": {"phone": "+1 555 123 4567"},
        "order": 1001,
    }
    out = structlog_redactor(None, "info", dict(event))
    assert out == {
        "event": "customer wrote [email]",
        "text": "[card]",
        "extra": {"phone": "[phone]"},
        "order": 1001,
    }


def test_structlog_redactor_in_a_processor_chain() -> None:
    captured: list[dict[str, Any]] = []

    def capture(_logger: Any, _method: str, event_dict: Any) -> str:
        captured.append(dict(event_dict))
        return ""

    logger = structlog.wrap_logger(
        structlog.PrintLogger(), processors=[structlog_redactor, capture]
    )
    logger.info("payment", card="4111-1111-1111-1111", order_number="1001")
    assert captured == [{"event": "payment", "card": "[card]", "order_number": "1001"}]
