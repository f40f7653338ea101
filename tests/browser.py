"""A page opened in real headless Chromium, driven through the DevTools protocol over a pipe.

Debian's `chromium` (scripts/test.sh installs it), no driver and no Python package: Chromium
reads protocol commands from file descriptor 3 and writes answers and events to 4
(`--remote-debugging-pipe`, what Puppeteer and Playwright use), each a JSON object ended by a
NUL byte. `open_page` loads a file and collects what a test checks: console messages and
uncaught exceptions, every request the page made, values computed in the page, a screenshot.
Chromium is told to send nothing to the network (a proxy that does not exist), so a page that
tries shows up as a request and never leaves the machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-pipe",
)  # fmt: skip
TIMEOUT = 60.0


def chromium() -> str:
    """Debian's chromium, or skip (fail under CI, where scripts/test.sh installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no chromium: apt-get install chromium (scripts/test.sh does, as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class Page:
    """What happened while a page was open."""

    url: str
    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown
    log: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries, as text."""
        found = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in c.get("args", []))
            for c in self.console
            if c.get("type") in ("error", "assert")
        ]
        for thrown in self.exceptions:
            details = thrown.get("exceptionDetails", {})
            found.append(details.get("exception", {}).get("description") or json.dumps(details))
        found += [
            f"{e['entry'].get('source')}: {e['entry'].get('text')} {e['entry'].get('url', '')}"
            for e in self.log
            if e.get("entry", {}).get("level") == "error"
        ]
        return found

    @property
    def network_requests(self) -> list[str]:
        """Requests for anything but the page itself and inline `data:` URLs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


class _Pipe:
    """The DevTools protocol over Chromium's pipe: commands out on one end, messages in."""

    def __init__(self, commands: int, answers: int) -> None:
        self._out, self._in = commands, answers
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed its pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        os.write(self._out, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._read(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message


class Browser:
    """One page of a headless Chromium, for one test."""

    def __init__(self, pipe: _Pipe, session: str) -> None:
        self._pipe = pipe
        self._session = session

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self._pipe.send(method, self._session, **params)

    def open(self, path: Path, *, width: int = 1280, height: int = 900) -> Page:
        url = path.resolve().as_uri()
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self._pipe.events.clear()
        self.send("Page.navigate", url=url)
        self._pipe.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page = Page(url)
        for event in self._pipe.events:
            if event.get("sessionId") not in (None, self._session):
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                page.console.append(params)
            elif method == "Runtime.exceptionThrown":
                page.exceptions.append(params)
            elif method == "Log.entryAdded":
                page.log.append(params)
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        return page

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, *, width: int = 1280, height: int | None = None) -> Path:
        """The top `height` pixels of the page as a PNG (the whole page without `height`)."""
        if height is None:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        shot = self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.contextmanager
def headless_chromium() -> Iterator[Browser]:
    executable = chromium()
    profile = Path(tempfile.mkdtemp(prefix="tpa-chromium-"))
    to_chromium_r, to_chromium_w = os.pipe()
    from_chromium_r, from_chromium_w = os.pipe()

    def fds_3_and_4() -> None:  # in the child, before exec: Chromium's end of each pipe
        reads, writes = os.dup(to_chromium_r), os.dup(from_chromium_w)
        os.dup2(reads, 3)
        os.dup2(writes, 4)

    proc = subprocess.Popen(
        [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=fds_3_and_4,  # a test helper: no thread of its own runs here
        pass_fds=(3, 4),  # kept open past preexec_fn (subprocess closes the others after it)
    )
    os.close(to_chromium_r)
    os.close(from_chromium_w)
    pipe = _Pipe(to_chromium_w, from_chromium_r)
    try:
        target = pipe.send("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser = Browser(pipe, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable")
        yield browser
    finally:
        with contextlib.suppress(Exception):
            pipe.send("Browser.close")
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        os.close(to_chromium_w)
        os.close(from_chromium_r)
        shutil.rmtree(profile, ignore_errors=True)
