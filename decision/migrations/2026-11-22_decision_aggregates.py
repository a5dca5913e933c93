"""Decision analysis aggregates: population cells, monthly flows, applied batches, refresh state.

The tables live in their own PostgreSQL schema `decision`: plain SQL tables written set-wise by
decision/service.py (no ORM models, so the registry's model-versus-migration check does not see them).

Revision ID: 0201_decision_aggregates
Revises:
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0201_decision_aggregates"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("decision",)
depends_on: str | Sequence[str] | None = "0001_unified_schema"

UPGRADE_SQL = """
CREATE SCHEMA decision;

-- Population counts as prefix sums over time. A person's active time in one cell contributes +1 on
-- the day it starts and -1 on the day it ends, stored twice: per month (grain M) and per day (D).
-- The count on date X = M rows of the months before X's + D rows of X's month up to X.
-- cube: 'pop' (cell = type|sex|age band), 'type' (cell = type), 'origin' (cell = province code of
-- floating people). area_code: '' for the city, else a district, street or community code.
-- Keys are codes: compared byte-wise (COLLATE "C"), which is what makes the index fast to search.
CREATE TABLE decision.cell (
    cube varchar(8) COLLATE "C" NOT NULL,
    area_code varchar(12) COLLATE "C" NOT NULL,
    grain char(1) NOT NULL CONSTRAINT ck_cell_grain CHECK (grain IN ('M', 'D')),
    period date NOT NULL,
    cell varchar(48) COLLATE "C" NOT NULL,
    n integer NOT NULL,
    -- grain and period first: the rows a refresh writes (a few days) sit together in the index.
    CONSTRAINT pk_cell PRIMARY KEY (grain, period, cube, area_code, cell)
) WITH (fillfactor = 90);  -- room for in-place (HOT) updates of n

-- Births, deaths, moves in and out (and other exits: records retired as duplicates) per month.
CREATE TABLE decision.flow (
    area_code varchar(12) COLLATE "C" NOT NULL,
    month date NOT NULL,
    kind varchar(8) NOT NULL
        CONSTRAINT ck_flow_kind CHECK (kind IN ('birth', 'death', 'in', 'out', 'other')),
    n integer NOT NULL,
    CONSTRAINT pk_flow PRIMARY KEY (area_code, month, kind)
);

-- Batches whose person versions are in the aggregates: refreshing one of them again is a no-op.
CREATE TABLE decision.applied_batch (
    batch_id bigint NOT NULL CONSTRAINT pk_applied_batch PRIMARY KEY
        CONSTRAINT fk_applied_batch_batch_id_batch REFERENCES public.batch (id),
    applied_at timestamp NOT NULL DEFAULT now(),
    how varchar(8) NOT NULL CONSTRAINT ck_applied_batch_how CHECK (how IN ('refresh', 'rebuild')),
    persons integer NOT NULL DEFAULT 0,
    rows_changed integer NOT NULL DEFAULT 0,
    seconds double precision NOT NULL DEFAULT 0
);

-- One row: the time window the aggregates cover and the versions without a batch they include.
CREATE TABLE decision.state (
    id smallint NOT NULL CONSTRAINT pk_state PRIMARY KEY CONSTRAINT ck_state_one CHECK (id = 1),
    epoch date NOT NULL,
    horizon date NOT NULL,
    version_watermark bigint NOT NULL,
    rebuilt_at timestamp NOT NULL DEFAULT now()
);

-- The day a person born on b reaches age a: their birthday, or 1 March for a 29 February birth in
-- a common year (the same rule as age()).
-- (Neither function is STRICT: a SQL function is inlined into the query only then, and NULL in gives
-- NULL out anyway.)
CREATE FUNCTION decision.birthday(b date, a integer) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN extract(month FROM b) = 2 AND extract(day FROM b) = 29
                THEN ((b - 1) + make_interval(years => a))::date + 1
                ELSE (b + make_interval(years => a))::date END
$$;

-- Completed years of age on day d (negative before birth): the difference of the dates written as
-- yyyymmdd, in ten thousands; the same as age(), and much faster.
CREATE FUNCTION decision.age_years(b date, d date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((date_part('year', d) - date_part('year', b)) * 10000
            + (date_part('month', d) - date_part('month', b)) * 100
            + date_part('day', d) - date_part('day', b))::integer / 10000
$$;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute("DROP SCHEMA decision CASCADE")
