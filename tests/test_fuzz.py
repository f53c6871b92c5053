"""Generated bad input against a real server: Hypothesis frames on both websockets, and
Schemathesis over the HTTP API's OpenAPI description.

The socket property: every frame the app's own parser refuses (random JSON, right shapes
with wrong types, unknown fields, huge or strange strings, broken JSON, binary) is answered
with an ``error`` event on the same, still open socket, and nothing reaches anyone else: a
member of the same room sees the sentinel message posted after the bad frames as its very
first frame.  Afterwards the server is healthy and its log holds no traceback.
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
MESSAGE_MAX_CHARS = 2000
SDP_MAX_BYTES, CANDIDATE_MAX_BYTES = 32768, 1024
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


NOTICES = {"member_joined", "member_left", "presence"}  # the room's comings and goings


async def answered_with_errors(connection: ClientConnection, sent: list[str | bytes]) -> None:
    for frame in sent:
        await connection.send(frame)
        answer = await next_frame(connection)
        while answer["type"] in NOTICES:
            answer = await next_frame(connection)
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


@EXAMPLES
@given(sent=st.lists(frames(call_shaped()), min_size=1, max_size=6))
def test_bad_call_frames_get_errors_and_the_socket_stays_usable(
    fuzzed: LiveServer, sent: list[str | bytes]
) -> None:
    assume(all(call_frame_refused(frame) for frame in sent))

    async def exchange() -> None:
        async with connect(f"{fuzzed.ws_url}/ws/call/", open_timeout=5) as fuzzer:
            assert (await next_frame(fuzzer))["type"] == "connection"
            await answered_with_errors(fuzzer, sent)
            await fuzzer.send(json.dumps({"type": "login", "data": {"name": "fuzzer"}}))
            assert (await next_frame(fuzzer))["type"] == "logged_in"

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
