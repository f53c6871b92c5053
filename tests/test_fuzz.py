"""Generated bad input against a real server: Hypothesis frames on both websockets, and
Schemathesis over the HTTP API's OpenAPI description.

The socket property: every frame the app's own parser refuses (random JSON, right shapes
with wrong types, unknown fields, huge or strange strings, broken JSON, binary) is answered
with an ``error`` event on the same, still open socket, and nothing reaches anyone else: a
member of the same room, or the user the fuzzer is logged in beside or in a call with, sees
the sentinel sent after the bad frames as its very first frame.  Afterwards the server is
healthy and its log holds no traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from websockets.asyncio.client import ClientConnection, connect

from quartchat.call.frames import parse_call_frame
from quartchat.chat.rules import check_message
from quartchat.config import CallConfig, LimitsConfig
from quartchat.messages import FrameError, PostMessage, parse_room_frame
from quartchat.sockets import PROTOCOL

from .servers import LiveServer

FUZZ_ENV = {
    "QUARTCHAT_LIMITS_RATE_PER_SECOND": "100000",
    "QUARTCHAT_LIMITS_RATE_BURST": "100000",
    "QUARTCHAT_CALL_RATE_PER_SECOND": "100000",
    "QUARTCHAT_CALL_RATE_BURST": "100000",
    "QUARTCHAT_LIMITS_HANDSHAKES_PER_IP_PER_SECOND": "100000",
    "QUARTCHAT_LIMITS_HANDSHAKE_BURST": "100000",
}
# The fuzzed server runs without a config.toml: the limits are the settings' defaults.
MESSAGE_MAX_CHARS = LimitsConfig().message_max_chars
SDP_MAX_BYTES, CANDIDATE_MAX_BYTES = CallConfig().sdp_max_bytes, CallConfig().candidate_max_bytes
ANSWER_SECONDS = 5.0
ROOMS = itertools.count()
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what is sent ----------------------------------------------------------------------------

ODD_TEXT = st.text(
    st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=40
) | st.sampled_from(["", " ", "\u202e\u202d", "\ufeff", "\U0001f600" * 50, "\ufffe", "x" * 5000])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)
RAW_TEXT = st.sampled_from(
    [
        '{"message": "\\ud800"}',  # a lone surrogate, as a JSON escape
        '{"message": "a\\u0000b"}',
        '{"message": "' + "\\u00e9" * 3000 + '"}',
        "[" * 5000 + "]" * 5000,  # deeper than the JSON parser goes
        '{"type": "call", "data": {"name": "x", "rtcMessage": {"type": "offer", "sdp": "'
        + "v" * 40000
        + '"}}}',  # an SDP over call.sdp_max_bytes
        '{"message": "unterminated',
        "",
        "null",
    ]
) | st.text(max_size=30)


def room_shaped() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"message": JSON},
        optional={"type": st.sampled_from(["message", "typing", "chat", 1]), "client_id": JSON},
    )


def call_shaped() -> st.SearchStrategy[Any]:
    kinds = ["login", "call", "answer_call", "ICEcandidate", "sdp", "hangup", "decline", "x"]
    return st.fixed_dictionaries(
        {"type": st.sampled_from(kinds) | JSON},
        optional={
            "data": JSON
            | st.fixed_dictionaries(
                {},
                optional={
                    "name": JSON,
                    "caller": JSON,
                    "user": JSON,
                    "rtcMessage": JSON
                    | st.fixed_dictionaries({"type": JSON, "sdp": JSON, "candidate": JSON}),
                },
            )
        },
    )


def frames(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[str | bytes]:
    return (
        (JSON | shaped).map(lambda value: json.dumps(value, ensure_ascii=False))
        | RAW_TEXT
        | st.binary(max_size=64)
    )


def room_frame_refused(frame: str | bytes) -> bool:
    """True if the room socket must answer ``frame`` with an error (and relay nothing)."""
    try:
        parsed = parse_room_frame(frame)
    except FrameError:
        return True
    if not isinstance(parsed, PostMessage):
        return False  # typing: relayed, throttled
    try:
        check_message(parsed.message, MESSAGE_MAX_CHARS)
    except FrameError:
        return True
    return False


def call_frame_refused(frame: str | bytes) -> bool:
    try:
        parse_call_frame(frame, SDP_MAX_BYTES, CANDIDATE_MAX_BYTES)
    except FrameError:
        return True
    return False


# -- the server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("fuzz"), env=FUZZ_ENV)
    live.start()
    try:
        yield live
    finally:
        live.stop()
    assert "Traceback" not in live.log.read_text()


async def next_frame(connection: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(ANSWER_SECONDS):
        frame = json.loads(await connection.recv())
    assert isinstance(frame, dict)
    return frame


# What may arrive between a bad frame and its error: the room's comings and goings, and
# the directory's status changes on the call socket.
NOTICES = {"member_joined", "member_left", "presence", "user_status"}


async def next_but_notices(connection: ClientConnection) -> dict[str, Any]:
    answer = await next_frame(connection)
    while answer["type"] in NOTICES:
        answer = await next_frame(connection)
    return answer


async def answered_with_errors(connection: ClientConnection, sent: list[str | bytes]) -> None:
    for frame in sent:
        await connection.send(frame)
        answer = await next_but_notices(connection)
        assert answer["type"] == "error", (frame, answer)


def run(coroutine: Any) -> None:
    asyncio.run(coroutine)


# -- the sockets -----------------------------------------------------------------------------


@EXAMPLES
@given(sent=st.lists(frames(room_shaped()), min_size=1, max_size=6), extended=st.booleans())
def test_bad_room_frames_get_errors_and_reach_no_one(
    fuzzed: LiveServer, sent: list[str | bytes], extended: bool
) -> None:
    assume(all(room_frame_refused(frame) for frame in sent))

    async def exchange() -> None:
        url = f"{fuzzed.ws_url}/ws/room/fuzz-{next(ROOMS)}/"  # a new room: no history
        protocols: Any = [PROTOCOL] if extended else None
        async with (
            connect(url + "witness/", open_timeout=5) as witness,
            connect(url + "fuzzer/", subprotocols=protocols, open_timeout=5) as fuzzer,
        ):
            if extended:  # presence and history come first
                while (await next_frame(fuzzer))["type"] != "history":
                    pass
            await answered_with_errors(fuzzer, sent)
            await fuzzer.send(json.dumps({"message": "sentinel"}))
            first = await next_frame(witness)
            assert (first["type"], first["message"]) == ("chat_message", "sentinel")

    run(exchange())


def call_frame(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n"}
SENTINEL_CANDIDATE = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}


async def log_in(connection: ClientConnection, name: str) -> None:
    assert (await next_frame(connection))["type"] == "connection"
    await connection.send(call_frame("login", name=name))
    assert (await next_but_notices(connection))["type"] == "logged_in"


@EXAMPLES
@given(
    sent=st.lists(frames(call_shaped()), min_size=1, max_size=6),
    stage=st.sampled_from(["before login", "logged in", "in a call"]),
)
def test_bad_call_frames_get_errors_reach_no_one_and_the_socket_stays_usable(
    fuzzed: LiveServer, sent: list[str | bytes], stage: str
) -> None:
    assume(all(call_frame_refused(frame) for frame in sent))
    suffix = next(ROOMS)
    me, peer = f"fuzzer-{suffix}", f"witness-{suffix}"

    async def exchange() -> None:
        url = f"{fuzzed.ws_url}/ws/call/"
        async with (
            connect(url, open_timeout=5) as fuzzer,
            connect(url, open_timeout=5) as witness,
        ):
            await log_in(witness, peer)
            if stage == "before login":
                assert (await next_frame(fuzzer))["type"] == "connection"
                await answered_with_errors(fuzzer, sent)
                await fuzzer.send(call_frame("login", name=me))
                assert (await next_but_notices(fuzzer))["type"] == "logged_in"
                sentinel = call_frame("call", name=peer, rtcMessage=OFFER)
                expected = ("call_received", {"caller": me, "rtcMessage": OFFER})
            else:
                await log_in(fuzzer, me)
                if stage == "in a call":
                    await fuzzer.send(call_frame("call", name=peer, rtcMessage=OFFER))
                    assert (await next_but_notices(witness))["type"] == "call_received"
                    assert (await next_but_notices(fuzzer))["type"] == "ringing"
                    await witness.send(call_frame("answer_call", caller=me, rtcMessage=ANSWER))
                    assert (await next_but_notices(fuzzer))["type"] == "call_answered"
                    sentinel = call_frame("ICEcandidate", user=peer, rtcMessage=SENTINEL_CANDIDATE)
                    expected = ("ICEcandidate", {"rtcMessage": SENTINEL_CANDIDATE})
                else:
                    sentinel = call_frame("call", name=peer, rtcMessage=OFFER)
                    expected = ("call_received", {"caller": me, "rtcMessage": OFFER})
                await answered_with_errors(fuzzer, sent)
            await fuzzer.send(sentinel)
            first = await next_but_notices(witness)
            assert (first["type"], first["data"]) == expected

    run(exchange())


def test_the_server_is_healthy_after_the_fuzzing(fuzzed: LiveServer) -> None:
    assert httpx.get(f"{fuzzed.http_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{fuzzed.http_url}/readyz", timeout=5).status_code == 200


# -- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(fuzzed: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed.http_url}/openapi.json")


api = schemathesis.pytest.from_fixture("api_schema")


@api.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_the_http_api_answers_any_request_without_a_server_error(case: Any) -> None:
    """Every check Schemathesis has (no 5xx; status codes, content types, headers and bodies
    as documented; 405 with Allow...), but "schema-valid request rejected": names have rules
    (a letter or digit first, no trailing space, any script's letters) and the page size a
    configured maximum, which the OpenAPI description states in words, not as a pattern;
    those requests get the documented 400."""
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_fuzz_env_keys_are_settings() -> None:
    """The overrides above are real settings (a renamed key would silently stop applying)."""
    from quartchat.config import load_settings

    load_settings(environ=FUZZ_ENV)  # unknown keys are refused
