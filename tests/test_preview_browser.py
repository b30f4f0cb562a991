"""The preview page in a real browser: headless Chromium, driven through the Chrome DevTools protocol.

Needs Debian's ``chromium`` (``.ci/run`` installs it when apt is there) and ``websocket-client`` (the test
extra); skips, saying which, without them.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from test_preview import STOPPED, running, status  # noqa: F401 (running is a fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
websocket = pytest.importorskip("websocket", reason="needs websocket-client (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: apt-get install chromium")


class Browser:
    """A headless Chromium with one page, and the few DevTools commands the test uses."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        page = self._page(profile / "DevToolsActivePort", time.monotonic() + 60)
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0

    @staticmethod
    def _page(port_file: Path, deadline: float) -> dict:
        """The browser's page target, once Chromium has written its port (not at once: the file can exist
        empty for a moment) and opened the page."""
        while time.monotonic() < deadline:
            words = port_file.read_text().split() if port_file.is_file() else []
            if words:
                with urllib.request.urlopen(f"http://127.0.0.1:{words[0]}/json/list") as response:
                    pages = [target for target in json.load(response) if target["type"] == "page"]
                if pages:
                    return pages[0]
            time.sleep(0.1)
        raise AssertionError("Chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 180) -> Any:
        """The expression's value once it is truthy; generous, since a loaded CI machine starts slowly."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        page = self.evaluate("location.href + ' | ' + document.body.innerText.slice(0, 300)")
        raise AssertionError(f"timed out waiting for {expression}; the page: {page}")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element, as a person's."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()  # lets Chromium take its renderer and helper processes down with it
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_the_page_in_chromium_shows_the_run_and_its_stop_button_works(running, tmp_path):
    process, url, folder = running
    browser = Browser(tmp_path / "profile")
    try:
        browser.send("Page.navigate", url=url)
        first = int(browser.wait_for("document.body.dataset.images"))
        browser.wait_for(f"Number(document.body.dataset.images) >= {first + 2}")  # the image changed twice
        assert int(browser.wait_for("Number(document.getElementById('curve').dataset.points) > 0 && "
                                    "document.getElementById('curve').dataset.points")) > 0
        assert browser.evaluate("document.getElementById('picture').naturalWidth") == 32
        browser.click("#stop")
        said = browser.wait_for("document.body.dataset.state === 'done' && document.getElementById('done').textContent")
        assert STOPPED in said and "out.png" in said
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
        (tmp_path / "preview.png").write_bytes(base64.b64decode(shot))
        assert (tmp_path / "preview.png").stat().st_size > 10_000
    finally:
        browser.close()
    assert status(url)["stopped"]["reason"] == STOPPED
    sidecar = json.loads((folder / "out.png.json").read_text(encoding="utf-8"))
    assert sidecar["stopped"]["reason"] == STOPPED
