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
            await ada.send(json.dumps({"message": f"m{n}"}))
        frames = [await receive_json(ada) for _ in range(5)]
    delivered = [f["message"] for f in frames if f["type"] == "chat_message"]
    errors = [f["code"] for f in frames if f["type"] == "error"]
    assert delivered == ["m0", "m1", "m2"]
    assert errors == ["rate_limited", "rate_limited"]
    response = await client.get("/api/rooms/lobby/messages")
    assert len((await response.get_json())["messages"]) == 3
