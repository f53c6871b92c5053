"""The call socket's wire: every frame is ``{"type": ..., "data": {...}}``, as in the seed.

Inbound frames are validated against the models here (SDP and candidate sizes bounded by
``[call]`` settings); outbound events are encoded here.  The seed's four inbound and four
outbound types are unchanged; everything else is an addition old clients simply ignore.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ..messages import FrameError, decode_frame, validate_frame
from ..names import InvalidName, check_user


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- what is relayed ---------------------------------------------------------------------------


class SessionDescription(_Model):
    """An RTCSessionDescription as JSON (``pc.localDescription``)."""

    type: Literal["offer", "answer"]
    sdp: str = ""


class Offer(SessionDescription):
    type: Literal["offer"]


class Answer(SessionDescription):
    type: Literal["answer"]


class Candidate(_Model):
    """An ICE candidate: the seed's shape (``label``/``id``/``candidate``) or the standard
    RTCIceCandidateInit one (``sdpMid``/``sdpMLineIndex``/``usernameFragment``)."""

    candidate: str
    sdpMid: str | None = Field(None, max_length=256)
    sdpMLineIndex: int | None = Field(None, ge=0, le=1024)
    usernameFragment: str | None = Field(None, max_length=256)
    label: int | None = Field(None, ge=0, le=1024)
    id: str | None = Field(None, max_length=256)


# -- inbound -----------------------------------------------------------------------------------


class NameData(_Model):
    name: str


class _Caller(_Model):
    caller: str


class _Empty(_Model):
    pass


class Login(_Model):
    type: Literal["login"]
    data: NameData


class CallData(_Model):
    name: str = Field(description="Whom to call.")
    rtcMessage: Offer = Field(description="The caller's offer.")


class PlaceCall(_Model):
    type: Literal["call"]
    data: CallData


class AnswerData(_Model):
    caller: str
    rtcMessage: Answer = Field(description="The callee's answer.")


class AnswerCall(_Model):
    type: Literal["answer_call"]
    data: AnswerData


class CandidateData(_Model):
    user: str = Field(description="The other party of the call.")
    rtcMessage: Candidate


class SendCandidate(_Model):
    type: Literal["ICEcandidate"]
    data: CandidateData


class DescriptionData(_Model):
    rtcMessage: SessionDescription


class Renegotiate(_Model):
    """A later offer or answer within a call (ICE restart, tracks added)."""

    type: Literal["sdp"]
    data: DescriptionData


class Decline(_Model):
    """The callee turns down the ringing call."""

    type: Literal["decline"]
    data: _Empty = _Empty()


class Cancel(_Model):
    """The caller gives up before an answer."""

    type: Literal["cancel"]
    data: _Empty = _Empty()


class Hangup(_Model):
    """Either party ends the call (also cancels or declines one that is still ringing)."""

    type: Literal["hangup"]
    data: _Empty = _Empty()


Inbound = Login | PlaceCall | AnswerCall | SendCandidate | Renegotiate | Decline | Cancel | Hangup
CallInbound = Annotated[Inbound, Field(discriminator="type")]
_inbound: TypeAdapter[Inbound] = TypeAdapter(CallInbound)


def parse_call_frame(raw: str | bytes, sdp_max: int, candidate_max: int) -> Inbound:
    """Decode and validate one inbound frame, or raise :class:`FrameError`."""
    frame = validate_frame(_inbound, decode_frame(raw))
    _check_sizes(frame, sdp_max, candidate_max)
    for name in _names(frame):
        try:
            check_user(name)
        except InvalidName as error:
            raise FrameError("invalid_name", str(error)) from None
    return frame


def _check_sizes(frame: Inbound, sdp_max: int, candidate_max: int) -> None:
    if isinstance(frame, PlaceCall | AnswerCall | Renegotiate):
        size, limit, what = len(frame.data.rtcMessage.sdp.encode()), sdp_max, "session description"
    elif isinstance(frame, SendCandidate):
        size, limit, what = (
            len(frame.data.rtcMessage.candidate.encode()),
            candidate_max,
            "ICE candidate",
        )
    else:
        return
    if size > limit:
        raise FrameError("too_large", f"The {what} is over {limit} bytes.")


def _names(frame: Inbound) -> list[str]:
    if isinstance(frame, Login | PlaceCall):
        return [frame.data.name]
    if isinstance(frame, AnswerCall):
        return [frame.data.caller]
    if isinstance(frame, SendCandidate):
        return [frame.data.user]
    return []


# -- outbound ----------------------------------------------------------------------------------

Status = Literal["available", "busy", "offline"]
EndReason = Literal["declined", "cancelled", "no_answer", "hung_up", "disconnected"]


class _Message(_Model):
    message: str


class Connected(_Model):
    """Sent first on every connection (the seed's greeting)."""

    type: Literal["connection"] = "connection"
    data: _Message = _Message(message="Connected")


class OnlineUser(_Model):
    name: str
    status: Status


class LoggedInData(_Model):
    name: str
    users: list[OnlineUser] = Field(description="Everyone else logged in, by name.")


class LoggedIn(_Model):
    type: Literal["logged_in"] = "logged_in"
    data: LoggedInData


class UserStatus(_Model):
    """Someone logged in (available), started or ended a call, or left (offline)."""

    type: Literal["user_status"] = "user_status"
    data: OnlineUser


class IncomingData(_Model):
    caller: str
    rtcMessage: SessionDescription


class CallReceived(_Model):
    type: Literal["call_received"] = "call_received"
    data: IncomingData


class AnsweredData(_Model):
    rtcMessage: SessionDescription
    name: str = Field(description="Who answered.")


class CallAnswered(_Model):
    type: Literal["call_answered"] = "call_answered"
    data: AnsweredData


class RelayedCandidateData(_Model):
    rtcMessage: Candidate


class CandidateRelayed(_Model):
    """A candidate of the other party, in the shape it was sent (unset fields left out)."""

    type: Literal["ICEcandidate"] = "ICEcandidate"
    data: RelayedCandidateData


class DescriptionRelayed(_Model):
    type: Literal["sdp"] = "sdp"
    data: DescriptionData


class Ringing(_Model):
    """The callee's phone is ringing (their connection received the call)."""

    type: Literal["ringing"] = "ringing"
    data: NameData


class Busy(_Model):
    """The callee is in another call or already ringing; the attempt is over."""

    type: Literal["busy"] = "busy"
    data: NameData


class Unavailable(_Model):
    """The callee is not online (or did not respond); the attempt is over."""

    type: Literal["unavailable"] = "unavailable"
    data: NameData


class EndedData(_Model):
    name: str = Field(description="The other party.")
    reason: EndReason


class CallEnded(_Model):
    """Sent to both parties, with the same reason, whoever ended it."""

    type: Literal["call_ended"] = "call_ended"
    data: EndedData


class ErrorData(_Model):
    code: str
    message: str


class CallError(_Model):
    """A frame was refused: nothing was relayed, and the connection stays open (except
    after ``replaced``, which is followed by close code 4009)."""

    type: Literal["error"] = "error"
    data: ErrorData


Outbound = (
    Connected
    | LoggedIn
    | UserStatus
    | CallReceived
    | CallAnswered
    | CandidateRelayed
    | DescriptionRelayed
    | Ringing
    | Busy
    | Unavailable
    | CallEnded
    | CallError
)
CallOutbound = Annotated[Outbound, Field(discriminator="type")]


def encode(event: _Model) -> str:
    return event.model_dump_json(exclude_none=isinstance(event, CandidateRelayed))


def error_event(code: str, message: str) -> str:
    return encode(CallError(data=ErrorData(code=code, message=message)))


def call_schema() -> dict[str, Any]:
    return {
        "inbound": TypeAdapter(CallInbound).json_schema(),
        "outbound": TypeAdapter(CallOutbound).json_schema(),
    }
