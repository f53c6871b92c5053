"""What call connections tell each other through the broker, on the user's topic.

Every signal names the connection it is for (``to``) and the call it belongs to, so that a
connection acts only on signals of its own current call from its own peer: nothing a third
party sends can reach a call it is not part of.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .frames import EndReason

SIGNAL_PREFIX = '{"signal":'

Kind = Literal[
    "invite",  # caller -> callee: ring, with the offer
    "ringing",  # callee -> caller: it rings
    "busy",  # callee -> caller: in another call
    "accept",  # callee -> caller: answered, with the answer
    "ice",  # either way: a candidate
    "sdp",  # either way: a later offer or answer
    "end",  # either way: the call is over, for ``reason``
    "replace",  # a new login of the same browser took the name over: close
]


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal: Kind
    to: str
    sender: str = ""
    sender_sid: str = ""
    call: str = ""
    rtc: dict[str, Any] | None = None
    reason: EndReason | None = None

    def encode(self) -> str:
        return self.model_dump_json()


def decode(text: str) -> Signal:
    return Signal.model_validate_json(text)
