"""`popex export persons`: every current golden record, unmasked, audited before the first row leaves."""

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from popex.cli import app
from registry.export import PERSON_COLUMNS, write_persons_csv
from registry.models import AuditLog
from tests.factories import make_person


def _exports(session: Session) -> list[tuple[str, str, dict]]:
    rows = session.execute(
        select(AuditLog.actor, AuditLog.action, AuditLog.detail)
        .where(AuditLog.action.like("export.%"))
        .order_by(AuditLog.id)
    )
    return [tuple(r) for r in rows]


def test_every_current_record_is_written_and_the_export_audited(session: Session) -> None:
    kept = make_person(session, name="=HYPERLINK(1)", id_no="330102199003071234")
    make_person(session, name="并入他人", status="retired", merged_into=kept.id)
    out = io.StringIO()
    count = write_persons_csv(
        session=session, stream=out, actor="clerk-3", purpose="普查比对", destination="x.csv"
    )
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == list(PERSON_COLUMNS)
    mine = [r for r in rows[1:] if r[0] == kept.person_no]
    assert mine == [
        [
            kept.person_no,
            "330102199003071234",
            "'=HYPERLINK(1)",
            "1",
            "1990-03-07",
            "active",
            "registered",
            kept.community_code,
        ]
    ]
    assert "并入他人" not in out.getvalue() and count == len(rows) - 1
    assert _exports(session)[-2:] == [
        ("clerk-3", "export.persons", {"purpose": "普查比对", "to": "x.csv"}),
        ("clerk-3", "export.persons.finished", {"rows": count, "to": "x.csv"}),
    ]


class Breaks(io.StringIO):
    """A destination that fails after its first lines (a full disk, a closed pipe)."""

    def write(self, text: str) -> int:
        if self.tell() > 0:
            raise OSError("No space left on device")
        return super().write(text)


def test_an_export_that_fails_part_way_is_still_on_record(session: Session) -> None:
    make_person(session)
    make_person(session)
    before = len(_exports(session))
    with pytest.raises(OSError):
        write_persons_csv(
            session=session, stream=Breaks(), actor="clerk-3", purpose="普查比对", destination="y.csv"
        )
    session.rollback()  # as the command's session scope does on an error
    assert _exports(session)[before:] == [
        ("clerk-3", "export.persons", {"purpose": "普查比对", "to": "y.csv"})
    ]


def test_the_command_needs_a_purpose_and_writes_a_file_excel_opens(
    session: Session, tmp_path: Path, monkeypatch
) -> None:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)
    make_person(session, name="李雷")
    runner = CliRunner()
    refused = runner.invoke(app, ["export", "persons", "--out", str(tmp_path / "a.csv")])
    assert refused.exit_code == 2 and "--purpose" in refused.output
    assert not (tmp_path / "a.csv").exists()
    done = runner.invoke(
        app,
        [
            "export",
            "persons",
            "--purpose",
            "普查比对",
            "--out",
            str(tmp_path / "a.csv"),
            "--actor",
            "clerk-7",
        ],
    )
    assert done.exit_code == 0, done.output
    written = (tmp_path / "a.csv").read_bytes()
    assert written.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads the Chinese names
    assert "李雷" in written.decode("utf-8-sig")
    actor, action, detail = _exports(session)[-2]
    assert (actor, action, detail["purpose"]) == ("clerk-7", "export.persons", "普查比对")
    assert detail["to"] == str((tmp_path / "a.csv").resolve())
