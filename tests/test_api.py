"""The HTTP API: history pages, health, the published schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from quart import Quart

from quartchat.services import EXTENSION
from quartchat.store import MessageStore

from .conftest import receive_json
from .databases import break_store


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "limits": {"rate_per_second": 1000, "rate_burst": 1000}}


async def fill(client: Any, room: str, count: int) -> None:
    async with client.websocket(f"/ws/room/{room}/ada/") as ada:
        for n in range(1, count + 1):
            await ada.send(json.dumps({"message": f"m{n}"}))
        for _ in range(count):
            await receive_json(ada)


async def messages(client: Any, query: str, status: int = 200) -> Any:
    response = await client.get(f"/api/rooms/lobby/messages{query}")
    assert response.status_code == status, await response.get_data()
    return await response.get_json()


async def test_history_pages(client: Any) -> None:
    await fill(client, "lobby", 60)
    latest = await messages(client, "")
    assert [m["id"] for m in latest["messages"]] == list(range(11, 61))
    assert latest["messages"][0] == {
        **latest["messages"][0],
        "type": "chat_message",
        "user": "ada",
        "message": "m11",
        "room": "lobby",
    }
    before = await messages(client, "?before=11&limit=5")
    assert [m["id"] for m in before["messages"]] == [6, 7, 8, 9, 10]
    after = await messages(client, "?after=58")
    assert [m["id"] for m in after["messages"]] == [59, 60]
    empty = await client.get("/api/rooms/empty-room/messages")
    assert (await empty.get_json()) == {"room": "empty-room", "messages": []}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?limit=0", "invalid_request"),
        ("?limit=abc", "invalid_request"),
        ("?limit=201", "invalid_limit"),
        ("?before=0", "invalid_request"),
        ("?after=-1", "invalid_request"),
        ("?after=99999999999999999999", "invalid_request"),
        ("?before=2147483648", "invalid_request"),
        ("?before=5&after=1", "invalid_query"),
    ],
)
async def test_bad_queries_are_400_with_json(client: Any, query: str, code: str) -> None:
    body = await messages(client, query, status=400)
    assert body["error"] == code and body["message"]


async def test_bad_room_name_is_400(client: Any) -> None:
    response = await client.get("/api/rooms/bad%20room/messages")
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_room"


async def test_readyz(client: Any) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert await response.get_json() == {
        "status": "ok",
        "broker": "ok",
        "store": "ok",
        "writer": "ok",
    }


async def test_readyz_reports_a_broken_store_while_healthz_stays_ok(
    app: Quart, client: Any
) -> None:
    services = app.extensions[EXTENSION]
    await services.store.close()
    services.store = MessageStore("sqlite+aiosqlite:////nonexistent/dir/chat.db")
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "fail" and body["broker"] == "ok" and body["writer"] == "ok"
    assert body["store"].startswith("error:")
    live = await client.get("/healthz")
    assert live.status_code == 200 and await live.get_json() == {"status": "ok"}


async def test_readyz_reports_a_stopped_writer(app: Quart, client: Any) -> None:
    await app.extensions[EXTENSION].writer.stop()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert (await response.get_json())["writer"] == "error: not running"


async def test_openapi_documents_the_api(client: Any) -> None:
    schema = await (await client.get("/openapi.json")).get_json()
    documented = {"/api/rooms", "/api/rooms/{room}/messages", "/healthz", "/readyz"}
    assert documented <= schema["paths"].keys()
    assert "/metrics" not in schema["paths"]  # Prometheus' text, for the scraper
    readiness = schema["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= readiness.keys()
    parameters = {
        p["name"] for p in schema["paths"]["/api/rooms/{room}/messages"]["get"]["parameters"]
    }
    assert {"before", "after", "limit"} <= parameters


async def test_websocket_schemas_are_published(client: Any) -> None:
    schema = await (await client.get("/api/protocol.json")).get_json()
    outbound = json.dumps(schema["room"]["outbound"])
    for event in ("chat_message", "history", "presence", "member_joined", "typing", "error"):
        assert f'"{event}"' in outbound
    assert "PostMessage" in json.dumps(schema["room"]["inbound"])


async def test_store_errors_over_http_are_503_json(app: Quart, client: Any) -> None:
    await break_store(app.extensions[EXTENSION].settings.store.url)
    response = await client.get("/api/rooms/lobby/messages")
    assert response.status_code == 503
    assert (await response.get_json())["error"] == "store_unavailable"


@pytest.mark.parametrize("method", ["DELETE", "TRACE", "PUT"])
async def test_a_method_not_allowed_says_which_are(client: Any, method: str) -> None:
    response = await client.open("/api/rooms", method=method)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]  # RFC 9110 requires it
    assert (await response.get_json())["error"] == "method_not_allowed"
