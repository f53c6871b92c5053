"""Forwarded client addresses and schemes, believed only from trusted proxies: the ASGI
middleware on bare scopes, and wired into the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quart import request

from quartchat import create_app
from quartchat.proxies import TrustedProxies

TRUSTED = ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]


async def through(
    scope: dict[str, Any], trusted: list[str] = TRUSTED
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``scope`` through the middleware; return what the app saw and the scope itself."""
    seen: list[Any] = []

    async def app(inner: Any, receive: Any, send: Any) -> None:
        seen.append(inner)

    async def receive() -> Any:
        raise AssertionError("the middleware must not receive")

    async def send(message: Any) -> None:
        raise AssertionError("the middleware must not send")

    await TrustedProxies(app, trusted)(scope, receive, send)  # type: ignore[arg-type]
    [inner] = seen
    return inner, scope


def scope_from(peer: str, *headers: tuple[str, str], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": (peer, 50123),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


async def test_a_trusted_proxy_gives_the_client_address_and_scheme() -> None:
    scope = scope_from(
        "127.0.0.1", ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")
    )
    inner, original = await through(scope)
    assert inner["client"] == ("203.0.113.9", 0)
    assert inner["scheme"] == "https"
    assert inner is original  # edited in place: Hypercorn's access log reads this scope


async def test_anyone_else_is_taken_at_their_address_whatever_they_claim() -> None:
    scope = scope_from(
        "203.0.113.9", ("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-Proto", "https")
    )
    inner, _ = await through(scope)
    assert inner["client"] == ("203.0.113.9", 50123)
    assert inner["scheme"] == "http"


async def test_nobody_is_trusted_by_default() -> None:
    scope = scope_from("127.0.0.1", ("X-Forwarded-For", "203.0.113.9"))
    inner, _ = await through(scope, trusted=[])
    assert inner["client"] == ("127.0.0.1", 50123)


async def test_websockets_get_wss() -> None:
    for proto, scheme in (("https", "wss"), ("HTTP", "ws")):
        scope = scope_from(
            "127.0.0.1",
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", proto),
            kind="websocket",
        )
        inner, _ = await through(scope)
        assert (inner["client"], inner["scheme"]) == (("203.0.113.9", 0), scheme)


async def test_the_right_most_untrusted_hop_is_the_client() -> None:
    # The client forged an entry; nginx appended the client's address; a trusted internal
    # proxy appended nginx's.  Only what trusted proxies wrote counts.
    scope = scope_from("10.0.0.2", ("X-Forwarded-For", "198.51.100.7, 203.0.113.9, 10.0.0.1"))
    assert (await through(scope))[0]["client"] == ("203.0.113.9", 0)


async def test_several_header_lines_read_as_one_list() -> None:
    scope = scope_from(
        "127.0.0.1",
        ("X-Forwarded-For", "198.51.100.7, 203.0.113.9"),
        ("x-forwarded-for", "10.0.0.1"),
    )
    assert (await through(scope))[0]["client"] == ("203.0.113.9", 0)


async def test_when_every_hop_is_trusted_the_first_is_the_client() -> None:
    scope = scope_from("127.0.0.1", ("X-Forwarded-For", "10.0.0.3, 10.0.0.1"))
    assert (await through(scope))[0]["client"] == ("10.0.0.3", 0)


async def test_a_hop_that_is_no_address_stops_at_the_last_trusted_one() -> None:
    scope = scope_from("127.0.0.1", ("X-Forwarded-For", "203.0.113.9, unknown, 10.0.0.1"))
    assert (await through(scope))[0]["client"] == ("10.0.0.1", 0)
    scope = scope_from("127.0.0.1", ("X-Forwarded-For", "203.0.113.9:4711"))
    assert (await through(scope))[0]["client"] == ("127.0.0.1", 0)


async def test_ipv6_and_ipv4_mapped_peers() -> None:
    scope = scope_from("2001:db8::5", ("X-Forwarded-For", "2001:db9::1"))
    assert (await through(scope))[0]["client"] == ("2001:db9::1", 0)
    scope = scope_from("::ffff:127.0.0.1", ("X-Forwarded-For", "203.0.113.9"))
    assert (await through(scope))[0]["client"] == ("203.0.113.9", 0)


async def test_without_forwarded_headers_the_peer_stays() -> None:
    inner, _ = await through(scope_from("127.0.0.1"))
    assert (inner["client"][0], inner["scheme"]) == ("127.0.0.1", "http")


async def test_an_unknown_scheme_is_ignored() -> None:
    scope = scope_from("127.0.0.1", ("X-Forwarded-Proto", "gopher"))
    assert (await through(scope))[0]["scheme"] == "http"


async def test_lifespan_passes_untouched() -> None:
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    inner, _ = await through(dict(scope))
    assert inner == scope


async def test_the_app_sees_the_forwarded_client(tmp_path: Path) -> None:
    app = create_app(
        {
            "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"},
            "server": {"trusted_proxies": ["127.0.0.1"]},
        }
    )

    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        return {"address": request.remote_addr, "scheme": request.scheme}

    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    client = app.test_client()
    proxied = await client.get("/whoami", headers=headers, scope_base={"client": ("127.0.0.1", 1)})
    assert await proxied.get_json() == {"address": "203.0.113.9", "scheme": "https"}
    direct = await client.get("/whoami", headers=headers, scope_base={"client": ("10.9.9.9", 1)})
    assert await direct.get_json() == {"address": "10.9.9.9", "scheme": "http"}


def test_the_app_is_not_wrapped_without_trusted_proxies(tmp_path: Path) -> None:
    app = create_app({"store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}})
    assert not isinstance(app.asgi_app, TrustedProxies)
