"""The per-process objects every handler shares, created and closed with the app."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass

from quart import Quart, current_app
from redis.asyncio import Redis

from .aio import cancel_and_wait
from .broker import Broker, BrokerUnavailable, broker_from_url
from .broker.redis import shared_state_client, unavailable_on_failure
from .call.directory import Directory, LocalDirectory
from .call.redis_directory import RedisDirectory
from .chat.presence import LocalPresence, Presence
from .chat.redis_presence import RedisPresence
from .chat.writer import ChatWriter
from .config import Settings
from .leases import LeaseKeeper
from .metrics import chat_fanned_out, watch_broker
from .sockets import OpenSockets
from .store import MessageStore

log = logging.getLogger(__name__)

EXTENSION = "quartchat"


@dataclass
class Services:
    settings: Settings
    broker: Broker
    store: MessageStore
    writer: ChatWriter
    presence: Presence
    directory: Directory
    sockets: OpenSockets


def init_app(app: Quart, settings: Settings) -> Services:
    """Build the services and tie their start and stop to the app's serving lifetime."""
    broker = broker_from_url(settings.broker.url, settings.broker.namespace)
    broker.observe_fanout(chat_fanned_out)
    store = MessageStore(settings.store.url)
    presence, directory, shared = _shared_state(settings)
    services = Services(
        settings=settings,
        broker=broker,
        store=store,
        writer=ChatWriter(store, broker, settings.limits.store_batch_max),
        presence=presence,
        directory=directory,
        sockets=OpenSockets(broker),
    )
    leases = LeaseKeeper(presence, directory, broker, settings.broker.lease_seconds)
    app.extensions[EXTENSION] = services
    watchers: list[asyncio.Task[None]] = []

    @app.before_serving
    async def start() -> None:
        if shared is not None and not settings.server.secret_key:
            app.secret_key = await _shared_secret(shared, settings.broker.namespace)
        await store.open()
        await broker.start()
        await services.writer.start()
        await leases.start()
        watchers.append(asyncio.create_task(watch_broker(broker), name="broker-metrics"))
        outages = services.sockets.close_on_outage()
        watchers.append(asyncio.create_task(outages, name="broker-outages"))

    @app.after_serving
    async def stop() -> None:
        for watcher in watchers:
            await cancel_and_wait(watcher)
        watchers.clear()
        await leases.stop()
        await services.writer.stop()
        await broker.stop()
        await store.close()
        if shared is not None:
            await shared.aclose()

    return services


def _shared_state(settings: Settings) -> tuple[Presence, Directory, Redis | None]:
    """In-process presence and directory with the memory broker; with Redis, shared ones
    on leases in the same Redis (this process known by a random id)."""
    if settings.broker.url.startswith("memory://"):
        return LocalPresence(), LocalDirectory(), None
    redis = shared_state_client(settings.broker.url)
    namespace, lease = settings.broker.namespace, settings.broker.lease_seconds
    process = uuid.uuid4().hex
    presence = RedisPresence(redis, namespace, process, lease)
    return presence, RedisDirectory(redis, namespace, lease), redis


async def _shared_secret(redis: Redis, namespace: str) -> str:
    """One random session key for every process sharing the Redis, so that a cookie signed
    by one worker or host is valid on all (when ``server.secret_key`` is not set)."""
    key = f"{namespace}:secret_key"
    try:
        with unavailable_on_failure("session key"):
            await redis.set(key, secrets.token_hex(32), nx=True)
            found = await redis.get(key)
    except BrokerUnavailable as error:
        log.warning("no shared session key (%s): this process signs with its own", error)
        found = None
    return found if isinstance(found, str) else secrets.token_hex(32)


def services() -> Services:
    """The services of the app handling the current request or websocket."""
    found: Services = current_app.extensions[EXTENSION]
    return found
