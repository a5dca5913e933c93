"""Edges of issue 16.6: body size before the key, bodies that do not parse, the end user's header.

The size limits are checked over real HTTP (uvicorn on a free port, a raw socket): a request declaring
a huge body is answered at once, without the server waiting for a byte of it.
"""

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from sharing_api.config import sharing_settings
from tests.browser import served
from tests.sharing_api.support import audit_rows, last_audit_id, person


@pytest.fixture
def address(app: FastAPI) -> Iterator[tuple[str, int]]:
    with served(app) as url:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        yield parts.hostname, parts.port


def _headers_only(address: tuple[str, int], path: str, headers: dict[str, str]) -> bytes:
    """Send a request's headers and no body; the server's answer (it must not wait for the body)."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        return answer


def test_a_huge_body_is_refused_before_it_is_read_or_the_key_looked_at(address) -> None:
    answer = _headers_only(
        address,
        "/api/v1/verify/batch",
        {"Content-Type": "application/json", "Content-Length": str(60 * 1024 * 1024)},
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_an_unauthenticated_push_is_refused_before_its_upload_is_read(address) -> None:
    answer = _headers_only(
        address,
        "/api/v1/exchange/files",
        {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(100 * 1024 * 1024)},
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_chunked_body_over_the_limit_is_refused(http, new_client) -> None:
    limit = sharing_settings().max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"items": ['
        for _ in range(limit // 1000 + 1):
            yield b'{"id_no": "1"},' * 70
        yield b"]}"

    response = http.post("/api/v1/verify/batch", content=chunks(), headers=new_client())
    assert response.status_code == 413 and response.json()["code"] == "BODY_TOO_LARGE"


@pytest.mark.parametrize(
    "body",
    [b'\xff\xfe{"id_no": "1"}', b"[" * 100_000, b"{" * 100_000, b'{"id_no": "1"', b"\x00\x01", b"not json"],
    ids=["not-utf8", "brackets", "braces", "truncated", "binary", "text"],
)
@pytest.mark.parametrize("path", ["/api/v1/verify", "/api/v1/verify/batch", "/api/v1/persons/lookup"])
def test_a_body_that_does_not_parse_is_400_json(http, new_client, path: str, body: bytes) -> None:
    headers = {**new_client(), "Content-Type": "application/json"}
    response = http.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "BODY_INVALID" and response.json()["message"]


def test_end_user_is_nfkc_normalised_before_it_is_audited(http, session, new_client) -> None:
    p = person(session)
    before = last_audit_id(session)
    headers = {**new_client(), "X-End-User": "ｃｌｅｒｋ－００７".encode()}  # full-width, UTF-8
    assert http.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 200
    [row] = audit_rows(session, before)
    assert row.detail["end_user"] == "clerk-007"


@pytest.mark.parametrize(
    "value",
    [b"%FF%FE", b"clerk\xe2\x80\xae007", b"a b", b"---", b"x" * 200, b"%E2%80%8Bclerk"],
    ids=[
        "bad-percent",
        "bidi-override",
        "space",
        "punctuation-only",
        "too-long",
        "zero-width",
    ],
)
def test_an_end_user_that_is_not_an_account_is_refused_and_not_audited(
    http, session, new_client, value: bytes
) -> None:
    p = person(session)
    before = last_audit_id(session)
    response = http.get(f"/api/v1/persons/{p.person_no}", headers={**new_client(), "X-End-User": value})
    assert response.status_code == 400 and response.json()["code"] == "END_USER_INVALID", response.text
    assert audit_rows(session, before) == []


def test_an_end_user_in_bytes_that_are_not_utf8_is_refused(session, new_client, address) -> None:
    """Over real HTTP: the test client would re-encode the raw bytes as UTF-8 on the way."""
    p = person(session)
    url = f"http://{address[0]}:{address[1]}"
    response = httpx.get(
        f"{url}/api/v1/persons/{p.person_no}", headers={**new_client(), "X-End-User": b"\xff\xfe\xfd"}
    )
    assert response.status_code == 400 and response.json()["code"] == "END_USER_INVALID", response.text
