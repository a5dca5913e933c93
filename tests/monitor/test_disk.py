"""The disk rule reads the real disk of the platform's local folders (nothing is filled: the thresholds
are set above or below what this machine has free)."""

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from base.settings import storage_settings
from monitor import alerts
from monitor.config import MonitorSettings

NOW = datetime(2026, 12, 6, 10, 0)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Archive, landing and outbox folders under tmp_path (the landing one not made yet)."""
    monkeypatch.setenv("POPEX_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("POPEX_LANDING_DIR", str(tmp_path / "landing" / "not-yet"))
    monkeypatch.setenv("POPEX_OUTBOX_DIR", str(tmp_path / "outbox"))
    (tmp_path / "archive").mkdir()
    (tmp_path / "outbox").mkdir()
    storage_settings.cache_clear()
    yield tmp_path
    storage_settings.cache_clear()


def _conditions(session, *, disk_free_percent: float, disk_free_gb: float) -> list[alerts.Condition]:
    settings = MonitorSettings(  # monitoring from today: no feed is due, only the disk is judged
        expected_from=NOW.date(), disk_free_percent=disk_free_percent, disk_free_gb=disk_free_gb
    )
    return [
        c for c in alerts.find_conditions(session=session, now=NOW, settings=settings) if c.rule == "disk_low"
    ]


def test_a_disk_with_less_free_than_asked_alerts_once_for_its_folders(session, folders) -> None:
    usage = shutil.disk_usage(folders)
    free_gb = usage.free / 2**30

    [found] = _conditions(session, disk_free_percent=0, disk_free_gb=free_gb * 1.5)  # short, not by half
    assert found.severity == "warning"
    assert found.title.startswith("归档目录、落地目录、回执目录所在磁盘（")
    assert f"仅剩 {free_gb:.1f} GB" in found.title
    assert found.detail["total_bytes"] == usage.total
    [critical] = _conditions(session, disk_free_percent=100, disk_free_gb=0)  # less than half of 100 %
    assert critical.severity == "critical" and critical.key == found.key

    assert _conditions(session, disk_free_percent=0, disk_free_gb=free_gb / 2) == []


def test_a_bucket_is_not_looked_at(session, folders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POPEX_ARCHIVE_DIR", "s3://popex/archive")
    storage_settings.cache_clear()
    [found] = _conditions(session, disk_free_percent=100, disk_free_gb=0)
    assert found.title.startswith("落地目录、回执目录所在磁盘（")


def test_the_alert_is_raised_and_resolved_with_the_space(session, folders) -> None:
    low = MonitorSettings(expected_from=NOW.date(), disk_free_percent=100, disk_free_gb=0)
    raised = alerts.evaluate(session=session, now=NOW, settings=low).raised
    assert [a.rule for a in raised] == ["disk_low"]
    ample = MonitorSettings(expected_from=NOW.date(), disk_free_percent=0, disk_free_gb=0)
    assert [a.rule for a in alerts.evaluate(session=session, now=NOW, settings=ample).resolved] == [
        "disk_low"
    ]
