"""The per-process objects every handler shares, created and closed with the app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from quart import Quart, current_app

from .aio import cancel_and_wait
from .broker import Broker, broker_from_url
from .call.directory import Directory
from .chat.presence import Presence
from .chat.writer import ChatWriter
from .config import Settings
from .metrics import watch_broker
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
    broker = broker_from_url(settings.broker.url)
    store = MessageStore(settings.store.url)
    services = Services(
        settings=settings,
        broker=broker,
        store=store,
        writer=ChatWriter(store, broker, settings.limits.store_batch_max),
        presence=Presence(),
        directory=Directory(),
        sockets=OpenSockets(),
    )
    app.extensions[EXTENSION] = services
    watcher: asyncio.Task[None] | None = None

    @app.before_serving
    async def start() -> None:
        nonlocal watcher
        await store.open()
        await broker.start()
        await services.writer.start()
        watcher = asyncio.create_task(watch_broker(broker), name="broker-metrics")

    @app.after_serving
    async def stop() -> None:
        await cancel_and_wait(watcher)
        await services.writer.stop()
        await broker.stop()
        await store.close()

    return services


def services() -> Services:
    """The services of the app handling the current request or websocket."""
    found: Services = current_app.extensions[EXTENSION]
    return found
