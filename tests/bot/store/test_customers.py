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
