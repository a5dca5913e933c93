"""Settings, one small class per concern, read from the environment (prefix POPEX_)."""

from datetime import date
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where the one database lives; unset URL means the embedded PostgreSQL under var/."""

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    database_url: str | None = None
    embedded_dir: Path = ROOT / "var" / "pg"


class StorageSettings(BaseSettings):
    """Where received files are archived and where landing folders are: local paths or URIs (base.storage)."""

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    # A folder (or file://…), or a bucket's prefix such as s3://popex/archive (base.storage.location).
    archive_dir: str = str(ROOT / "var" / "archive")
    landing_dir: str = str(ROOT / "var" / "landing")
    outbox_dir: str = str(ROOT / "var" / "outbox")  # receipts for the departments
    # An S3-compatible server that is not AWS (MinIO, Ceph…); credentials come from botocore's usual
    # places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role), never from here.
    s3_endpoint_url: str | None = None
    max_upload_bytes: int = 512 * 1024 * 1024
    # A file in a local landing folder is taken once it has not changed (size, modification time) for
    # landing_quiet_seconds: one a department is still uploading straight into the folder would be cut
    # short. A run waits up to landing_patience_seconds in all for its files, then leaves those still
    # changing to the next run.
    landing_quiet_seconds: float = Field(default=30.0, ge=0)
    landing_patience_seconds: float = Field(default=300.0, ge=0)


class ScheduleSettings(BaseSettings):
    """When the platform went live (a daily run for an earlier as-of day fails instead of finding nothing)
    and the city's time zone, whose calendar every business day follows (base.clock)."""

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    # Not the host's zone: a server or container kept in UTC would otherwise start the city's day at 08:00.
    time_zone: str = "Asia/Shanghai"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """A name the time zone database knows (Asia/Shanghai), not a typo found at an officer's first page."""
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"POPEX_TIME_ZONE={value!r} 不是时区数据库中的时区名，如 Asia/Shanghai"
            ) from None
        return value

    go_live_date: date | None = None  # unset: no lower bound (development, tests)


class WorkerSettings(BaseSettings):
    """How many processes the work starts: set per deployment, never guessed from the host's cores.

    os.cpu_count() counts the host's cores, not what this process may use (a container's CPU quota,
    an Airflow worker running several tasks, a server sharing its host with PostgreSQL), so a big
    host would fork dozens of parsers each holding a copy of the parent's memory.
    """

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    # 2: the reference machine (BENCHMARKS.md) has two cores; more only where the cores are this task's.
    parse_workers: int = Field(default=2, ge=1)
    # 1: one uvicorn process; a host that serves only popex sets one per core it gives the server.
    serve_workers: int = Field(default=1, ge=1)


class PartitionSettings(BaseSettings):
    """How far ahead the time-partitioned tables get their partitions, and how long old ones stay
    attached (docs/PARTITIONS.md)."""

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    # The daily run creates every partition a row written up to this many days from today falls in.
    partition_ahead_days: int = Field(default=92, ge=1)
    # Change events older than this many whole years may be detached (`popex db retention`); unset:
    # kept (subscribers replay the feed from their baseline). Version history is never detached.
    change_event_retention_years: int | None = Field(default=None, ge=1)
    # Audit records are kept as long as the law requires: months older than this many whole years may
    # be detached (and archived before they are dropped); unset: kept.
    audit_log_retention_years: int | None = Field(default=None, ge=1)

    def retention_years(self) -> dict[str, int]:
        """Each table with a retention, and its years."""
        kept = {
            "change_event": self.change_event_retention_years,
            "audit_log": self.audit_log_retention_years,
        }
        return {table: years for table, years in kept.items() if years is not None}


@lru_cache
def database_settings() -> DatabaseSettings:
    """The database settings of this process."""
    return DatabaseSettings()


@lru_cache
def storage_settings() -> StorageSettings:
    """The storage settings of this process."""
    return StorageSettings()


@lru_cache
def schedule_settings() -> ScheduleSettings:
    """The schedule settings of this process."""
    return ScheduleSettings()


@lru_cache
def worker_settings() -> WorkerSettings:
    """The worker-count settings of this process."""
    return WorkerSettings()


@lru_cache
def partition_settings() -> PartitionSettings:
    """The partition settings of this process."""
    return PartitionSettings()
