"""The synthetic week in the test's transaction, a TestClient on it, and a local webhook receiver."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from base.db import get_session
from monitor.config import MonitorSettings
from popex.app import create_app
from tests.monitor.week import WEEK, build_week


@pytest.fixture
def week(session, factory, areas, tmp_path) -> dict[str, int]:
    """gaj_hj's batch id per as-of date of the week (every feed delivered through the pipeline)."""
    return build_week(session, factory, tmp_path / "landing")


@pytest.fixture
def client(session) -> Iterator[TestClient]:
    """The app with the monitor's requests on the test's session."""
    app = create_app()
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app) as c:
        yield c


class Receiver:
    """What a webhook endpoint on 127.0.0.1 was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail = False


@pytest.fixture
def webhook() -> Iterator[tuple[str, Receiver]]:
    """A JSON webhook receiver on a free loopback port; its URL and what it got."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if receiver.fail:
                self.send_response(503)
            else:
                receiver.bodies.append(json.loads(body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", receiver
    server.shutdown()
    server.server_close()


def settings(**overrides: Any) -> MonitorSettings:
    """Settings as the tests use them: defaults, monitoring from the week's first day."""
    return MonitorSettings(**{"expected_from": WEEK[0], **overrides})
