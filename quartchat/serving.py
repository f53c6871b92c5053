"""Serving the app with Hypercorn: its config from our settings, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.run import run

from .config import ConfigError, Settings
from .services import EXTENSION

APPLICATION_PATH = "quartchat:create_app()"
GOODBYE_SECONDS = 2.0  # how long a shutdown waits for sockets to close with 1001


def check_serving(settings: Settings) -> None:
    if settings.server.workers > 1 and settings.broker.url.startswith("memory://"):
        raise ConfigError(
            "server.workers: several workers need a shared broker; the memory:// broker "
            "only reaches sockets of its own process (set broker.url to a Redis URL)"
        )
    if bool(settings.server.certfile) != bool(settings.server.keyfile):
        raise ConfigError("server.certfile and server.keyfile: set both for TLS, or neither")
    for key in ("certfile", "keyfile"):
        path = getattr(settings.server, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"server.{key}: file not found: {path}")


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """HTTP/1.1 and HTTP/2: h2 by ALPN with TLS, h2c (upgrade or prior knowledge) without."""
    config = HypercornConfig()
    config.application_path = APPLICATION_PATH
    config.bind = [settings.server.bind]
    if settings.server.workers > 1:
        config.workers = settings.server.workers
    config.websocket_max_message_size = settings.limits.frame_max_bytes
    config.accesslog = "-"
    config.errorlog = "-"
    if settings.server.certfile:
        config.certfile = settings.server.certfile
        config.keyfile = settings.server.keyfile
    return config


def serve(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code."""
    config = hypercorn_config(settings)
    if settings.server.workers > 1:
        return run(config)  # Hypercorn's own runner spawns the worker processes
    asyncio.run(_serve_in_process(config))
    return 0


async def _serve_in_process(config: HypercornConfig) -> None:
    """One worker in this process.  On a signal, every websocket is closed with 1001
    ("going away") before Hypercorn stops, so browsers reconnect at once and resume."""
    from . import create_app

    app = create_app()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)

    async def shutdown_trigger() -> None:
        await stopping.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_SECONDS):
                await app.extensions[EXTENSION].sockets.close_all()

    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)
