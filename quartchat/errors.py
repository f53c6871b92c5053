"""Error responses: JSON for the API and sockets' handshakes, a page for people."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from quart import (
    Quart,
    ResponseReturnValue,
    has_request_context,
    render_template,
    request,
    websocket,
)
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from .broker import BrokerUnavailable
from .store import StoreUnavailable

JSON_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/ws/")


class ApiError(BaseModel):
    error: str
    message: str


def api_error(code: str, message: str, status: int = 400) -> tuple[ApiError, int]:
    return ApiError(error=code, message=message), status


def init_app(app: Quart) -> None:
    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> ResponseReturnValue:
        validation = error.validation_error
        problems = validation.errors() if isinstance(validation, ValidationError) else []
        detail = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in problems
        )
        return ApiError(error="invalid_request", message=detail or str(error)).model_dump(), 400

    @app.errorhandler(BrokerUnavailable)
    async def broker_unavailable(error: BrokerUnavailable) -> ResponseReturnValue:
        return ApiError(error="broker_unavailable", message=str(error)).model_dump(), 503

    @app.errorhandler(StoreUnavailable)
    async def store_unavailable(error: StoreUnavailable) -> ResponseReturnValue:
        return ApiError(error="store_unavailable", message=str(error)).model_dump(), 503

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        path = request.path if has_request_context() else websocket.path
        # The exception's own headers matter: Allow on a 405 (RFC 9110), Retry-After...
        headers = [(key, value) for key, value in error.get_headers() if key != "Content-Type"]
        if path.startswith(JSON_PREFIXES):
            body = ApiError(error=name, message=error.description or "").model_dump()
            return body, status, headers
        page = await render_template("error.html", title=error.name, message=error.description)
        return page, status, headers
