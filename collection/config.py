"""Settings of the collection platform (env prefix POPEX_COLLECTION_)."""

import os
import secrets
import time as clock
from datetime import time
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from base.settings import ROOT


class CollectionSettings(BaseSettings):
    """Sessions, login throttling, the verification cycle and the daily cut-off."""

    model_config = SettingsConfigDict(env_prefix="POPEX_COLLECTION_")

    # Signs the session cookie. Unset: a key generated once and kept in secret_file, shared by every
    # server process of this machine (set the key itself when processes run on several machines).
    secret_key: str | None = None
    secret_file: Path = ROOT / "var" / "collection_secret_key"
    session_minutes: int = 480
    cookie_secure: bool = False  # set True behind HTTPS
    max_failures: int = 5
    failure_window_minutes: int = 15
    # A resident is due for verification when no officer has confirmed them for this many days.
    verify_every_days: int = 90
    due_list_limit: int = 50
    # Rows still open at this local time on their day make the day "not cleared".
    cutoff: time = time(23, 59, 59)


@lru_cache
def collection_settings() -> CollectionSettings:
    """The collection settings of this process."""
    return CollectionSettings()


@lru_cache
def session_secret() -> str:
    """POPEX_COLLECTION_SECRET_KEY, else the key in secret_file, which the first process to need it creates
    (readable by its owner only); the others, started at the same moment, wait for it to be written."""
    settings = collection_settings()
    if settings.secret_key:
        return settings.secret_key
    path = settings.secret_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text(encoding="ascii").strip()
            if key:
                return key
            clock.sleep(0.1)
        raise RuntimeError(f"{path} 为空：删除它后重启，或设置 POPEX_COLLECTION_SECRET_KEY") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key
