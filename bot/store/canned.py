"""Canned replies: saved answers by scope (migration 0010; handoff/canned.py fills them in)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.models import CannedReply
from bot.store.engine import StoreEngine
from bot.store.rows import to_canned_reply
from bot.store.schema import canned_replies

__all__ = ["CannedMixin", "ShortcutTaken"]


class ShortcutTaken(ValueError):
    """The scope already has a canned reply with this shortcut."""


class CannedMixin(StoreEngine):
    """Add, change, delete and find canned replies."""

    async def add_canned(
        self, scope: str, shortcut: str, text: str, created_by: int | None, now: datetime
    ) -> CannedReply:
        try:
            async with self._tx(write=True) as conn:
                row = (
                    await conn.execute(
                        canned_replies.insert()
                        .values(
                            scope=scope,
                            shortcut=shortcut,
                            text=text,
                            created_by=created_by,
                            updated_at=now,
                        )
                        .returning(*canned_replies.c)
                    )
                ).one()
        except IntegrityError as exc:
            raise ShortcutTaken(shortcut) from exc
        return to_canned_reply(row)

    async def update_canned(
        self, reply_id: int, shortcut: str, text: str, now: datetime
    ) -> CannedReply | None:
        try:
            async with self._tx(write=True) as conn:
                row = (
                    await conn.execute(
                        canned_replies.update()
                        .where(canned_replies.c.id == reply_id)
                        .values(shortcut=shortcut, text=text, updated_at=now)
                        .returning(*canned_replies.c)
                    )
                ).first()
        except IntegrityError as exc:
            raise ShortcutTaken(shortcut) from exc
        return to_canned_reply(row) if row is not None else None

    async def delete_canned(self, reply_id: int) -> bool:
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                canned_replies.delete().where(canned_replies.c.id == reply_id)
            )
        return bool(result.rowcount)

    async def canned_reply(self, reply_id: int) -> CannedReply | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(sa.select(canned_replies).where(canned_replies.c.id == reply_id))
            ).first()
        return to_canned_reply(row) if row is not None else None

    async def canned_replies(
        self, scopes: Sequence[str], prefix: str = "", limit: int = 50
    ) -> list[CannedReply]:
        """The replies of these scopes whose shortcut starts with ``prefix`` (any case),
        shortest shortcut first, so "/ref" offers "refund" before "refund-late"; then oldest."""
        if not scopes:
            return []
        query = sa.select(canned_replies).where(canned_replies.c.scope.in_(list(scopes)))
        if prefix:
            escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(
                sa.func.lower(canned_replies.c.shortcut).like(escaped + "%", escape="\\")
            )
        # Length, then age: the same order on SQLite and PostgreSQL (collations differ).
        query = query.order_by(
            sa.func.length(canned_replies.c.shortcut), canned_replies.c.id
        ).limit(limit)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [to_canned_reply(row) for row in rows]
