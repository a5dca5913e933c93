"""How long a client stays locked out after too many failed attempts (officers' logins, planners' keys).

A lock holds while `allowed` failures are inside the window; it opens when the `allowed`-th most recent
of them leaves it, which is what a refused user is told (in whole minutes, rounded up).
"""

import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session


def minutes_locked(
    session: Session,
    *,
    at: ColumnElement[datetime] | InstrumentedAttribute[datetime],
    where: ColumnElement[bool],
    allowed: int,
    window: timedelta,
) -> int:
    """Minutes until fewer than `allowed` of the failures matching `where` (their time: `at`) are in the
    window; 0 when that is already so."""
    left = session.scalar(
        select(func.extract("epoch", at + window - func.now()))
        .where(where, at > func.now() - window)
        .order_by(at.desc())
        .offset(allowed - 1)
        .limit(1)
    )
    return max(1, math.ceil(float(left) / 60)) if left is not None else 0
