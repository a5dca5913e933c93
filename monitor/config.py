"""Monitoring settings (env prefix POPEX_MONITOR_): alert thresholds, the webhook, the Airflow link."""

from datetime import date
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from base.settings import schedule_settings


class MonitorSettings(BaseSettings):
    """Thresholds of the alert rules and where alerts go."""

    model_config = SettingsConfigDict(env_prefix="POPEX_MONITOR_")

    window_days: int = Field(default=7, ge=1)  # as-of days looked at, counted back from the day before `now`
    expected_from: date | None = None  # the first as-of date feeds are expected for (go-live)
    reject_rate: float = Field(
        default=0.3, ge=0, le=1
    )  # a batch rejecting more than this share of rows alerts
    reject_min_rows: int = Field(default=5, ge=1)  # smaller batches never alert on their rejection rate
    review_max_days: int = Field(default=3, ge=0)  # open review items older than this alert
    api_error_rate: float = Field(
        default=0.2, ge=0, le=1
    )  # refused API requests over the last api_window_hours
    api_min_requests: int = Field(default=20, ge=1)
    api_failures_min: int = Field(default=1, ge=1)  # requests failed on the server's side that alert
    api_window_hours: int = Field(default=1, ge=1)
    # Lookups that found no one, over the last api_window_hours: this many, and more than this share of a
    # client's requests, look like probing whether persons live in the city (numbers tried one by one).
    api_not_found_min: int = Field(default=20, ge=1)
    api_not_found_rate: float = Field(default=0.3, ge=0, le=1)
    # Failed verifications looked at for guessing: a claim at its limit alerts, as do this many claims.
    guessing_window_hours: int = Field(default=24, ge=1)
    guessing_claims: int = Field(default=50, ge=1)
    # The disks of the local archive, landing and outbox folders: less free than either alerts (a warning;
    # critical below half of it). Full, files can be neither received nor archived and the day's run fails.
    disk_free_percent: float = Field(default=10.0, ge=0, le=100)
    disk_free_gb: float = Field(default=5.0, ge=0)
    webhook_url: str | None = None  # alerts are POSTed here as JSON (and always logged)
    webhook_timeout: float = 5.0
    base_url: str = ""  # prefix of alert links in webhook payloads, e.g. https://popex.example.gov.cn
    # Deadlines and received_at are local times in this zone: the city's (POPEX_TIME_ZONE) unless set.
    timezone: str = Field(default_factory=lambda: schedule_settings().time_zone)


class AirflowSettings(BaseSettings):
    """Where the monitor reads DAG runs: Airflow's REST API (env prefix POPEX_AIRFLOW_); unset URL: not shown."""

    model_config = SettingsConfigDict(env_prefix="POPEX_AIRFLOW_")

    api_url: str | None = None  # the api-server's base, e.g. http://127.0.0.1:8080
    username: str | None = None  # unset: a token without credentials (simple_auth_manager_all_admins)
    password: str | None = None
    timeout: float = Field(default=5.0, gt=0)


@lru_cache
def monitor_settings() -> MonitorSettings:
    """The monitoring settings of this process."""
    return MonitorSettings()


@lru_cache
def airflow_settings() -> AirflowSettings:
    """The Airflow API settings of this process."""
    return AirflowSettings()
