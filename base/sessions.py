"""Signed, expiring session cookies and the key that signs them (one per host unless the operator sets it).

A session cookie names who is logged in and nothing they could log in with again: its value is a
payload signed with a key of the server's (itsdangerous), readable by anyone, forgeable by no one
without the key, and refused after its maximum age. Each platform signs with its own key and salt.
"""

import os
import secrets
import time as clock
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer


def kept_secret(*, given: str | None, path: Path, variable: str) -> str:
    """The key set by the operator (`given`), else the key in `path`, which the first process to need it
    creates (readable by its owner only); the others, started at the same moment, wait for it to be written.
    `variable` names the setting in the error an empty file gives."""
    if given:
        return given
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text(encoding="ascii").strip()
            if key:
                return key
            clock.sleep(0.1)
        raise RuntimeError(f"{path} 为空：删除它后重启，或设置 {variable}") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key


def sign(payload: Any, *, secret: str, salt: str) -> str:
    """A cookie value carrying payload (JSON), signed and time-stamped."""
    return URLSafeTimedSerializer(secret, salt=salt).dumps(payload)


def unsign(value: str | None, *, secret: str, salt: str, max_age_seconds: int) -> Any | None:
    """The payload of a cookie value; None when missing, forged, signed for another salt or too old."""
    if not value:
        return None
    try:
        return URLSafeTimedSerializer(secret, salt=salt).loads(value, max_age=max_age_seconds)
    except BadData:  # a bad or expired signature, or a payload that is no JSON
        return None
