"""From received rows to source records: map columns by the feed spec, normalise, validate.

One `RecordBuilder` per batch. It works a chunk of rows at a time, column by column
(`build_chunk`): each distinct value of a column in the chunk is normalised once, and a row's
fields, reasons and status come from list operations over the columns, not from a function call
per cell. `build()` is the same for one row (a collection form). A row gets a status (accepted /
rejected) and a list of reasons: `CODE:列名` for a cell, `CODE` for the row. Problems with the
identity document never reject a row: the number is not used as a matching key and the row goes on
to matching by its other fields.
"""

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat
from typing import Any

import orjson

from registry.normalise.codes import normalise_area_code, normalise_ethnicity, normalise_phone, normalise_sex
from registry.normalise.dates import parse_date
from registry.normalise.ids import IdNumber, id_consistency, normalise_document, parse_id_number
from registry.normalise.messages import describe as describe_issue
from registry.normalise.names import name_pinyin, normalise_name
from schemas.feed_spec import Derivation, FeedSpec

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


# A row as the builder takes it: number, cells in the spec's column order, the reader's notes on it
# (`CODE` or `CODE:列名`), and the earlier identical row of the file (see DuplicateRows) or None.
Row = tuple[int, tuple[str | None, ...], Sequence[str], int | None]
Normalised = tuple[Any, str | None, Any]  # (value, issue code, parsed ID number or document)
_BLANK: Normalised = (None, None, None)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else ("[]" if isinstance(value, list) else "{}")


@dataclass
class Chunk:
    """Staged records of a chunk of rows, as columns: `fields` maps each canonical field to its
    values, one per row (None: not given)."""

    row_nos: list[int]
    status: list[str]
    reasons: list[list[str]]
    raw: list[dict[str, Any]]
    fields: dict[str, list[Any]]
    extra_fields: list[str]  # the fields without a column of their own in source_record
    id_valid: list[bool]

    def record(self, i: int) -> StagedRecord:
        """Row i as one record (fields and extra hold the values given)."""
        values = {k: col[i] for k, col in self.fields.items() if col[i] is not None}
        extra = {k: values.pop(k) for k in self.extra_fields if k in values}
        return StagedRecord(
            self.row_nos[i], self.status[i], self.reasons[i], self.raw[i], values, extra, self.id_valid[i]
        )

    def copy_rows(self, batch_id: int, source: str) -> Iterator[tuple[Any, ...]]:
        """The rows as tuples in COPY_COLUMNS order."""
        n = len(self.row_nos)
        empty: list[Any] = [None] * n
        community = self.fields.get("community_code", empty)
        spelled = {name: name_pinyin(name) for name in set(self.fields.get("name", empty)) if name}
        extra = (
            [
                {k: v for k, v in zip(self.extra_fields, values, strict=True) if v is not None}
                for values in zip(*(self.fields[k] for k in self.extra_fields), strict=True)
            ]
            if self.extra_fields
            else [{}] * n
        )
        return zip(
            repeat(batch_id, n),
            self.row_nos,
            repeat(source, n),
            [c[:6] if c else None for c in community],
            map(_json, self.raw),
            self.status,
            map(_json, self.reasons),
            self.id_valid,
            [spelled.get(name) if name else None for name in self.fields.get("name", empty)],
            *(self.fields.get(k, empty) for k in STAGED_FIELDS),
            map(_json, extra),
            strict=True,
        )


def _strip(values: Iterable[str | None]) -> list[str | None]:
    """Cells without surrounding blanks; a blank cell is None."""
    return [(v.strip() or None) if v else None for v in values]


@dataclass
class _Work:
    """A chunk's rows while they are built: stripped cells by column, and what each row gathers."""

    n: int
    cells: list[list[str | None]]
    reasons: list[list[str]]
    rejected: list[bool] = field(init=False)
    fields: dict[str, list[Any]] = field(default_factory=dict)
    id_valid: list[bool] = field(init=False)
    id_parsed: list[Any] = field(init=False)  # the row's IdNumber, when its ID number was read as one
    id_type: list[Any] = field(init=False)
    id_type_given: list[bool] = field(init=False)  # a document's type was read (None: not understood)
    none: list[Any] = field(init=False)  # a column of nothing, read only

    def __post_init__(self) -> None:
        n = self.n
        self.rejected, self.id_valid, self.id_type_given = [False] * n, [False] * n, [False] * n
        self.id_parsed, self.id_type, self.none = [None] * n, [None] * n, [None] * n

    def flag(self, rows: Iterable[int], reason: str, rejects: bool) -> None:
        """Give these rows a reason; it rejects them when `rejects`."""
        for i in rows:
            self.reasons[i].append(reason)
            self.rejected[i] = self.rejected[i] or rejects


class RecordBuilder:
    """Turns the rows of one batch into staged records."""

    def __init__(self, spec: FeedSpec, *, known_areas: Container[str] | None, today: date) -> None:
        self.spec = spec
        self.known_areas = known_areas
        self.today = today
        self.names = spec.column_names
        self.position = {name: j for j, name in enumerate(self.names)}
        self.columns = [(c.name, c.field, c.kind, c.required) for c in spec.columns]
        self.doc_type_at = next((j for j, c in enumerate(spec.columns) if c.kind == "doc_type"), None)
        self.has_community = any(c.field == "community_code" for c in spec.columns)
        self.id_column = next((c.name for c in spec.columns if c.field == "id_no"), "id_no")
        fields = [c.field for c in spec.columns]
        self.extra_fields = [f for f in fields if f not in STAGED_SET]

    def _normalise(self, kind: str, fld: str, value: str, doc_type: str) -> Normalised:
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
        """Map, normalise and validate one row (cells outside the spec are not read); notes are the
        reader's remarks on it. duplicate_of: the earlier row of the file with the same cells."""
        cells = tuple(row.get(name) for name in self.names)
        return self.build_chunk([(row_no, cells, list(notes), duplicate_of)]).record(0)

    def build_chunk(self, rows: Sequence[Row]) -> Chunk:
        """Map, normalise and validate rows, a column at a time."""
        n = len(rows)
        columns = [list(col) for col in zip(*(r[1] for r in rows), strict=True)] or [[] for _ in self.names]
        for j, col in enumerate(columns):  # PostgreSQL text cannot hold NUL; the archive keeps it
            if "\x00" in "".join(filter(None, col)):
                columns[j] = [v.replace("\x00", "") if v else v for v in col]
        raw = [
            {k: v for k, v in zip(self.names, cells, strict=True) if v}
            for cells in zip(*columns, strict=True)
        ]
        work = _Work(n, [_strip(col) for col in columns], [list(r[2]) for r in rows])
        for column, values in zip(self.columns, work.cells, strict=True):
            self._read_column(work, column, values)
        fields = work.fields
        id_no = fields.get("id_no", work.none)
        fields["id_type"] = [
            t if given else ("RID" if v is not None else None)
            for t, given, v in zip(work.id_type, work.id_type_given, id_no, strict=True)
        ]
        self._check_ids(work)
        name, mother = fields.get("name", work.none), fields.get("mother_id_no", work.none)
        # A newborn without a name yet is still somebody: the birth certificate names the mother.
        work.flag(
            [i for i in range(n) if not name[i] and not id_no[i] and not mother[i]], "ROW_NO_IDENTITY", True
        )
        self._derive(work)
        status = ["rejected" if r else "accepted" for r in work.rejected]
        reasons, id_valid = work.reasons, work.id_valid
        for i, (_, _, _, duplicate_of) in enumerate(rows):
            if duplicate_of is not None:
                status[i], reasons[i], id_valid[i] = "rejected", [f"DUPLICATE_ROW:{duplicate_of}"], False
                for col in fields.values():
                    col[i] = None
        return Chunk([r[0] for r in rows], status, reasons, raw, fields, self.extra_fields, id_valid)

    def _read_column(self, work: _Work, column: tuple[str, str, str, bool], values: list[str | None]) -> None:
        """One column of every row: its values under its field, its issues; each distinct value once."""
        name, fld, kind, required = column
        if required and kind not in ("id_no", "doc_no", "name"):
            # A row without name or number can still be somebody (ROW_NO_IDENTITY decides that).
            work.flag([i for i, v in enumerate(values) if v is None], f"REQUIRED_MISSING:{name}", True)
        keys: list[Any] = values
        doc_types = work.cells[self.doc_type_at] if self.doc_type_at is not None else work.none
        if kind == "doc_no":  # its meaning depends on the row's document type
            keys = [(v, d or "") if v is not None else None for v, d in zip(values, doc_types, strict=True)]
            types = {d: normalise_document(d or "居民身份证", None).type for d in set(doc_types)}
            for i in [i for i, v in enumerate(values) if v is not None]:
                work.id_type[i], work.id_type_given[i] = types[doc_types[i]], True
        found = {
            k: self._normalise(kind, fld, *(k if kind == "doc_no" else (k, ""))) for k in set(keys) - {None}
        }
        results = [found[k] if k is not None else _BLANK for k in keys]
        for issue in {result[1] for result in found.values() if result[1]}:
            rows = [i for i, result in enumerate(results) if result[1] == issue]
            work.flag(rows, f"{issue}:{name}", kind in REJECTING_KINDS and required)
        if fld == "id_no":
            for i in [i for i, result in enumerate(results) if result[2] is not None]:
                parsed = results[i][2]
                work.id_valid[i] = parsed.valid
                work.id_parsed[i] = parsed if isinstance(parsed, IdNumber) else None
        out = [result[0] for result in results]
        if fld != "id_type":
            work.fields[fld] = out
            return
        for i in [i for i, code in enumerate(out) if code is not None and not work.id_type_given[i]]:
            work.id_type[i], work.id_type_given[i] = out[i], True

    def _check_ids(self, work: _Work) -> None:
        """A valid ID number carries birth date and sex: they replace the row's, which must agree with it."""
        fields, id_parsed = work.fields, work.id_parsed
        births, sexes = fields.get("birth_date", work.none), fields.get("sex", work.none)
        for i, parsed in enumerate(id_parsed):
            if parsed is None or not parsed.valid:
                continue
            if (births[i] and parsed.birth_date != births[i]) or (sexes[i] and parsed.sex != sexes[i]):
                issues = id_consistency(parsed, birth_date=births[i], sex=sexes[i])
                work.reasons[i].extend(f"{code}:{self.id_column}" for code in issues)
        valid = [p is not None and p.valid for p in id_parsed]
        fields["birth_date"] = [
            p.birth_date if v else b for p, v, b in zip(id_parsed, valid, births, strict=True)
        ]
        fields["sex"] = [p.sex if v else s for p, v, s in zip(id_parsed, valid, sexes, strict=True)]

    def _column(self, work: _Work, name: str) -> list[str | None]:
        """The stripped cells of a column of the spec (all None for a name the spec has not)."""
        j = self.position.get(name)
        return work.cells[j] if j is not None else work.none

    def _derived(self, work: _Work, derivation: Derivation[Any] | None) -> list[Any]:
        """A derivation (event, population type, residence status) of each row, applied once per distinct
        combination of the cells it reads; the derived value of a row with no known event is None."""
        if derivation is None:
            return work.none
        read = sorted(derivation.columns())
        keys = list(zip(*(self._column(work, c) for c in read), strict=True)) or [()] * work.n
        found = {k: derivation.apply(dict(zip(read, k, strict=True))) for k in set(keys)}
        return [found[k] for k in keys]

    def _derive(self, work: _Work) -> None:
        """Record key, event, population type, residence status, event date; an unknown event rejects."""
        spec, fields, n = self.spec, work.fields, work.n
        keys = [[v or "" for v in self._column(work, c)] for c in spec.record_key]
        fields["record_key"] = (
            ["|".join(parts) or None for parts in zip(*keys, strict=True)] if keys else work.none
        )
        events = self._derived(work, spec.events)
        known = [event is not None for event in events]
        work.flag([i for i in range(n) if not known[i]], f"EVENT_CODE:{spec.events.column}", True)
        for fld, derived in (
            ("event", events),
            ("population_type", self._derived(work, spec.population_type)),
            ("residence_status", self._derived(work, spec.residence_status)),
        ):  # an enum's value; nothing for a row of no known event
            fields[fld] = [d.value if d and k else None for d, k in zip(derived, known, strict=True)]
        dates = fields.setdefault("event_date", [None] * n)
        pending = known[:]  # rows still looking for their first filled date column
        for column in spec.event_date_from:
            values = self._column(work, column)
            parsed = {v: parse_date(v, today=self.today).value for v in set(values) - {None}}
            for i in [i for i in range(n) if pending[i] and values[i] is not None]:
                pending[i] = False
                dates[i] = parsed[values[i]] or dates[i]
        if not self.has_community and "registered_area_code" in fields:
            # A registered resident lives at the registered address unless another source says otherwise.
            areas = self.known_areas
            fields["community_code"] = [
                code if k and code and len(code) == 12 and (not areas or code in areas) else None
                for code, k in zip(fields["registered_area_code"], known, strict=True)
            ]
