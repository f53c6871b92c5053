"""The files in deploy/ agree with the app: the production config is valid, and nginx's body
limit is quartchat's.  (tests/test_nginx.py runs deploy/nginx.conf itself.)"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from quartchat.config import ConfigError, load_settings
from quartchat.serving import check_serving

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def filled_in(tmp_path: Path) -> Path:
    """deploy/config.toml after the step of docs/deploy.md that puts a random key in."""
    text = (DEPLOY / "config.toml").read_text()
    path = tmp_path / "config.toml"
    path.write_text(text.replace("CHANGE-ME-secret-key", secrets.token_hex(32)))
    return path


def test_the_production_config_refuses_to_start_with_its_placeholder_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.secret_key: .*placeholder"):
        load_settings(DEPLOY / "config.toml", environ={})


def test_the_production_config_is_valid_and_trusts_the_local_nginx(tmp_path: Path) -> None:
    settings = load_settings(filled_in(tmp_path), environ={})
    check_serving(settings)  # several workers: fine with the Redis broker
    assert settings.server.workers > 1
    assert settings.broker.url.startswith("redis://")
    assert settings.store.url.startswith("postgresql+asyncpg://")
    assert settings.server.trusted_proxies == ["127.0.0.1"]


def test_nginx_refuses_bodies_exactly_over_quartchats_limit(tmp_path: Path) -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    sizes = re.findall(r"^\s*client_max_body_size (\d+)([kKmM]?);", nginx, re.MULTILINE)
    [(number, unit)] = sizes
    limit = load_settings(filled_in(tmp_path), environ={}).limits.request_max_bytes
    assert int(number) * UNITS[unit.lower()] == limit
