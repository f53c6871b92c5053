"""Room chat's HTTP API: rooms and their history.  The room websocket is served beside Quart,
by :mod:`.endpoint` (which says why)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_response

from ..errors import ApiError, api_error
from ..messages import ChatMessage
from ..names import InvalidName, check_room
from ..services import services
from ..store import MAX_ID
from .writer import chat_message

bp = Blueprint("chat", __name__)

DEFAULT_PAGE = 50


class RoomSummary(BaseModel):
    name: str
    members: int = Field(description="People in the room now.")


class RoomList(BaseModel):
    rooms: list[RoomSummary]


class HistoryQuery(BaseModel):
    before: int | None = Field(
        None, ge=1, le=MAX_ID, description="Only messages with a smaller id."
    )
    after: int | None = Field(None, ge=0, le=MAX_ID, description="Only messages with a larger id.")
    limit: int | None = Field(
        None, ge=1, description="At most this many (default 50; server limit: limits.page_max)."
    )


class MessagePage(BaseModel):
    room: str
    messages: list[ChatMessage] = Field(description="In id order, oldest first.")


@bp.get("/api/rooms")
@tag(["rooms"])
@validate_response(RoomList)
async def list_rooms() -> RoomList:
    """Rooms that have people in them now, busiest first."""
    rooms = await services().presence.rooms()
    return RoomList(rooms=[RoomSummary(name=name, members=count) for name, count in rooms])


@bp.get("/api/rooms/<room>/messages")
@tag(["rooms"])
@validate_querystring(HistoryQuery)
@validate_response(MessagePage, 200)
@validate_response(ApiError, 400)
async def room_messages(room: str, query_args: HistoryQuery) -> MessagePage | tuple[ApiError, int]:
    """A page of a room's history: the latest messages, or those before/after an id."""
    try:
        check_room(room)
    except InvalidName as error:
        return api_error("invalid_room", str(error))
    page_max = services().settings.limits.page_max
    limit = min(DEFAULT_PAGE, page_max) if query_args.limit is None else query_args.limit
    if limit > page_max:
        return api_error("invalid_limit", f"limit is at most {page_max}")
    if query_args.before is not None and query_args.after is not None:
        return api_error("invalid_query", "give before or after, not both")
    stored = await services().store.page(
        room, after=query_args.after, before=query_args.before, limit=limit
    )
    return MessagePage(room=room, messages=[chat_message(message) for message in stored])
