"""The call HTTP API: the ICE servers for the browser.  The signalling websocket is served
beside Quart, by :mod:`.endpoint`."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_response

from ..errors import ApiError, api_error
from ..names import InvalidName, check_user
from ..services import services
from .ice import IceServers, ice_servers

bp = Blueprint("call", __name__)


class IceQuery(BaseModel):
    name: str = Field("", description="Who asks: part of the TURN username (default: anonymous).")


@bp.get("/api/ice-servers")
@tag(["calls"])
@validate_querystring(IceQuery)
@validate_response(IceServers, 200)
@validate_response(ApiError, 400)
async def get_ice_servers(query_args: IceQuery) -> IceServers | tuple[ApiError, int]:
    """STUN and TURN servers for RTCPeerConnection, with TURN credentials that expire."""
    name = query_args.name or "anonymous"
    try:
        check_user(name)
    except InvalidName as error:
        return api_error("invalid_name", str(error))
    return ice_servers(services().settings.ice, name)
