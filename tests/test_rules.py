from __future__ import annotations

import pytest

from quartchat.chat.rules import Throttle, TokenBucket, check_message
from quartchat.messages import FrameError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_check_message() -> None:
    assert check_message("hi", 5) == "hi"
    with pytest.raises(FrameError) as empty:
        check_message(" \n\t", 5)
    assert empty.value.code == "message_empty"
    with pytest.raises(FrameError) as long:
        check_message("x" * 6, 5)
    assert long.value.code == "message_too_long"


def test_token_bucket_allows_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token back at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 100  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3


def test_token_bucket_tells_when_it_has_a_token_and_when_it_is_full() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert bucket.full()
    assert bucket.seconds_until_token() == 0
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert not bucket.full()
    assert bucket.seconds_until_token() == pytest.approx(0.5)
    clock.now += 0.2
    assert bucket.seconds_until_token() == pytest.approx(0.3)
    clock.now += 1.3  # 1.5 s at 2/s: three tokens, the whole burst
    assert bucket.full()


def test_throttle() -> None:
    clock = Clock()
    throttle = Throttle(2.0, clock=clock)
    assert throttle.ready()
    assert not throttle.ready()
    clock.now += 1.9
    assert not throttle.ready()
    clock.now += 0.1
    assert throttle.ready()
