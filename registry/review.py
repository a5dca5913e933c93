"""The review queue and the clerk's operations on persons: accept, reject, merge, split, unmerge.

Every operation is one transaction, writes an audit record with what it moved (so it can be undone),
and recomputes the golden records it touched. A retired person number keeps pointing at its survivor
(person.merged_into) and is never given to anybody else.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from base import clock
from registry import events
from registry.audit import record_audit
from registry.masking import mask_id_no, mask_phone
from registry.merge import merge_persons
from registry.models import Link, NonMatch, Person, ReviewItem, SourceRecord
from registry.resolve import update_counts
from schemas.canonical import ReviewKind


class ReviewError(ValueError):
    """An operation that cannot be done (zh-CN message)."""


def _open_item(session: Session, item_id: int) -> ReviewItem:
    item = session.get(ReviewItem, item_id, with_for_update=True)
    if item is None:
        raise ReviewError(f"待核查事项 {item_id} 不存在")
    if item.state != "open":
        raise ReviewError(f"待核查事项 {item_id} 已处理（{item.state}）")
    return item


def _record(session: Session, record_id: int) -> SourceRecord:
    """The source record with this id (its key is (id, recorded_at): source_record is partitioned)."""
    return session.scalars(select(SourceRecord).where(SourceRecord.id == record_id)).one()


def _link(session: Session, record: SourceRecord, person_id: int, actor: str, rule: str) -> None:
    session.add(
        Link(
            source_record_id=record.id,
            person_id=person_id,
            batch_id=record.batch_id,
            area_key=record.area_key,
            rule=rule,
            method="manual",
            linked_by=actor,
        )
    )
    record.status = "accepted"
    session.flush()
    update_counts(session=session, batch_id=record.batch_id)


def _new_person(session: Session, record: SourceRecord, *, with_identifier: bool) -> Person:
    number = session.scalar(text("SELECT nextval('person_no_seq')"))
    person = Person(
        person_no=f"P{number:011d}",
        area_key=record.area_key,
        status="active",
        name=record.name,
        name_pinyin=record.name_pinyin,
        sex=record.sex,
        birth_date=record.birth_date,
        community_code=record.community_code,
        population_type=record.population_type,
        provenance={},
    )
    session.add(person)
    session.flush()
    if with_identifier:
        _hold(session, record, person.id)
    return person


def _hold(session: Session, record: SourceRecord, person_id: int) -> None:
    """The record's valid number is the person's: given to it, or already its. Held by somebody else,
    it is an error (one number, one person), never silently left where it is."""
    if not (record.id_valid and record.id_no):
        return
    number = {"t": record.id_type or "RID", "n": record.id_no}
    holder = session.scalar(
        text("SELECT person_id FROM person_identifier WHERE id_type = :t AND id_no = :n FOR UPDATE"), number
    )
    if holder is None:
        session.execute(text("INSERT INTO person_identifier VALUES (:t, :n, :p)"), {**number, "p": person_id})
    elif holder != person_id:
        other = session.get_one(Person, holder).person_no
        raise ReviewError(f"该记录的证件号码已属于人员 {other}：请核实是否同一人（popex person merge）")


def _remember_non_match(session: Session, a: int, b: int, actor: str) -> None:
    low, high = sorted((a, b))
    if session.get(NonMatch, (low, high)) is None:
        session.add(NonMatch(person_a=low, person_b=high, decided_by=actor))
        session.flush()


def accept(*, session: Session, item_id: int, actor: str, note: str | None = None) -> Person:
    """Same person: link the record to the proposed person."""
    item = _open_item(session, item_id)
    record = _record(session, item.source_record_id)
    assert item.candidate_person_id is not None
    mark = events.version_mark(session)
    _hold(session, record, item.candidate_person_id)
    _link(session, record, item.candidate_person_id, actor, f"review_{item.kind}")
    item.state, item.decided_by, item.note = "accepted", actor, note
    session.execute(text("UPDATE review_item SET decided_at = now() WHERE id = :i"), {"i": item.id})
    merge_persons(session=session, person_ids=[item.candidate_person_id], valid_from=clock.today())
    events.publish_clerk_change(session=session, since_version=mark, persons=[item.candidate_person_id])
    record_audit(
        session=session,
        actor=actor,
        action="review.accept",
        object_type="review_item",
        object_id=str(item.id),
        detail={"record": record.id, "person": item.candidate_person_id, "note": note},
    )
    return session.get_one(Person, item.candidate_person_id)


def reject(*, session: Session, item_id: int, actor: str, note: str | None = None) -> Person:
    """Not the same person: the record becomes a new person, and the pair is never proposed again."""
    item = _open_item(session, item_id)
    record = _record(session, item.source_record_id)
    mark = events.version_mark(session)
    # An ID conflict rejected means the number stays with its holder: the new person does not take it.
    person = _new_person(session, record, with_identifier=item.kind != "id_conflict")
    _link(session, record, person.id, actor, f"review_{item.kind}_rejected")
    if item.candidate_person_id is not None:
        _remember_non_match(session, item.candidate_person_id, person.id, actor)
    item.state, item.decided_by, item.note = "rejected", actor, note
    session.execute(text("UPDATE review_item SET decided_at = now() WHERE id = :i"), {"i": item.id})
    merge_persons(session=session, person_ids=[person.id], valid_from=clock.today())
    events.publish_clerk_change(session=session, since_version=mark, persons=[person.id])
    record_audit(
        session=session,
        actor=actor,
        action="review.reject",
        object_type="review_item",
        object_id=str(item.id),
        detail={"record": record.id, "new_person": person.person_no, "note": note},
    )
    return person


def _live(session: Session, person_no: str) -> Person:
    person = session.scalar(select(Person).where(Person.person_no == person_no).with_for_update())
    if person is None:
        raise ReviewError(f"人员编号 {person_no} 不存在")
    if person.status == "retired":
        raise ReviewError(f"人员编号 {person_no} 已合并注销")
    return person


def merge(
    *, session: Session, survivor_no: str, retired_no: str, actor: str, note: str | None = None
) -> Person:
    """Two persons are one: the retired number's records and documents move to the survivor."""
    survivor, retired = _live(session, survivor_no), _live(session, retired_no)
    if survivor.id == retired.id:
        raise ReviewError("不能把人员与自身合并")
    mark = events.version_mark(session)
    moved = session.scalars(select(Link.source_record_id).where(Link.person_id == retired.id)).all()
    identifiers = session.execute(
        text("UPDATE person_identifier SET person_id = :s WHERE person_id = :r RETURNING id_type, id_no"),
        {"s": survivor.id, "r": retired.id},
    ).all()
    session.execute(
        text("UPDATE link SET person_id = :s WHERE person_id = :r"), {"s": survivor.id, "r": retired.id}
    )
    session.execute(
        text("DELETE FROM non_match WHERE (person_a, person_b) IN ((LEAST(:s, :r), GREATEST(:s, :r)))"),
        {"s": survivor.id, "r": retired.id},
    )
    retired.status, retired.merged_into = "retired", survivor.id
    session.flush()
    today = clock.today()  # one date for the retired number's version and the survivor's
    session.execute(
        text(
            "INSERT INTO person_version (person_id, area_key, valid_from, changed, status, id_no, name, sex, birth_date)"
            " SELECT id, area_key, :today, '[\"status\", \"merged_into\"]', 'retired', id_no, name, sex,"
            " birth_date FROM person WHERE id = :r"
        ),
        {"r": retired.id, "today": today},
    )
    merge_persons(session=session, person_ids=[survivor.id], valid_from=today)
    events.publish_clerk_change(
        session=session,
        since_version=mark,
        persons=[survivor.id, retired.id],
        special={retired.id: ("merged", "survivor", survivor.id)},
    )
    record_audit(
        session=session,
        actor=actor,
        action="person.merge",
        object_type="person",
        object_id=retired_no,
        detail={
            "survivor": survivor_no,
            "records": list(moved),
            "identifiers": [list(i) for i in identifiers],
            "note": note,
        },
    )
    session.refresh(survivor)
    return survivor


def split(
    *, session: Session, person_no: str, record_ids: list[int], actor: str, note: str | None = None
) -> Person:
    """Some of a person's records are somebody else: they move to a new person."""
    person = _live(session, person_no)
    linked = set(session.scalars(select(Link.source_record_id).where(Link.person_id == person.id)))
    if not record_ids or not set(record_ids) <= linked:
        raise ReviewError(f"所选记录不全属于人员 {person_no}")
    if set(record_ids) == linked:
        raise ReviewError("不能拆出该人员的全部记录")
    mark = events.version_mark(session)
    first = _record(session, min(record_ids))
    new = _new_person(session, first, with_identifier=False)
    session.execute(
        text(
            "UPDATE link SET person_id = :n, method = 'manual', linked_by = :a WHERE source_record_id = ANY(:ids)"
        ),
        {"n": new.id, "a": actor, "ids": record_ids},
    )
    # Documents that only the moved records carry go with them.
    session.execute(
        text(
            """
            UPDATE person_identifier pi SET person_id = :n
            WHERE pi.person_id = :p
              AND EXISTS (SELECT 1 FROM source_record r WHERE r.id = ANY(:ids) AND r.id_valid
                          AND r.id_type = pi.id_type AND r.id_no = pi.id_no)
              AND NOT EXISTS (SELECT 1 FROM link l JOIN source_record r ON r.id = l.source_record_id
                              WHERE l.person_id = :p AND r.id_valid AND r.id_type = pi.id_type AND r.id_no = pi.id_no)
            """
        ),
        {"n": new.id, "p": person.id, "ids": record_ids},
    )
    _remember_non_match(session, person.id, new.id, actor)
    merge_persons(session=session, person_ids=[person.id, new.id], valid_from=clock.today())
    events.publish_clerk_change(
        session=session,
        since_version=mark,
        persons=[person.id, new.id],
        special={new.id: ("split", "split_from", person.id)},
    )
    record_audit(
        session=session,
        actor=actor,
        action="person.split",
        object_type="person",
        object_id=person_no,
        detail={"new_person": new.person_no, "records": record_ids, "note": note},
    )
    session.refresh(new)
    return new


def unmerge(*, session: Session, retired_no: str, actor: str, note: str | None = None) -> Person:
    """Undo a merge: the retired number comes back with the records and documents it had."""
    retired = session.scalar(select(Person).where(Person.person_no == retired_no).with_for_update())
    if retired is None or retired.status != "retired" or retired.merged_into is None:
        raise ReviewError(f"人员编号 {retired_no} 不是被合并注销的人员")
    detail = session.scalar(
        text(
            "SELECT detail FROM audit_log WHERE action = 'person.merge' AND object_id = :n ORDER BY id DESC LIMIT 1"
        ),
        {"n": retired_no},
    )
    if not detail:
        raise ReviewError(f"找不到人员编号 {retired_no} 的合并记录")
    survivor_id = retired.merged_into
    mark = events.version_mark(session)
    session.execute(
        text("UPDATE link SET person_id = :r WHERE person_id = :s AND source_record_id = ANY(:ids)"),
        {"r": retired.id, "s": survivor_id, "ids": detail["records"]},
    )
    for id_type, id_no in detail["identifiers"]:
        session.execute(
            text("UPDATE person_identifier SET person_id = :r WHERE id_type = :t AND id_no = :n"),
            {"r": retired.id, "t": id_type, "n": id_no},
        )
    retired.status, retired.merged_into = "active", None
    session.flush()
    _remember_non_match(session, survivor_id, retired.id, actor)
    merge_persons(session=session, person_ids=[survivor_id, retired.id], valid_from=clock.today())
    events.publish_clerk_change(
        session=session,
        since_version=mark,
        persons=[survivor_id, retired.id],
        special={retired.id: ("unmerged", "unmerged_from", survivor_id)},
    )
    record_audit(
        session=session,
        actor=actor,
        action="person.unmerge",
        object_type="person",
        object_id=retired_no,
        detail={"survivor_id": survivor_id, "note": note},
    )
    session.refresh(retired)
    return retired


def current_person(*, session: Session, person_no: str) -> Person | None:
    """The person a number stands for today: a retired number leads to its survivor."""
    person = session.scalar(select(Person).where(Person.person_no == person_no))
    seen = set()
    while person is not None and person.merged_into is not None and person.id not in seen:
        seen.add(person.id)
        person = session.get(Person, person.merged_into)
    return person


# What a clerk compares, in this order: (label, source_record attribute, person attribute).
COMPARED = (
    ("姓名", "name", "name"),
    ("性别", "sex", "sex"),
    ("出生日期", "birth_date", "birth_date"),
    ("证件类型", "id_type", "id_type"),
    ("证件号码", "id_no", "id_no"),
    ("民族", "ethnicity", "ethnicity"),
    ("电话", "phone", "phone"),
    ("住址", "address", "address"),
    ("社区", "community_code", "community_code"),
    ("人口类型", "population_type", "population_type"),
)
MASKED = {"id_no": mask_id_no, "phone": mask_phone}


@dataclass(frozen=True)
class ItemComparison:
    """A review item as a clerk decides it: the record beside the proposed person, field by field."""

    item_id: int
    kind: str
    state: str
    batch: str  # source, file and as-of date of the record's batch
    row_no: int
    person_no: str | None
    score: float | None
    # label, record's value, person's value (as shown: masked unless asked), whether the values agree
    # (compared unmasked; None when either is missing)
    fields: list[tuple[str, str | None, str | None, bool | None]]
    levels: dict[str, Any]  # the match model's comparison per attribute: [level, weight in bits]


def compare_item(*, session: Session, item_id: int, actor: str, unmasked: bool = False) -> ItemComparison:
    """The record and its candidate side by side; ID and phone numbers masked unless `unmasked`.

    Showing them is a read of personal data, so it is audited (who, which item and person, masked
    or not) in the caller's transaction.
    """
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise ReviewError(f"待核查事项 {item_id} 不存在")
    record = _record(session, item.source_record_id)
    batch = session.execute(
        text("SELECT source, file_name, as_of_date FROM batch WHERE id = :b"), {"b": item.batch_id}
    ).one()
    person = session.get(Person, item.candidate_person_id) if item.candidate_person_id else None

    def raw(obj: object, attribute: str) -> str | None:
        value = getattr(obj, attribute, None) if obj is not None else None
        return None if value is None else str(value)

    def shown(value: str | None, attribute: str) -> str | None:
        return value if unmasked or attribute not in MASKED else MASKED[attribute](value)

    def field(label: str, r: str, p: str) -> tuple[str, str | None, str | None, bool | None]:
        mine, theirs = raw(record, r), raw(person, p)
        same = None if mine is None or theirs is None else mine == theirs
        return label, shown(mine, r), shown(theirs, p), same

    record_audit(
        session=session,
        actor=actor,
        action="review.viewed",
        object_type="review_item",
        object_id=str(item.id),
        detail={
            "record": record.id,
            "person_nos": [person.person_no] if person else [],
            "unmasked": unmasked,
        },
    )
    return ItemComparison(
        item_id=item.id,
        kind=ReviewKind(item.kind).label,
        state=item.state,
        batch=f"{batch.source} {batch.file_name} {batch.as_of_date}",
        row_no=record.row_no,
        person_no=person.person_no if person else None,
        score=item.score,
        fields=[field(label, r, p) for label, r, p in COMPARED],
        levels=item.levels or {},
    )
