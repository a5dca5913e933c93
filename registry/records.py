"""From a received row to a source record: map columns by the feed spec, normalise, validate.

One `RecordBuilder` per batch; `build()` is called once per row, so it does plain dictionary work and
leans on the cached normalisers. A row gets a status (accepted / rejected) and a list of reasons:
`CODE:列名` for a cell, `CODE` for the row. Problems with the identity document never reject a row:
the number is not used as a matching key and the row goes on to matching by its other fields.
"""

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from registry.normalise.codes import normalise_area_code, normalise_ethnicity, normalise_phone, normalise_sex
from registry.normalise.dates import parse_date
from registry.normalise.ids import IdNumber, id_consistency, normalise_document, parse_id_number
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
# Column kinds whose cell is a code: value → (code, issue).
CODE_NORMALISERS = {"sex": normalise_sex, "ethnicity": normalise_ethnicity, "phone": normalise_phone}
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
STAGED_SET = frozenset(STAGED_FIELDS)
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


class DuplicateRows:
    """Finds a row whose cells equal an earlier row's in the same file.

    Rows are compared by the hash of their cells (64 bits: a false match among a million rows has a
    chance of about 1 in 10^7), so a million rows cost a dictionary of ints, not of rows.
    """

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def first(self, row_no: int, cells: tuple[str | None, ...]) -> int | None:
        """The number of the earlier identical row, or None when this row is the first of its kind."""
        first = self.seen.setdefault(hash(cells), row_no)
        return first if first != row_no else None


@dataclass
class _Cells:
    """What the cells of one row gave: canonical fields, reasons, whether one rejects the row, the ID."""

    reasons: list[str]
    fields: dict[str, Any] = field(default_factory=dict)
    rejected: bool = False
    id_valid: bool = False
    id_parsed: IdNumber | None = None


class RecordBuilder:
    """Turns the rows of one batch into staged records."""

    def __init__(self, spec: FeedSpec, *, known_areas: Container[str] | None, today: date) -> None:
        self.spec = spec
        self.known_areas = known_areas
        self.today = today
        self.columns = [(c.name, c.field, c.kind, c.required) for c in spec.columns]
        self.doc_type_column = next((c.name for c in spec.columns if c.kind == "doc_type"), None)
        self.has_community = any(c.field == "community_code" for c in spec.columns)

    def _normalise(self, kind: str, fld: str, value: str, doc_type: str) -> tuple[Any, str | None, Any]:
        """(value, issue code, parsed ID number or None) of one filled cell."""
        if kind == "text":
            return value, None, None
        if kind == "name":
            return normalise_name(value), None, None
        if kind == "date":
            parsed_date = parse_date(value, today=self.today)
            return parsed_date.value, parsed_date.issue, None
        if kind == "id_no" or (
            kind == "doc_no" and normalise_document(doc_type or "居民身份证", None).type == "RID"
        ):
            parsed = parse_id_number(value, today=self.today)
            return parsed.value, parsed.issue, parsed
        if kind == "doc_no":
            doc = normalise_document(doc_type, value)
            return doc.number, doc.issue, doc
        if kind == "doc_type":
            code = normalise_document(value, None).type
            return code, None if code else "DOC_TYPE", None
        if kind in CODE_NORMALISERS:
            return (*CODE_NORMALISERS[kind](value), None)
        if kind == "area_code":
            known = self.known_areas if fld == "community_code" and self.known_areas else None
            return (*normalise_area_code(value, known), None)
        return value, None, None

    def build(
        self,
        row_no: int,
        row: Mapping[str, str | None],
        notes: Iterable[str] = (),
        duplicate_of: int | None = None,
    ) -> StagedRecord:
        """Map, normalise and validate one row; notes are the reader's remarks on it (`CODE` or `CODE:列名`).

        duplicate_of: the earlier row of the file with the same cells (see DuplicateRows).
        """
        if any(
            v and "\x00" in v for v in row.values()
        ):  # PostgreSQL text cannot hold NUL; the archive keeps it
            row = {k: v.replace("\x00", "") if v else v for k, v in row.items()}
        raw = {k: v for k, v in row.items() if v}
        if duplicate_of is not None:
            return StagedRecord(row_no, "rejected", [f"DUPLICATE_ROW:{duplicate_of}"], raw, {})
        cells = self._read_cells(row, list(notes))
        fields, reasons = cells.fields, cells.reasons
        self._check_id(cells)
        rejected = cells.rejected
        # A newborn without a name yet is still somebody: the birth certificate names the mother.
        if not fields.get("name") and not fields.get("id_no") and not fields.get("mother_id_no"):
            reasons.append("ROW_NO_IDENTITY")
            rejected = True
        if not self._derive(row, fields, reasons):
            rejected = True
        extra = {k: fields.pop(k) for k in [k for k in fields if k not in STAGED_SET]}
        return StagedRecord(
            row_no, "rejected" if rejected else "accepted", reasons, raw, fields, extra, cells.id_valid
        )

    def _read_cells(self, row: Mapping[str, str | None], reasons: list[str]) -> _Cells:
        """Every column of the row, normalised, in the spec's order."""
        cells = _Cells(reasons=reasons)
        doc_type = (row.get(self.doc_type_column) or "").strip() if self.doc_type_column else ""
        for column in self.columns:
            self._read_cell(cells, column, row.get(column[0]), doc_type)
        if "id_no" in cells.fields and "id_type" not in cells.fields:
            cells.fields["id_type"] = "RID"
        return cells

    def _read_cell(
        self, cells: _Cells, column: tuple[str, str, str, bool], value: str | None, doc_type: str
    ) -> None:
        """One cell into cells: its value under its field (the first column for a field wins), its issue."""
        name, fld, kind, required = column
        value = value.strip() if value else value
        if not value:
            # A row without name or number can still be somebody (ROW_NO_IDENTITY decides that).
            if required and kind not in ("id_no", "doc_no", "name"):
                cells.reasons.append(f"REQUIRED_MISSING:{name}")
                cells.rejected = True
            return
        out, issue, parsed = self._normalise(kind, fld, value, doc_type)
        if kind == "doc_no":
            cells.fields["id_type"] = normalise_document(doc_type or "居民身份证", None).type
        if fld == "id_no" and parsed is not None:
            cells.id_valid = parsed.valid
            cells.id_parsed = parsed if isinstance(parsed, IdNumber) else None
        if issue:
            cells.reasons.append(f"{issue}:{name}")
            if kind in REJECTING_KINDS and required:
                cells.rejected = True
        if out is not None and fld not in cells.fields:
            cells.fields[fld] = out

    def _check_id(self, cells: _Cells) -> None:
        """A valid ID number carries birth date and sex: they replace the row's, which must agree with it."""
        parsed = cells.id_parsed
        if parsed is None or not parsed.valid:
            return
        fields = cells.fields
        issues = id_consistency(parsed, birth_date=fields.get("birth_date"), sex=fields.get("sex"))
        cells.reasons.extend(f"{code}:{self._column_of('id_no')}" for code in issues)
        fields["birth_date"] = parsed.birth_date
        fields["sex"] = parsed.sex

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


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else ("[]" if isinstance(value, list) else "{}")


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
        _json(record.raw),
        record.status,
        _json(record.reasons),
        record.id_valid,
        name_pinyin(name) if name else None,
        *(f.get(k) for k in STAGED_FIELDS),
        _json(record.extra),
    )
