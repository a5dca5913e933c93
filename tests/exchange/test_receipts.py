"""Every settled batch has its receipt: a rejected file and a quarantined batch get one at once, saying
why (row 0, the file as a whole), written once; a quarantined batch released and completed later gets
its final receipt in place of the quarantine's."""

import csv
import io
from datetime import date
from pathlib import Path

from base.db import transaction
from exchange import flows, gate, service
from registry.models import Batch
from tests.exchange.test_gate import _rows
from tests.feedfiles import write_feed

DAY = date(2026, 11, 2)


def _lines(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_a_rejected_file_gets_its_receipt_once(factory, areas, tmp_path) -> None:
    path = tmp_path / "gaj_hj_20261101.csv"
    path.write_bytes(bytes(range(256)) * 64)  # no encoding reads it
    first = flows.ingest_file(factory, path)
    assert first.state == "rejected"
    receipt = tmp_path / "outbox" / "gaj_hj" / f"{path.name}.receipt.csv"
    header, whole, *rows = _lines(receipt)
    assert header == ["row", "record_key", "status", "person_id", "reasons"] and rows == []
    with factory() as session:
        error = session.get_one(Batch, first.batch_id).error
    assert whole == ["0", "", "rejected", "", f"整文件拒收：{error}"] and error.startswith("[")

    receipt.write_text("seen by the department\n", encoding="utf-8")
    again = flows.ingest_file(factory, path)  # nothing left to do: the receipt is not written again
    assert (again.batch_id, again.state, again.steps) == (first.batch_id, "rejected", [])
    assert receipt.read_text(encoding="utf-8") == "seen by the department\n"


def test_a_quarantined_batch_gets_its_receipt_and_after_its_release_the_final_one(
    factory, areas, tmp_path
) -> None:
    path = write_feed(tmp_path, "gaj_hj", DAY, _rows(0, 800, DAY, bad=60))
    held = flows.ingest_file(factory, path)
    assert held.state == "quarantined"
    receipt = tmp_path / "outbox" / "gaj_hj" / f"{path.name}.receipt.csv"
    _header, whole, *rows = _lines(receipt)
    assert whole[:4] == ["0", "", "quarantined", ""]
    assert whole[4].startswith(
        "批次质量闸门未通过，整批已隔离，未入库，待平台核查后处理：身份证号码合规率 92.5%（800 行中 60 行不合规）"
    )
    assert len(rows) == 800 and not any(r[3] for r in rows)  # no row linked to a person

    written = receipt.stat().st_mtime_ns
    assert (
        flows.process_batch(factory, held.batch_id) == "quarantined"
    )  # a later run leaves it, and its receipt
    assert receipt.stat().st_mtime_ns == written

    with transaction(factory) as session:
        gate.release_batch(session=session, batch_id=held.batch_id, actor="操作员", note="核对无误")
    assert flows.process_batch(factory, held.batch_id) == "completed"
    _header, *final = _lines(receipt)
    assert len(final) == 800 and final[0][0] == "1"  # the final receipt replaces the quarantine's
    assert all(r[3].startswith("P") for r in final if r[2] == "accepted")
    with factory() as session:
        fresh = service.build_receipt(session=session, batch_id=held.batch_id).csv_text()
    assert receipt.read_bytes() == fresh.encode("utf-8-sig")
    assert [p.name for p in (tmp_path / "outbox").rglob("*") if p.is_file()] == [receipt.name]
