"""`popex db check` warns about PostgreSQL settings below the bulk loads' recommendations (docs/OPERATIONS.md)."""

import os
import subprocess
import sys

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry import server_settings
from registry.server_settings import MB, MINIMUMS, judge

RECOMMENDED = {m.name: str(m.least) for m in MINIMUMS} | {
    "synchronous_commit": "on",
    "checkpoint_warning": "30",
    "autovacuum": "on",
}


def test_the_recommended_values_give_no_warning_and_each_one_below_gives_its_own() -> None:
    assert judge(RECOMMENDED, checkpoints_timed=100, checkpoints_req=20) == []
    for m in MINIMUMS:
        found = judge(RECOMMENDED | {m.name: str(m.least - MB)})
        assert len(found) == 1 and found[0].startswith(f"{m.name} 为 "), found
    assert judge(RECOMMENDED | {"shared_buffers": str(128 * MB)}) == [
        "shared_buffers 为 128 MB，建议至少 1 GB：批量载入的表和索引放不进缓存，反复读盘"
    ]
    assert "只宜用于基准测试库" in judge(RECOMMENDED | {"synchronous_commit": "off"})[0]
    assert "checkpoint_warning 为 0" in judge(RECOMMENDED | {"checkpoint_warning": "0"})[0]
    assert judge(RECOMMENDED | {"autovacuum": "off"})[0].startswith("autovacuum 为 off：")


def test_checkpoints_forced_by_a_full_wal_are_warned_when_most_of_them() -> None:
    assert judge(RECOMMENDED, checkpoints_timed=5, checkpoints_req=9) == []  # too few to tell
    assert judge(RECOMMENDED, checkpoints_timed=12, checkpoints_req=10) == []
    found = judge(RECOMMENDED, checkpoints_timed=9, checkpoints_req=10)
    assert found == [
        "自统计重置以来 19 次检查点中 10 次因 WAL 写满而提前发生：max_wal_size 偏小，批量载入变慢"
    ]


def test_the_servers_settings_are_read_in_bytes_and_a_session_setting_below_is_warned(
    session: Session,
) -> None:
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    settings, timed, req = server_settings.read(session)
    assert settings["work_mem"] == str(256 * MB) and settings["maintenance_work_mem"] == str(1024 * MB)
    assert int(settings["shared_buffers"]) % 8192 == 0 and timed >= 0 and req >= 0
    assert settings["autovacuum"] in ("on", "off")
    assert not [w for w in server_settings.warnings(session=session) if w.startswith(("work_mem", "maint"))]
    session.execute(text("SET LOCAL work_mem = '4MB'"))
    session.execute(text("SET LOCAL synchronous_commit = off"))
    found = server_settings.warnings(session=session)
    assert "work_mem 为 4 MB，建议至少 64 MB：匹配与统计的排序和哈希落盘" in found
    assert any(w.startswith("synchronous_commit 为 off") for w in found)


def test_popex_db_check_prints_the_warnings_and_still_passes(db_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from popex.cli import run; run()", "db", "check"],
        # a session setting of the command's own connection, below the recommendation
        env={**os.environ, "POPEX_DATABASE_URL": db_url, "PGOPTIONS": "-c work_mem=2MB"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "work_mem 为 2 MB，建议至少 64 MB" in done.stdout


def test_a_database_kept_in_another_time_zone_than_the_citys_is_warned() -> None:
    """received_at is written in the database's zone and the monitor judges deadlines in the city's: a
    server left in UTC would show a file that came at 16:00 in Shanghai (08:00 UTC) as on time for 09:00."""
    assert judge(RECOMMENDED | {"TimeZone": "Asia/Shanghai"}) == []
    assert judge(RECOMMENDED | {"TimeZone": "PRC"}) == []  # another name of the same clock
    [found] = judge(RECOMMENDED | {"TimeZone": "Etc/UTC"})
    assert found.startswith("数据库时区 TimeZone 为 Etc/UTC，与本市时区 Asia/Shanghai（POPEX_TIME_ZONE）不同")
    assert judge(RECOMMENDED | {"TimeZone": "UTC"}, city_zone="Etc/UTC") == []
    assert len(judge(RECOMMENDED | {"TimeZone": "Asia/Tokyo"})) == 1  # +9 all year, not +8
    assert len(judge(RECOMMENDED | {"TimeZone": "Nowhere/Atlantis"})) == 1


def test_popex_db_check_reads_the_sessions_time_zone(db_url: str) -> None:
    def check(zone: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", "from popex.cli import run; run()", "db", "check"],
            env={**os.environ, "POPEX_DATABASE_URL": db_url, "PGOPTIONS": f"-c TimeZone={zone}"},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    assert "数据库时区 TimeZone 为 UTC" in check("UTC")
    assert "数据库时区" not in check("Asia/Shanghai")
