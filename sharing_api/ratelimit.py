"""Per-client rate limits: one token bucket per client, shared by every server process on this host.

The buckets live in a small file (`POPEX_SHARING_RATE_FILE`) that each worker process maps into its
memory; a take locks the client's slot (a POSIX record lock on its bytes), refills, takes and writes
back. So a client gets its policy's rate however many workers `popex serve --workers N` starts (kept
in each process's own memory, it got N times its rate). Costs a lock and an unlock per request, no
round trip. Servers on several hosts each keep their own file: behind a load balancer over H hosts,
divide the policy's rate by H.

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
