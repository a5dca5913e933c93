"""A newborn counts with the mother's household: population type and community from her, until their own
registration says otherwise (issue 17 item 3)."""

from datetime import date

from sqlalchemy import select

from exchange import flows
from registry.models import Batch, Person
from tests.feedfiles import hj, write_feed

FLOATING_MOTHER = "330102198505050021"  # female, 1985-05-05
REGISTERED_MOTHER = "330102199001010020"  # female, 1990-01-01


def floating(key: str, id_no: str, name: str, community: str) -> dict[str, str]:
    """A gaj_ld row: a floating resident registered on 2026-10-01."""
    return {
        "记录编号": key,
        "证件类型": "居民身份证",
        "证件号码": id_no,
        "姓名": name,
        "性别": "女",
        "出生日期": "1985-05-05",
        "户籍地区划代码": "410102",
        "现住地址": "清波街2号",
        "现住地社区代码": community,
        "登记日期": "2026-10-01",
    }


def birth(key: str, mother: str, mother_id: str, born: str) -> dict[str, str]:
    """A wjw_cs row: a birth certificate (no ID number, no community, no population type)."""
    return {
        "出生医学证明编号": key,
        "性别": "男",
        "出生日期": born,
        "母亲姓名": mother,
        "母亲身份证号": mother_id,
    }


def test_newborns_take_type_and_community_from_the_mother(session, factory, areas, tmp_path) -> None:
    c1, c2 = areas[0], areas[1]
    for path in (
        write_feed(tmp_path, "gaj_ld", date(2026, 11, 1), [floating("L1", FLOATING_MOTHER, "李娜", c2)]),
        write_feed(
            tmp_path,
            "gaj_hj",
            date(2026, 11, 1),
            [hj("H1", REGISTERED_MOTHER, "王芳", "女", "1990-01-01", community=c1)],
        ),
        write_feed(
            tmp_path,
            "wjw_cs",
            date(2026, 11, 5),
            [
                birth("B1", "李娜", FLOATING_MOTHER, "2026-11-03"),
                birth("B2", "王芳", REGISTERED_MOTHER, "2026-11-04"),
            ],
            fmt="xlsx",
        ),
    ):
        result = flows.ingest_file(factory, path)
        assert result.state == "completed", session.get(Batch, result.batch_id).gate_result
    babies = session.scalars(
        select(Person).where(Person.birth_date >= date(2026, 11, 1)).order_by(Person.birth_date)
    )
    assert [(p.population_type, p.community_code) for p in babies] == [("floating", c2), ("registered", c1)]
    # Taken from the mother, not stated by the certificate: the provenance names no record for them.
    assert all("population_type" not in p.provenance and "community_code" not in p.provenance for p in babies)
