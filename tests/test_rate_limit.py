from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import receive_json


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "limits": {"rate_per_second": 0.5, "rate_burst": 3}}


async def test_frames_beyond_the_rate_get_an_error(client: Any) -> None:
    async with client.websocket("/ws/room/lobby/ada/") as ada:
        for n in range(5):
            await ada.send(json.dumps({"message": f"m{n}", "client_id": f"k{n}"}))
        frames = [await receive_json(ada) for _ in range(5)]
    delivered = [f["message"] for f in frames if f["type"] == "chat_message"]
    errors = [(f["code"], f["client_id"]) for f in frames if f["type"] == "error"]
    assert delivered == ["m0", "m1", "m2"]
    assert errors == [("rate_limited", "k3"), ("rate_limited", "k4")]
    response = await client.get("/api/rooms/lobby/messages")
    assert len((await response.get_json())["messages"]) == 3


async def test_typing_notices_do_not_use_up_the_rate_limit(client: Any) -> None:
    async with client.websocket("/ws/room/lobby/ada/") as ada:
        for _ in range(10):
            await ada.send(json.dumps({"type": "typing"}))
        await ada.send(json.dumps({"message": "still allowed"}))
        assert (await receive_json(ada))["message"] == "still allowed"


async def test_invalid_frames_count_toward_the_rate_limit(client: Any) -> None:
    async with client.websocket("/ws/room/lobby/ada/") as ada:
        for _ in range(3):
            await ada.send("garbage")
        await ada.send(json.dumps({"message": "one too many"}))
        codes = [(await receive_json(ada))["code"] for _ in range(4)]
    assert codes == ["invalid_json"] * 3 + ["rate_limited"]
