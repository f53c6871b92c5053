"""The wire format: what the socket's fast paths rely on."""

from __future__ import annotations

from quartchat.broker.frame import CHAT_PREFIX, Frame
from quartchat.chat.socket import ERROR_PREFIX
from quartchat.messages import ChatMessage, ErrorEvent, encode


def test_encoded_events_start_with_their_type() -> None:
    """The room socket recognises chat messages and errors by their first bytes (no parsing
    per recipient): the encoding must put ``type`` first, with no spaces."""
    chat = ChatMessage(
        id=7, message="hi", user="ada", datetime="2026-01-01T00:00:00+00:00", room="r"
    )
    assert encode(chat).startswith(CHAT_PREFIX + ',"id":7,')
    assert encode(ErrorEvent(code="x", message="y")).startswith(ERROR_PREFIX)


def test_a_frame_carries_its_chat_id_and_the_event_that_writes_it() -> None:
    """Read once per message by the broker's listener, for every recipient."""
    chat = encode(ChatMessage(id=1234, message="id", user="u", datetime="d", room="r"))
    frame = Frame(chat)
    assert frame.chat_id == 1234
    assert frame.event == {"type": "websocket.send", "bytes": None, "text": chat}
    error = encode(ErrorEvent(code="x", message='"id":5,'))
    assert Frame(error).chat_id is None
    assert Frame('{"type":"typing","user":"u"}').chat_id is None


def test_seed_fields_keep_their_names() -> None:
    chat = ChatMessage(id=1, message="m", user="u", datetime="d", room="r")
    assert {"type", "message", "user", "datetime"} <= chat.model_dump().keys()
