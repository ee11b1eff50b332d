"""Customers and their channel identities, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.errors import NotFound
from bot.core.models import Identity
from bot.store import Store
from tests.bot.store.helpers import assert_utc


async def test_customers_and_identities(store: Store) -> None:
    ann = await store.find_or_create_customer("telegram", "42")
    assert len(ann.id) == 32 and ann.display_name is None and ann.email is None
    assert ann.vip is False
    assert_utc(ann.created_at)

    # Same identity: same customer; a display name fills in a missing one but never overwrites.
    named = await store.find_or_create_customer("telegram", "42", "Ann")
    assert named.id == ann.id and named.display_name == "Ann"
    again = await store.find_or_create_customer("telegram", "42", "Someone Else")
    assert again == named
    assert await store.customer(ann.id) == named
    assert await store.customer("0" * 32) is None

    bob = await store.find_or_create_customer("telegram", "43", "Bob")
    assert bob.id != ann.id
    # Same user id on another channel is another person.
    assert (await store.find_or_create_customer("slack", "42")).id != ann.id

    await store.link_identity(ann.id, "webchat", "visitor-1")
    await store.link_identity(ann.id, "webchat", "visitor-1")  # linking twice is harmless
    assert (await store.find_or_create_customer("webchat", "visitor-1")).id == ann.id
    assert await store.identities(ann.id) == [
        Identity("telegram", "42"),
        Identity("webchat", "visitor-1"),
    ]

    # Linking an identity of another customer moves it over.
    await store.link_identity(ann.id, "telegram", "43")
    assert (await store.find_or_create_customer("telegram", "43")).id == ann.id
    assert await store.identities(bob.id) == []

    with pytest.raises(NotFound):
        await store.link_identity("f" * 32, "webchat", "visitor-2")


async def test_find_or_create_customer_is_safe_under_concurrency(store: Store) -> None:
    found = await asyncio.gather(
        *(store.find_or_create_customer("webchat", "same-visitor", "Ann") for _ in range(20))
    )
    assert len({c.id for c in found}) == 1
    assert await store.identities(found[0].id) == [Identity("webchat", "same-visitor")]


async def test_verifying_records_who_the_customer_is_and_joins_their_history(store: Store) -> None:
    tg = await store.find_or_create_customer("telegram", "42", "Maya on Telegram")
    tg_chat = await store.create_conversation(tg.id, "telegram", "42")
    assert (tg.verified_id, tg.verified_by, tg.verified_at) == (None, None, None)

    verified = await store.verify_customer(
        tg.id, "1", "second_factor", name="Maya Patel", vip=False
    )
    assert verified.id == tg.id
    assert (verified.verified_id, verified.verified_by) == ("1", "second_factor")
    assert verified.display_name == "Maya Patel" and verified.vip is False
    assert verified.verified_at is not None
    assert_utc(verified.verified_at)

    # The same person verifies on the web: that visitor and its conversation join the
    # Telegram customer, so an agent sees one customer with both channels and one history.
    web = await store.find_or_create_customer("webchat", "visitor-9")
    web_chat = await store.create_conversation(web.id, "webchat", "visitor-9")
    joined = await store.verify_customer(web.id, "1", "shop")
    assert joined.id == tg.id and joined.verified_by == "shop"
    assert joined.verified_at == verified.verified_at  # first verified then
    assert await store.identities(tg.id) == [
        Identity("telegram", "42"),
        Identity("webchat", "visitor-9"),
    ]
    assert {c.id for c in await store.conversations_for_customer(tg.id)} == {
        tg_chat.id,
        web_chat.id,
    }
    assert (await store.find_or_create_customer("webchat", "visitor-9")).id == tg.id
    assert await store.identities(web.id) == []

    # Another shop customer is another person; the VIP flag follows the shop's records.
    other = await store.find_or_create_customer("slack", "U1")
    jonas = await store.verify_customer(other.id, "2", "second_factor", vip=True)
    assert jonas.id == other.id and jonas.vip is True and jonas.verified_id == "2"

    with pytest.raises(NotFound):
        await store.verify_customer("f" * 32, "3", "shop")


async def test_two_channels_verifying_as_one_person_at_once_end_as_one_customer(
    store: Store,
) -> None:
    people = [await store.find_or_create_customer("telegram", str(n)) for n in range(6)]
    results = await asyncio.gather(
        *(store.verify_customer(p.id, "7", "second_factor") for p in people)
    )
    assert len({c.id for c in results}) == 1
    holder = results[0].id
    assert len(await store.identities(holder)) == 6
