"""Load a local HTML file in headless Chromium and report what a user's browser would see: console
errors, every network request, the page's images, and a full-page screenshot.

Talks the DevTools protocol over the browser's websocket (websocket-client, in the test extra):
the events are structured (Runtime.consoleAPICalled, Log.entryAdded, Network.requestWillBeSent),
which is sturdier than scraping `--enable-logging` output.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """$DCGAN_CHROMIUM, else the first of BROWSERS on PATH."""
    if os.environ.get("DCGAN_CHROMIUM"):
        return os.environ["DCGAN_CHROMIUM"]
    return next((p for name in BROWSERS if (p := shutil.which(name))), None)


@dataclass
class PageResult:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    images: list[dict] = field(default_factory=list)  # alt, class, naturalWidth/Height, bytes
    text: str = ""
    screenshot: bytes = b""


_INSPECT = """JSON.stringify({
  images: Array.from(document.images).map(i => ({
    alt: i.alt, cls: i.className, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight, bytes: i.src.length})),
  text: document.body.innerText,
  height: Math.ceil(document.documentElement.scrollHeight)})"""


def load_page(path: Path, width: int = 1280, timeout: float = 60.0) -> PageResult:
    """Open `path` (file://) in a fresh headless Chromium profile and inspect it."""
    import websocket  # websocket-client

    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium on PATH")
    profile = tempfile.mkdtemp(prefix="dcgan-chromium-")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-extensions", "--disable-sync"]
    args += ["--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws = websocket.create_connection(_devtools_url(proc, timeout), timeout=timeout)
        try:
            return _inspect(_Session(ws, timeout), Path(path).resolve().as_uri(), width)
        finally:
            ws.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(proc: subprocess.Popen, timeout: float) -> str:
    """Chromium prints "DevTools listening on ws://..." on stderr once it is ready."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if "DevTools listening on " in line:
            return line.split("DevTools listening on ", 1)[1].strip()
    raise RuntimeError("chromium did not start:\n" + "".join(seen[-20:]))


class _Session:
    """One page target, attached in flat mode: commands carry its sessionId."""

    def __init__(self, ws, timeout: float):
        self.ws, self.timeout, self.next_id = ws, timeout, 0
        self.session: str | None = None
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)


def _inspect(s: _Session, url: str, width: int) -> PageResult:
    target = s.call("Target.createTarget", url="about:blank")["targetId"]
    s.session = s.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        s.call(f"{domain}.enable")
    s.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
           mobile=False)  # fmt: skip
    s.events.clear()  # from here on, only what the page itself does
    s.call("Page.navigate", url=url)
    s.wait_for("Page.loadEventFired")
    time.sleep(0.5)  # late console messages and requests
    found = json.loads(s.call("Runtime.evaluate", expression=_INSPECT, returnByValue=True)["result"]["value"])  # fmt: skip
    height = min(found["height"], 16000)
    s.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
           mobile=False)  # fmt: skip
    shot = s.call("Page.captureScreenshot", format="png")["data"]
    result = PageResult(
        images=found["images"], text=found["text"], screenshot=base64.b64decode(shot)
    )
    for event in s.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.console_errors.append(str(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            result.console_errors.append(str(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            result.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            result.requests.append(params["request"]["url"])
    return result
