"""Settings of the sharing service (environment prefix POPEX_SHARING_)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from base.settings import ROOT


class SharingSettings(BaseSettings):
    """Connection pool and role, event-loop reads, client cache, rate limit and replica of the server processes."""

    model_config = SettingsConfigDict(env_prefix="POPEX_SHARING_")

    # Connections per server process: as many as requests the process works on at once. Sized so that
    # a burst never opens and closes overflow connections (a new PostgreSQL backend per request).
    pool_size: int = 16
    # How long a process trusts a client it has authenticated: disabling a client, rotating its key or
    # changing its policy takes effect within this many seconds (0: check the database every request).
    client_cache_seconds: float = 5.0
    # The longest the single-person reads of one loop pass may take (seconds); a read that takes longer
    # is cancelled by PostgreSQL and answered DATABASE_UNAVAILABLE.
    loop_statement_timeout: float = 2.0
    # The PostgreSQL role the server's connections act as (set at connect): it reads the population
    # and appends to the audit log, and may change nothing (sharing_api/migrations 0103). Empty: the
    # login role's own privileges, for a server that logs in with a role of its own.
    database_role: str = Field(default="popex_sharing", pattern=r"^([a-z_][a-z0-9_]*)?$")
    # Failed verifications a client may make of one document, or of one name and birth date, in 24
    # hours; further verifications of it are refused (sharing_api/guessing.py).
    verify_failures_per_day: int = Field(default=5, ge=1)
    # Lookups by document that find no one (in scope), per client and day, refilled evenly; then its
    # lookups by document are refused: trying the numbers a masked one leaves finds no one either.
    lookup_misses_per_day: int = Field(default=50, ge=1)
    # The largest request body (bytes) read at all, checked before the key: a verification batch of
    # 1,000 items is about 150 kB.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The clients' token buckets, shared by every server process on this host (sharing_api/ratelimit.py).
    rate_file: Path = ROOT / "var" / "sharing" / "rate-buckets"
    # The clients' token buckets in Redis instead (redis://host:6379/0), shared by every host's processes:
    # behind a load balancer a client gets its policy's rate once, not once per host. Unset: rate_file.
    rate_redis_url: str | None = None
    # A streaming replica (SQLAlchemy URL) for the reads of the population: the loop's lookups and the
    # routes that only read (search, changes, baseline). Audit records, verification (it records failed
    # tries), client look-ups and access history stay on the primary (POPEX_DATABASE_URL). A lookup
    # sees the replica's snapshot: a person written on the primary in the last moments of replication
    # lag answers as not found until replayed. Unset: everything on the primary.
    replica_url: str | None = None
    # Behind a pooler in transaction mode (PgBouncer pool_mode=transaction): no PREPARE and no
    # connection-level settings (libpq startup options); the loop's reads and audit set their timeouts
    # and role per statement (SET LOCAL, in the same round trip), and PostgreSQL plans each statement:
    # measured here (2 cores, direct, one lookup at a time) 450–470 µs per lookup against 110–180 µs
    # prepared, the planning of the grouped read's union; so only where a pooler requires it.
    transaction_pooling: bool = False


@lru_cache
def sharing_settings() -> SharingSettings:
    """The sharing settings of this process."""
    return SharingSettings()
