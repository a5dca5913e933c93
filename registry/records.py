"""From a received row to a source record: map columns by the feed spec, normalise, validate.

One `RecordBuilder` per batch; `build()` is called once per row, so it does plain dictionary work and
leans on the cached normalisers. A row gets a status (accepted / rejected) and a list of reasons:
`CODE:列名` for a cell, `CODE` for the row. Problems with the identity document never reject a row:
the number is not used as a matching key and the row goes on to matching by its other fields.
"""

import json
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from registry.normalise.codes import normalise_area_code, normalise_ethnicity, normalise_phone, normalise_sex
from registry.normalise.dates import parse_date
from registry.normalise.ids import id_consistency, normalise_document, parse_id_number
from registry.normalise.messages import describe as describe_issue
from registry.normalise.names import name_pinyin, normalise_name
from schemas.feed_spec import FeedSpec

# Row-level codes of this module, in the same plain zh-CN as the normalisers' messages.
ROW_MESSAGES = {
    "REQUIRED_MISSING": "必填项为空",
    "ROW_NO_IDENTITY": "姓名和证件号码均为空，无法识别是谁",  # (and, for a birth, the mother's number)
    "DUPLICATE_ROW": "与本文件中前面的一行完全相同",
    "ID_CONFLICT": "证件号码已属于另一姓名或出生日期的人员，待人工核查",
    "PROBABLE_MATCH": "可能与已有人员为同一人，待人工核查",
    "EVENT_CODE": "变动类型无法识别",
    "ROW_CELL_COUNT": "本行的单元格数与表头不一致",
    "ROW_UNKNOWN_KEYS": "本行含有标准以外的字段，已忽略",
    "CELL_FORMULA": "是公式单元格，按公式原文保存，未计算",
    "CELL_PRECISION": "是超过15位的数字单元格，末尾数字已丢失",
}
# A bad value in one of these kinds rejects the row when the column is required; elsewhere it is
# only flagged and the value dropped.
REJECTING_KINDS = {"date", "sex", "area_code", "doc_type", "event"}
# Canonical fields that have a column of their own in source_record; the rest go to `extra`.
STAGED_FIELDS = (
    "record_key",
    "id_type",
    "id_no",
    "name",
    "former_name",
    "sex",
    "ethnicity",
    "birth_date",
    "phone",
    "address",
    "community_code",
    "population_type",
    "residence_status",
    "event",
    "event_date",
    "mother_id_no",
    "father_id_no",
    "spouse_id_no",
)
# The columns written to source_record by COPY, in order.
COPY_COLUMNS = (
    "batch_id",
    "row_no",
    "source",
    "area_key",
    "raw",
    "status",
    "reasons",
    "id_valid",
    "name_pinyin",
    *STAGED_FIELDS,
    "extra",
)


def describe(reason: str) -> str:
    """A reason as a sentence for a person: 'ID_CHECKSUM:公民身份号码' → '公民身份号码：身份证号码校验位错误'."""
    code, _, where = reason.partition(":")
    text = ROW_MESSAGES.get(code) or describe_issue(code)
    if code == "DUPLICATE_ROW" and where:
        return f"与第{where}行完全相同"
    return f"{where}：{text}" if where else text


@dataclass
class StagedRecord:
    """A row ready for source_record."""

    row_no: int
    status: str
    reasons: list[str]
    raw: dict[str, Any]
    fields: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    id_valid: bool = False


class RecordBuilder:
    """Turns the rows of one batch into staged records."""

    def __init__(self, spec: FeedSpec, *, known_areas: Container[str] | None, today: date) -> None:
        self.spec = spec
        self.known_areas = known_areas
        self.today = today
        self.columns = [(c.name, c.field, c.kind, c.required) for c in spec.columns]
        self.doc_type_column = next((c.name for c in spec.columns if c.kind == "doc_type"), None)
        self.has_community = any(c.field == "community_code" for c in spec.columns)
        self.seen: dict[str, int] = {}

    def build(self, row_no: int, row: Mapping[str, str | None], notes: Iterable[str] = ()) -> StagedRecord:
        """Map, normalise and validate one row; notes are the reader's remarks on it (`CODE` or `CODE:列名`)."""
        raw = {k: v for k, v in row.items() if v not in (None, "")}
        fingerprint = json.dumps(raw, ensure_ascii=False, sort_keys=True)
        if "\\u0000" in fingerprint:  # PostgreSQL text cannot hold NUL: drop it, the archive keeps the bytes
            row = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}
            raw = {k: v for k, v in row.items() if v not in (None, "")}
            fingerprint = json.dumps(raw, ensure_ascii=False, sort_keys=True)
        reasons: list[str] = list(notes)
        fields: dict[str, Any] = {}
        rejected = False
        first = self.seen.setdefault(fingerprint, row_no)
        if first != row_no:
            return StagedRecord(row_no, "rejected", [f"DUPLICATE_ROW:{first}"], raw, {})
        doc_type = (row.get(self.doc_type_column) or "").strip() if self.doc_type_column else ""
        id_valid = False
        id_parsed = None
        for name, fld, kind, required in self.columns:
            value = row.get(name)
            value = value.strip() if isinstance(value, str) else value
            if not value:
                if required and kind not in ("id_no", "doc_no", "name"):
                    reasons.append(f"REQUIRED_MISSING:{name}")
                    rejected = True
                continue
            issue: str | None = None
            out: Any = None
            if kind == "text":
                out = value
            elif kind == "name":
                out = normalise_name(value)
            elif kind == "id_no":
                parsed = parse_id_number(value, today=self.today)
                out, issue = parsed.value, parsed.issue
                if fld == "id_no":
                    id_parsed, id_valid = parsed, parsed.valid
            elif kind == "doc_no":
                doc = normalise_document(doc_type or "居民身份证", value)
                out, issue, id_valid = doc.number, doc.issue, doc.valid
                fields["id_type"] = doc.type
                if doc.type == "RID":
                    id_parsed = parse_id_number(value, today=self.today)
            elif kind == "doc_type":
                doc = normalise_document(value, None)
                out, issue = doc.type, "DOC_TYPE" if doc.type is None else None
                if out is None:
                    fields.pop("id_type", None)
            elif kind == "date":
                parsed_date = parse_date(value, today=self.today)
                out, issue = parsed_date.value, parsed_date.issue
            elif kind == "sex":
                out, issue = normalise_sex(value)
            elif kind == "ethnicity":
                out, issue = normalise_ethnicity(value)
            elif kind == "phone":
                out, issue = normalise_phone(value)
            elif kind == "area_code":
                known = self.known_areas if fld == "community_code" and self.known_areas else None
                out, issue = normalise_area_code(value, known)
            if issue:
                reasons.append(f"{issue}:{name}")
                if kind in REJECTING_KINDS and required:
                    rejected = True
            if out is not None and (kind != "doc_type" or fld not in fields):
                fields.setdefault(fld, out)
        if "id_no" in fields and "id_type" not in fields:
            fields["id_type"] = "RID"
        if id_parsed is not None and id_parsed.valid:
            # The number carries birth date and sex; the record's own fields must agree with it.
            issues = id_consistency(id_parsed, birth_date=fields.get("birth_date"), sex=fields.get("sex"))
            reasons.extend(f"{code}:{self._column_of('id_no')}" for code in issues)
            fields["birth_date"] = id_parsed.birth_date
            fields["sex"] = id_parsed.sex
        # A newborn without a name yet is still somebody: the birth certificate names the mother.
        if not fields.get("name") and not fields.get("id_no") and not fields.get("mother_id_no"):
            reasons.append("ROW_NO_IDENTITY")
            rejected = True
        if not self._derive(row, fields, reasons):
            rejected = True
        extra = {
            k: (v.isoformat() if isinstance(v, date) else v)
            for k, v in fields.items()
            if k not in STAGED_FIELDS
        }
        for k in extra:
            del fields[k]
        return StagedRecord(
            row_no, "rejected" if rejected else "accepted", reasons, raw, fields, extra, id_valid
        )

    def _column_of(self, fld: str) -> str:
        return next((c for c, f, _, _ in self.columns if f == fld), fld)

    def _derive(self, row: Mapping[str, str | None], fields: dict[str, Any], reasons: list[str]) -> bool:
        """Record key, event, population type, residence status, event date; False when the event is unknown."""
        spec = self.spec
        fields["record_key"] = "|".join((row.get(c) or "").strip() for c in spec.record_key) or None
        event = spec.events.apply(row)
        if event is None:
            reasons.append(f"EVENT_CODE:{spec.events.column}")
            return False
        fields["event"] = event.value if event else None
        if spec.population_type:
            pop = spec.population_type.apply(row)
            fields["population_type"] = pop.value if pop else None
        if spec.residence_status:
            status = spec.residence_status.apply(row)
            fields["residence_status"] = status.value if status else None
        for column in spec.event_date_from:
            value = (row.get(column) or "").strip()
            if value:
                parsed = parse_date(value, today=self.today)
                if parsed.value:
                    fields["event_date"] = parsed.value
                break
        if not self.has_community and fields.get("registered_area_code"):
            # A registered resident lives at the registered address unless another source says otherwise.
            code = fields["registered_area_code"]
            if len(code) == 12 and (not self.known_areas or code in self.known_areas):
                fields["community_code"] = code
        return True


def copy_row(batch_id: int, source: str, record: StagedRecord) -> tuple[Any, ...]:
    """The record as a tuple in COPY_COLUMNS order."""
    f = record.fields
    community = f.get("community_code")
    name = f.get("name")
    return (
        batch_id,
        record.row_no,
        source,
        community[:6] if community else None,
        json.dumps(record.raw, ensure_ascii=False),
        record.status,
        json.dumps(record.reasons, ensure_ascii=False),
        record.id_valid,
        name_pinyin(name) if name else None,
        *(f.get(k) for k in STAGED_FIELDS),
        json.dumps(record.extra, ensure_ascii=False),
    )
