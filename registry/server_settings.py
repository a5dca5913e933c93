"""PostgreSQL settings that matter for bulk loads, judged against the values docs/OPERATIONS.md recommends.

`popex db check` prints the warnings; they never fail it (a server tuned otherwise still works, slower).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.orm import Session

from base.settings import schedule_settings

MB = 2**20


@dataclass(frozen=True)
class Minimum:
    """A size setting and the least the loads want, in bytes, with why (Chinese)."""

    name: str
    least: int
    why: str


MINIMUMS = [
    Minimum("shared_buffers", 1024 * MB, "批量载入的表和索引放不进缓存，反复读盘"),
    Minimum("max_wal_size", 8192 * MB, "大批量载入时检查点过于频繁（1 GB 时每 8–10 秒一次）"),
    Minimum("work_mem", 64 * MB, "匹配与统计的排序和哈希落盘"),
    Minimum("maintenance_work_mem", 512 * MB, "建索引（统计重建的主键等）与 ANALYZE 落盘"),
]
# Requested checkpoints (WAL filled up) beyond this share of all, with at least this many, are too frequent.
CHECKPOINT_REQ_SHARE = 0.5
CHECKPOINT_REQ_MIN = 10
_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": MB, "16MB": 16 * MB, "GB": 1024 * MB}


def _mb(size: int) -> str:
    """A size in bytes as PostgreSQL writes it in the configuration."""
    return f"{size // 1024 // MB} GB" if size % (1024 * MB) == 0 else f"{size // MB} MB"


def same_clock(zone: str, other: str) -> bool:
    """Whether two time zones read the same local time all year (an alias such as PRC for Asia/Shanghai
    does); an unknown name is not the same."""
    try:
        a, b = ZoneInfo(zone), ZoneInfo(other)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    year = datetime.now(UTC).year
    moments = [datetime(year, month, 1, tzinfo=UTC) for month in range(1, 13)]
    return all(a.utcoffset(m.astimezone(a)) == b.utcoffset(m.astimezone(b)) for m in moments)


def judge(
    settings: dict[str, str],
    *,
    checkpoints_timed: int = 0,
    checkpoints_req: int = 0,
    city_zone: str = "Asia/Shanghai",
) -> list[str]:
    """Warnings (Chinese) for the settings below their recommendation: sizes in bytes (as `read` gives
    them), synchronous_commit, autovacuum, checkpoint_warning in seconds, the server's checkpoint
    counts, and a TimeZone other than the city's."""
    out = []
    zone = settings.get("TimeZone")
    if zone is not None and not same_clock(zone, city_zone):
        out.append(
            f"数据库时区 TimeZone 为 {zone}，与本市时区 {city_zone}（POPEX_TIME_ZONE）不同：文件接收时间按数据库时区记，"
            f"监控按本市时间判断截止与迟到，二者会错开；请在 postgresql.conf 中设 timezone = '{city_zone}'"
        )
    for m in MINIMUMS:
        value = settings.get(m.name)
        if value is not None and int(value) < m.least:
            out.append(f"{m.name} 为 {_mb(int(value))}，建议至少 {_mb(m.least)}：{m.why}")
    if settings.get("synchronous_commit") == "off":
        out.append(
            "synchronous_commit 为 off：服务器崩溃时会丢失最近已提交的事务，只宜用于基准测试库，生产库应为 on"
        )
    if settings.get("autovacuum") == "off":
        out.append(
            "autovacuum 为 off：合并与人工处理改写的行留下的旧版本无人清理，表与索引膨胀、查询变慢；"
            "流水线只在大批次后自行 ANALYZE，小批次累积的变化不会更新统计信息，生产库应为 on"
        )
    if settings.get("checkpoint_warning") == "0":
        out.append("checkpoint_warning 为 0：检查点过于频繁时服务器日志不再提醒，建议保持默认 30s")
    total = checkpoints_timed + checkpoints_req
    if checkpoints_req >= CHECKPOINT_REQ_MIN and checkpoints_req > CHECKPOINT_REQ_SHARE * total:
        out.append(
            f"自统计重置以来 {total} 次检查点中 {checkpoints_req} 次因 WAL 写满而提前发生："
            "max_wal_size 偏小，批量载入变慢"
        )
    return out


def read(session: Session) -> tuple[dict[str, str], int, int]:
    """The settings `judge` reads (sizes in bytes) and the server's timed and requested checkpoints."""
    settings = {}
    rows = session.execute(
        text("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names)"),
        {
            "names": [m.name for m in MINIMUMS]
            + ["synchronous_commit", "checkpoint_warning", "TimeZone", "autovacuum"]
        },
    )
    for name, setting, unit in rows:
        settings[name] = str(int(setting) * _UNIT_BYTES[unit]) if unit in _UNIT_BYTES else setting
    # PostgreSQL 17 moved the checkpoint counts to pg_stat_checkpointer (the embedded server is 18).
    if int(session.execute(text("SHOW server_version_num")).scalar_one()) >= 170000:
        counts = "SELECT num_timed, num_requested FROM pg_stat_checkpointer"
    else:
        counts = "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"
    timed, req = session.execute(text(counts)).one()
    return settings, int(timed), int(req)


def warnings(*, session: Session) -> list[str]:
    """The warnings for this server's settings as this session sees them."""
    settings, timed, req = read(session)
    return judge(
        settings, checkpoints_timed=timed, checkpoints_req=req, city_zone=schedule_settings().time_zone
    )
