"""Origins against the Host, and origins as the settings take them."""

from __future__ import annotations

import pytest

from quartchat.origins import normalize_origin, origin_allowed, same_host


def test_the_same_host_and_port_in_any_scheme() -> None:
    assert same_host("http://chat.example.org:8000", "chat.example.org:8000")
    assert same_host("https://chat.example.org", "chat.example.org")
    assert same_host("HTTPS://Chat.Example.org", "chat.example.org")
    assert not same_host("https://chat.example.org:8443", "chat.example.org")
    assert not same_host("https://chat.example.org.evil.example", "chat.example.org")
    assert not same_host("null", "chat.example.org")  # sandboxed frames, file:// pages
    assert not same_host("https://chat.example.org", None)


def test_over_a_secure_connection_only_https_pages_are_ours() -> None:
    assert same_host("https://chat.example.org", "chat.example.org", secure=True)
    assert not same_host("http://chat.example.org", "chat.example.org", secure=True)
    assert origin_allowed(
        "http://chat.example.org", "other.example", {"http://chat.example.org"}, secure=True
    )  # listed


def test_allowed_origins_match_whole_origins() -> None:
    allowed = {"https://chat.example.org"}
    assert origin_allowed("https://chat.example.org", "other.example", allowed)
    assert origin_allowed("https://CHAT.example.org", "other.example", allowed)
    assert not origin_allowed("http://chat.example.org", "other.example", allowed)
    assert origin_allowed("http://other.example", "other.example", allowed)  # same host


def test_origins_are_normalized_as_browsers_send_them() -> None:
    assert normalize_origin("https://Chat.Example.org:443/") == "https://chat.example.org"
    assert normalize_origin("http://chat.example.org:80") == "http://chat.example.org"
    assert normalize_origin("http://chat.example.org:8080") == "http://chat.example.org:8080"
    assert normalize_origin("https://[2001:DB8::1]:443") == "https://[2001:db8::1]"


@pytest.mark.parametrize(
    "text",
    [
        "chat.example.org",
        "ftp://chat.example.org",
        "https://",
        "https://chat.example.org/path",
        "https://chat.example.org?x=1",
        "https://user@chat.example.org",
        "https://chat.example.org:port",
    ],
)
def test_what_is_not_an_origin(text: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        normalize_origin(text)
