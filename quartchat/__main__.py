"""The ``quartchat`` command: settings -> Hypercorn config -> serve.

    quartchat [--bind HOST:PORT] [--config PATH]    serve
    quartchat db upgrade [--config PATH]            migrate the store's database to head
    quartchat db current [--config PATH]            print its schema revision
    quartchat dev-cert [--dir DIR] [--host NAME ...] a TLS certificate for local testing

The flags reach the app through the same environment variables that configure it, so
every worker process sees the same settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import dbcommand
from .config import CONFIG_ENV, ConfigError, load_settings
from .devcert import DEFAULT_HOSTS, write_dev_cert
from .serving import check_serving, serve
from .workers import serve_workers


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.command == "dev-cert":
        hosts = tuple(args.host or DEFAULT_HOSTS)
        print(write_dev_cert(Path(args.dir), hosts).instructions(hosts))
        return 0
    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    if args.bind:
        os.environ["QUARTCHAT_SERVER_BIND"] = args.bind
    try:
        settings = load_settings()
        if args.command is None:
            check_serving(settings)
    except ConfigError as error:
        print(f"quartchat: {error}", file=sys.stderr)
        return 2
    if args.command == "db":
        return dbcommand.run(args.action, settings.store.url)
    if failed := dbcommand.check(settings.store.url):
        return failed
    return serve_workers(settings) if settings.server.workers > 1 else serve(settings)


def _parser() -> argparse.ArgumentParser:
    config_help = f"path of config.toml (also ${CONFIG_ENV})"
    parser = argparse.ArgumentParser(prog="quartchat", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="HOST:PORT to listen on (server.bind)")
    parser.add_argument("--config", help=config_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", help="none: serve")
    db = commands.add_parser("db", help="the message store's schema migrations")
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, summary in dbcommand.ACTIONS.items():
        # SUPPRESS: an absent --config here keeps the one given before `db`.
        actions.add_parser(action, help=summary, description=summary).add_argument(
            "--config", default=argparse.SUPPRESS, help=config_help
        )
    dev_cert = commands.add_parser(
        "dev-cert", help="write a TLS certificate for local testing and print how to use it"
    )
    dev_cert.add_argument("--dir", default="dev-cert", help="where to write it (./dev-cert)")
    dev_cert.add_argument(
        "--host",
        action="append",
        help=f"a name or address it is valid for, repeatable (default: {' '.join(DEFAULT_HOSTS)})",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
