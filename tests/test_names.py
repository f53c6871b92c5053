from __future__ import annotations

import pytest

from quartchat.names import InvalidName, check_room, check_user


@pytest.mark.parametrize("room", ["lobby", "a", "x" * 64, "Django-Girls_2024.nov", "café"])
def test_valid_rooms(room: str) -> None:
    assert check_room(room) == room


@pytest.mark.parametrize(
    ("room", "message"),
    [
        ("", "enter a room name"),
        ("x" * 65, "at most 64"),
        ("two words", "letters, digits"),
        ("a/b", "letters, digits"),
        ("<script>", "letters, digits"),
        ("..", "letters, digits"),
    ],
)
def test_invalid_rooms(room: str, message: str) -> None:
    with pytest.raises(InvalidName, match=message):
        check_room(room)


@pytest.mark.parametrize("user", ["ada", "Mary Ann", "O'Brien", "Zoë", "x" * 32, "7of9"])
def test_valid_users(user: str) -> None:
    assert check_user(user) == user


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("", "enter your name"),
        ("   ", "enter your name"),
        ("x" * 33, "at most 32"),
        (" ada", "start with a letter"),
        ("a/b", "start with a letter"),
        ("<b>", "start with a letter"),
        ("a\nb", "start with a letter"),
        ("_bob", "start with a letter"),
    ],
)
def test_invalid_users(user: str, message: str) -> None:
    with pytest.raises(InvalidName, match=message):
        check_user(user)
