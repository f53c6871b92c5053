"""The call scenario: pairs of users calling back to back, with realistic offers, answers
and candidates, against a running server speaking the call protocol."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .scenarios import DRAIN_SECONDS, Meter, Result, close_all, open_many, quantile
from .servers import Running
from .wsclient import WebSocket

SDP_BYTES = 3000
CANDIDATES_PER_SIDE = 10
CALL_STEP_TIMEOUT_SECONDS = 10.0


class CallUser:
    """One call socket: frames of a type can be awaited; every other frame is counted."""

    def __init__(self) -> None:
        self.connection: WebSocket | None = None
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.candidates_left = 0
        self.relayed = 0  # frames relayed from the other party: offers, answers, candidates...
        self.directory: list[str] = []  # logged_in, then each user_status, as received

    def on_text(self, text: str) -> None:
        kind = text[9 : text.index('"', 9)]  # after '{"type":"'
        if kind == "user_status":
            self.directory.append(text)
            return
        if kind == "logged_in":
            self.directory.append(text)
        if kind == "ICEcandidate":
            self.relayed += 1
            self.candidates_left -= 1
            if self.candidates_left:
                return
        elif kind in ("call_received", "call_answered", "call_ended"):
            self.relayed += 1
        waiter = self.waiting.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(text)

    def expect(self, kind: str, candidates: int = 0) -> asyncio.Future[str]:
        """A future for the next frame of ``kind`` (for ICEcandidate: the ``candidates``th)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[kind] = waiter
        self.candidates_left = candidates
        return waiter

    def send(self, kind: str, data: dict[str, Any]) -> None:
        assert self.connection is not None
        self.connection.send_text(json.dumps({"type": kind, "data": data}))


async def _quiet(users: list[CallUser], seconds: float = 0.5) -> None:
    """Wait until no directory frame arrived for ``seconds``, for a drain's time at most."""
    since, heard = time.perf_counter(), -1
    while time.perf_counter() - since < DRAIN_SECONDS:
        now = sum(len(user.directory) for user in users)
        if now == heard:
            return
        heard = now
        await asyncio.sleep(seconds)


def _knows_all_available(user: CallUser, users: list[CallUser]) -> bool:
    """Whether ``user``'s view of the directory, once all calls ended, is the truth: every
    other user online and available.  (A connection that falls behind is sent each
    person's latest status rather than every step, docs/protocol.md: the state is what
    must arrive, not each change.)"""
    view: dict[str, str] = {}
    for text in user.directory:
        frame = json.loads(text)
        if frame["type"] == "logged_in":
            me = frame["data"]["name"]
            view = {other["name"]: other["status"] for other in frame["data"]["users"]}
        else:
            view[frame["data"]["name"]] = frame["data"]["status"]
    view.pop(me, None)
    return len(view) == len(users) - 1 and set(view.values()) == {"available"}


def _sdp(kind: str) -> dict[str, str]:
    line = "a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host generation 0\r\n"
    body = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    body += line * ((SDP_BYTES - len(body)) // len(line) + 1)
    return {"type": kind, "sdp": body[:SDP_BYTES]}


def _candidate(n: int) -> dict[str, Any]:
    return {
        "candidate": f"candidate:{n} 1 udp 2122260223 192.0.2.{n} {50000 + n} typ host "
        "generation 0 ufrag Ab1c network-id 1",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "Ab1c",
    }


async def calls(server: Running, name: str, pairs: int, calls_per_pair: int) -> Result:
    """``pairs`` pairs of logged-in users calling back to back: offer, answer, candidates
    both ways, hang-up.  Setup time is from sending the offer to reading the answer."""
    users = [CallUser() for _ in range(2 * pairs)]
    connections, opened = await open_many(
        [f"ws://127.0.0.1:{server.port}/ws/call/"] * len(users), lambda i: users[i].on_text
    )
    for user, connection in zip(users, connections, strict=True):
        user.connection = connection
    for i, user in enumerate(users):
        logged_in = user.expect("logged_in")
        user.send("login", {"name": f"{name}{i}"})
        async with asyncio.timeout(CALL_STEP_TIMEOUT_SECONDS):
            await logged_in
    await _quiet(users)  # the logins' announcements are out of the measured window
    setups: list[float] = []
    failed = 0
    offer, answer = _sdp("offer"), _sdp("answer")
    candidates = [_candidate(n) for n in range(CANDIDATES_PER_SIDE)]

    async def pair(index: int) -> None:
        nonlocal failed
        caller, callee = users[2 * index], users[2 * index + 1]
        caller_name, callee_name = f"{name}{2 * index}", f"{name}{2 * index + 1}"
        for _ in range(calls_per_pair):
            try:
                async with asyncio.timeout(CALL_STEP_TIMEOUT_SECONDS):
                    ringing, answered = (
                        callee.expect("call_received"),
                        caller.expect("call_answered"),
                    )
                    started = time.perf_counter()
                    caller.send("call", {"name": callee_name, "rtcMessage": offer})
                    await ringing
                    callee.send("answer_call", {"caller": caller_name, "rtcMessage": answer})
                    await answered
                    setups.append(time.perf_counter() - started)
                    to_caller = caller.expect("ICEcandidate", CANDIDATES_PER_SIDE)
                    to_callee = callee.expect("ICEcandidate", CANDIDATES_PER_SIDE)
                    for candidate in candidates:
                        caller.send("ICEcandidate", {"user": callee_name, "rtcMessage": candidate})
                        callee.send("ICEcandidate", {"user": caller_name, "rtcMessage": candidate})
                    await asyncio.gather(to_caller, to_callee)
                    ended = asyncio.gather(caller.expect("call_ended"), callee.expect("call_ended"))
                    caller.send("hangup", {})
                    await ended
            except TimeoutError:
                failed += 1
                return

    meter = Meter(server)
    meter.start()
    await asyncio.gather(*(pair(i) for i in range(pairs)))
    meter.stop()
    completed = len(setups)
    await _quiet(users)
    relayed = sum(user.relayed for user in users)
    # per call: the offer, the answer, the candidates both ways and the two call_ended
    expected = pairs * calls_per_pair * (2 * CANDIDATES_PER_SIDE + 4)
    sent = completed * (2 * CANDIDATES_PER_SIDE + 3)  # what clients sent to be relayed
    result = {
        **opened,
        "calls": completed,
        "failed_calls": failed,
        "delivered": relayed,
        "expected": expected,
        "delivered_ratio": round(relayed / expected, 4),
        "status_ratio": round(
            sum(_knows_all_available(user, users) for user in users) / len(users), 4
        ),
        "calls_per_second": round(completed / meter.seconds, 1),
        "setup_ms_p50": round(quantile(setups, 0.50) * 1e3, 2),
        "setup_ms_p99": round(quantile(setups, 0.99) * 1e3, 2),
        "server_cpu_us_per_call_message": round(meter.server_cpu / max(1, sent) * 1e6, 2),
        **meter.figures(),
    }
    await close_all(connections)
    return result
