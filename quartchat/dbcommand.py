"""``quartchat db``: the store's schema migrations from the command line, and the start-up
check that ``quartchat`` runs before it serves."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy import make_url

from .store import MessageStore, Revisions, SchemaMismatch, StoreUnavailable

ACTIONS = {
    "upgrade": "migrate the database of store.url to this version's schema",
    "current": "print the schema revision of the database of store.url",
}


def run(action: str, url: str) -> int:
    """Run ``action`` (a key of :data:`ACTIONS`) on the database at ``url``; the exit code."""
    where = _where(url)

    async def upgrade(store: MessageStore) -> None:
        print(_upgraded(where, await store.upgrade()))

    async def current(store: MessageStore) -> None:
        print(_current(await store.revisions()))

    return asyncio.run(_with_store(url, upgrade if action == "upgrade" else current))


def check(url: str) -> int:
    """Before serving: open the store once (an empty database is migrated), or say why not.

    The app checks again as it starts, but a failure there ends in Hypercorn's tracebacks;
    here it is one line.  With several workers it also migrates once, before they start.
    """

    async def open_store(store: MessageStore) -> None:
        await store.open()

    return asyncio.run(_with_store(url, open_store))


async def _with_store(url: str, use: Callable[[MessageStore], Awaitable[None]]) -> int:
    store = MessageStore(url)
    try:
        await use(store)
    except SchemaMismatch as error:  # the message names the database
        print(f"quartchat: {error}", file=sys.stderr)
        return 1
    except StoreUnavailable as error:
        print(f"quartchat: {_where(url)}: the store is unavailable: {error}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _upgraded(where: str, before: Revisions) -> str:
    if before.current == before.head:
        return f"{where}: already at revision {before.head}"
    return f"{where}: upgraded from revision {before.current or 'none'} to {before.head}"


def _current(found: Revisions) -> str:
    if found.current == found.head:
        return f"{found.head} (head)"
    return f"{found.current or 'none'} (head is {found.head}: run `quartchat db upgrade`)"


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
