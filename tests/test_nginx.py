"""The shipped deploy/nginx.conf, run by a real nginx in front of two quartchat processes
sharing Redis and one database: HTTPS with HTTP/2, static files from nginx, room chat and
call signalling through it, and client addresses believed only from the trusted proxy.

The site's name (chat.example.org) resolves nowhere here: clients connect to 127.0.0.1 and
give the name in SNI and Host, and trust a test CA that issued the site's certificate.
Client sockets bind to other loopback addresses (127.0.0.0/8 is all loopback on Linux) to
tell clients from nginx, which reaches quartchat from 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from quartchat.sockets import PROTOCOL

from .clients import call_frame, chat_at_once
from .conftest import receive_until
from .nginx import ROOT, NginxServer
from .servers import LiveServer, server_pair

SITE_NAME = "chat.example.org"
CLIENT_ADDRESS = "127.0.0.5"  # a browser out there, reaching nginx
STRANGER_ADDRESS = "127.0.0.7"  # someone reaching a quartchat process directly
LOG_TIMEOUT_SECONDS = 5.0

Workers = tuple[LiveServer, LiveServer]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Workers]:
    shared = tmp_path_factory.mktemp("quartchat")
    env = {
        "QUARTCHAT_BROKER_URL": redis_url,
        "QUARTCHAT_BROKER_NAMESPACE": f"test-{uuid.uuid4().hex[:12]}",
        "QUARTCHAT_STORE_URL": f"sqlite+aiosqlite:///{shared / 'shared.db'}",
        "QUARTCHAT_SERVER_SECRET_KEY": uuid.uuid4().hex,
        "QUARTCHAT_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        "QUARTCHAT_LIMITS_RATE_BURST": "100",
    }
    with server_pair(shared, env) as servers:
        yield servers


@pytest.fixture(scope="module")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, workers: Workers
) -> Iterator[NginxServer]:
    workdir = tmp_path_factory.mktemp("nginx")
    leaf = ca.issue_cert(SITE_NAME)
    certificate, key = workdir / "fullchain.pem", workdir / "privkey.pem"
    for pem in leaf.cert_chain_pems:
        pem.write_to_path(str(certificate), append=True)
    leaf.private_key_pem.write_to_path(str(key))
    server = NginxServer(workdir, [f"127.0.0.1:{w.port}" for w in workers], certificate, key)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client TLS context of its own: httpx sets its ALPN protocols on the one it gets,
    and a websocket client offered h2 by a shared one would then fail."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class ToLoopback(httpx.AsyncBaseTransport):
    """Sends requests for any host to 127.0.0.1 (from ``local_address``), with the URL's
    host name kept in SNI and in Host."""

    def __init__(self, ca: trustme.CA, local_address: str, http2: bool = True) -> None:
        self.inner = httpx.AsyncHTTPTransport(
            verify=trusting(ca), http2=http2, local_address=local_address
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": request.url.host}
        request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def browser(nginx: NginxServer, ca: trustme.CA) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client at CLIENT_ADDRESS, for https://chat.example.org:<nginx's port>."""
    async with httpx.AsyncClient(
        base_url=f"https://{SITE_NAME}:{nginx.site.https_port}",
        transport=ToLoopback(ca, CLIENT_ADDRESS),
        timeout=5,
    ) as client:
        yield client


def through_nginx(
    nginx: NginxServer, ca: trustme.CA, path: str, local: str = "127.0.0.1", **kwargs: Any
) -> Any:
    """A wss:// connection to ``path`` through nginx, from the address ``local``."""
    return connect(
        f"wss://{SITE_NAME}:{nginx.site.https_port}{path}",
        ssl=trusting(ca),
        host="127.0.0.1",
        local_addr=(local, 0),
        open_timeout=5,
        **kwargs,
    )


async def access_log_lines(workers: Workers, needle: str, count: int = 1) -> list[tuple[int, str]]:
    """Wait until the processes' access logs hold ``count`` lines with ``needle``; return
    them as (0 or 1 for the process, line)."""
    async with asyncio.timeout(LOG_TIMEOUT_SECONDS):
        while True:
            found = [
                (index, line)
                for index, worker in enumerate(workers)
                for line in worker.log.read_text().splitlines()
                if needle in line
            ]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


def logged_client(line: str) -> str:
    """The client field of a Hypercorn access log line: ``... ADDRESS:PORT - - [date] "GET``."""
    match = re.search(r'(\S+) - - \[[^]]*\] "', line)
    assert match is not None, line
    return match[1]


async def test_https_with_http2_pages_from_quartchat_assets_from_nginx(
    browser: httpx.AsyncClient, workers: Workers
) -> None:
    page = await browser.get("/call")
    assert page.status_code == 200
    assert page.http_version == "HTTP/2"
    assert "Content-Security-Policy" in page.headers  # quartchat's own header: proxied
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"

    asset = await browser.get("/static/js/room.js")
    assert asset.status_code == 200
    assert asset.http_version == "HTTP/2"
    assert asset.content == (ROOT / "static" / "js" / "room.js").read_bytes()
    assert asset.headers["Content-Encoding"] == "gzip"
    assert asset.headers["Content-Type"].endswith("/javascript")
    assert asset.headers["Cache-Control"] == "max-age=43200"
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" in asset.headers

    # Both processes have logged a request made after the asset's, and neither the asset.
    probe = f"/probe/{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=5) as direct:
        for worker in workers:
            await direct.get(f"{worker.http_url}{probe}")
    await access_log_lines(workers, probe, count=2)
    for worker in workers:
        assert "/static/" not in worker.log.read_text()


async def test_plain_http_redirects_to_https_and_serves_acme_challenges(
    nginx: NginxServer, ca: trustme.CA
) -> None:
    token = uuid.uuid4().hex
    challenges = nginx.acme_root / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True, exist_ok=True)
    (challenges / token).write_text("proof")
    async with httpx.AsyncClient(
        base_url=f"http://{SITE_NAME}:{nginx.site.http_port}",
        transport=ToLoopback(ca, CLIENT_ADDRESS),
        timeout=5,
    ) as plain:
        redirect = await plain.get("/room/lobby/ada?x=1")
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == f"https://{SITE_NAME}/room/lobby/ada?x=1"
        challenge = await plain.get(f"/.well-known/acme-challenge/{token}")
        assert (challenge.status_code, challenge.text) == (200, "proof")


async def test_other_names_get_no_tls_and_big_bodies_stop_at_nginx(
    nginx: NginxServer, ca: trustme.CA, browser: httpx.AsyncClient
) -> None:
    for name in ("other.example.org", None):  # None: by address, so no SNI
        with pytest.raises(ssl.SSLError):
            async with asyncio.timeout(5):
                _, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    nginx.site.https_port,
                    ssl=trusting(ca),
                    server_hostname=name or "",
                )
                writer.close()
    misdirected = await browser.get("/", headers={"Host": "other.example.org"})
    assert misdirected.status_code == 421

    # Over HTTP/1.1: httpx sends a whole body before reading, and over HTTP/2 nginx stops
    # granting flow control once it has refused the stream.
    async with httpx.AsyncClient(
        base_url=f"https://{SITE_NAME}:{nginx.site.https_port}",
        transport=ToLoopback(ca, CLIENT_ADDRESS, http2=False),
        timeout=5,
    ) as http1:
        too_big = await http1.post("/", content=b"x" * 70_000)  # over client_max_body_size
    assert too_big.status_code == 413
    assert "nginx" in too_big.text


async def test_room_chat_through_nginx_spreads_sockets_over_both_processes(
    nginx: NginxServer, ca: trustme.CA, workers: Workers
) -> None:
    room = f"r{uuid.uuid4().hex[:8]}"
    path = f"/ws/room/{room}/{{}}/"
    async with (
        through_nginx(nginx, ca, path.format("ada"), subprotocols=[PROTOCOL]) as ada,
        through_nginx(nginx, ca, path.format("bob"), subprotocols=[PROTOCOL]) as bob,
    ):
        for connection in (ada, bob):
            await receive_until(connection, "history")
        # least_conn: the second socket goes to the process that does not hold the first.
        opened = await access_log_lines(workers, f"/ws/room/{room}/", count=2)
        assert sorted(index for index, _ in opened) == [0, 1]

        await chat_at_once(ada, bob, each=10)


async def test_call_signalling_through_nginx(nginx: NginxServer, ca: trustme.CA) -> None:
    offer, answer = {"type": "offer", "sdp": "v=0\r\n"}, {"type": "answer", "sdp": "v=0\r\n"}
    candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}
    caller, callee = f"ada{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    async with (
        through_nginx(nginx, ca, "/ws/call/") as ada,
        through_nginx(nginx, ca, "/ws/call/") as bob,
    ):
        for connection, name in ((ada, caller), (bob, callee)):
            await receive_until(connection, "connection")
            await connection.send(call_frame("login", name=name))
            await receive_until(connection, "logged_in")

        await ada.send(call_frame("call", name=callee, rtcMessage=offer))
        received = await receive_until(bob, "call_received")
        assert received["data"] == {"caller": caller, "rtcMessage": offer}
        assert (await receive_until(ada, "ringing"))["data"] == {"name": callee}
        await bob.send(call_frame("answer_call", caller=caller, rtcMessage=answer))
        assert (await receive_until(ada, "call_answered"))["data"]["rtcMessage"] == answer
        await ada.send(call_frame("ICEcandidate", user=callee, rtcMessage=candidate))
        assert (await receive_until(bob, "ICEcandidate"))["data"] == {"rtcMessage": candidate}
        await bob.send(call_frame("ICEcandidate", user=caller, rtcMessage=candidate))
        assert (await receive_until(ada, "ICEcandidate"))["data"] == {"rtcMessage": candidate}
        await ada.send(call_frame("hangup"))
        for connection, other in ((ada, callee), (bob, caller)):
            ended = await receive_until(connection, "call_ended")
            assert ended["data"] == {"name": other, "reason": "hung_up"}


async def test_websocket_origins_through_nginx(nginx: NginxServer, ca: trustme.CA) -> None:
    """nginx passes the Host on with its port, so the site's own pages may open sockets and
    another site's are refused, with quartchat's JSON answer."""
    site = f"https://{SITE_NAME}:{nginx.site.https_port}"
    async with through_nginx(nginx, ca, "/ws/call/", origin=site) as ours:
        await receive_until(ours, "connection")
    for path in ("/ws/call/", "/ws/room/lobby/ada/"):
        with pytest.raises(InvalidStatus) as refused:
            async with through_nginx(nginx, ca, path, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"] == "origin_not_allowed"


async def test_client_addresses_are_believed_only_from_the_trusted_proxy(
    nginx: NginxServer, ca: trustme.CA, browser: httpx.AsyncClient, workers: Workers
) -> None:
    forged = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}

    # Through nginx: the client's own address, whatever it claims to forward for.
    proxied = f"/probe/{uuid.uuid4().hex}"
    assert (await browser.get(proxied, headers=forged)).status_code == 404
    [(_, line)] = await access_log_lines(workers, proxied)
    assert logged_client(line) == f"{CLIENT_ADDRESS}:0"

    # A websocket through nginx likewise.
    room = f"r{uuid.uuid4().hex[:8]}"
    async with through_nginx(
        nginx,
        ca,
        f"/ws/room/{room}/cy/",
        local=CLIENT_ADDRESS,
        additional_headers=forged,
        subprotocols=[PROTOCOL],
    ) as socket:
        await receive_until(socket, "presence")
    [(_, line)] = await access_log_lines(workers, f"/ws/room/{room}/")
    assert logged_client(line) == f"{CLIENT_ADDRESS}:0"

    # Straight to a quartchat process from an untrusted address: its own address, forged
    # headers ignored.
    direct = f"/probe/{uuid.uuid4().hex}"
    transport = httpx.AsyncHTTPTransport(local_address=STRANGER_ADDRESS)
    async with httpx.AsyncClient(transport=transport, timeout=5) as stranger:
        response = await stranger.get(f"{workers[0].http_url}{direct}", headers=forged)
    assert response.status_code == 404
    [(index, line)] = await access_log_lines(workers, direct)
    assert index == 0
    address, port = logged_client(line).split(":")
    assert address == STRANGER_ADDRESS
    assert port != "0"  # its real port: not a forwarded address
    assert "198.51.100.7" not in "".join(worker.log.read_text() for worker in workers)
