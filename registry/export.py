"""Operator exports of the golden records (the sharing API is the masked, policy-bound way out)."""

import csv
import os
from pathlib import Path
from typing import TextIO

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.operator import operator_detail, purpose_problem

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


EXPORT_CHUNK = 10_000  # persons per audit record of an export (and per read)
PERSONS_SQL = text(
    "SELECT id, person_no, id_no, name, sex, birth_date, status, population_type, community_code FROM person "
    "WHERE status <> 'retired' AND id > :after ORDER BY id LIMIT :n"
)


def private_file(path: Path) -> TextIO:
    """A file for unmasked personal data, readable and writable by its owner only (0600, also when it
    existed), UTF-8 with a BOM so that Excel reads the Chinese names."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8-sig", newline="")


def write_persons_csv(
    *, session: Session, stream: TextIO, purpose: str, stated_actor: str | None, destination: str
) -> int:
    """Every current golden record (retired numbers left out), streamed; returns the rows written.

    Unmasked personal data leaves here, so the export is audited before its first row is written
    (committed: an export that fails part-way, or is stopped, is still on record), with the OS user,
    the actor stated beside it, the purpose and the destination; then, before each chunk of rows is
    written, a record naming its persons (so the export is in each one's access history); and at the
    end the row count. Raises ValueError when the purpose says nothing.
    """
    problem = purpose_problem(purpose)
    if problem:
        raise ValueError(problem)
    detail = {**operator_detail(stated_actor=stated_actor, purpose=purpose), "to": destination}
    actor = detail["os_user"]
    record_audit(session=session, actor=actor, action="export.persons", detail=detail)
    session.commit()
    writer = csv.writer(stream)
    writer.writerow(PERSON_COLUMNS)
    count, after = 0, 0
    while rows := session.execute(PERSONS_SQL, {"after": after, "n": EXPORT_CHUNK}).all():
        after = rows[-1].id
        numbers = [r.person_no for r in rows]
        record_audit(
            session=session,
            actor=actor,
            action="export.persons.rows",
            detail={**detail, "person_nos": numbers},
        )
        session.commit()  # on record before these rows leave
        writer.writerows([_safe(v) for v in r[1:]] for r in rows)
        count += len(rows)
    record_audit(
        session=session,
        actor=actor,
        action="export.persons.finished",
        detail={"rows": count, "to": destination},
    )
    return count
