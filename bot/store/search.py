"""The inbox: every conversation, filtered and searched, newest activity first.

Full-text search covers messages and notes through one interface on both databases (migration
0009): FTS5 ``MATCH`` on SQLite, ``to_tsvector('simple', …) @@ to_tsquery`` on PostgreSQL. A
query is reduced to its words (letters and digits); every word must occur, and the last one may
be the start of a word (search as you type). Pages are ``limit`` rows, with one more read to
know whether there is a next page (no count of the whole table).

On SQLite, two plans, chosen by how many messages match (counted in the index, up to COMMON): a
rare word (an order number, a name) collects the few conversations that hold it; a word in
thousands of messages walks the conversations newest first and checks each one's own messages
(a handful each) until the page is full, so it costs a page, not a million matches.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from bot.core.models import InboxFilter, InboxRow
from bot.store.engine import StoreEngine
from bot.store.rows import to_conversation
from bot.store.schema import agents, conversations, csat, customers, handoffs, messages, notes

__all__ = ["SearchMixin", "search_words"]

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 8


def search_words(text: str | None) -> list[str]:
    """The words of a search query (at most eight, lower case)."""
    return [w.lower() for w in _WORD.findall(text or "")][:MAX_WORDS]


# A query matching at least this many messages is "common": see the module docstring.
COMMON = 2000


def _fts_query(words: list[str]) -> str:
    """FTS5: each word quoted (no FTS5 syntax gets through); the last one a prefix."""
    return (" ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*').strip()


def _ts_match(table: sa.Table, words: list[str]) -> Any:
    """PostgreSQL: the row's text holds every word (the last as a prefix)."""
    tsquery = " & ".join([*words[:-1], f"{words[-1]}:*"])
    return sa.func.to_tsvector("simple", table.c.text).op("@@")(
        sa.func.to_tsquery("simple", tsquery)
    )


def _matching(dialect: str, table: sa.Table, words: list[str]) -> Any:
    """The conversation ids whose rows of ``table`` (messages or notes) hold every word."""
    if dialect == "sqlite":
        fts = sa.table(f"{table.name}_fts", sa.column("rowid"))
        return (
            sa.select(table.c.conversation_id)
            .join(fts, fts.c.rowid == table.c.id)
            .where(sa.text(f"{table.name}_fts MATCH :q").bindparams(q=_fts_query(words)))
        )
    return sa.select(table.c.conversation_id).where(_ts_match(table, words))


def _holds(table: sa.Table, words: list[str]) -> Any:
    """SQLite: whether the conversation at hand has a row of ``table`` holding every word,
    checked through that conversation's own rows (the plan for common words): its rows first
    (CROSS JOIN keeps that order), then each row's entry in the text index by rowid."""
    name = table.name
    return sa.text(
        f"EXISTS (SELECT 1 FROM {name} AS r CROSS JOIN {name}_fts "
        f"WHERE r.conversation_id = conversations.id AND {name}_fts.rowid = r.id "
        f"AND {name}_fts MATCH :q_{name})"
    ).bindparams(**{f"q_{name}": _fts_query(words)})


def _is_common(conn: sa.Connection, words: list[str]) -> bool:
    """SQLite: whether the words match COMMON messages or more (counted in the index, no
    further)."""
    hits = sa.text(
        "SELECT count(*) FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :q "
        "LIMIT :cap)"
    ).bindparams(q=_fts_query(words), cap=COMMON)
    return int(conn.execute(hits).scalar_one()) >= COMMON


class SearchMixin(StoreEngine):
    """The inbox's one query."""

    async def inbox(
        self, where: InboxFilter, limit: int = 25, offset: int = 0
    ) -> tuple[list[InboxRow], bool]:
        """One page of conversations (newest activity first) and whether there are more."""

        def read(conn: sa.Connection) -> tuple[list[InboxRow], bool]:
            return _read_inbox(conn, where, limit, offset)

        return await self._sweep(read)


def _latest(column: sa.Column[Any], order: sa.Column[Any]) -> Any:
    """A conversation's newest value of ``column`` (by ``order``), as a correlated subquery."""
    return (
        sa.select(column)
        .where(column.table.c.conversation_id == conversations.c.id)
        .order_by(order.desc())
        .limit(1)
        .correlate(conversations)
        .scalar_subquery()
    )


def _read_inbox(
    conn: sa.Connection, where: InboxFilter, limit: int, offset: int
) -> tuple[list[InboxRow], bool]:
    """Two steps: the page's conversation ids (filters, newest activity first, through the
    ``updated_at`` index), then what the inbox shows of just those."""
    rating = _latest(csat.c.rating, csat.c.id)
    conditions: list[Any] = []
    if where.states:
        conditions.append(conversations.c.state.in_(where.states))
    if where.team:
        conditions.append(conversations.c.team == where.team)
    if where.channel:
        conditions.append(conversations.c.channel == where.channel)
    if where.agent_id is not None:
        # Whoever has it now, or handled one of its handoffs.
        conditions.append(
            sa.or_(
                conversations.c.assigned_agent_id == where.agent_id,
                sa.exists().where(
                    handoffs.c.conversation_id == conversations.c.id,
                    handoffs.c.agent_id == where.agent_id,
                ),
            )
        )
    if where.rating is not None:
        conditions.append(rating == where.rating)
    if where.reason:
        conditions.append(
            sa.exists().where(
                handoffs.c.conversation_id == conversations.c.id,
                handoffs.c.reason == where.reason,
            )
        )
    if where.since is not None:
        conditions.append(conversations.c.updated_at >= where.since)
    if where.until is not None:
        conditions.append(conversations.c.updated_at < where.until)
    words = search_words(where.text)
    if words:
        dialect = conn.dialect.name
        # PostgreSQL's GIN index answers the collecting plan well enough (under 0.6 s for a
        # word in every conversation), and counting matches there can turn into a scan of
        # every message: the walking plan is SQLite's.
        if dialect == "sqlite" and _is_common(conn, words):
            conditions.append(sa.or_(_holds(messages, words), _holds(notes, words)))
        else:
            conditions.append(
                sa.or_(
                    conversations.c.id.in_(_matching(dialect, messages, words)),
                    conversations.c.id.in_(_matching(dialect, notes, words)),
                )
            )
    page_ids = [
        row[0]
        for row in conn.execute(
            sa.select(conversations.c.id)
            .where(*conditions)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
            .limit(limit + 1)
            .offset(offset)
        )
    ]
    shown = page_ids[:limit]
    if not shown:
        return [], False
    reason = _latest(handoffs.c.reason, handoffs.c.id)
    last_text = _latest(messages.c.text, messages.c.seq)
    rows = conn.execute(
        sa.select(
            conversations,
            customers.c.display_name.label("customer_name"),
            agents.c.display_name.label("agent_name"),
            reason.label("reason"),
            rating.label("rating"),
            last_text.label("last_text"),
        )
        .join(customers, customers.c.id == conversations.c.customer_id)
        .outerjoin(agents, agents.c.id == conversations.c.assigned_agent_id)
        .where(conversations.c.id.in_(shown))
    ).all()
    by_id = {row.id: row for row in rows}
    result = [
        InboxRow(
            conversation=to_conversation(row),
            customer_name=row.customer_name,
            agent_name=row.agent_name,
            reason=row.reason,
            rating=row.rating,
            last_text=row.last_text,
        )
        for row in (by_id[cid] for cid in shown if cid in by_id)
    ]
    return result, len(page_ids) > limit
