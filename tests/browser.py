"""What every browser test shares: the app served on a free local port, headless Debian Chromium
(the `browser` fixture in tests/conftest.py, one per module), and pages that may load nothing from
outside that server.

Screenshots go to artifacts/screenshots/ (gitignored), to be looked at after a run.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"
    ),
]


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn in a thread on a free local port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium through Playwright (skips the test when Playwright is not installed)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflinePage:
    """A page at one of WIDTHS that may only reach `base_url`; what it tried elsewhere, and its errors."""

    page: Any
    width: int
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def fits(self) -> bool:
        """True when the page does not scroll sideways."""
        return bool(self.page.evaluate("document.documentElement.scrollWidth") <= self.width + 1)

    def shot(self, name: str, *, full_page: bool = True) -> None:
        """A screenshot under SHOTS."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def offline_page(browser: Any, base_url: str, width: str, *, console_errors: bool = True) -> OfflinePage:
    """A new page at WIDTHS[width]; requests off `base_url` are aborted and noted, page errors noted
    (console errors too, unless the page logs some on purpose, as a refused form submit does)."""
    w, h = WIDTHS[width]
    SHOTS.mkdir(parents=True, exist_ok=True)
    opened = OfflinePage(browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1), w)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            opened.outside.append(route.request.url)
            route.abort()

    opened.page.route("**/*", only_local)
    if console_errors:
        opened.page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    opened.page.on("pageerror", lambda e: opened.errors.append(str(e)))
    return opened
