"""quartchat: self-hosted real-time chat rooms and video calls, on Quart and Hypercorn."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quart import Quart
from quart_schema import Info, QuartSchema

from . import (
    apidocs,
    errors,
    handshakes,
    health,
    metrics,
    pages,
    proxies,
    security,
    services,
)
from .call import endpoint as call_endpoint
from .call.views import bp as call_bp
from .chat import endpoint as chat_endpoint
from .chat.views import bp as chat_bp
from .config import load_settings

__all__ = ["create_app"]

__version__ = "0.1.0"


def create_app(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Quart:
    """Build the application.

    Arguments:
        overrides: ``{section: {key: value}}`` settings applied over config.toml and the
            environment (see :mod:`quartchat.config`).
    """
    settings = load_settings(overrides=overrides)
    app = Quart(
        __name__,
        template_folder=str(_asset_dir("templates")),
        static_folder=str(_asset_dir("static")),
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.request_max_bytes
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.secret_key = settings.server.secret_key or secrets.token_hex(32)
    QuartSchema(
        app,
        info=Info(title="quartchat", version=__version__),
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
    )
    shared = services.init_app(app, settings)
    errors.init_app(app)
    security.init_app(app)
    for blueprint in (pages.bp, chat_bp, call_bp, health.bp, metrics.bp, apidocs.bp):
        app.register_blueprint(blueprint)
    chat_endpoint.init_app(app, shared)  # the websockets, beside Quart
    call_endpoint.init_app(app, shared)
    handshakes.init_app(app, settings)  # inside proxies': it counts the forwarded client
    proxies.init_app(app, settings.server.trusted_proxies)  # outermost: rewrites the scope
    return app


def _asset_dir(name: str) -> Path:
    """templates/ and static/ live at the top of the repository and are copied into the
    package by the wheel build; find them either way."""
    package = Path(__file__).resolve().parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name
