"""Debian's Firefox ESR for the browser tests, driven over WebDriver BiDi (the W3C protocol
Firefox speaks itself: Playwright's Firefox needs a patched build, which is a download).

Just what the call test needs: open a page, run a script, add a script to every page.  A fake
camera and microphone and loopback ICE candidates are switched on by profile preferences.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from .servers import missing

FIREFOX = Path("/usr/bin/firefox-esr")
TIMEOUT_SECONDS = 20.0
PREFERENCES = {
    "media.navigator.streams.fake": True,  # a fake camera and microphone
    "media.navigator.permission.disabled": True,  # no permission prompt
    "media.peerconnection.ice.loopback": True,  # candidates on 127.0.0.1
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
}


def require_firefox() -> None:
    """Skip without Firefox ESR, except in CI (``CI`` set), where that is a failure."""
    if FIREFOX.exists():
        return
    missing(f"{FIREFOX} is missing (apt-get install firefox-esr)")


class BidiError(Exception):
    pass


class Firefox:
    """One headless Firefox with its own profile, and its first tab."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: subprocess.Popen[str] | None = None
        self.socket: ClientConnection | None = None
        self.context = ""
        self._next_id = 0

    async def start(self) -> None:
        self._launch()
        async with asyncio.timeout(TIMEOUT_SECONDS):
            url = await asyncio.to_thread(self._bidi_url)
        self.socket = await connect(f"{url}/session", max_size=None, open_timeout=TIMEOUT_SECONDS)
        await self.command("session.new", {"capabilities": {}})
        tree = await self.command("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]

    def _launch(self) -> None:
        shutil.rmtree(self.profile, ignore_errors=True)
        self.profile.mkdir(parents=True)
        prefs = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in PREFERENCES.items()]
        (self.profile / "user.js").write_text("\n".join(prefs) + "\n")
        command = [str(FIREFOX), "--headless", "--no-remote", "--remote-debugging-port", "0"]
        self.process = subprocess.Popen(
            [*command, "-profile", str(self.profile)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _bidi_url(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        stderr = self.process.stderr
        for line in stderr:
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", line)
            if found:
                # keep reading what Firefox writes, or a full pipe would block it
                threading.Thread(target=stderr.read, daemon=True).start()
                return found.group(1)
        raise BidiError("Firefox exited before it listened for WebDriver BiDi")

    async def command(self, method: str, params: dict[str, Any]) -> Any:
        assert self.socket is not None
        self._next_id += 1
        sent = self._next_id
        await self.socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        async with asyncio.timeout(TIMEOUT_SECONDS):
            while True:  # events arrive in between; only our answer matters
                message = json.loads(await self.socket.recv())
                if message.get("id") == sent:
                    break
        if message["type"] == "error":
            raise BidiError(f"{method}: {message['error']}: {message.get('message')}")
        return message["result"]

    async def goto(self, url: str) -> None:
        params = {"context": self.context, "url": url, "wait": "complete"}
        await self.command("browsingContext.navigate", params)

    async def add_script(self, source: str) -> None:
        """Run ``source`` in every page this browser opens from now on, before the page's own."""
        await self.command(
            "script.addPreloadScript", {"functionDeclaration": f"() => {{{source}}}"}
        )

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if a promise) in the current page."""
        params = {
            "expression": expression,
            "target": {"context": self.context},
            "awaitPromise": True,
            "serializationOptions": {"maxObjectDepth": 4},
        }
        result = await self.command("script.evaluate", params)
        if result["type"] == "exception":
            raise BidiError(result["exceptionDetails"]["text"])
        return _value(result["result"])

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def _value(remote: dict[str, Any]) -> Any:
    """A BiDi remote value as a Python value (primitives, arrays and plain objects)."""
    kind = remote["type"]
    if kind in ("undefined", "null"):
        return None
    if kind == "array":
        return [_value(item) for item in remote.get("value", [])]
    if kind == "object":
        return {key: _value(item) for key, item in remote.get("value", [])}
    return remote.get("value")
