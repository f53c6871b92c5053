"""The ``quartchat`` command: settings -> Hypercorn config -> serve.

    quartchat [--bind HOST:PORT] [--config PATH]

Hypercorn loads ``quartchat:create_app()`` itself (in this process for one worker, in
spawned processes for several); the flags reach it through the same environment variables
that configure the app, so every worker sees the same settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hypercorn.config import Config as HypercornConfig
from hypercorn.run import run

from .config import CONFIG_ENV, ConfigError, Settings, load_settings

APPLICATION_PATH = "quartchat:create_app()"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quartchat", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="HOST:PORT to listen on (server.bind)")
    parser.add_argument("--config", help=f"path of config.toml (also ${CONFIG_ENV})")
    args = parser.parse_args(argv)

    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    if args.bind:
        os.environ["QUARTCHAT_SERVER_BIND"] = args.bind
    try:
        settings = load_settings()
        check_serving(settings)
    except ConfigError as error:
        print(f"quartchat: {error}", file=sys.stderr)
        return 2
    return run(hypercorn_config(settings))


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
    config.workers = 0 if settings.server.workers == 1 else settings.server.workers
    config.websocket_max_message_size = settings.limits.frame_max_bytes
    config.accesslog = "-"
    config.errorlog = "-"
    if settings.server.certfile:
        config.certfile = settings.server.certfile
        config.keyfile = settings.server.keyfile
    return config


if __name__ == "__main__":
    sys.exit(main())
