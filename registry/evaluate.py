"""Linking quality against a synthetic city's ground truth: pairwise precision, recall and F1.

Two rows are a predicted pair when they were linked to the same person (retired numbers followed to
their survivor), and a true pair when the truth says they are about the same person. Rows the
pipeline rejected are left out of both (they are reported, not linked); rows waiting in review count
as linked to nobody, so they cost recall.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class LinkQuality:
    """Pairwise figures and the rows behind them."""

    rows: int
    rejected_rows: int
    review_rows: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    true_persons: int
    golden_persons: int

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are true."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs that were predicted."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate_links(*, session: Session, truth_rows: Path) -> LinkQuality:
    """Compare the links in the database with truth/rows.csv (file,row,person)."""
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS truth_row"))
    conn.execute(text("CREATE TEMP TABLE truth_row (file text, row_no int, person text)"))
    with truth_rows.open(encoding="utf-8") as fh:
        next(fh)
        buffer = io.StringIO(fh.read())
    conn.connection.cursor().copy_expert("COPY truth_row FROM STDIN WITH (FORMAT csv)", buffer)
    conn.execute(text("DELETE FROM truth_row WHERE person IS NULL OR person = ''"))
    conn.execute(text("DROP TABLE IF EXISTS eval_row"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE eval_row AS
            WITH RECURSIVE survivor(id, final) AS (
                SELECT id, id FROM person WHERE merged_into IS NULL
                UNION ALL
                SELECT p.id, s.final FROM person p JOIN survivor s ON p.merged_into = s.id
            )
            SELECT t.person AS truth, r.status, coalesce(s.final, -r.id) AS predicted
            FROM truth_row t
            JOIN (SELECT DISTINCT ON (file_name) id, file_name FROM batch ORDER BY file_name, id) b
                 ON b.file_name = t.file
            JOIN source_record r ON r.batch_id = b.id AND r.row_no = t.row_no
            LEFT JOIN link l ON l.source_record_id = r.id
            LEFT JOIN survivor s ON s.id = l.person_id
            """
        )
    )
    counts = conn.execute(
        text(
            """
            SELECT count(*) FILTER (WHERE status <> 'rejected'),
                   count(*) FILTER (WHERE status = 'rejected'),
                   count(*) FILTER (WHERE status = 'review'),
                   (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) n FROM eval_row
                        WHERE status <> 'rejected' GROUP BY truth) x),
                   (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) n FROM eval_row
                        WHERE status <> 'rejected' GROUP BY predicted) x),
                   (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) n FROM eval_row
                        WHERE status <> 'rejected' GROUP BY truth, predicted) x),
                   (SELECT count(DISTINCT truth) FROM eval_row WHERE status <> 'rejected'),
                   (SELECT count(*) FROM person WHERE status <> 'retired')
            FROM eval_row
            """
        )
    ).one()
    return LinkQuality(*(int(v) for v in counts))


def write_errors(*, session: Session, out: Path, limit: int = 200) -> None:
    """The truth persons split over several golden records, and golden records mixing truth persons."""
    conn = session.connection()
    rows = conn.execute(
        text(
            """
            (SELECT 'split' AS kind, truth::text AS key, count(DISTINCT predicted) AS n FROM eval_row
             WHERE status <> 'rejected' GROUP BY truth HAVING count(DISTINCT predicted) > 1 LIMIT :n)
            UNION ALL
            (SELECT 'mixed', predicted::text, count(DISTINCT truth) FROM eval_row
             WHERE status <> 'rejected' GROUP BY predicted HAVING count(DISTINCT truth) > 1 LIMIT :n)
            """
        ),
        {"n": limit},
    ).all()
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "key", "count"])
        writer.writerows(rows)
