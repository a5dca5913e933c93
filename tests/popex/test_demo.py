"""The demo's calendar: its city ends yesterday, its files arrive like a real week's."""

from datetime import date, datetime, time, timedelta

from popex.demo import addresses, arrival, demo_start


def test_the_demo_city_ends_yesterday() -> None:
    today = date(2026, 12, 4)
    start = demo_start(5, today)
    assert start == date(2026, 11, 28) and start + timedelta(days=5) == today - timedelta(days=1)


def test_files_arrive_before_the_deadline_but_one_late_and_never_in_the_future() -> None:
    last = date(2026, 12, 3)
    now = datetime(2026, 12, 4, 7, 0)
    days = [last - timedelta(days=i) for i in range(6)]
    deadline = {d: datetime.combine(d + timedelta(days=1), time(9, 0)) for d in days}
    times = {(s, d): arrival(s, d, last=last, now=now) for s in ("gaj_hj", "rsj_cb", "wjw_cs") for d in days}
    late = {key for key, at in times.items() if at > deadline[key[1]]}
    assert late == {("rsj_cb", date(2026, 12, 1))}
    assert all(at < now for at in times.values())


def test_the_addresses_name_every_platform_and_the_officer_login() -> None:
    table = addresses(("demo01", "popex-demo-2026", "330105001003", "松溪社区"))
    cells = [str(c) for column in table.columns for c in column._cells]
    assert "http://127.0.0.1:8000/collection" in cells and "http://127.0.0.1:8000/monitor" in cells
    assert any("demo01" in c and "popex-demo-2026" in c and "松溪社区" in c for c in cells)
