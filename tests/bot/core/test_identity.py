"""Whom a conversation counts as verified for (bot/core/identity.py), and the shop's hashes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from bot.core.identity import (
    SECOND_FACTOR_VALID,
    parse_identity,
    personal_identity,
    shop_hash_matches,
    shop_user_hash,
    valid_user_id,
    verified_as,
)
from bot.core.models import Conversation
from bot.core.state import ConversationState

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def conversation(channel: str, user: str, **verified: object) -> Conversation:
    base = Conversation(
        id="c1",
        customer_id="p1",
        channel=channel,
        channel_user_id=user,
        state=ConversationState.BOT,
        version=1,
        team=None,
        priority="normal",
        assigned_agent_id=None,
        awaiting_csat=False,
        bot_cursor=0,
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(base, **verified)  # type: ignore[arg-type]


def test_a_personal_identity_keeps_the_customers_verification() -> None:
    assert personal_identity("telegram", "42")
    assert personal_identity("slack", "D0123")
    assert not personal_identity("slack", "C0123:1700000000.000100")  # a shared thread
    assert not personal_identity("webchat", "visitor")
    chat = conversation("telegram", "42")
    assert verified_as(chat, "1", "second_factor", NOW) == ("1", "second_factor")
    assert verified_as(chat, None, None, NOW) is None
    thread = conversation("slack", "C0123:1700000000.000100")
    assert verified_as(thread, "1", "second_factor", NOW) is None


def test_a_web_chat_counts_only_its_own_verification_and_a_second_factor_lapses() -> None:
    web = conversation("webchat", "visitor")
    assert verified_as(web, "1", "shop", NOW) is None  # the browser is not the person
    fresh = dataclasses.replace(
        web, verified_id="1", verified_by="second_factor", verified_at=NOW - timedelta(hours=1)
    )
    assert verified_as(fresh, None, None, NOW) == ("1", "second_factor")
    stale = dataclasses.replace(fresh, verified_at=NOW - SECOND_FACTOR_VALID)
    assert verified_as(stale, None, None, NOW) is None
    shop = dataclasses.replace(
        web, verified_id="1", verified_by="shop", verified_at=NOW - timedelta(days=80)
    )
    assert verified_as(shop, None, None, NOW) == ("1", "shop")  # as long as the session


def test_shop_hashes_and_ids() -> None:
    digest = shop_user_hash("s" * 20, "1")
    assert len(digest) == 64 and shop_hash_matches("s" * 20, "1", digest.upper())
    assert not shop_hash_matches("s" * 20, "2", digest)
    assert not shop_hash_matches("t" * 20, "1", digest)
    for good in ("1", "user-42", "a.b@shop.example", "x" * 255):
        assert valid_user_id(good)
    for bad in ("", " 1", "1 ", "a b", "\u0661", "x" * 256, 1, None, "a\nb"):
        assert not valid_user_id(bad)


def test_the_identity_payload_must_be_well_formed() -> None:
    ok = parse_identity({"customer_id": 2, "method": "second_factor", "vip": True, "name": "J"})
    assert ok is not None and (ok.customer_id, ok.vip, ok.name) == ("2", True, "J")
    for bad in (
        None,
        [],
        {"customer_id": "2"},
        {"customer_id": "2", "method": "guess"},
        {"customer_id": ["2"], "method": "shop"},
        {"customer_id": "2", "method": "shop", "vip": "yes"},
        {"customer_id": "2", "method": "shop", "name": ""},
        {"customer_id": True, "method": "shop"},
    ):
        assert parse_identity(bad) is None
