"""Settings of the collection platform (env prefix POPEX_COLLECTION_)."""

import secrets
from datetime import time
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class CollectionSettings(BaseSettings):
    """Sessions, login throttling, the verification cycle and the daily cut-off."""

    model_config = SettingsConfigDict(env_prefix="POPEX_COLLECTION_")

    # Signs the session cookie. Unset: a random key per process (every restart logs officers out).
    secret_key: str = secrets.token_urlsafe(32)
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
