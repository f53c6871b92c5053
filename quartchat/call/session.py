"""The call websocket: ``/ws/call/``, one :class:`CallSession` per connection.

Each connection is the authority on its own user's call state (idle -> calling or ringing ->
in call -> idle) and talks to the other party's connection only through signals on the
broker (see :mod:`.signals`), so the same code works when the two are on different hosts.
Client frames and peer signals are handled one at a time under a lock; a peer's signals are
turned into client frames by the sender loop itself, so they reach the client in the order
the peer sent them (an answer before the candidates that follow it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from ..asgi_socket import ASGISocket, received
from ..broker import BrokerUnavailable, Subscriber
from ..chat.rules import TokenBucket
from ..messages import FrameError
from ..metrics import CALLS_ANSWERED, CALLS_ENDED, CALLS_STARTED
from ..services import Services
from ..sockets import CloseCode, CloseSocket, run_duplex
from ..topics import CALL_DIRECTORY_TOPIC, user_topic
from .directory import Status
from .frames import (
    AnswerCall,
    AnsweredData,
    Busy,
    CallAnswered,
    CallEnded,
    CallReceived,
    Cancel,
    CandidateRelayed,
    Connected,
    Decline,
    DescriptionData,
    DescriptionRelayed,
    EndedData,
    EndReason,
    Hangup,
    Inbound,
    IncomingData,
    LoggedIn,
    LoggedInData,
    Login,
    NameData,
    OnlineUser,
    PlaceCall,
    RelayedCandidateData,
    Renegotiate,
    Ringing,
    SendCandidate,
    SessionDescription,
    Unavailable,
    UserStatus,
    encode,
    error_event,
    parse_call_frame,
)
from .frames import Candidate as CandidateModel
from .signals import SIGNAL_PREFIX, Kind, Signal, decode

log = logging.getLogger(__name__)


class Phase(Enum):
    IDLE = "idle"
    CALLING = "calling"  # we called; no answer yet
    RINGING = "ringing"  # we are being called
    IN_CALL = "in_call"


@dataclass(slots=True)
class Call:
    id: str
    peer: str
    peer_sid: str
    reached: bool = False  # caller side: the callee's connection said it rings
    timer: asyncio.Task[None] | None = field(default=None, repr=False)
    # The directory's word that the peer went offline: the one status change that ends it.
    peer_offline: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.peer_offline = _status_event(self.peer, "offline")


Emit = Callable[[str], None]

# What ending a call means, by the phase it was in when this side ended it.
_ENDED_BY_US: dict[Phase, EndReason] = {
    Phase.CALLING: "cancelled",
    Phase.RINGING: "declined",
    Phase.IN_CALL: "hung_up",
}


class CallSession:
    def __init__(self, services: Services, socket: ASGISocket, device: str | None) -> None:
        self.services = services
        self.socket = socket
        self.settings = services.settings.call
        self.device = device
        self.sid = secrets.token_urlsafe(12)
        self.name: str | None = None
        self.phase = Phase.IDLE
        self.call: Call | None = None
        self._lock = asyncio.Lock()
        self._inbox: Subscriber
        self._own_status = "\0"  # prefix of directory events about this user, once logged in

    async def run(self) -> None:
        limits, broker = self.services.settings.limits, self.services.broker
        if not broker.connected:
            raise BrokerUnavailable("the broker is unavailable")
        async with broker.subscribe(
            max_queue=limits.queue_length, conflate=_status_subject
        ) as inbox:
            await self.socket.accept()
            self._inbox = inbox
            inbox.deliver_text(encode(Connected()))
            try:
                await run_duplex(
                    lambda: self._receive(inbox),
                    lambda: self._send(inbox),
                    inbox,
                    self.services.sockets,
                    "call",
                    self.socket.close,
                )
            finally:
                await self._leave()

    # -- inbound ---------------------------------------------------------------------------

    async def _receive(self, inbox: Subscriber) -> None:
        bucket = TokenBucket(self.settings.rate_per_second, self.settings.rate_burst)
        receive = self.socket.receive
        while True:
            raw = received(await receive())
            if raw is None:
                continue
            try:
                if not bucket.take():
                    raise FrameError("rate_limited", "Too many frames: slow down.")
                frame = parse_call_frame(
                    raw, self.settings.sdp_max_bytes, self.settings.candidate_max_bytes
                )
                async with self._lock:
                    await self._on_frame(frame, inbox)
            except BrokerUnavailable as error:
                log.warning("call frame of %s not sent: %s", self.name, error)
                inbox.deliver_text(
                    error_event("unavailable", "Not sent: the server is reconnecting.")
                )
            except FrameError as error:
                inbox.deliver_text(error_event(error.code, error.message))

    async def _on_frame(self, frame: Inbound, inbox: Subscriber) -> None:
        emit = inbox.deliver_text
        if isinstance(frame, Login):
            await self._login(frame.data.name, inbox)
            return
        if self.name is None:
            raise FrameError("not_logged_in", "Log in first.")
        if isinstance(frame, PlaceCall):
            await self._place_call(frame.data.name, frame.data.rtcMessage, emit)
        elif isinstance(frame, AnswerCall):
            call = self._current(Phase.RINGING, frame.data.caller)
            if call is None:
                raise FrameError("no_such_call", f"{frame.data.caller} is not calling you.")
            self.phase = Phase.IN_CALL
            _disarm(call)
            CALLS_ANSWERED.inc()
            await self._signal(call, "accept", rtc=frame.data.rtcMessage.model_dump())
        elif isinstance(frame, SendCandidate):
            call = self._current(None, frame.data.user)
            if call is None:
                raise FrameError("not_in_call", f"You are not in a call with {frame.data.user}.")
            candidate = frame.data.rtcMessage.model_dump(exclude_none=True)
            await self._signal(call, "ice", rtc=candidate)
        elif isinstance(frame, Renegotiate):
            call = self._current(Phase.IN_CALL)
            if call is None:
                raise FrameError("not_in_call", "You are not in a call.")
            await self._signal(call, "sdp", rtc=frame.data.rtcMessage.model_dump())
        elif isinstance(frame, Decline | Cancel | Hangup):
            await self._hang_up(frame, emit)

    async def _login(self, name: str, inbox: Subscriber) -> None:
        if self.name is not None:
            raise FrameError("already_logged_in", f"This connection is logged in as {self.name}.")
        directory, broker = self.services.directory, self.services.broker
        # Listen first: a call made the moment the name is ours must find us listening.
        await broker.add_topic(inbox, user_topic(name))
        claim = await directory.claim(name, self.sid, self.device)
        if not claim.granted:
            await broker.remove_topic(inbox, user_topic(name))
            where = "in a call in another window" if claim.holder_busy else "logged in elsewhere"
            raise FrameError("name_taken", f"{name} is already {where}.")
        self.name = name
        self._own_status = _status_event(name, "available").partition(',"status"')[0]
        if claim.replaced_sid is not None:
            replace = Signal(signal="replace", to=claim.replaced_sid)
            await broker.publish(user_topic(name), replace.encode())
        await broker.add_topic(inbox, CALL_DIRECTORY_TOPIC)
        users = [
            OnlineUser(name=other, status=status)
            for other, status in await directory.online()
            if other != name
        ]
        inbox.deliver_text(encode(LoggedIn(data=LoggedInData(name=name, users=users))))
        await broker.publish(CALL_DIRECTORY_TOPIC, _status_event(name, "available"))

    async def _place_call(self, callee: str, offer: SessionDescription, emit: Emit) -> None:
        if self.phase is not Phase.IDLE:
            raise FrameError("already_in_call", "End the current call first.")
        if callee == self.name:
            raise FrameError("invalid_call", "You cannot call yourself.")
        entry = await self.services.directory.lookup(callee)
        if entry is None:
            emit(encode(Unavailable(data=NameData(name=callee))))
            return
        call = self.call = Call(secrets.token_urlsafe(12), callee, entry.sid)
        self.phase = Phase.CALLING
        CALLS_STARTED.inc()
        await self._publish_status("busy")
        await self._signal(call, "invite", rtc=offer.model_dump())
        self._arm(call, self.settings.reach_timeout_seconds, self._unreached)

    async def _hang_up(self, frame: Decline | Cancel | Hangup, emit: Emit) -> None:
        expected = {Decline: Phase.RINGING, Cancel: Phase.CALLING}.get(type(frame))
        call = self._current(expected)
        if call is None:
            what = {Decline: "No call is ringing.", Cancel: "You are not calling anyone."}
            raise FrameError("not_in_call", what.get(type(frame), "You are not in a call."))
        await self._end(call, _ENDED_BY_US[self.phase], emit, tell_peer=True)

    # -- outbound --------------------------------------------------------------------------

    async def _send(self, inbox: Subscriber) -> None:
        """Relay what reaches this connection.  Signals go through the call state, under the
        lock; so does the directory's word that the peer of our call went offline.  Anything
        else (most frames: everyone's status changes) is written as it is."""
        send = self.socket.send
        while True:
            for frame in await inbox.get_all():
                text = frame.text
                call = self.call
                if text.startswith(SIGNAL_PREFIX) or (
                    call is not None and text == call.peer_offline
                ):
                    await self._relay(text)
                elif not text.startswith(self._own_status):  # the directory tells others
                    await send(frame.event)

    async def _relay(self, text: str) -> None:
        if text.startswith(self._own_status):
            return
        replies: list[str] = []
        try:
            async with self._lock:
                if text.startswith(SIGNAL_PREFIX):
                    await self._on_signal(decode(text), replies.append)
                else:
                    await self._on_directory(text, replies.append)
        finally:  # also the farewell before a CloseSocket
            for reply in replies:
                await self.socket.send_text(reply)

    async def _on_signal(self, signal: Signal, emit: Emit) -> None:
        if signal.to != self.sid:
            return  # for an earlier or later connection under the same name
        if signal.signal == "replace":
            emit(error_event("replaced", "You logged in for calls in another window or tab."))
            raise CloseSocket(CloseCode.REPLACED, "logged in elsewhere")
        if signal.signal == "invite":
            await self._invited(signal, emit)
            return
        call = self.call
        if call is None or signal.call != call.id or signal.sender_sid != call.peer_sid:
            return  # a stale signal of a call that has ended
        if signal.signal == "ringing" and self.phase is Phase.CALLING and not call.reached:
            call.reached = True
            emit(encode(Ringing(data=NameData(name=call.peer))))
            self._arm(call, self.settings.ring_timeout_seconds, self._unanswered)
        elif signal.signal == "busy" and self.phase is Phase.CALLING:
            emit(encode(Busy(data=NameData(name=call.peer))))
            self._reset()
            await self._publish_status("available")
        elif signal.signal == "accept" and self.phase is Phase.CALLING and signal.rtc:
            _disarm(call)
            self.phase = Phase.IN_CALL
            answer = SessionDescription.model_validate(signal.rtc)
            emit(encode(CallAnswered(data=AnsweredData(rtcMessage=answer, name=call.peer))))
        elif signal.signal == "ice" and signal.rtc:
            candidate = CandidateModel.model_validate(signal.rtc)
            emit(encode(CandidateRelayed(data=RelayedCandidateData(rtcMessage=candidate))))
        elif signal.signal == "sdp" and self.phase is Phase.IN_CALL and signal.rtc:
            description = SessionDescription.model_validate(signal.rtc)
            emit(encode(DescriptionRelayed(data=DescriptionData(rtcMessage=description))))
        elif signal.signal == "end" and signal.reason:
            await self._end(call, signal.reason, emit, tell_peer=False)

    async def _on_directory(self, event: str, emit: Emit) -> None:
        """Relay a directory event; if it says the other party of our call went offline
        (their process died before it could tell us), the call is over."""
        if self.call is not None and event == self.call.peer_offline:
            await self._end(self.call, "disconnected", emit, tell_peer=False)
        emit(event)

    async def _invited(self, signal: Signal, emit: Emit) -> None:
        caller_call = Call(signal.call, signal.sender, signal.sender_sid)
        if self.phase is not Phase.IDLE or signal.rtc is None:
            CALLS_ENDED.labels("busy").inc()
            await self._signal(caller_call, "busy")
            return
        self.call = caller_call
        self.phase = Phase.RINGING
        await self._publish_status("busy")
        await self._signal(caller_call, "ringing")
        offer = SessionDescription.model_validate(signal.rtc)
        emit(encode(CallReceived(data=IncomingData(caller=signal.sender, rtcMessage=offer))))
        # The caller's timer ends the call; this one only covers a caller that vanished.
        timeout = self.settings.ring_timeout_seconds + self.settings.reach_timeout_seconds
        self._arm(caller_call, timeout, self._unanswered)

    # -- call state ------------------------------------------------------------------------

    def _current(self, phase: Phase | None, peer: str | None = None) -> Call | None:
        """The current call if it is in ``phase`` (any, when None) and with ``peer``."""
        if self.call is None or (phase is not None and self.phase is not phase):
            return None
        if peer is not None and self.call.peer != peer:
            return None
        return self.call

    async def _end(self, call: Call, reason: EndReason, emit: Emit, tell_peer: bool) -> None:
        """Over here first, whatever happens to the signal: if the broker fails, the peer
        still learns from its own timers or the directory."""
        emit(encode(CallEnded(data=EndedData(name=call.peer, reason=reason))))
        self._reset()
        await self._publish_status("available")
        if tell_peer:  # this side ends the call: it counts it
            CALLS_ENDED.labels(reason).inc()
            await self._signal(call, "end", reason=reason)

    def _reset(self) -> None:
        if self.call is not None:
            _disarm(self.call)
        self.call = None
        self.phase = Phase.IDLE

    async def _signal(
        self,
        call: Call,
        kind: Kind,
        rtc: dict[str, object] | None = None,
        reason: EndReason | None = None,
    ) -> None:
        assert self.name is not None
        signal = Signal(
            signal=kind,
            to=call.peer_sid,
            sender=self.name,
            sender_sid=self.sid,
            call=call.id,
            rtc=rtc,
            reason=reason,
        )
        await self.services.broker.publish(user_topic(call.peer), signal.encode())

    async def _publish_status(self, status: Status) -> None:
        assert self.name is not None
        if await self.services.directory.set_status(self.name, self.sid, status):
            event = _status_event(self.name, status)
            await self.services.broker.publish(CALL_DIRECTORY_TOPIC, event)

    # -- timers ----------------------------------------------------------------------------

    def _arm(
        self, call: Call, seconds: float, expire: Callable[[Call, Emit], Awaitable[None]]
    ) -> None:
        _disarm(call)
        call.timer = asyncio.create_task(self._expire_after(call, seconds, expire))

    async def _expire_after(
        self, call: Call, seconds: float, expire: Callable[[Call, Emit], Awaitable[None]]
    ) -> None:
        await asyncio.sleep(seconds)
        async with self._lock:
            if self.call is not call:
                return
            call.timer = None  # this task is ending: do not cancel itself
            with contextlib.suppress(BrokerUnavailable):  # the socket is closing with 1013
                await expire(call, self._inbox.deliver_text)

    async def _unreached(self, call: Call, emit: Emit) -> None:
        """The callee's connection never answered the invite: it is gone."""
        if self.phase is Phase.CALLING and not call.reached:
            CALLS_ENDED.labels("unavailable").inc()
            emit(encode(Unavailable(data=NameData(name=call.peer))))
            self._reset()
            await self._publish_status("available")
            await self._signal(call, "end", reason="cancelled")

    async def _unanswered(self, call: Call, emit: Emit) -> None:
        if self.phase in (Phase.CALLING, Phase.RINGING):
            await self._end(call, "no_answer", emit, tell_peer=True)

    # -- leaving ---------------------------------------------------------------------------

    async def _leave(self) -> None:
        """Tell the peer of a call in progress, then give up the name and go offline."""
        try:
            await self._give_up()
        except BrokerUnavailable as error:  # the peer learns from the directory's sweep instead
            log.warning(
                "call connection of %s closed while the broker is unavailable: %s", self.name, error
            )

    async def _give_up(self) -> None:
        async with self._lock:
            call, self.call = self.call, None
            try:
                if call is not None:
                    _disarm(call)
                    if self.name is not None:
                        CALLS_ENDED.labels("disconnected").inc()
                        await self._signal(call, "end", reason="disconnected")
            finally:
                if self.name is not None and await self.services.directory.release(
                    self.name, self.sid
                ):
                    event = _status_event(self.name, "offline")
                    await self.services.broker.publish(CALL_DIRECTORY_TOPIC, event)


STATUS_PREFIX = '{"type":"user_status","data":{"name":'
PASSING = ('"status":"available"}}', '"status":"busy"}}')


def _status_subject(text: str) -> str | None:
    """Whom a directory event says became available or busy (its text up to the status),
    else None: the key of a call socket's inbox.  A connection that fell behind (every call
    anyone makes is four status changes for everyone online) then catches up on each
    person's latest state instead of replaying each step; offline events, and everything
    else, are all kept."""
    if text.startswith(STATUS_PREFIX) and text.endswith(PASSING):
        return text.partition(',"status"')[0]
    return None


def _status_event(name: str, status: Status | Literal["offline"]) -> str:
    return encode(UserStatus(data=OnlineUser(name=name, status=status)))


def _disarm(call: Call) -> None:
    if call.timer is not None:
        call.timer.cancel()
        call.timer = None
