"""The call page, the ICE servers endpoint and its TURN credentials, and the [call] and
[ice] settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from quartchat.call.ice import ice_servers, turn_credentials
from quartchat.config import ConfigError, IceConfig, load_settings

TURN = {
    "stun_urls": ["stun:stun.example.org:3478"],
    "turn_urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
    "turn_secret": "north-wind",
    "turn_ttl_seconds": 600,
}


async def test_no_ice_servers_by_default(client: Any) -> None:
    response = await client.get("/api/ice-servers?name=ada")
    assert response.status_code == 200
    assert await response.get_json() == {"iceServers": [], "ttl": 3600}


@pytest.mark.parametrize("settings_overrides", [{"ice": TURN}])
async def test_turn_credentials_are_short_lived_and_verifiable(client: Any) -> None:
    before = int(time.time())
    body = await (await client.get("/api/ice-servers?name=ada")).get_json()
    stun, turn = body["iceServers"]
    assert stun == {"urls": TURN["stun_urls"], "username": None, "credential": None}
    assert turn["urls"] == TURN["turn_urls"]
    expiry, name = turn["username"].split(":")
    assert name == "ada"
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    # what coturn computes with static-auth-secret
    digest = hmac.new(b"north-wind", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert "north-wind" not in json.dumps(body)


def test_turn_rest_credential_known_answer() -> None:
    """The example of draft-uberti-behave-turn-rest, as coturn's turnutils computes it."""
    username, credential = turn_credentials("secret", "user", 1_700_000_000)
    assert username == "1700000000:user"
    expected = hmac.new(b"secret", b"1700000000:user", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    assert len(base64.b64decode(credential)) == 20  # SHA-1


def test_credentials_expire_after_the_ttl() -> None:
    servers = ice_servers(IceConfig(**TURN), "bob", now=1_000)
    assert servers.iceServers[-1].username == "1600:bob"


async def test_ice_servers_refuse_a_bad_name(client: Any) -> None:
    response = await client.get("/api/ice-servers?name=%3Cscript%3E")
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_name"


async def test_ice_servers_are_in_the_openapi(client: Any) -> None:
    schema = await (await client.get("/openapi.json")).get_json()
    assert "/api/ice-servers" in schema["paths"]


async def test_call_protocol_is_published(client: Any) -> None:
    schema = json.dumps((await (await client.get("/api/protocol.json")).get_json())["call"])
    for kind in ("login", "call", "answer_call", "ICEcandidate", "decline", "cancel", "hangup"):
        assert f'"{kind}"' in schema
    for kind in ("call_received", "call_answered", "busy", "unavailable", "call_ended"):
        assert f'"{kind}"' in schema


@pytest.mark.parametrize(
    ("ice", "problem"),
    [
        ({"turn_urls": ["turn:t.example.org"]}, "turn_secret"),
        ({"stun_urls": ["http://stun.example.org"]}, "must start with stun: or stuns:"),
        ({"turn_urls": ["stun:x"], "turn_secret": "s"}, "must start with turn: or turns:"),
    ],
)
def test_bad_ice_settings_stop_start_up(ice: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(environ={}, overrides={"ice": ice})


def test_call_limits_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"QUARTCHAT_CALL_RING_TIMEOUT_SECONDS": "12"}, overrides={})
    assert settings.call.ring_timeout_seconds == 12
    with pytest.raises(ConfigError, match=r"call.ring_timeout_seconds.*QUARTCHAT_CALL"):
        load_settings(environ={"QUARTCHAT_CALL_RING_TIMEOUT_SECONDS": "-1"})


async def test_call_page_gives_the_browser_a_signed_device_cookie(client: Any) -> None:
    response = await client.get("/call")
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    async with client.session_transaction() as session:
        device = session["device"]
    await client.get("/room/lobby/ada")  # the room page also calls: same browser, same id
    async with client.session_transaction() as session:
        assert session["device"] == device


async def test_call_page_escapes_and_checks_names(client: Any) -> None:
    page = (await (await client.get("/call?name=al%22ice&call=%3Cb%3E")).get_data()).decode()
    assert 'data-name=""' in page  # not a valid name: the login form is shown instead
    assert 'data-call=""' in page
    page = (await (await client.get("/call?name=O'Brien&call=bob")).get_data()).decode()
    assert 'data-name="O&#39;Brien"' in page
    assert 'data-call="bob"' in page
