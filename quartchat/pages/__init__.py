"""The pages people open: the index (join form, active rooms), a room, and calls."""

from __future__ import annotations

from quart import Blueprint, ResponseReturnValue, redirect, render_template, request, url_for
from quart_schema import hide

from ..broker import BrokerUnavailable
from ..call.identity import ensure_device
from ..names import ROOM_MAX, USER_MAX, InvalidName, check_room, check_user
from ..services import services
from ..sockets import PROTOCOL

bp = Blueprint("pages", __name__)


@bp.get("/")
@hide
async def index() -> ResponseReturnValue:
    room = request.args.get("room", "")
    return await _render_index(room=room, user="", errors={})


@bp.post("/")
@hide
async def join() -> ResponseReturnValue:
    form = await request.form
    room = form.get("room_name", "").strip()
    user = form.get("username", "").strip()
    errors = {}
    for field, value, check in (("room_name", room, check_room), ("username", user, check_user)):
        try:
            check(value)
        except InvalidName as error:
            errors[field] = str(error)
    if errors:
        return await _render_index(room=room, user=user, errors=errors), 400
    return redirect(url_for("pages.room", room_name=room, username=user), 303)


@bp.get("/room/<room_name>/<username>")
@hide
async def room(room_name: str, username: str) -> ResponseReturnValue:
    try:
        check_room(room_name)
        check_user(username)
    except InvalidName as error:
        page = await render_template(
            "error.html", title="Cannot open this room", message=str(error)
        )
        return page, 400
    limits = services().settings.limits
    ensure_device()
    return await render_template(
        "room.html",
        room_name=room_name,
        username=username,
        protocol=PROTOCOL,
        message_max_chars=limits.message_max_chars,
        typing_interval=limits.typing_interval_seconds,
    )


@bp.get("/call")
@hide
async def call() -> ResponseReturnValue:
    """``?name=`` logs in at once, ``&call=`` also calls someone (links from a room)."""
    ensure_device()
    return await render_template(
        "call.html",
        name=_valid_user(request.args.get("name", "")),
        callee=_valid_user(request.args.get("call", "")),
        user_max=USER_MAX,
    )


def _valid_user(name: str) -> str:
    try:
        check_user(name)
    except InvalidName:
        return ""
    return name


async def _active_rooms() -> list[tuple[str, int]]:
    """Without the broker (Redis) nobody can chat, but the page still opens."""
    try:
        return await services().presence.rooms()
    except BrokerUnavailable:
        return []


async def _render_index(room: str, user: str, errors: dict[str, str]) -> str:
    return await render_template(
        "index.html",
        room=room,
        user=user,
        errors=errors,
        active_rooms=await _active_rooms(),
        room_max=ROOM_MAX,
        user_max=USER_MAX,
    )
