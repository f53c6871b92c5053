"""The pages people open: forms, validation, escaping, assets, security headers."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from .conftest import receive_json

PAGES = ["/", "/room/lobby/ada", "/docs", "/?room=lobby", "/call", "/call?name=ada&call=bob"]


class Page(HTMLParser):
    """Collects the tags of a page, to check its markup rather than search its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_scripts = 0
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            found
            for name, found in self.tags
            if name == tag and all(found.get(key) == value for key, value in attrs.items())
        ]


async def get_page(client: Any, path: str, status: int = 200) -> tuple[Page, str]:
    response = await client.get(path)
    assert response.status_code == status
    html = (await response.get_data()).decode()
    return Page(html), html


async def test_index_form_has_labelled_required_fields(client: Any) -> None:
    page, _ = await get_page(client, "/")
    assert len(page.find("form", method="post")) == 1
    for field in ("room_name", "username"):
        [element] = page.find("input", name=field)
        assert "required" in element
        assert page.find("label", **{"for": element["id"] or ""})


async def test_index_prefills_the_room_from_a_link(client: Any) -> None:
    page, _ = await get_page(client, "/?room=lobby")
    [room] = page.find("input", name="room_name")
    assert room["value"] == "lobby"


async def test_join_redirects_to_the_seed_room_url(client: Any) -> None:
    response = await client.post("/", form={"room_name": "lobby", "username": "Mary Ann"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/room/lobby/Mary%20Ann"


@pytest.mark.parametrize(
    ("room", "user", "message"),
    [
        ("bad room!", "ada", "Room names may use letters, digits"),
        ("", "ada", "Please enter a room name."),
        ("lobby", "", "Please enter your name."),
        ("lobby", "x" * 40, "Names are at most 32 characters."),
        ("x" * 65, "ada", "Room names are at most 64 characters."),
    ],
)
async def test_join_shows_inline_errors(client: Any, room: str, user: str, message: str) -> None:
    response = await client.post("/", form={"room_name": room, "username": user})
    assert response.status_code == 400
    html = (await response.get_data()).decode()
    assert message in html
    page = Page(html)
    invalid = [attrs for tag, attrs in page.tags if attrs.get("aria-invalid") == "true"]
    assert invalid, "the invalid field is marked for screen readers"


async def test_join_errors_escape_what_was_typed(client: Any) -> None:
    attack = "<script>alert(1)</script>"
    response = await client.post("/", form={"room_name": attack, "username": attack})
    html = (await response.get_data()).decode()
    assert response.status_code == 400
    assert attack not in html
    assert "&lt;script&gt;" in html
    assert Page(html).inline_scripts == 0


async def test_missing_form_fields_are_a_clear_400(client: Any) -> None:
    response = await client.post("/", form={})
    assert response.status_code == 400
    assert "Please enter a room name." in (await response.get_data()).decode()


async def test_oversized_form_is_refused(client: Any) -> None:
    response = await client.post("/", form={"room_name": "lobby", "username": "x" * 100_000})
    assert response.status_code == 413
    assert "text/html" in response.headers["Content-Type"]


async def test_room_page_escapes_names(client: Any) -> None:
    page, html = await get_page(client, "/room/lobby/O'Brien")
    assert "O'Brien" not in html.replace("O&#39;Brien", "")  # only ever escaped
    assert page.find("main", **{"data-user": "O'Brien", "data-room": "lobby"})
    assert "Welcome" in html


async def test_room_page_refuses_bad_names(client: Any) -> None:
    _, html = await get_page(client, "/room/bad%20room!/ada", status=400)
    assert "Room names may use letters, digits" in html


async def test_index_lists_active_rooms_with_counts(client: Any) -> None:
    async with (
        client.websocket("/ws/room/lobby/ada/"),
        client.websocket("/ws/room/lobby/bob/"),
        client.websocket("/ws/room/quiet/cyd/") as cyd,
    ):
        await cyd.send(json.dumps({"message": "sync"}))
        await receive_json(cyd)  # all three sockets are in by now
        page, _ = await get_page(client, "/")
        links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
        assert "/?room=lobby" in links and "/?room=quiet" in links
        response = await client.get("/api/rooms")
        assert (await response.get_json())["rooms"] == [
            {"name": "lobby", "members": 2},
            {"name": "quiet", "members": 1},
        ]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_have_no_inline_script_and_a_strict_policy(client: Any, path: str) -> None:
    response = await client.get(path)
    policy = response.headers["Content-Security-Policy"]
    script_policy = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert script_policy.strip() == "script-src 'self'"
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = Page((await response.get_data()).decode())
    assert page.inline_scripts == 0
    for _, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], attrs


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/room/lobby/ada", 200),
        ("/docs", 200),
        ("/openapi.json", 200),
        ("/nope", 404),
        ("/api/nope", 404),
    ],
)
async def test_every_response_carries_the_security_headers(
    client: Any, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", PAGES)
async def test_every_asset_is_served_by_the_app(client: Any, path: str) -> None:
    page, _ = await get_page(client, path)
    assets = [
        attrs.get("src") or attrs.get("href")
        for tag, attrs in page.tags
        if tag in ("script", "link", "img")
    ]
    assert assets
    for asset in assets:
        assert asset, "an empty asset reference"
        if asset.startswith("data:"):
            continue  # inline data, no request at all
        assert asset.startswith("/"), f"{asset} is not served by the app"
        assert not asset.startswith("//")
        assert (await client.get(asset)).status_code == 200, asset


async def test_page_works_on_a_phone(client: Any) -> None:
    page, _ = await get_page(client, "/room/lobby/ada")
    [viewport] = page.find("meta", name="viewport")
    assert "width=device-width" in (viewport["content"] or "")


async def test_unknown_paths(client: Any) -> None:
    api = await client.get("/api/nope")
    assert api.status_code == 404
    assert (await api.get_json())["error"] == "not_found"
    page = await client.get("/nope")
    assert page.status_code == 404
    assert "text/html" in page.headers["Content-Type"]
