#!/usr/bin/env bash
# The benchmark: every scenario against the raw-ASGI ceiling and quartchat (asyncio, uvloop,
# Redis with 2 workers) and, for reference, the ceiling on Uvicorn.  Writes
# docs/performance.json, docs/performance.png and the tables in docs/performance.md.
# About 8 minutes on 2 cores; run it on an otherwise idle machine.
#   bash bench/run.sh                          # everything
#   bash bench/run.sh --only ceiling quartchat # some targets (see bench/__main__.py)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[bench]"
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)"; exit 1; }
exec python3 -m bench "$@"
