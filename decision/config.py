"""Settings of the decision platform (env prefix POPEX_DECISION_): planners' sessions and login lockout."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from base.sessions import kept_secret
from base.settings import ROOT


class DecisionSettings(BaseSettings):
    """Planners' sessions and the lockout of an address that keeps presenting wrong API keys."""

    model_config = SettingsConfigDict(env_prefix="POPEX_DECISION_")

    # Signs the planners' session cookie. Unset: a key generated once and kept in secret_file, shared by
    # every server process of this machine (set the key itself when processes run on several machines).
    secret_key: str | None = None
    secret_file: Path = ROOT / "var" / "decision_secret_key"
    session_minutes: int = Field(default=480, ge=1)
    # The session cookie is marked Secure when the request came over HTTPS, and always when this is set:
    # behind a proxy that ends TLS the server itself sees plain HTTP.
    cookie_secure: bool = False
    # This many wrong keys from one address within the window (login form or API) lock that address out.
    max_failures: int = Field(default=5, ge=1)
    failure_window_minutes: int = Field(default=15, ge=1)


@lru_cache
def decision_settings() -> DecisionSettings:
    """The decision settings of this process."""
    return DecisionSettings()


@lru_cache
def session_secret() -> str:
    """POPEX_DECISION_SECRET_KEY, else the key kept in secret_file (base.sessions.kept_secret)."""
    settings = decision_settings()
    return kept_secret(
        given=settings.secret_key, path=settings.secret_file, variable="POPEX_DECISION_SECRET_KEY"
    )
