"""Cross-process coordination for the gateway: event fan-out, work queues, dedupe, locks, presence.

One interface, two implementations:

* :class:`InProcessBroker` keeps everything in memory. Correct for exactly one gateway process
  (development, tests, small single-node installs).
* :class:`RedisBroker` keeps everything in Redis so that N gateway replicas behind a load balancer
  share one view: an event published by replica A reaches websocket subscribers on replica B,
  a queued conversation can be claimed exactly once, and so on.

Modules: ``base`` (the contract: :class:`Broker`, :class:`Subscription`, the errors), ``shared``
(the buffered subscription and keyed locks both use), ``memory``, ``redis_broker`` and
``redis_pubsub`` (the Redis broker's one shared pub/sub connection).

Delivery semantics (both implementations):

* Events are JSON objects. A subscriber sees events published *after* ``subscribe()`` returned,
  in publish order per publisher. There is no replay: events published while a Redis pub/sub
  connection is being re-established are lost, so consumers that cannot miss anything must
  re-read authoritative state (the database) after a reconnect or a gap. Rarely an event can
  arrive twice (a publish retried after its reply was lost), so consumers should be idempotent,
  e.g. by message id.
* Each subscriber has a bounded buffer. A subscriber that does not keep up loses its *oldest*
  buffered events (with a logged warning) instead of slowing down everyone else.
* Every backend failure surfaces as :class:`BrokerError`; the Redis implementation first retries
  a failed command once, so a single dropped connection (e.g. a Redis restart) is invisible.
"""

from __future__ import annotations

from bot.broker.base import Broker, BrokerError, LockTimeout, Subscription, SubscriptionClosed
from bot.broker.memory import InProcessBroker
from bot.broker.redis_broker import RedisBroker

# Internals that the Redis tests drive directly; importable from bot.broker as before the split.
from bot.broker.redis_pubsub import _PubSubHub as _PubSubHub
from bot.broker.redis_pubsub import _Topic as _Topic

__all__ = [
    "Broker",
    "BrokerError",
    "InProcessBroker",
    "LockTimeout",
    "RedisBroker",
    "Subscription",
    "SubscriptionClosed",
    "create_broker",
]


def create_broker(redis_url: str | None, prefix: str = "csbot:") -> Broker:
    """A :class:`RedisBroker` for ``redis_url``, or an :class:`InProcessBroker` when it is unset.

    An empty string counts as unset, so an empty ``REDIS_URL`` environment variable works.
    """
    if not redis_url:
        return InProcessBroker()
    return RedisBroker(redis_url, prefix=prefix)
