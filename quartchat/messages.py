"""The wire: pydantic models for every frame the room socket receives or sends.

Inbound frames are validated here; outbound events are encoded here, once per event, and the
same text goes to every recipient.  ``protocol_schema()`` publishes both sides as JSON Schema
(websocket routes do not appear in OpenAPI).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

T = TypeVar("T")


class FrameError(Exception):
    """An inbound frame was refused; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- inbound ---------------------------------------------------------------------------------


class PostMessage(_Frame):
    """Say something in the room.  ``type`` may be left out: that is the seed's frame."""

    type: Literal["message"] = "message"
    message: str
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Chosen by the client, echoed in the stored chat_message, so a client that "
        "resends after a reconnect can recognise its own message.",
    )


class StartTyping(_Frame):
    """The sender is typing; the server relays it (throttled) to the room."""

    type: Literal["typing"]


RoomInbound = Annotated[PostMessage | StartTyping, Field(discriminator="type")]
_room_inbound: TypeAdapter[PostMessage | StartTyping] = TypeAdapter(RoomInbound)


def parse_room_frame(text: str | bytes) -> PostMessage | StartTyping:
    """Decode and validate one inbound room frame, or raise :class:`FrameError`."""
    data = decode_frame(text)
    if isinstance(data, dict) and "type" not in data:
        data["type"] = "message"
    return validate_frame(_room_inbound, data)


def decode_frame(text: str | bytes) -> Any:
    """The JSON of a text frame (of any websocket), or :class:`FrameError`."""
    if not isinstance(text, str):
        raise FrameError("invalid_frame", "Binary frames are not supported; send JSON text.")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None


def validate_frame(adapter: TypeAdapter[T], data: Any) -> T:
    """``data`` as one of a tagged union's frames, or :class:`FrameError` naming the first
    problem."""
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise FrameError("invalid_frame", _first_problem(error)) from None


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"][1:])  # loc[0] is the union's tag
    return f"{field}: {problem['msg']}" if field else str(problem["msg"])


# -- outbound --------------------------------------------------------------------------------


class ChatMessage(_Frame):
    """A stored chat message.  The first four fields are the seed's, unchanged."""

    type: Literal["chat_message"] = "chat_message"
    id: int = Field(description="Per-room increasing id, for resume (?since=) and de-duplication.")
    message: str
    user: str
    datetime: str = Field(description="When it was stored, ISO 8601 in UTC.")
    room: str
    client_id: str | None = None


class History(_Frame):
    """Stored messages sent on entry (the last N) or on resume (all after ``since``)."""

    type: Literal["history"] = "history"
    messages: list[ChatMessage]
    since: int | None = Field(description="The ?since= the client gave, or null on first entry.")
    complete: bool = Field(description="True on the last page: live messages follow.")


class Presence(_Frame):
    """The room's member list, sent once after the socket is subscribed to the room."""

    type: Literal["presence"] = "presence"
    room: str
    user: str = Field(description="The name this socket joined as.")
    members: list[str]


class MemberJoined(_Frame):
    type: Literal["member_joined"] = "member_joined"
    user: str
    datetime: str


class MemberLeft(_Frame):
    type: Literal["member_left"] = "member_left"
    user: str
    datetime: str


class Typing(_Frame):
    type: Literal["typing"] = "typing"
    user: str


class ErrorEvent(_Frame):
    """A frame was refused; the connection stays open and nothing was relayed or stored."""

    type: Literal["error"] = "error"
    code: str
    message: str
    client_id: str | None = Field(None, description="The refused message's client_id, if any.")


RoomOutbound = Annotated[
    ChatMessage | History | Presence | MemberJoined | MemberLeft | Typing | ErrorEvent,
    Field(discriminator="type"),
]


def encode(event: _Frame) -> str:
    """Encode an outbound event as compact JSON text (once; the text is shared by all)."""
    return event.model_dump_json()


def error_frame(error: FrameError) -> str:
    return encode(ErrorEvent(code=error.code, message=error.message, client_id=error.client_id))


def protocol_schema() -> dict[str, Any]:
    """JSON Schema of both directions of the room socket."""
    return {
        "room": {
            "inbound": TypeAdapter(RoomInbound).json_schema(),
            "outbound": TypeAdapter(RoomOutbound).json_schema(),
        }
    }
