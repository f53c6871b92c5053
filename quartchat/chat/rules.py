"""Pure rules of the room socket: message limits and the per-connection rate limit
(whose token bucket also limits handshakes per address, see :mod:`quartchat.client_limits`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..messages import FrameError


def check_message(text: str, max_chars: int) -> str:
    """Return ``text`` if it may be posted, else raise :class:`FrameError`."""
    if not text.strip():
        raise FrameError("message_empty", "The message is empty.")
    if len(text) > max_chars:
        raise FrameError(
            "message_too_long", f"The message is {len(text)} characters; the limit is {max_chars}."
        )
    if "\x00" in text or not _encodable(text):
        raise FrameError("invalid_text", "The message holds characters that cannot be stored.")
    return text


def _encodable(text: str) -> bool:
    """False for lone surrogates (valid in JSON escapes, not in UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TokenBucket:
    """Allow ``rate`` frames per second on average, with bursts of up to ``burst``."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")  # one per open socket

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def seconds_until_token(self) -> float:
        """How long until :meth:`take` succeeds again (0 when it would now)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self._rate)

    def full(self) -> bool:
        """True once the bucket holds a whole burst again: it remembers nothing."""
        self._refill()
        return self._tokens >= self._burst

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now


class Throttle:
    """True at most once per ``interval`` seconds (typing notices)."""

    __slots__ = ("_clock", "_interval", "_next")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")

    def ready(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True
