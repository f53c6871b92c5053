"""The files in deploy/ agree with the app: the production config is valid, and nginx's body
limit is quartchat's.  (tests/test_nginx.py runs deploy/nginx.conf itself.)"""

from __future__ import annotations

import re
from pathlib import Path

from quartchat.config import load_settings
from quartchat.serving import check_serving

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def test_the_production_config_is_valid_and_trusts_the_local_nginx() -> None:
    settings = load_settings(DEPLOY / "config.toml", environ={})
    check_serving(settings)  # several workers: fine with the Redis broker
    assert settings.server.workers > 1
    assert settings.broker.url.startswith("redis://")
    assert settings.store.url.startswith("postgresql+asyncpg://")
    assert settings.server.trusted_proxies == ["127.0.0.1"]


def test_nginx_refuses_bodies_exactly_over_quartchats_limit() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    sizes = re.findall(r"^\s*client_max_body_size (\d+)([kKmM]?);", nginx, re.MULTILINE)
    [(number, unit)] = sizes
    limit = load_settings(DEPLOY / "config.toml", environ={}).limits.request_max_bytes
    assert int(number) * UNITS[unit.lower()] == limit
