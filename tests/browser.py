"""Headless Chromium driven over the DevTools protocol (``websockets``, a Prefect dependency).

Shared by the browser tests: the run form (``service/test_run_form.py``) and the report layout
(``reports/test_report_layout.py``). No browser automation package is needed.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import httpx


def _scaled(seconds: float) -> float:
    """``seconds`` times ``TTSCALE_TEST_TIME_SCALE`` (as ``service_helpers.scaled``)."""
    return seconds * float(os.environ.get("TTSCALE_TEST_TIME_SCALE", "").strip() or 1)


# Flags that keep headless Chromium from hanging on a closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Chromium:
    """Headless Chromium and one page, over the DevTools protocol."""

    def __init__(
        self,
        binary: str,
        profile: Path,
        width: int = 1280,
        height: int = 6000,
        mobile: bool = False,
    ) -> None:
        from websockets.sync.client import connect

        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        command += ["--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stderr is not None
        port = self._devtools_port(self.process.stderr)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        # A tall viewport: the whole form is laid out and screenshots need no scrolling.
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.send("Emulation.setDeviceMetricsOverride", **metrics)

    def _devtools_port(self, stderr: IO[str]) -> int:
        deadline = time.monotonic() + _scaled(30)
        while time.monotonic() < deadline:
            line = stderr.readline()
            if match := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                return int(match.group(1))
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events that arrive meanwhile are dropped."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=_scaled(60)))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message["result"])

    def eval(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", result))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + _scaled(timeout)
        while time.monotonic() < deadline:
            if value := self.eval(expression):
                return value
            time.sleep(0.3)
        raise TimeoutError(f"still false after {timeout} s: {expression}")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(10)
