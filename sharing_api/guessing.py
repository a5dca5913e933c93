"""Failed verifications, limited per client and claim: no value can be learned by guessing it.

A verification compares what a client claims (a document number, a name, a birth date) with the record
and answers yes or no. A client allowed to verify a value it may not read could try candidates until
one says yes: the 46 numbers a masked ID number left with the birth date and sex beside it, every birth
date since 1930 for a document it holds. So every failed verification counts against what it claimed:
the document, and the name with the birth date. Once either has failed `verify_failures_per_day` times
in 24 hours (POPEX_SHARING_VERIFY_FAILURES_PER_DAY), the client's further verifications naming it are
answered `limited`, without comparing anything; the monitor raises an alert (verify_guessing).

The subjects are digests of the claim, not the person the database finds: the limit then depends on
nothing but the client's own earlier questions and answers, so it reveals nothing in turn (a limit kept
per person found would tell two documents of one person from documents of two, and a person outside
the client's scope from nobody). One client's verifications are serialised while they count, compare
and record (an advisory lock per client), so concurrent requests cannot each take the last try.
"""

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from sharing_api.config import sharing_settings
from sharing_api.schemas import VerifyQuery

# (namespace, client) for pg_advisory_lock(int, int): one client's verifications one at a time.
LOCK = text("SELECT pg_advisory_lock(hashtext('popex.verify'), hashtext(:client))")
UNLOCK = text("SELECT pg_advisory_unlock(hashtext('popex.verify'), hashtext(:client))")
# Behind a transaction pooler (POPEX_SHARING_TRANSACTION_POOLING) the lock and the unlock could reach
# different server connections, leaving the lock held: there the block is one transaction of the
# (autocommit) session, holding a transaction-level lock that its end releases, on one connection.
XACT_LOCK = text("BEGIN; SELECT pg_advisory_xact_lock(hashtext('popex.verify'), hashtext(:client))")
COUNT = text(
    """
    SELECT subject, count(*) AS failures FROM verify_failure
    WHERE client = :client AND subject = ANY(:subjects) AND failed_at > now() - interval '24 hours'
    GROUP BY subject
    """
)
RECORD = text(
    "INSERT INTO verify_failure (client, subject) SELECT :client, unnest(CAST(:subjects AS text[]))"
)


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def subjects(item: VerifyQuery, id_no: str, name: str | None) -> tuple[str, str]:
    """What a verification claims, as digests: the document, and the name with the birth date. `id_no`
    and `name` as compared (cleaned). A verification giving neither name nor birth date asks whether a
    number exists in scope: all of a client's such verifications share one identity (the empty one),
    so trying the numbers a masked one leaves is limited like any other guess."""
    birth = item.birth_date.isoformat() if item.birth_date else ""
    return _digest("document", item.id_type, id_no), _digest("identity", name or "", birth)


class Tries:
    """A client's failed verifications in the last 24 hours, per subject, and those added meanwhile."""

    def __init__(self, failures: Counter[str], limit: int) -> None:
        self._failures = failures
        self._limit = limit
        self.new: list[str] = []

    def exhausted(self, claimed: Sequence[str]) -> bool:
        """True when any of these subjects has failed as often as allowed."""
        return any(self._failures[s] >= self._limit for s in claimed)

    def failed(self, claimed: Sequence[str]) -> None:
        """Count a failed verification against each of its subjects."""
        for s in claimed:
            self._failures[s] += 1
            self.new.append(s)


@contextmanager
def tries(*, session: Session, client: str, claimed: Sequence[str], limit: int) -> Iterator[Tries]:
    """The client's tries at these subjects, under its lock; the failures added are recorded on exit."""
    pooled = sharing_settings().transaction_pooling
    session.execute(XACT_LOCK if pooled else LOCK, {"client": client})
    done = False
    try:
        rows = session.execute(COUNT, {"client": client, "subjects": sorted(set(claimed))}).all()
        counted = Tries(Counter({r.subject: r.failures for r in rows}), limit)
        yield counted
        if counted.new:
            session.execute(RECORD, {"client": client, "subjects": counted.new})
        done = True
    finally:
        if pooled:
            session.execute(text("COMMIT" if done else "ROLLBACK"))
        else:
            session.execute(UNLOCK, {"client": client})


# Per client over a window: the claims (documents, identities) that failed, and those that failed as
# often as allowed. failed_at is stored without a zone, in the database's.
PATTERNS = text(
    """
    SELECT client, count(*) AS claims, count(*) FILTER (WHERE n >= :limit) AS exhausted, sum(n) AS failures
    FROM (SELECT client, subject, count(*) AS n FROM verify_failure
          WHERE timezone(current_setting('TimeZone'), failed_at) > :start
            AND timezone(current_setting('TimeZone'), failed_at) <= :end
          GROUP BY client, subject) AS per_claim
    GROUP BY client ORDER BY client
    """
)


def patterns(*, session: Session, start: datetime, end: datetime, limit: int) -> Sequence[Row[Any]]:
    """Each client's failed verifications in start … end (client, claims, exhausted, failures)."""
    return session.execute(PATTERNS, {"start": start, "end": end, "limit": limit}).all()
