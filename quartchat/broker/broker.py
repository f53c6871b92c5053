"""The broker front object: one per process, shared by every socket of the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from ..aio import cancel_and_wait
from .base import Backend, BrokerUnavailable
from .frame import Frame
from .state import ConnectionState
from .subscriber import ConflatingSubscriber, Subscriber

log = logging.getLogger(__name__)

FanoutObserver = Callable[[Frame, int], None]  # (frame, subscribers it was handed to)

LISTENER_RETRY_SECONDS = 1.0
RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


def backoff_delays(first: float, most: float) -> Iterator[float]:
    """``first``, twice that, four times that... capped at ``most``."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class Broker:
    """Publish text to topics; subscribe sockets to topics.

    Each published message reaches the backend once; one listener task per process reads
    the backend and puts the same :class:`~.frame.Frame` into every local subscriber's
    bounded queue.

    When the backend's connection is lost, :attr:`connected` turns False and the listener
    reconnects with exponential backoff (0.1 s, doubling up to 5 s), re-subscribing every
    topic that still has local subscribers, before :attr:`connected` turns True again.
    Messages published during the outage do not reach this process's subscribers (consumers
    that care resume from the store).  Meanwhile :meth:`subscribe` and :meth:`ping` raise
    :class:`BrokerUnavailable`, and so does :meth:`publish` when the engine is unreachable.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._observers: list[FanoutObserver] = []
        self._local: dict[str, set[Subscriber]] = {}
        self._changing = asyncio.Lock()  # serialises backend (un)subscribes and reconnects
        self._listener: asyncio.Task[None] | None = None
        self._state = ConnectionState()

    @property
    def connected(self) -> bool:
        """True while the backend is connected and every local topic subscribed."""
        return self._state.connected

    def state_changed(self, seen: bool) -> asyncio.Future[None]:
        """A future done once :attr:`connected` differs from ``seen`` (see
        :meth:`~.state.ConnectionState.changed`)."""
        return self._state.changed(seen)

    async def wait_state_change(self, seen: bool) -> bool:
        """Return :attr:`connected` once it differs from ``seen``; see
        :class:`~.state.ConnectionState` for the loop that watches it."""
        return await self._state.wait_change(seen)

    def observe_fanout(self, observer: FanoutObserver) -> None:
        """Call ``observer`` once per message this process fans out, with how many local
        subscribers got it: per-message bookkeeping (metrics) instead of per-recipient."""
        self._observers.append(observer)

    async def start(self) -> None:
        """Connect, and start the listener.  An unreachable engine does not stop start-up:
        the broker starts disconnected and keeps trying in the background."""
        try:
            await self._backend.connect()
        except BrokerUnavailable as error:
            log.warning("broker unavailable at start (%s); retrying in the background", error)
        else:
            self._state.set(True)
        self._listener = asyncio.create_task(self._listen(), name="broker-listener")

    async def stop(self) -> None:
        await cancel_and_wait(self._listener)
        self._listener = None
        self._state.set(False)
        await self._backend.disconnect()

    async def publish(self, topic: str, text: str) -> None:
        """Raises :class:`BrokerUnavailable` when the engine cannot be reached."""
        await self._backend.publish(topic, text)

    async def ping(self) -> None:
        if not self.connected:
            raise BrokerUnavailable("not connected to the broker; reconnecting")
        await self._backend.ping()
        if self._listener is None or self._listener.done():
            raise RuntimeError("broker listener is not running")

    def subscribe(
        self, *topics: str, max_queue: int, conflate: Callable[[str], str | None] | None = None
    ) -> Subscription:
        """Subscribe a new bounded inbox to ``topics``; unsubscribe on exit
        (``async with broker.subscribe(...) as inbox``).  With ``conflate``, the inbox is a
        :class:`ConflatingSubscriber` keyed by it.

        On entry every subscription is live: anything published afterwards is delivered
        (a message published just before may be delivered too; consumers that care, like
        the room socket, de-duplicate by id).  Raises :class:`BrokerUnavailable` while
        disconnected.
        """
        inbox = (
            Subscriber(max_queue) if conflate is None else ConflatingSubscriber(max_queue, conflate)
        )
        return Subscription(self, topics, inbox)

    async def add_topic(self, subscriber: Subscriber, topic: str) -> None:
        async with self._changing:
            if not self.connected:
                raise BrokerUnavailable(f"cannot subscribe to {topic!r}: broker disconnected")
            local = self._local.get(topic)
            if local is None:
                await self._backend.subscribe(topic)
                local = self._local[topic] = set()
            local.add(subscriber)
            if topic not in subscriber.topics:
                subscriber.topics.append(topic)

    async def remove_topic(self, subscriber: Subscriber, topic: str) -> None:
        """Stop delivering ``topic`` to ``subscriber`` (its other topics stay)."""
        await self._remove(subscriber, [topic])

    async def remove_all(self, subscriber: Subscriber) -> None:
        await self._remove(subscriber, list(subscriber.topics))

    async def _remove(self, subscriber: Subscriber, topics: list[str]) -> None:
        emptied = []
        for topic in topics:  # synchronously: no delivery to a closed socket
            local = self._local.get(topic)
            if local is not None:
                local.discard(subscriber)
                if not local:
                    del self._local[topic]
                    emptied.append(topic)
            if topic in subscriber.topics:
                subscriber.topics.remove(topic)
        if emptied:
            async with self._changing:
                for topic in emptied:
                    if topic not in self._local:
                        await self._unsubscribe(topic)

    async def _unsubscribe(self, topic: str) -> None:
        try:
            await self._backend.unsubscribe(topic)
        except BrokerUnavailable as error:
            # The subscription goes with the lost connection, and reconnecting re-subscribes
            # only topics with local subscribers: nothing is left to undo.
            log.info("unsubscribing from %r skipped: %s", topic, error)

    async def _listen(self) -> None:
        while True:
            if not self.connected:
                await self._reconnect()
            try:
                published = await self._backend.next_published()
            except asyncio.CancelledError:
                raise
            except BrokerUnavailable as error:
                log.warning("broker connection lost: %s", error)
                self._state.set(False)
                continue
            except Exception:
                log.exception("broker backend failed; retrying")
                await asyncio.sleep(LISTENER_RETRY_SECONDS)
                continue
            subscribers = self._local.get(published.topic, ())
            frame = Frame(published.text)  # once, for every local subscriber
            for subscriber in subscribers:
                subscriber.deliver(frame)
            for observer in self._observers:
                observer(frame, len(subscribers))

    async def _reconnect(self) -> None:
        """Connect and re-subscribe every local topic, retrying with exponential backoff."""
        for delay in backoff_delays(RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS):
            await asyncio.sleep(delay)
            try:
                async with self._changing:  # no (un)subscribe in between
                    await self._backend.connect()
                    for topic in list(self._local):
                        await self._backend.subscribe(topic)
                    self._state.set(True)
            except asyncio.CancelledError:
                raise
            except BrokerUnavailable as error:
                log.warning("broker still unavailable: %s", error)
                continue
            except Exception:
                log.exception("reconnecting the broker failed")
                continue
            log.info("broker reconnected; %d topic(s) re-subscribed", len(self._local))
            return


class Subscription:
    """:meth:`Broker.subscribe`'s context: a class rather than a generator, since every
    open socket holds one for as long as it is open."""

    __slots__ = ("_broker", "_subscriber", "_topics")

    def __init__(self, broker: Broker, topics: tuple[str, ...], subscriber: Subscriber) -> None:
        self._broker = broker
        self._topics = topics
        self._subscriber = subscriber

    async def __aenter__(self) -> Subscriber:
        try:
            for topic in self._topics:
                await self._broker.add_topic(self._subscriber, topic)
        except BaseException:
            await self._broker.remove_all(self._subscriber)
            raise
        return self._subscriber

    async def __aexit__(self, *_exc: object) -> None:
        await self._broker.remove_all(self._subscriber)
