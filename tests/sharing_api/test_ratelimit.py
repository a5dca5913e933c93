"""Rate limits: a token bucket per client, one for every server process on the host."""

import multiprocessing
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sharing_api.policy import RateLimit
from sharing_api.ratelimit import RateLimiter, refill

SLOW = RateLimit(per_second=0.001, burst=20)


def _allowed(path: str, client: str, tries: int) -> int:
    limiter = RateLimiter(Path(path))
    return sum(limiter.take(client, SLOW) == 0 for _ in range(tries))


def test_four_processes_hammering_one_bucket_get_exactly_its_burst(tmp_path: Path) -> None:
    path = str(tmp_path / "buckets")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.starmap(_allowed, [(path, "rsj", 5000)] * 4)
    assert sum(allowed) == SLOW.burst  # not 4 × burst: the buckets are the host's, not the process's


def test_clients_have_buckets_of_their_own(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "buckets")
    limit = RateLimit(per_second=1, burst=2)
    assert [limiter.take("a", limit, now=100.0) for _ in range(3)] == [0, 0, 1.0]
    assert limiter.take("b", limit, now=100.0) == 0
    assert limiter.take("a", limit, now=101.0) == 0  # a second later, one token back


def test_a_second_process_view_sees_the_tokens_taken(tmp_path: Path) -> None:
    limit = RateLimit(per_second=1, burst=1)
    assert RateLimiter(tmp_path / "b").take("a", limit, now=5.0) == 0
    assert RateLimiter(tmp_path / "b").take("a", limit, now=5.5) == 0.5


def test_a_changed_policy_or_a_clock_behind_starts_full(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "buckets")
    one = RateLimit(per_second=0.5, burst=1)
    assert limiter.take("a", one, now=10.0) == 0
    assert limiter.take("a", one, now=10.0) == 2.0
    assert limiter.take("a", RateLimit(per_second=0.5, burst=2), now=10.0) == 0  # new policy: full
    assert limiter.take("a", RateLimit(per_second=0.5, burst=2), now=1.0) == 0  # rebooted host


def test_many_clients_all_find_a_slot(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "buckets")
    limit = RateLimit(per_second=1, burst=1)
    assert all(limiter.take(f"c{i}", limit, now=1.0) == 0 for i in range(3000))
    again = RateLimiter(tmp_path / "buckets")  # another process: every client found, none refilled
    assert all(again.take(f"c{i}", limit, now=1.0) > 0 for i in range(3000))


@given(
    per_second=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_refill(per_second: float, burst: int, gaps: list[float]) -> None:
    """Over any run of takes, allowed ≤ burst + rate × elapsed; and a refused take names a real wait."""
    limit = RateLimit(per_second=per_second, burst=burst)
    tokens, updated, now, allowed = float(burst), 0.0, 0.0, 0
    for gap in gaps:
        now += gap
        tokens, wait = refill(limit, tokens, updated, now)
        updated = now
        if wait == 0:
            allowed += 1
        else:
            assert 0 < wait <= 1 / per_second + 1e-9
            _, wait_then = refill(limit, tokens, now, now + wait + 1e-6)
            assert wait_then == 0  # after the wait it names, a token is there
    assert allowed <= burst + per_second * now + 1e-6
