"""The push API over HTTP: department keys, size limit, duplicates, receipts scoped to the department."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from base.settings import storage_settings
from exchange import flows
from exchange.cli import new_push_key
from exchange.dependencies import get_factory
from popex.app import create_app
from tests.feedfiles import hj, write_feed


@pytest.fixture
def client(factory, session, areas, tmp_path, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setenv("POPEX_LANDING_DIR", str(tmp_path / "landing"))
    storage_settings.cache_clear()
    app = create_app()
    app.dependency_overrides[get_factory] = lambda: factory
    with TestClient(app) as test_client:
        yield test_client
    storage_settings.cache_clear()


@pytest.fixture
def gaj_key(session) -> str:
    return new_push_key(session=session, department="gaj")


def upload(client: TestClient, path, key: str | None, **params) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.post(
        "/api/v1/exchange/files",
        files={"file": (path.name, path.read_bytes())},
        headers=headers,
        params=params,
    )
    return {"status": response.status_code, **response.json()}


def snapshot(tmp_path):
    return write_feed(
        tmp_path,
        "gaj_hj",
        date(2026, 11, 1),
        [
            hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"),
            hj("H2", "330102198505050021", "李娜", "女", "1985-05-05"),
        ],
    )


def test_push_process_and_read_the_receipt(client, gaj_key, tmp_path) -> None:
    result = upload(client, snapshot(tmp_path), gaj_key, process=True)
    assert result["status"] == 202 and result["state"] == "completed" and not result["duplicate"]
    receipt = client.get(result["receipt_url"], headers={"Authorization": f"Bearer {gaj_key}"}).json()
    assert (receipt["received"], receipt["accepted"]) == (2, 2)
    assert [r["status"] for r in receipt["rows"]] == ["accepted", "accepted"]
    assert all(r["person_id"].startswith("P") for r in receipt["rows"])
    assert receipt["next_after_row"] is None
    csv_text = client.get(result["receipt_url"] + ".csv", headers={"Authorization": f"Bearer {gaj_key}"}).text
    assert csv_text.splitlines()[0] == "row,record_key,status,person_id,reasons"
    assert [line.split(",")[3] for line in csv_text.splitlines()[1:]] == [
        r["person_id"] for r in receipt["rows"]
    ]
    # A receipt of millions of rows comes a page at a time as JSON (the CSV streams them all).
    auth = {"Authorization": f"Bearer {gaj_key}"}
    first = client.get(result["receipt_url"], params={"limit": 1}, headers=auth).json()
    assert [r["row"] for r in first["rows"]] == [1] and first["next_after_row"] == 1
    rest = client.get(result["receipt_url"], params={"after_row": 1, "limit": 1}, headers=auth).json()
    assert [r["row"] for r in rest["rows"]] == [2] and rest["next_after_row"] is None
    assert client.get(result["receipt_url"], params={"limit": 0}, headers=auth).status_code == 422
    again = upload(client, snapshot(tmp_path), gaj_key, process=True)
    assert again["duplicate"] and again["batch_id"] == result["batch_id"]


def test_pushes_without_processing_are_taken_up_by_the_daily_run_however_named(
    client, factory, session, gaj_key, tmp_path
) -> None:
    first = upload(client, snapshot(tmp_path), gaj_key)
    assert first["state"] == "received"
    # The same name again with other content (a correction sent without _2): a batch of its own,
    # not an overwrite of the first one's file.
    corrected = write_feed(
        tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H3", "330102199001010011", "王芳", "女", "1990-01-01")]
    )
    second = upload(client, corrected, gaj_key)
    assert second["state"] == "received" and second["batch_id"] != first["batch_id"]
    assert not list((tmp_path / "landing").glob("*.csv"))  # nothing left where a push could overwrite it

    day = flows.receive_landing(factory, tmp_path / "landing", date(2026, 11, 1))
    assert day == [first["batch_id"], second["batch_id"]]
    states = [flows.process_batch(factory, b) for b in day]
    assert states == ["completed", "completed"]
    deliveries = session.scalar(text("SELECT count(*) FROM delivery WHERE batch_id = ANY(:b)"), {"b": day})
    assert deliveries == 2  # one per push: the run adds none


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [(None, 401, "AUTH_REQUIRED"), ("pk_wrong", 401, "AUTH_INVALID")],
)
def test_push_needs_a_valid_key(client, tmp_path, key, status, code) -> None:
    result = upload(client, snapshot(tmp_path), key)
    assert (result["status"], result["code"]) == (status, code)


def test_a_department_pushes_only_its_own_sources_and_reads_only_its_receipts(
    client, session, gaj_key, tmp_path
) -> None:
    health_key = new_push_key(session=session, department="wjw")
    refused = upload(client, snapshot(tmp_path), health_key)
    assert (refused["status"], refused["code"]) == (403, "SOURCE_NOT_YOURS")
    mine = upload(client, snapshot(tmp_path), gaj_key, process=True)
    other = client.get(mine["receipt_url"], headers={"Authorization": f"Bearer {health_key}"})
    assert other.status_code == 404 and other.json()["code"] == "BATCH_NOT_FOUND"


def test_upload_over_the_limit_is_refused_and_nothing_registered(
    client, gaj_key, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("POPEX_MAX_UPLOAD_BYTES", "100")
    storage_settings.cache_clear()
    result = upload(client, snapshot(tmp_path), gaj_key)
    assert (result["status"], result["code"]) == (413, "FILE_TOO_LARGE")
    assert not list((tmp_path / "landing").glob("*.csv"))


def test_badly_named_file_is_refused_with_the_reason(client, gaj_key, tmp_path) -> None:
    path = tmp_path / "户籍数据.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    result = upload(client, path, gaj_key)
    assert (result["status"], result["code"]) == (400, "FILE_NAME")


def test_the_duplicate_check_is_per_department(client, session, gaj_key, tmp_path) -> None:
    """Bytes equal to another department's file are this department's own file: not that one's batch."""
    rsj_key = new_push_key(session=session, department="rsj")
    theirs = upload(client, snapshot(tmp_path), gaj_key)
    copy = tmp_path / "rsj_cb_20261101.csv"
    copy.write_bytes(snapshot(tmp_path).read_bytes())
    mine = upload(client, copy, rsj_key)
    assert mine["status"] == 202 and not mine["duplicate"], mine
    assert mine["batch_id"] != theirs["batch_id"]
    again = upload(client, copy, rsj_key)  # its own file again: a duplicate of its own batch
    assert again["duplicate"] and again["batch_id"] == mine["batch_id"]
