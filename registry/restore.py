"""After the database was restored from a backup: the numbers given out since the backup are not given
out again.

Between the backup and the loss the platform gave out numbers that others keep: persons' numbers
(统一人口编号, in departments' systems, receipts and exports), change events' ids (the sharing feed's
subscribers keep the last one as their cursor) and batch numbers (receipts, operators' messages). The
restored sequences stand where they stood at the backup, so the next new person would get a number a
department already holds for someone else, and a subscriber whose cursor is past the restored events
would never be served the new ones. `skip_ahead` moves each sequence past anything the lost days can
have given out: by its whole history so far (at least FLOOR), as no backup is older than the platform.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.audit import record_audit

# The sequences whose numbers leave the database, with what they number (Chinese).
VISIBLE_SEQUENCES = {
    "person_no_seq": "统一人口编号",
    "change_event_id_seq": "变更事件编号（订阅方的游标）",
    "batch_id_seq": "批次号",
}
FLOOR = 10_000_000  # more than a whole city's first load gives out


@dataclass(frozen=True)
class Skipped:
    """A sequence moved ahead: its name, what it numbers, where it stood and where it stands now."""

    sequence: str
    numbers: str
    before: int
    after: int


def skip_ahead(*, session: Session, actor: str, note: str) -> list[Skipped]:
    """Move every visible sequence ahead by its own value (at least FLOOR), audited (db.restored)."""
    skipped = []
    for sequence, numbers in VISIBLE_SEQUENCES.items():
        before = session.scalar(
            text("SELECT coalesce(last_value, 0) FROM pg_sequences WHERE sequencename = :s"), {"s": sequence}
        )
        if before is None:
            raise LookupError(f"序列 {sequence} 不存在：数据库未迁移？")
        after = int(before) + max(int(before), FLOOR)
        session.execute(text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": after})
        skipped.append(Skipped(sequence, numbers, int(before), after))
    record_audit(
        session=session,
        actor=actor,
        action="db.restored",
        detail={"note": note, "sequences": {s.sequence: [s.before, s.after] for s in skipped}},
    )
    return skipped
