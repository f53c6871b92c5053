"""The per-process objects every handler shares, created and closed with the app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from quart import Quart, current_app
from redis.asyncio import Redis

from .broker import Broker, broker_from_url
from .broker.redis import shared_state_client
from .call.directory import Directory, LocalDirectory
from .call.redis_directory import RedisDirectory
from .chat.presence import LocalPresence, Presence
from .chat.redis_presence import RedisPresence
from .chat.writer import ChatWriter
from .config import Settings
from .leases import LeaseKeeper
from .sockets import OpenSockets
from .store import MessageStore

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
    store = MessageStore(settings.store.url)
    presence, directory, shared = _shared_state(settings)
    services = Services(
        settings=settings,
        broker=broker,
        store=store,
        writer=ChatWriter(store, broker, settings.limits.store_batch_max),
        presence=presence,
        directory=directory,
        sockets=OpenSockets(),
    )
    leases = LeaseKeeper(presence, directory, broker, settings.broker.lease_seconds)
    app.extensions[EXTENSION] = services

    @app.before_serving
    async def start() -> None:
        await store.open()
        await broker.start()
        await services.writer.start()
        await leases.start()

    @app.after_serving
    async def stop() -> None:
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


def services() -> Services:
    """The services of the app handling the current request or websocket."""
    found: Services = current_app.extensions[EXTENSION]
    return found
