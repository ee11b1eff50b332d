"""Customers and their channel identities."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.errors import NotFound
from bot.core.models import Customer, Identity
from bot.store.engine import Conn, StoreEngine, first
from bot.store.rows import to_customer, to_identity
from bot.store.schema import conversations, customers, identities, new_id

__all__ = ["CustomersMixin", "customer_by_id"]

log = structlog.get_logger(__name__)


async def customer_by_id(conn: Conn, customer_id: str) -> Customer | None:
    """The customer with this id, or None."""
    return await first(conn, sa.select(customers).where(customers.c.id == customer_id), to_customer)


async def _customer_by_identity(conn: Conn, channel: str, channel_user_id: str) -> Customer | None:
    query = (
        sa.select(customers)
        .join(identities, identities.c.customer_id == customers.c.id)
        .where(identities.c.channel == channel, identities.c.channel_user_id == channel_user_id)
    )
    return await first(conn, query, to_customer)


async def _insert_identity(
    conn: Conn, channel: str, channel_user_id: str, customer_id: str, created_at: datetime
) -> None:
    await conn.execute(
        identities.insert().values(
            channel=channel,
            channel_user_id=channel_user_id,
            customer_id=customer_id,
            created_at=created_at,
        )
    )


class CustomersMixin(StoreEngine):
    """The store's customers: one per person, found by any of their channel identities."""

    async def find_or_create_customer(
        self, channel: str, channel_user_id: str, display_name: str | None = None
    ) -> Customer:
        """The customer behind a channel identity, created (with the identity) on first contact.

        A ``display_name`` fills in a customer that has none yet. Safe when several tasks or
        processes see the same new identity at once: all get the same customer.
        """
        async with self._tx() as conn:
            found = await _customer_by_identity(conn, channel, channel_user_id)
        if found is not None and (display_name is None or found.display_name is not None):
            return found

        async with self._tx(write=True) as conn:
            if found is None:
                new = Customer(new_id(), display_name, None, False, utcnow())
                try:
                    # Savepoint: on PostgreSQL a failed INSERT would otherwise abort the whole
                    # transaction, and we still want to read the winner's row.
                    async with conn.begin_nested():
                        await conn.execute(
                            customers.insert().values(
                                id=new.id,
                                display_name=new.display_name,
                                vip=new.vip,
                                created_at=new.created_at,
                            )
                        )
                        await _insert_identity(
                            conn, channel, channel_user_id, new.id, new.created_at
                        )
                    return new
                except IntegrityError:
                    # Another task created this identity between our read and our insert.
                    found = await _customer_by_identity(conn, channel, channel_user_id)
                    if found is None:
                        raise
            if display_name is not None and found.display_name is None:
                await conn.execute(
                    customers.update()
                    .where(customers.c.id == found.id, customers.c.display_name.is_(None))
                    .values(display_name=display_name)
                )
                found = await customer_by_id(conn, found.id)
                assert found is not None
            return found

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer with this id, or None."""
        async with self._tx() as conn:
            return await customer_by_id(conn, customer_id)

    async def identities(self, customer_id: str) -> list[Identity]:
        """The channel identities linked to a customer, oldest first."""
        query = (
            sa.select(identities.c.channel, identities.c.channel_user_id, identities.c.linked_by)
            .where(identities.c.customer_id == customer_id)
            .order_by(identities.c.created_at, identities.c.channel)
        )
        return await self._all(query, to_identity)

    async def link_identity(self, customer_id: str, channel: str, channel_user_id: str) -> None:
        """Make ``(channel, channel_user_id)`` belong to this customer.

        An identity already linked to another customer is moved over (its past conversations
        stay with the old customer). NotFound if the customer does not exist.
        """
        async with self._tx(write=True) as conn:
            if await customer_by_id(conn, customer_id) is None:
                raise NotFound(f"no customer {customer_id}")
            move = (
                identities.update()
                .where(
                    identities.c.channel == channel,
                    identities.c.channel_user_id == channel_user_id,
                )
                .values(customer_id=customer_id)
            )
            if (await conn.execute(move)).rowcount:
                return
            try:
                async with conn.begin_nested():
                    await _insert_identity(conn, channel, channel_user_id, customer_id, utcnow())
            except IntegrityError:
                # Created concurrently: it exists now, so move it.
                await conn.execute(move)

    async def move_identity(
        self, channel: str, channel_user_id: str, to_customer_id: str, linked_by: str
    ) -> str:
        """Move a channel identity that has written before, with the conversations held
        through it, to ``to_customer_id`` (an agent, ``linked_by``, linking two channels of one
        person by hand: the identity is marked so, and does not carry the customer's
        verification until it verifies itself). Returns the customer it belonged to. NotFound
        for an unknown identity or customer."""
        async with self._tx(write=True) as conn:
            if await customer_by_id(conn, to_customer_id) is None:
                raise NotFound(f"no customer {to_customer_id}")
            owner = await _customer_by_identity(conn, channel, channel_user_id)
            if owner is None:
                raise NotFound(f"nobody has written from {channel} {channel_user_id!r} yet")
            if owner.id != to_customer_id:
                await _move(conn, channel, channel_user_id, owner.id, to_customer_id)
                await _mark(conn, channel, channel_user_id, linked_by)
            return owner.id

    async def identity_verified(self, channel: str, channel_user_id: str) -> None:
        """The identity proved who it is (the bot's second factor): no longer hand-linked."""
        async with self._tx(write=True) as conn:
            await _mark(conn, channel, channel_user_id, None)

    async def detach_identity(self, customer_id: str, channel: str, channel_user_id: str) -> str:
        """Give one of the customer's identities (and its conversations) a new customer of its
        own: the undo of :meth:`move_identity`. Returns the new customer's id. NotFound when
        the customer does not have that identity; ValueError when it is their only one."""
        async with self._tx(write=True) as conn:
            # The customer's row first: two unlinks at once must not both see two identities.
            await conn.execute(
                sa.select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
            )
            owner = await _customer_by_identity(conn, channel, channel_user_id)
            if owner is None or owner.id != customer_id:
                raise NotFound(
                    f"customer {customer_id} has no identity {channel} {channel_user_id}"
                )
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(identities)
                    .where(identities.c.customer_id == customer_id)
                )
            ).scalar_one()
            if count < 2:
                raise ValueError("this is the customer's only channel; there is nothing to unlink")
            new = new_id()
            await conn.execute(customers.insert().values(id=new, vip=False, created_at=utcnow()))
            await _move(conn, channel, channel_user_id, customer_id, new)
            await _mark(conn, channel, channel_user_id, None)
            return new

    async def verify_customer(
        self,
        customer_id: str,
        verified_id: str,
        verified_by: str,
        *,
        name: str | None = None,
        vip: bool | None = None,
    ) -> Customer:
        """Record that ``customer_id`` proved to be the shop's customer ``verified_id``.

        When another customer already carries that verified id (the same person verified on
        another channel or device before), this customer's identities and conversations move
        over to it, so there is one customer with one history. ``name`` and ``vip`` come from
        the shop and replace what the channel said. Returns the verified customer.
        """
        for _attempt in range(3):
            try:
                async with self._tx(write=True) as conn:
                    return await _verify(
                        conn, customer_id, verified_id, verified_by, name=name, vip=vip
                    )
            except IntegrityError:
                # Another replica verified the same person at the same moment: merge into it.
                continue
        raise RuntimeError(f"could not record the verification of customer {customer_id}")


async def _mark(conn: Conn, channel: str, channel_user_id: str, linked_by: str | None) -> None:
    """Record who linked the identity by hand (None: nobody, it joined by itself)."""
    await conn.execute(
        identities.update()
        .where(identities.c.channel == channel, identities.c.channel_user_id == channel_user_id)
        .values(linked_by=linked_by)
    )


async def _move(
    conn: Conn, channel: str, channel_user_id: str, from_customer: str, to_customer: str
) -> None:
    """Move an identity and the conversations held through it to another customer."""
    for table in (identities, conversations):
        await conn.execute(
            table.update()
            .where(
                table.c.customer_id == from_customer,
                table.c.channel == channel,
                table.c.channel_user_id == channel_user_id,
            )
            .values(customer_id=to_customer)
        )


async def _verify(
    conn: Conn,
    customer_id: str,
    verified_id: str,
    verified_by: str,
    *,
    name: str | None,
    vip: bool | None,
) -> Customer:
    current = await customer_by_id(conn, customer_id)
    if current is None:
        raise NotFound(f"no customer {customer_id}")
    if current.verified_id is not None and current.verified_id != verified_id:
        # Already proved to be someone else: a second person on the same channel identity (a
        # shared family account?) is verified for their conversation only, never merged.
        log.warning("customer already verified as someone else", customer_id=customer_id)
        return current
    holder = await first(
        conn, sa.select(customers).where(customers.c.verified_id == verified_id), to_customer
    )
    target = holder.id if holder is not None else customer_id
    if target != customer_id:
        for table in (identities, conversations):
            await conn.execute(
                table.update().where(table.c.customer_id == customer_id).values(customer_id=target)
            )
    values: dict[str, object] = {"verified_id": verified_id, "verified_by": verified_by}
    if holder is None or holder.verified_at is None:
        values["verified_at"] = utcnow()
    if name:
        values["display_name"] = name
    if vip is not None:
        values["vip"] = vip
    await conn.execute(customers.update().where(customers.c.id == target).values(**values))
    found = await customer_by_id(conn, target)
    assert found is not None
    return found
