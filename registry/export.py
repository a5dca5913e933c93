"""Operator exports of the golden records (the sharing API is the masked, policy-bound way out)."""

import csv
from typing import TextIO

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.audit import record_audit

PERSON_COLUMNS = (
    "person_id",
    "id_no",
    "name",
    "sex",
    "birth_date",
    "status",
    "population_type",
    "community_code",
)


def _safe(value: object) -> str:
    text_value = "" if value is None else str(value)
    return f"'{text_value}" if text_value.startswith(("=", "+", "-", "@", "\t", "\r")) else text_value


def write_persons_csv(*, session: Session, stream: TextIO, actor: str, purpose: str, destination: str) -> int:
    """Every current golden record (retired numbers left out), streamed; returns the rows written.

    Unmasked personal data leaves here, so the export is audited before its first row is written
    (committed: an export that fails part-way, or is stopped, is still on record, with who, why and
    where to) and again with its row count when it is complete.
    """
    record_audit(
        session=session, actor=actor, action="export.persons", detail={"purpose": purpose, "to": destination}
    )
    session.commit()
    writer = csv.writer(stream)
    writer.writerow(PERSON_COLUMNS)
    rows = session.execute(
        text(
            "SELECT person_no, id_no, name, sex, birth_date, status, population_type, community_code FROM person "
            "WHERE status <> 'retired' ORDER BY id"
        ).execution_options(yield_per=10_000)
    )
    count = 0
    for row in rows:
        writer.writerow([_safe(v) for v in row])
        count += 1
    record_audit(
        session=session,
        actor=actor,
        action="export.persons.finished",
        detail={"rows": count, "to": destination},
    )
    return count
