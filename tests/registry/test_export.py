"""`popex export persons`: every current golden record, unmasked, audited before the first row leaves."""

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from popex.cli import app
from registry.export import PERSON_COLUMNS, write_persons_csv
from registry.models import AuditLog
from registry.operator import os_user
from tests.factories import make_person


def _exports(session: Session) -> list[tuple[str, str, dict[str, Any]]]:
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
        session=session, stream=out, stated_actor="clerk-3", purpose="普查比对", destination="x.csv"
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
    me = os_user()
    named = {"os_user": me, "stated_actor": "clerk-3", "purpose": "普查比对", "to": "x.csv"}
    started, chunk, finished = _exports(session)[-3:]
    assert started == (me, "export.persons", named)
    assert chunk == (me, "export.persons.rows", {**named, "person_nos": [r[0] for r in rows[1:]]})
    assert finished == (me, "export.persons.finished", {"rows": count, "to": "x.csv"})


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
            session=session, stream=Breaks(), stated_actor=None, purpose="普查比对", destination="y.csv"
        )
    session.rollback()  # as the command's session scope does on an error
    named = {"os_user": os_user(), "purpose": "普查比对", "to": "y.csv"}
    started, chunk = _exports(session)[before:]
    assert started == (os_user(), "export.persons", named)
    assert chunk[1] == "export.persons.rows" and len(chunk[2]["person_nos"]) >= 2  # the rows it tried


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
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o600
    actor, action, detail = _exports(session)[-3]
    assert (actor, action, detail["purpose"]) == (os_user(), "export.persons", "普查比对")
    assert detail["stated_actor"] == "clerk-7"  # beside the OS user, not instead of it
    assert detail["to"] == str((tmp_path / "a.csv").resolve())


@pytest.mark.parametrize("purpose", ["", "   ", "...", "——！", "ab", " x y "])
def test_a_purpose_that_says_nothing_is_refused(session: Session, tmp_path: Path, purpose: str) -> None:
    before = len(_exports(session))
    result = CliRunner().invoke(
        app, ["export", "persons", "--purpose", purpose, "--out", str(tmp_path / "b.csv")]
    )
    assert result.exit_code == 2 and "须说明用途" in result.output
    assert not (tmp_path / "b.csv").exists() and len(_exports(session)) == before
    with pytest.raises(ValueError, match="须说明用途"):
        write_persons_csv(
            session=session, stream=io.StringIO(), stated_actor=None, purpose=purpose, destination="-"
        )


def test_an_existing_file_is_made_private(session: Session, tmp_path: Path, monkeypatch) -> None:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)
    target = tmp_path / "c.csv"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    result = CliRunner().invoke(app, ["export", "persons", "--purpose", "人口普查比对", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o777 == 0o600
