"""Serving the app with Hypercorn: its config from our settings, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from .config import ConfigError, Settings
from .logs import ACCESS_LOGGER, ERROR_LOGGER, configure_logging
from .services import EXTENSION

APPLICATION_PATH = "quartchat:create_app()"
GOODBYE_SECONDS = 2.0  # how long a shutdown waits for sockets to close with 1001
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    if settings.server.quic_bind:
        if not settings.server.certfile:
            raise ConfigError("server.quic_bind: HTTP/3 is always encrypted: set certfile/keyfile")
        if importlib.util.find_spec("aioquic") is None:
            raise ConfigError("server.quic_bind: HTTP/3 needs aioquic: pip install 'quartchat[h3]'")
    if settings.server.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(
            "server.event_loop: uvloop is not installed: pip install 'quartchat[uvloop]'"
        )


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """HTTP/1.1 and HTTP/2: h2 by ALPN with TLS, h2c (upgrade or prior knowledge) without.

    The config of one worker process: several workers are run by :mod:`.workers`, not by
    Hypercorn's own runner."""
    config = HypercornConfig()
    config.application_path = APPLICATION_PATH
    config.bind = [settings.server.bind]
    config.websocket_max_message_size = settings.limits.frame_max_bytes
    config.accesslog = logging.getLogger(ACCESS_LOGGER)  # set up by configure_logging
    config.errorlog = logging.getLogger(ERROR_LOGGER)
    if settings.server.certfile:
        config.certfile = settings.server.certfile
        config.keyfile = settings.server.keyfile
    if settings.server.quic_bind:  # Hypercorn then also sends alt-svc: h3 over TCP
        config.quic_bind = [settings.server.quic_bind]
    return config


def serve(settings: Settings) -> int:
    """Serve in this process until SIGINT or SIGTERM; return the exit code."""
    configure_logging(settings.server.log_format)
    run_loop(serve_app(hypercorn_config(settings)), settings.server.event_loop)
    return 0


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` to completion on a new event loop of the configured kind."""
    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


async def serve_app(config: HypercornConfig, parent: Connection | None = None) -> None:
    """Serve the app in this process until SIGINT or SIGTERM, or until ``parent`` (a worker's
    end of a pipe from the process that started it) is closed at the other end.

    Then every websocket is closed with 1001 ("going away") before Hypercorn stops
    listening and finishes, so browsers reconnect at once and resume.
    """
    from . import create_app

    app = create_app()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    if parent is not None:

        def parent_says_stop() -> None:
            loop.remove_reader(parent.fileno())  # readable until read: do not spin on it
            stopping.set()

        loop.add_reader(parent.fileno(), parent_says_stop)

    async def shutdown_trigger() -> None:
        await stopping.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_SECONDS):
                await app.extensions[EXTENSION].sockets.close_all()

    # The app's ASGI entry point itself, the middleware chain, rather than the Quart object
    # whose __call__ only forwards to it: one coroutine fewer held by every open socket.
    entry: Any = app.asgi_app
    await hypercorn_serve(entry, config, shutdown_trigger=shutdown_trigger)
