"""Settings of the collection platform (env prefix POPEX_COLLECTION_)."""

from datetime import time
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from base.sessions import kept_secret
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
    # Failures from one address over every officer number (a script trying made-up numbers).
    max_address_failures: int = 20
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
    """POPEX_COLLECTION_SECRET_KEY, else the key kept in secret_file (base.sessions.kept_secret)."""
    settings = collection_settings()
    return kept_secret(
        given=settings.secret_key, path=settings.secret_file, variable="POPEX_COLLECTION_SECRET_KEY"
    )
