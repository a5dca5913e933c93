"""Nightly jobs (what the collection_daily DAG calls): forward the day's accepted rows, then clearance."""

import csv
import io
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import func, select, update

from base.db import SessionFactory, transaction
from collection import service
from collection.models import SubmissionRow
from exchange import service as exchange_service
from registry.models import Batch


def forward_day(factory: SessionFactory, day: date) -> int | None:
    """Write every accepted row not yet forwarded, of this day or an earlier one, as one sq_cj CSV named
    for the day and hand it to the exchange. A row entered after its own day's run (a late upload, a
    correction accepted later) goes with the next run's file instead of never.

    The file is received (archived, registered as a batch, channel "collection") in the same
    transaction that marks the rows as forwarded: either both or neither. The caller (the DAG) then
    runs the batch through parse → gate → resolve → merge → publish like every department's file,
    so the change events subscribed departments read come from the same path. A re-run after a
    failure writes the same bytes, which the exchange recognises: nothing twice.
    Returns the batch id, or None when there was nothing to forward.
    """
    columns = service.spec().column_names
    with transaction(factory) as session:
        rows = session.execute(
            select(SubmissionRow.id, SubmissionRow.raw)
            .where(
                SubmissionRow.work_date <= day,  # a backfill of an old day takes no rows of later days
                SubmissionRow.status == "accepted",
                SubmissionRow.batch_id.is_(None),
            )
            .order_by(SubmissionRow.id)
        ).all()
        earlier = session.scalar(
            select(func.count())
            .select_from(Batch)
            .where(Batch.source == service.SOURCE, Batch.as_of_date == day)
        )
    if not rows:
        return None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[raw.get(c, "") for c in columns] for _, raw in rows])
    seq = (earlier or 0) + 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{service.SOURCE}_{day:%Y%m%d}{f'_{seq}' if seq > 1 else ''}.csv"
        path.write_bytes(out.getvalue().encode("utf-8-sig"))
        with transaction(factory) as session:
            batch_id = exchange_service.receive_file(
                session=session, path=path, channel="collection"
            ).batch.id
            session.execute(
                update(SubmissionRow)
                .where(SubmissionRow.id.in_([row_id for row_id, _ in rows]))
                .values(batch_id=batch_id)
            )
    return batch_id


def clear_day(factory: SessionFactory, day: date) -> dict[str, bool]:
    """Store every community's clearance of the day; community code → cleared."""
    with transaction(factory) as session:
        return {c.community_code: c.cleared for c in service.record_clearance(session=session, day=day)}
