"""Serve an ASGI app of the bench on Hypercorn in this one process, as the ``quartchat``
command does (Hypercorn's own command runs the app in a child process under a supervisor):

    python -m bench.serve bench.ceiling:app 8001
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


def main() -> None:
    where, port = sys.argv[1], sys.argv[2]
    module, _, name = where.partition(":")
    app: Any = getattr(importlib.import_module(module), name)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
