"""Per-client rate limits: one token bucket per client, shared by every server process on this host.

The buckets live in a small file (`POPEX_SHARING_RATE_FILE`) that each worker process maps into its
memory; a take locks the client's slot (a POSIX record lock on its bytes), refills, takes and writes
back. So a client gets its policy's rate however many workers `popex serve --workers N` starts (kept
in each process's own memory, it got N times its rate). Costs a lock and an unlock per request, no
round trip. Servers on several hosts each keep their own file: behind a load balancer over H hosts,
divide the policy's rate by H, or share the buckets through Redis (`RedisRateLimiter`,
POPEX_SHARING_RATE_REDIS_URL): the same bucket, taken by a script Redis runs atomically on its own
clock, for every process of every host, at a round trip per request. Redis unreachable: the request
fails (closed), it is not let through unlimited.

Slot layout: 16-byte client digest, then the limit it was filled under (rate, burst), then the tokens
and when they were counted (CLOCK_MONOTONIC, one clock for every process on the host). A changed
policy, or a clock behind the stored one (the host rebooted), starts the bucket full again.
"""

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.policy import RateLimit

SLOT = struct.Struct("<16s4d")  # digest, per_second, burst, tokens, updated
SLOTS = 4096  # clients per host: departments number in the dozens
EMPTY = bytes(16)


def refill(limit: RateLimit, tokens: float, updated: float, now: float, cost: int = 1) -> tuple[float, float]:
    """One take of `cost` tokens from a bucket at `now`: (tokens left, seconds to wait; 0 when taken)."""
    tokens = min(float(limit.burst), tokens + (now - updated) * limit.per_second)
    if tokens >= cost:
        return tokens - cost, 0.0
    return tokens, (cost - tokens) / limit.per_second


class Limiter(Protocol):
    """Where the clients' buckets are: a file on this host, or Redis."""

    def take(self, client: str, limit: RateLimit, now: float | None = None, cost: int = 1) -> float:
        """Take `cost` tokens for a client; 0 when allowed, else the seconds to wait."""

    def left(self, client: str, limit: RateLimit, now: float | None = None) -> float:
        """The tokens a client's bucket holds now (none taken)."""


class RateLimiter:
    """The buckets of every client, in the file at `path` (made on first use, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # record locks are per process: threads take this one first
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._slots: dict[str, tuple[bytes, int]] = {}  # client → (digest, slot), found once

    def take(self, client: str, limit: RateLimit, now: float | None = None, cost: int = 1) -> float:
        """Take `cost` tokens for a client (a request, or a batch's items); 0 when allowed, else the
        seconds to wait (a cost above the burst can never be taken: check it first)."""
        return self._take(client, limit, now, cost)[1]

    def left(self, client: str, limit: RateLimit, now: float | None = None) -> float:
        """The tokens a client's bucket holds now (none taken)."""
        return self._take(client, limit, now, 0)[0]

    def _take(self, client: str, limit: RateLimit, now: float | None, cost: int) -> tuple[float, float]:
        with self._lock:
            table = self._table()
            found = self._slots.get(client)
            if found is None:
                found = self._slots[client] = self._find(client)
            digest, offset = found
            with self._locked(offset):
                # Read under the lock: a time read before it could be older than what another
                # process wrote meanwhile, and would look like a clock gone back (a reboot).
                now = time.monotonic() if now is None else now
                _, rate, burst, tokens, updated = SLOT.unpack_from(table, offset)
                if (rate, burst) != (limit.per_second, float(limit.burst)) or now < updated:
                    tokens, updated = float(limit.burst), now
                tokens, wait = refill(limit, tokens, updated, now, cost)
                SLOT.pack_into(table, offset, digest, limit.per_second, float(limit.burst), tokens, now)
            return tokens, wait

    def _table(self) -> mmap.mmap:
        if self._map is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            size = SLOT.size * SLOTS
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zeros: every slot empty (two processes growing it agree)
            self._fd, self._map = fd, mmap.mmap(fd, size)
        return self._map

    def _find(self, client: str) -> tuple[bytes, int]:
        """The client's slot: its own, else the first empty one on its probe path, claimed."""
        table = self._table()
        digest = hashlib.blake2b(client.encode(), digest_size=16).digest()
        start = int.from_bytes(digest[:8], "little") % SLOTS
        for step in range(SLOTS):
            offset = ((start + step) % SLOTS) * SLOT.size
            with self._locked(offset):
                held = table[offset : offset + 16]
                if held == EMPTY:  # claimed with no limit: the first take fills it
                    SLOT.pack_into(table, offset, digest, 0.0, 0.0, 0.0, 0.0)
                    return digest, offset
                if held == digest:
                    return digest, offset
        raise RuntimeError(f"速率限制表已满（{SLOTS} 个接入单位）：{self.path}")

    def _locked(self, offset: int) -> "_SlotLock":
        return _SlotLock(self._fd, offset)


class _SlotLock:
    """An exclusive POSIX record lock on one slot's bytes, for a `with` block."""

    __slots__ = ("fd", "offset")

    def __init__(self, fd: int, offset: int) -> None:
        self.fd, self.offset = fd, offset

    def __enter__(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX, SLOT.size, self.offset)

    def __exit__(self, *_: object) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT.size, self.offset)


# KEYS[1] the client's bucket; ARGV rate, burst, cost, now ("" : Redis's clock, one for every host).
# The same refill as `refill`; a changed policy or a clock behind the stored one starts it full. The
# key expires once the bucket would be full again: an absent bucket is a full one.
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local held = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'tokens', 'updated')
local tokens, updated = tonumber(held[3]), tonumber(held[4])
if tokens == nil or tonumber(held[1]) ~= rate or tonumber(held[2]) ~= burst or now < updated then
  tokens, updated = burst, now
end
tokens = math.min(burst, tokens + (now - updated) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
-- %.17g: Lua's tostring keeps 14 digits, which rounds the clock's microseconds (a later take
-- would then find a clock behind the stored one and start the bucket full).
local tokens_text = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'rate', ARGV[1], 'burst', ARGV[2], 'tokens', tokens_text,
           'updated', string.format('%.17g', now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return {tokens_text, string.format('%.17g', wait)}
"""


class RedisRateLimiter:
    """The buckets of every client in Redis at `url`, shared by every process of every host."""

    def __init__(self, url: str, prefix: str = "popex:rate:") -> None:
        import redis

        self.prefix = prefix
        # Short timeouts: a request waits at most this long for its bucket before failing.
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script: Any = self._redis.register_script(_TAKE)
        self._errors = redis.RedisError

    def take(self, client: str, limit: RateLimit, now: float | None = None, cost: int = 1) -> float:
        """Take `cost` tokens for a client; 0 when allowed, else the seconds to wait."""
        return self._take(client, limit, now, cost)[1]

    def left(self, client: str, limit: RateLimit, now: float | None = None) -> float:
        """The tokens a client's bucket holds now (none taken)."""
        return self._take(client, limit, now, 0)[0]

    def _take(self, client: str, limit: RateLimit, now: float | None, cost: int) -> tuple[float, float]:
        # The key is a digest: client codes are not personal data, but keep Redis's keys uniform.
        key = self.prefix + hashlib.blake2b(client.encode(), digest_size=16).hexdigest()
        args = [repr(limit.per_second), repr(float(limit.burst)), cost, "" if now is None else repr(now)]
        try:
            tokens, wait = self._script(keys=[key], args=args)
        except self._errors as exc:  # closed, not open: no bucket, no request (a 503, not a 500)
            raise SharingError(ErrorCode.RATE_LIMIT_UNAVAILABLE) from exc
        return float(tokens), float(wait)
