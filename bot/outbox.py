"""The outbox worker: delivers queued outbound messages to their channels, retrying until they
are accepted.

Architecture rule: outbound messages go through an outbox and are retried until the channel
accepts them. ``ConversationService._send`` stores the message, queues it with
:meth:`Store.outbox_add` and calls :meth:`OutboxWorker.notify`; the worker leases due items
(:meth:`Store.outbox_claim`) and hands each to its channel connector's ``deliver``.

Rules:

* per conversation, items go out strictly in id order: when one fails, the later items of that
  conversation wait (their leases are dropped untried) until it is delivered or given up;
* a failure is retried after ``DeliveryError.retry_after`` seconds, else after
  ``min(2 ** attempts, max_backoff)`` seconds, plus up to 10 % jitter;
* a permanent ``DeliveryError``, or the ``max_attempts``-th failure, gives the item up (logged
  as a warning) and the conversation's later items go on;
* any other exception from ``deliver`` (including a timeout) counts as a retryable failure;
* delivery is at least once: a message whose outcome is unknown (the gateway stopped or timed
  out mid-call) is sent again, so a channel may see it twice.

Several workers (gateway processes) may share one database: leases keep them from taking the
same item, and the claim's head-of-line rule keeps them from reordering a conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum

import structlog

from bot.core.clock import utcnow
from bot.core.errors import DeliveryError
from bot.core.models import OutboxItem
from bot.core.ports import ChannelSender
from bot.core.tasks import cancel_and_wait
from bot.metrics import Metrics
from bot.store import Store

__all__ = ["OutboxWorker"]

log = structlog.get_logger(__name__)

# A retry waits its delay plus up to this fraction of it, so items that failed together (a
# channel outage) do not all come back in the same instant.
JITTER = 0.1
# A delivery must end this long before the item's lease runs out, so the outcome is recorded
# while the lease is still ours; with less lease left, the item is handed back untried.
LEASE_MARGIN_FRACTION = 0.2
MAX_LEASE_MARGIN = 5.0


class _Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GAVE_UP = "gave_up"


class OutboxWorker:
    """Delivers outbox items; :meth:`start` runs it in the background, :meth:`stop` ends it.

    ``senders`` maps a channel name to its sender (a connector); it is read on every delivery,
    so it may be the engine's live dict, filled as connectors start. ``clock`` gives the
    (aware) time used for leases, due times and backoff; tests pass a controllable one.
    """

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, ChannelSender],
        *,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        max_attempts: int = 12,
        max_backoff: float = 300.0,
        batch_size: int = 100,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        """Set up a worker; nothing runs until :meth:`start` (or :meth:`run_once`).

        ``batch_size`` items are leased per round for ``lease_seconds``; up to ``concurrency``
        conversations are delivered at the same time (each one in order).
        """
        if lease_seconds <= 0 or poll_seconds <= 0 or max_backoff <= 0:
            raise ValueError("lease_seconds, poll_seconds and max_backoff must be positive")
        if max_attempts < 1 or batch_size < 1 or concurrency < 1:
            raise ValueError("max_attempts, batch_size and concurrency must be at least 1")
        self.store = store
        self.senders = senders
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.batch_size = batch_size
        self.clock = clock
        self.metrics = metrics
        self._lease_margin = min(MAX_LEASE_MARGIN, lease_seconds * LEASE_MARGIN_FRACTION)
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_claimed = 0

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background loop is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run the delivery loop in a background task (a no-op if it already runs)."""
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the deliveries under way (up to ``timeout`` seconds), then end the loop.

        Items not started are handed back at once; a delivery still running after ``timeout``
        is cancelled and its item is retried when its lease runs out.
        """
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("outbox worker did not stop in time; cancelling", timeout=timeout)
            await cancel_and_wait(task)

    def notify(self) -> None:
        """Something was queued: start a round now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        log.info("outbox worker started", poll_seconds=self.poll_seconds)
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                # The database may be down: sleep a full poll, whatever notify() says.
                log.exception("outbox round failed", retry_in=self.poll_seconds)
                await asyncio.sleep(self.poll_seconds)
                continue
            if self._stopping or self._last_claimed >= self.batch_size:
                continue  # a full batch: more may be due already
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        log.info("outbox worker stopped")

    # --- one round ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Lease the due items, deliver them and record each outcome; returns how many were
        delivered.

        Conversations are delivered concurrently, each one's items in id order. An error that
        is not the channel's (the store failing) is raised once every conversation is done.
        """
        self._last_claimed = 0
        items = await self.store.outbox_claim(self.clock(), self.lease_seconds, self.batch_size)
        self._last_claimed = len(items)
        if not items:
            return 0
        deadline = asyncio.get_running_loop().time() + self.lease_seconds - self._lease_margin
        lines: dict[str, list[OutboxItem]] = {}
        for item in items:
            lines.setdefault(item.conversation_id, []).append(item)
        results = await asyncio.gather(
            *(self._deliver_line(line, deadline) for line in lines.values()),
            return_exceptions=True,
        )
        delivered = 0
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, int):
                delivered += result
            elif isinstance(result, Exception):
                errors.append(result)
            else:
                raise result  # CancelledError and other BaseExceptions
        if errors:
            raise errors[0]
        return delivered

    async def _deliver_line(self, line: list[OutboxItem], deadline: float) -> int:
        """Deliver one conversation's leased items in order; hand back what must wait."""
        delivered = 0
        async with self._slots:
            for index, item in enumerate(line):
                remaining = deadline - asyncio.get_running_loop().time()
                if self._stopping or remaining <= 0:
                    await self.store.outbox_release([i.id for i in line[index:]])
                    break
                outcome = await self._attempt(item, remaining)
                if outcome is _Outcome.DELIVERED:
                    delivered += 1
                elif outcome is _Outcome.RETRY:
                    # Later messages must not overtake this one.
                    await self.store.outbox_release([i.id for i in line[index + 1 :]])
                    break
        return delivered

    async def _attempt(self, item: OutboxItem, time_left: float) -> _Outcome:
        """Deliver one item and record the outcome (delivered, retry later, or given up)."""
        fields = {
            "outbox_id": item.id,
            "message_id": item.message_id,
            "conversation_id": item.conversation_id,
            "channel": item.channel,
            "attempt": item.attempts + 1,
        }
        connector = self.senders.get(item.channel)
        if connector is None:
            return await self._failed(item, f"no connector for channel {item.channel!r}", fields)
        message = await self.store.message(item.message_id)
        conversation = await self.store.conversation(item.conversation_id)
        if message is None or conversation is None:
            return await self._give_up(item, "the message or its conversation is gone", fields)
        try:
            async with asyncio.timeout(time_left):
                await connector.deliver(conversation, message)
        except DeliveryError as exc:
            reason = str(exc) or type(exc).__name__
            if exc.permanent:
                return await self._give_up(item, f"permanent: {reason}", fields)
            return await self._failed(item, reason, fields, retry_after=exc.retry_after)
        except TimeoutError:
            return await self._failed(item, f"timed out after {time_left:.1f} s", fields)
        except Exception as exc:
            return await self._failed(item, f"{type(exc).__name__}: {exc}", fields)
        await self.store.outbox_delivered(item.id, self.clock())
        self._count(item, "delivered")
        log.info("outbox delivered", **fields)
        return _Outcome.DELIVERED

    async def _failed(
        self,
        item: OutboxItem,
        error: str,
        fields: dict[str, object],
        retry_after: float | None = None,
    ) -> _Outcome:
        """A retryable failure: try again after the backoff, or give up after max_attempts."""
        if item.attempts + 1 >= self.max_attempts:
            return await self._give_up(item, f"{error} (failed {item.attempts + 1} times)", fields)
        delay = self.backoff(item.attempts, retry_after)
        await self.store.outbox_retry(item.id, error, self.clock() + timedelta(seconds=delay))
        self._count(item, "retry")
        log.info(
            "outbox delivery failed; will retry", error=error, retry_in=round(delay, 2), **fields
        )
        return _Outcome.RETRY

    async def _give_up(self, item: OutboxItem, error: str, fields: dict[str, object]) -> _Outcome:
        await self.store.outbox_give_up(item.id, error, self.clock())
        self._count(item, "gave_up")
        log.warning("outbox gave up on a message", reason=error, **fields)
        return _Outcome.GAVE_UP

    def _count(self, item: OutboxItem, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.deliveries.labels(item.channel, outcome).inc()

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after a failure, with ``attempts`` failures before it: the channel's
        ``retry_after`` if it gave one, else ``min(2 ** attempts, max_backoff)``; plus up to
        10 % jitter.
        """
        if retry_after is not None and retry_after >= 0:
            base = float(retry_after)
        else:
            base = min(2.0 ** min(attempts, 64), self.max_backoff)
        return base + random.uniform(0.0, JITTER * base)
