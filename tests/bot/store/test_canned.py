"""Canned replies on SQLite and PostgreSQL: one shortcut per scope, prefix search shortest
first (any case, with LIKE's wildcards taken literally), change and delete."""

from __future__ import annotations

import pytest

from bot.core.clock import utcnow
from bot.store import ShortcutTaken, Store


async def test_canned_replies_by_scope_and_prefix(store: Store) -> None:
    kim = await store.add_agent("kim", "Kim", "x")
    now = utcnow()
    refund = await store.add_canned("team:orders", "refund", "Refunds take 5 days.", kim.id, now)
    late = await store.add_canned("team:orders", "refund-late", "Sorry it's late.", kim.id, now)
    await store.add_canned("team:tech_support", "reset", "Hold the button.", kim.id, now)
    mine = await store.add_canned(
        f"agent:{kim.id}", "Ref_50", "50% off, {customer_name}!", None, now
    )
    with pytest.raises(ShortcutTaken):
        await store.add_canned("team:orders", "refund", "Again", kim.id, now)
    # The same shortcut in another scope is fine.
    await store.add_canned("team:general", "refund", "Ask the orders team.", kim.id, now)

    scopes = ["team:orders", f"agent:{kim.id}"]
    assert [r.id for r in await store.canned_replies(scopes, "REF")] == [
        refund.id,
        mine.id,
        late.id,
    ]
    assert [r.id for r in await store.canned_replies(scopes, "ref_")] == [mine.id]
    assert await store.canned_replies(scopes, "%") == []  # a wildcard is a character here
    assert await store.canned_replies([], "") == []
    assert len(await store.canned_replies(scopes)) == 3

    changed = await store.update_canned(late.id, "late", "Sorry, it's late.", utcnow())
    assert changed is not None and changed.shortcut == "late" and changed.scope == "team:orders"
    with pytest.raises(ShortcutTaken):
        await store.update_canned(late.id, "refund", "x", utcnow())
    assert await store.update_canned(99_999, "x", "y", utcnow()) is None
    assert await store.delete_canned(late.id) is True
    assert await store.delete_canned(late.id) is False
    assert await store.canned_reply(late.id) is None
    assert (await store.canned_reply(refund.id)) == refund
