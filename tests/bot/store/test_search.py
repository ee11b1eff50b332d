"""The inbox's search and filters on SQLite (FTS5) and PostgreSQL (tsvector): words in messages
and in notes, every word required, the last one a prefix, the filters, paging, and queries
that carry search syntax (which must be words, never operators)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.clock import utcnow
from bot.core.models import InboxFilter
from bot.core.state import ConversationState
from bot.store import Store, search
from bot.store.search import search_words
from tests.bot.store.helpers import new_conversation, say


@pytest.fixture(params=["rare", "common"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both plans of the search (bot/store/search.py) must give the same answers: "common"
    makes every query count as common (its threshold 0), so SQLite walks the newest
    conversations (PostgreSQL always collects)."""
    if request.param == "common":
        monkeypatch.setattr(search, "COMMON", 0)
    return str(request.param)


async def test_search_and_filters(store: Store, plan: str) -> None:
    agent = await store.add_agent("kim", "Kim", "x")
    router = await new_conversation(store, "ann")
    await say(store, router.id, "My router blinks red since the update")
    speaker = await new_conversation(store, "ben", channel="telegram")
    await say(store, speaker.id, "The speaker crackles at high volume")
    await store.add_note(speaker.id, agent.id, "Replacement unit shipped, tracking ZX42")
    await store.update_conversation(
        speaker.id,
        speaker.version,
        state=ConversationState.ASSIGNED,
        team="tech_support",
        assigned_agent_id=agent.id,
    )
    quiet = await new_conversation(store, "cy")
    await say(store, quiet.id, "hello")

    async def ids(**where: object) -> list[str]:
        rows, _ = await store.inbox(InboxFilter(**where))  # type: ignore[arg-type]
        return [r.conversation.id for r in rows]

    assert await ids(text="router red") == [router.id]
    assert await ids(text="ROUTER") == [router.id]  # case does not matter
    assert await ids(text="router speaker") == []  # every word must occur
    assert await ids(text="crack") == [speaker.id]  # the last word may be a prefix
    assert await ids(text="zx42") == [speaker.id]  # a note's words count too
    assert await ids(text='router" OR "speaker') == []  # syntax is words: router, or, speaker
    assert await ids(text="NEAR(router update)") == []
    assert set(await ids()) == {router.id, speaker.id, quiet.id}
    assert await ids(states=("assigned",)) == [speaker.id]
    assert await ids(channel="telegram") == [speaker.id]
    assert await ids(team="tech_support", agent_id=agent.id) == [speaker.id]
    assert await ids(until=utcnow() - timedelta(days=1)) == []
    rows, _ = await store.inbox(InboxFilter(text="crackles"))
    assert (rows[0].customer_name, rows[0].agent_name) == (None, "Kim")
    assert rows[0].last_text == "The speaker crackles at high volume"

    first, more = await store.inbox(InboxFilter(), limit=2)
    second, more_after = await store.inbox(InboxFilter(), limit=2, offset=2)
    assert more and not more_after and len(first) == 2 and len(second) == 1
    assert {r.conversation.id for r in first + second} == {router.id, speaker.id, quiet.id}


def test_search_words_keep_letters_and_digits_only() -> None:
    assert search_words('order "1001"* OR -x') == ["order", "1001", "or", "x"]
    assert search_words("Straße Ünïcode") == ["straße", "ünïcode"]
    assert search_words("  ") == [] and search_words(None) == []
    assert len(search_words("a " * 50)) == 8
