"""Per-client rate limits: a token bucket per client, in the memory of this server process.

This is exact for one server process. With N worker processes each keeps its own buckets, so a client
can reach N times its rate; start the server with one worker per core and divide the policy's rate by
the worker count if that matters, or move the buckets into PostgreSQL or Redis.
"""

import threading
import time
from dataclasses import dataclass

from sharing_api.policy import RateLimit


@dataclass
class TokenBucket:
    """`burst` tokens at most, refilled continuously at `per_second`."""

    limit: RateLimit
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0 when taken, else the seconds until one is available."""
        self.tokens = min(self.limit.burst, self.tokens + (now - self.updated) * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.limit.per_second


class RateLimiter:
    """The buckets of every client seen by this process."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str, limit: RateLimit) -> float:
        """Take a token for a client; 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None or bucket.limit != limit:  # new client, or its policy changed
                bucket = self._buckets[client] = TokenBucket(limit, float(limit.burst), now)
            return bucket.take(now)
