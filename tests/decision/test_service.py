"""The aggregates agree with a direct recount, answer as-of-date questions, and refresh incrementally."""

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision import service
from decision.dimensions import ELDERLY, FIVE_YEAR_GROUPS, SCHOOL_AGE_LABELS, SCHOOL_AGES
from decision.indicators import ALL, FLOW_KINDS, Key, build_dashboard, pop_key, published_counts
from tests.decision.conftest import add_person, change, random_batch, random_population
from tests.factories import make_batch
from tests.registry.test_history import merge_record

EPOCH, HORIZON = date(2025, 1, 1), date(2028, 1, 1)
DATES = [
    date(2025, 3, 1),
    date(2025, 6, 30),
    date(2026, 2, 28),
    date(2026, 3, 1),
    date(2026, 12, 31),
    date(2027, 7, 15),
]


def true_counts(session: Session, area: str, day: date) -> dict[Key, int]:
    """The dashboard's counts before perturbation, by key."""
    return {c.key: c.true for c in published_counts(session=session, area_code=area, as_of=day)}


def snapshot(session: Session) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    cells = session.execute(
        text("SELECT cube, area_code, grain, period, cell, n FROM decision.cell ORDER BY 1,2,3,4,5")
    )
    flows = session.execute(text("SELECT area_code, month, kind, n FROM decision.flow ORDER BY 1,2,3"))
    return [tuple(r) for r in cells], [tuple(r) for r in flows]


def test_aggregates_agree_with_recount_at_every_date(session: Session, communities: list[str]) -> None:
    random_population(session, communities, 300, seed=7)
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    for day in DATES:
        recounted = service.recount(session=session, as_of=day)
        assert recounted, day
        assert service.aggregate_cells(session=session, as_of=day) == recounted, day


def test_population_as_of_dates_and_ages(session: Session, communities: list[str]) -> None:
    c1, c2 = communities[0], communities[-1]
    leap = add_person(session, valid_from=date(2025, 1, 1), birth_date=date(2008, 2, 29), community_code=c1)
    add_person(session, valid_from=date(2025, 1, 1), birth_date=date(1966, 3, 1), sex="2", community_code=c1)
    late = add_person(session, valid_from=date(2026, 5, 10), birth_date=date(1990, 1, 1), community_code=c2)
    batch = make_batch(session, as_of=date(2026, 9, 1))
    change(session, leap, batch=batch, valid_from=date(2026, 9, 1), community_code=c2)
    change(session, late, batch=batch, valid_from=date(2026, 8, 31), status="dead")
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)

    def pop(day: date, area: str = "") -> dict[str, int]:
        counts = true_counts(session, area, day)
        return {g.label: n for g in FIVE_YEAR_GROUPS if (n := counts[pop_key(ages=g)])}

    # 2026-02-28: the 29 February child is still 17, the other woman still 59.
    assert pop(date(2026, 2, 28)) == {"15-19岁": 1, "55-59岁": 1}
    # 2026-03-01: both have had their birthday (1 March for a 29 February birth in a common year).
    assert pop(date(2026, 3, 1)) == {"15-19岁": 1, "60-64岁": 1}
    assert pop(date(2026, 6, 1)) == {"15-19岁": 1, "60-64岁": 1, "35-39岁": 1}
    assert pop(date(2026, 8, 31)) == {"15-19岁": 1, "60-64岁": 1}
    assert pop(date(2026, 8, 31), c2) == {}
    assert pop(date(2026, 9, 1), c2) == {"15-19岁": 1}
    special = true_counts(session, "", date(2026, 3, 1))
    labels = [(SCHOOL_AGE_LABELS[r.key], r) for r in SCHOOL_AGES] + [(r.label, r) for r in ELDERLY]
    assert {label: special[pop_key(ages=r)] for label, r in labels} == {
        "学前（3-5岁）": 0,
        "小学（6-11岁）": 0,
        "初中（12-14岁）": 0,
        "高中（15-17岁）": 0,
        "60岁及以上": 1,
        "65岁及以上": 0,
        "80岁及以上": 0,
    }
    assert service.aggregate_cells(session=session, as_of=date(2026, 2, 28))["pop", "", "registered|1|6"] == 1
    assert service.aggregate_cells(session=session, as_of=date(2026, 3, 1))["pop", "", "registered|1|7"] == 1


def test_flows_per_month(session: Session, communities: list[str]) -> None:
    c1, c2, other_district = communities[0], communities[1], communities[4]
    people = [add_person(session, valid_from=date(2025, 1, 1), community_code=c1) for _ in range(4)]
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    batch = make_batch(session, as_of=date(2026, 3, 20))
    add_person(
        session, batch=batch, valid_from=date(2026, 3, 2), birth_date=date(2026, 3, 2), community_code=c1
    )
    change(session, people[0], batch=batch, valid_from=date(2026, 3, 5), status="dead")
    change(session, people[1], batch=batch, valid_from=date(2026, 3, 6), community_code=c2)  # same street
    change(session, people[2], batch=batch, valid_from=date(2026, 4, 1), community_code=other_district)
    change(session, people[3], batch=batch, valid_from=date(2026, 4, 2), status="left")
    add_person(
        session, batch=batch, valid_from=date(2026, 4, 3), birth_date=date(1980, 1, 1), community_code=c2
    )
    result = service.refresh_after_batch(session=session, batch_id=batch.id)
    assert result.how == "refresh"
    assert result.persons == 6

    flows = {
        (a, m.strftime("%Y-%m"), k): n
        for a, m, k, n in session.execute(text("SELECT area_code, month, kind, n FROM decision.flow"))
    }
    assert flows == {
        ("", "2026-03", "birth"): 1,
        (c1[:6], "2026-03", "birth"): 1,
        (c1[:9], "2026-03", "birth"): 1,
        (c1, "2026-03", "birth"): 1,
        ("", "2026-03", "death"): 1,
        (c1[:6], "2026-03", "death"): 1,
        (c1[:9], "2026-03", "death"): 1,
        (c1, "2026-03", "death"): 1,
        (c1, "2026-03", "out"): 1,
        (c2, "2026-03", "in"): 1,
        (c1, "2026-04", "out"): 2,
        (c1[:9], "2026-04", "out"): 2,
        (c1[:6], "2026-04", "out"): 2,
        ("", "2026-04", "out"): 1,
        (other_district, "2026-04", "in"): 1,
        (other_district[:9], "2026-04", "in"): 1,
        (other_district[:6], "2026-04", "in"): 1,
        (c2, "2026-04", "in"): 1,
        (c2[:9], "2026-04", "in"): 1,
        (c2[:6], "2026-04", "in"): 1,
        ("", "2026-04", "in"): 1,
    }
    # The population changes by exactly the month's flows.
    counts = true_counts(session, c1, date(2026, 4, 30))
    assert counts["trend", date(2026, 2, 1), ALL] == 4 and counts["trend", date(2026, 3, 1), ALL] == 3
    assert counts[pop_key()] == 1
    assert [counts["flow", date(2026, 3, 1), k] for k in FLOW_KINDS] == [1, 1, 0, 1, 0]
    assert [counts["flow", date(2026, 4, 1), k] for k in FLOW_KINDS] == [0, 0, 0, 2, 0]


def test_incremental_refresh_equals_rebuild(session: Session, communities: list[str]) -> None:
    people = random_population(session, communities, 250, seed=11)
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    batches = [
        random_batch(session, people, communities, day=date(2026, m, 10), seed=m) for m in (2, 3, 5, 6)
    ]
    # Refresh out of order: the aggregates hold exactly the applied batches' versions.
    for batch in (batches[0], batches[2], batches[1], batches[3]):
        result = service.refresh_after_batch(session=session, batch_id=batch.id)
        assert result.how == "refresh" and result.persons > 0
    incremental = snapshot(session)
    assert incremental[0] and incremental[1]
    for day in DATES:
        assert service.aggregate_cells(session=session, as_of=day) == service.recount(
            session=session, as_of=day
        )
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    assert snapshot(session) == incremental


def test_a_batch_of_versions_that_change_no_cell_derives_only_the_persons_it_can_change(
    session: Session, communities: list[str]
) -> None:
    """Phone numbers alone leave each person's stays and moves as they were: not derived again. A
    version dated before the one it follows or on its day, one after a move the aggregates do not hold
    yet (its batch refreshed later) and a move are derived again; the aggregates equal a rebuild and a
    recount."""
    people = random_population(session, communities, 60, seed=21)
    make_batch(session, source="wjw_cs", as_of=date(2025, 6, 1))  # that feed's first extract
    first = make_batch(session, source="gaj_hj", as_of=date(2026, 1, 10))
    listed = add_person(session, batch=first, valid_from=date(2026, 1, 10), community_code=communities[0])
    also = add_person(session, batch=first, valid_from=date(2026, 1, 10), community_code=communities[1])
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    # The same day's version from another feed takes the first extract's place as the person's first:
    # from a feed that began earlier it is no stock, and the aggregates then count an arrival; from a
    # feed whose first extract is that day too, nothing changes.
    same_day = make_batch(session, source="wjw_cs", as_of=date(2026, 1, 10))
    change(session, listed, batch=same_day, valid_from=date(2026, 1, 10), phone="13611112222")
    assert service.refresh_after_batch(session=session, batch_id=same_day.id).persons == 1
    also_first = make_batch(session, source="jyj_xj", as_of=date(2026, 1, 10))
    change(session, also, batch=also_first, valid_from=date(2026, 1, 10), phone="13622223333")
    assert service.refresh_after_batch(session=session, batch_id=also_first.id).persons == 0
    phones = make_batch(session, source="rsj_cb", as_of=date(2026, 3, 10))
    for i, person in enumerate(people[:40]):
        change(session, person, batch=phones, valid_from=date(2026, 3, 10), phone=f"1380000{i:04d}")
    change(session, people[40], batch=phones, valid_from=date(2024, 6, 1), phone="13911112222")  # dated back
    moves = make_batch(session, source="gaj_hj", as_of=date(2026, 4, 10))
    mover = people[41]
    elsewhere = next(c for c in communities if c != mover.community_code)
    change(session, mover, batch=moves, valid_from=date(2026, 4, 10), community_code=elsewhere)
    later = make_batch(session, source="rsj_cb", as_of=date(2026, 5, 10))
    change(session, mover, batch=later, valid_from=date(2026, 5, 10), phone="13722223333")  # follows the move
    change(session, people[0], batch=later, valid_from=date(2026, 5, 10), phone="13733334444")

    assert service.refresh_after_batch(session=session, batch_id=phones.id).persons == 1  # the dated-back one
    assert service.refresh_after_batch(session=session, batch_id=later.id).persons == 1  # the mover
    assert service.refresh_after_batch(session=session, batch_id=moves.id).persons == 1
    incremental = snapshot(session)
    for day in DATES:
        assert service.aggregate_cells(session=session, as_of=day) == service.recount(
            session=session, as_of=day
        )
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    assert snapshot(session) == incremental


def test_refresh_is_idempotent_and_partial_state_is_consistent(
    session: Session, communities: list[str]
) -> None:
    people = random_population(session, communities, 120, seed=3)
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    first = random_batch(session, people, communities, day=date(2026, 4, 1), seed=21)
    second = random_batch(session, people, communities, day=date(2026, 4, 2), seed=22)
    service.refresh_after_batch(session=session, batch_id=first.id)
    after_first = snapshot(session)
    again = service.refresh_after_batch(session=session, batch_id=first.id)
    assert again.how == "skipped"
    assert snapshot(session) == after_first
    # Without the second batch applied, the aggregates are the population as known before it was merged.
    merged_at = session.execute(
        text("SELECT min(recorded_at) FROM person_version WHERE batch_id = :b"), {"b": second.id}
    ).scalar_one()
    day = date(2026, 4, 30)
    known_before = service.recount(session=session, as_of=day, known_at=merged_at - timedelta(microseconds=1))
    assert service.aggregate_cells(session=session, as_of=day) == known_before
    assert known_before != service.recount(session=session, as_of=day)
    service.refresh_after_batch(session=session, batch_id=second.id)
    assert service.aggregate_cells(session=session, as_of=day) == service.recount(session=session, as_of=day)
    applied = session.execute(
        text("SELECT batch_id, how FROM decision.applied_batch WHERE how = 'refresh'")
    ).all()
    assert sorted(applied) == sorted([(first.id, "refresh"), (second.id, "refresh")])


def test_province_of_origin_from_id_number_or_floating_registration(
    session: Session, communities: list[str]
) -> None:
    c = communities[0]
    for i in range(3):
        add_person(
            session,
            valid_from=date(2025, 1, 1),
            population_type="floating",
            id_no=f"41010219900101{i:03d}X",
            community_code=c,
        )
    stranger = add_person(
        session, valid_from=date(2025, 1, 1), population_type="floating", id_no="X123", community_code=c
    )
    add_person(
        session,
        valid_from=date(2025, 1, 1),
        population_type="registered",
        id_no="330102199001010011",
        community_code=c,
    )
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    day = date(2026, 1, 1)
    cells = service.aggregate_cells(session=session, as_of=day)
    assert {k[2]: n for k, n in cells.items() if k[:2] == ("origin", "")} == {"41": 3, "00": 1}

    batch = make_batch(session, source="gaj_ld", as_of=date(2026, 2, 1))
    record_id = session.execute(
        text(
            "INSERT INTO source_record (batch_id, row_no, source, raw, status, reasons, id_valid, extra)"
            " VALUES (:b, 1, 'gaj_ld', '{}', 'accepted', '[]', false,"
            ' \'{"registered_area_code": "510104001001"}\') RETURNING id'
        ),
        {"b": batch.id},
    ).scalar_one()
    session.execute(
        text(
            "INSERT INTO link (source_record_id, person_id, batch_id, rule, method) VALUES (:r, :p, :b, 'id', 'auto')"
        ),
        {"r": record_id, "p": stranger.id, "b": batch.id},
    )
    result = service.refresh_after_batch(session=session, batch_id=batch.id)
    assert result.persons == 1
    cells = service.aggregate_cells(session=session, as_of=day)
    assert {k[2]: n for k, n in cells.items() if k[:2] == ("origin", c)} == {"41": 3, "51": 1}
    assert service.recount(session=session, as_of=day) == cells

    population, rows = service.lineage(
        session=session, area=c, as_of=date(2026, 3, 1), population_type="floating"
    )
    assert population == 4
    assert [(r.source, r.batch_id, r.records, r.versions) for r in rows] == [("gaj_ld", batch.id, 1, 0)]


def test_a_first_extract_is_stock_and_history_starts_with_the_data(
    session: Session, communities: list[str]
) -> None:
    """The first extract's people were there, not arriving; months before it have no data, and no
    year-on-year change is shown across its date."""
    c1, c2 = communities[0], communities[1]
    first = make_batch(session, source="gaj_hj", as_of=date(2026, 3, 1))
    for i in range(6):  # registered long ago, or known only from the extract's date
        add_person(
            session,
            batch=first,
            valid_from=date(2019, 5, 1) if i % 2 else date(2026, 3, 1),
            community_code=c1,
        )
    add_person(
        session, batch=first, valid_from=date(2026, 2, 20), birth_date=date(2026, 2, 20), community_code=c1
    )
    later = make_batch(session, source="gaj_hj", as_of=date(2026, 5, 10))
    add_person(
        session, batch=later, valid_from=date(2026, 5, 5), birth_date=date(1990, 1, 1), community_code=c2
    )
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)

    flows = {
        (m.strftime("%Y-%m"), k): n
        for m, k, n in session.execute(text("SELECT month, kind, n FROM decision.flow WHERE area_code = ''"))
    }
    assert flows == {("2026-02", "birth"): 1, ("2026-05", "in"): 1}  # no 3,000 arrivals on 1 March
    board = build_dashboard(session=session, area_code="", as_of=date(2026, 6, 30))
    assert board.data_since == date(2026, 3, 1)
    trend = {r.label: r.total for r in board.table("trend").rows if r.total}
    assert trend["2026-02月末"].display == "无数据" and trend["2026-02月末"].value is None
    # From the data's first month on, a count (shown, or "*" when its perturbed value is small: which
    # depends on the database's cell-key secret, drawn at random), never "no data".
    assert trend["2026-03月末"].display != "无数据" and trend["2026-05月末"].display != "无数据"
    assert trend["2026-03月末"].value is not None or trend["2026-03月末"].suppressed
    flows_table = {r.label: [c.display for c in r.cells] for r in board.table("flows").rows}
    assert flows_table["2026-01"] == ["无数据"] * 5 and flows_table["2026-05"][3] != "无数据"
    change = board.table("change")
    assert change.note == "上年同期早于数据起始日 2026-03-01，无可比数据"
    assert next(k for k in board.kpis if k.key == "change").cell.value is None


def test_a_late_move_merged_through_the_pipeline_counts_as_a_rebuild_does(
    session: Session, communities: list[str]
) -> None:
    """A move dated back between a type change, a phone number and a death (registry.merge re-records
    the later history with it): the incremental refresh of each batch equals a rebuild and a recount."""
    a, b = communities[0], communities[1]
    person = add_person(session, community_code=a, population_type="registered", valid_from=date(2025, 2, 1))
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    merged = [
        merge_record(session, person, "gaj_ld", date(2025, 6, 2), event_date=date(2025, 6, 1), population_type="floating"),
        merge_record(session, person, "rsj_cb", date(2026, 3, 2), event_date=date(2026, 3, 1), phone="13800138000"),
        merge_record(session, person, "mzj_sw", date(2026, 9, 2), event_date=date(2026, 9, 1), residence_status="dead"),
        merge_record(session, person, "gaj_hj", date(2026, 11, 1), event_date=date(2025, 4, 1), community_code=b),
    ]  # fmt: skip
    for batch_id in merged:
        service.refresh_after_batch(session=session, batch_id=batch_id)
    incremental = snapshot(session)
    for day in (date(2025, 3, 1), date(2025, 5, 1), date(2025, 7, 1), date(2026, 10, 1)):
        assert service.aggregate_cells(session=session, as_of=day) == service.recount(
            session=session, as_of=day
        )
    counts = {
        day: true_counts(session, b, day) for day in (date(2025, 5, 1), date(2025, 7, 1), date(2026, 10, 1))
    }
    assert counts[date(2025, 5, 1)][pop_key("registered")] == 1  # moved, still registered
    assert counts[date(2025, 7, 1)][pop_key("floating")] == 1  # then floating, in the community moved to
    assert counts[date(2026, 10, 1)][pop_key()] == 0  # and dead since September 2026
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    assert snapshot(session) == incremental
