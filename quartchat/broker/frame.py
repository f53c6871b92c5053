"""What a subscriber receives: one published text, prepared once per process for every
socket it fans out to."""

from __future__ import annotations

from typing import Any

CHAT_PREFIX = '{"type":"chat_message"'
CHAT_ID_PREFIX = CHAT_PREFIX + ',"id":'  # ChatMessage's first two fields are type and id


class Frame:
    """A text on its way to websockets.

    Built once per published message by the broker's listener and shared by every local
    subscriber, so that a recipient's socket does nothing for it but the write:

    - ``event`` is the ASGI ``websocket.send`` event writing ``text`` (one dict for all the
      sockets: the server only reads it);
    - ``chat_id`` is the id of a chat message (the room's sequence number, which sockets use
      to deliver in order), read here rather than by each recipient; None for other frames.
    """

    __slots__ = ("chat_id", "event", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.event: dict[str, Any] = {"type": "websocket.send", "bytes": None, "text": text}
        self.chat_id = _chat_id(text) if text.startswith(CHAT_ID_PREFIX) else None

    def __repr__(self) -> str:
        return f"Frame({self.text!r})"


def _chat_id(text: str) -> int:
    end = text.index(",", len(CHAT_ID_PREFIX))
    return int(text[len(CHAT_ID_PREFIX) : end])
