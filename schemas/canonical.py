"""The canonical vocabulary every feed is mapped onto: field names, population types, events, statuses."""

from enum import StrEnum

# One line each: what the field holds once a source's column is mapped onto it.
FIELD_MEANINGS: dict[str, str] = {
    "record_key": "the source's own record identifier; the spec's record_key columns joined with '|'",
    "id_type": "identity document type as sent (居民身份证, 护照, …); blank means a resident ID",
    "id_no": "identity document number: the resident ID number, or the document number of id_type",
    "name": "the person's name",
    "former_name": "a former name (曾用名)",
    "sex": "sex as sent: 男/女 or the GB/T 2261.1 codes 1/2",
    "ethnicity": "ethnic group name per GB 3304 (汉族 …)",
    "birth_date": "date of birth",
    "household_no": "household registration number (户号)",
    "household_relation": "relation to the head of household (与户主关系)",
    "address": "current address (where the person lives now)",
    "community_code": "12-digit code of the community where the person lives now",
    "registered_area_code": "12-digit community code of the registered (户籍) address",
    "event": "what the row reports, one of Event",
    "event_date": "the date the reported event happened",
    "population_type": "one of PopulationType: registered, floating, foreign",
    "residence_status": "one of ResidenceStatus: present, left, dead",
    "phone": "contact phone number",
    "mother_name": "mother's name (births)",
    "mother_id_no": "mother's resident ID number (births)",
    "father_name": "father's name (births)",
    "father_id_no": "father's resident ID number (births)",
    "spouse_id_no": "spouse's resident ID number (marriages)",
    "spouse_name": "spouse's name (marriages)",
    "school": "school name (student enrolment)",
    "grade": "school grade (student enrolment)",
    "employer": "employer the person is insured through",
    "insurance_status": "social insurance status as sent",
    "guardian_name": "guardian's name (students)",
    "guardian_id_no": "guardian's resident ID number (students)",
    "birth_place": "place of birth (hospital or address)",
    "death_date": "date of death",
    "death_place": "place of death",
    "officer_no": "staff number of the community officer who collected the row",
    "remark": "free-text remark",
    "registered_address": "registered (户籍) address",
    "reg_date": "registration date of the reported record (登记日期)",
    "end_date": "end date of the reported record, e.g. a floating registration's cancellation",
    "reason": "reason given, e.g. the reason for residence (居住事由)",
}

CANONICAL_FIELDS: tuple[str, ...] = tuple(FIELD_MEANINGS)


class PopulationType(StrEnum):
    """Population type codes; `label` is the Chinese term used in feeds."""

    REGISTERED = "registered"
    FLOATING = "floating"
    FOREIGN = "foreign"

    @property
    def label(self) -> str:
        """The Chinese term: 户籍, 流动 or 境外."""
        return _POPULATION_TYPE_LABELS[self]


_POPULATION_TYPE_LABELS = {
    PopulationType.REGISTERED: "户籍",
    PopulationType.FLOATING: "流动",
    PopulationType.FOREIGN: "境外",
}


class ResidenceStatus(StrEnum):
    """Residence status codes; `label` is the Chinese term used in feeds."""

    PRESENT = "present"
    LEFT = "left"
    DEAD = "dead"

    @property
    def label(self) -> str:
        """The Chinese term: 在住, 离开 or 死亡."""
        return _RESIDENCE_STATUS_LABELS[self]


_RESIDENCE_STATUS_LABELS = {
    ResidenceStatus.PRESENT: "在住",
    ResidenceStatus.LEFT: "离开",
    ResidenceStatus.DEAD: "死亡",
}


class Event(StrEnum):
    """What a source row reports; `label` is a short Chinese description."""

    SNAPSHOT = "snapshot"
    BIRTH = "birth"
    MOVE_IN = "move_in"
    MOVE_OUT = "move_out"
    DEATH = "death"
    UPDATE = "update"
    ARRIVE = "arrive"
    LEAVE = "leave"
    MARRY = "marry"
    DIVORCE = "divorce"
    ENROL = "enrol"
    INSURE = "insure"
    VERIFY = "verify"

    @property
    def label(self) -> str:
        """A short Chinese description of the event."""
        return _EVENT_LABELS[self]


_EVENT_LABELS = {
    Event.SNAPSHOT: "在册",
    Event.BIRTH: "出生",
    Event.MOVE_IN: "迁入",
    Event.MOVE_OUT: "迁出",
    Event.DEATH: "死亡",
    Event.UPDATE: "信息变更",
    Event.ARRIVE: "流入登记",
    Event.LEAVE: "离开",
    Event.MARRY: "结婚",
    Event.DIVORCE: "离婚",
    Event.ENROL: "入学在籍",
    Event.INSURE: "参保变更",
    Event.VERIFY: "上门核实",
}


class BatchState(StrEnum):
    """Where a received file (a batch) is on its way into the one database; `label` is its Chinese name.

    The allowed moves between states live beside this enum (registry/batches.py applies them).
    """

    RECEIVED = "received"  # archived with its hash, nothing else done
    REJECTED = "rejected"  # the file itself cannot be read (encoding, format, header …): error says why
    PARSED = "parsed"  # rows read and validated into source_record
    GATED = "gated"  # the batch gate passed
    QUARANTINED = "quarantined"  # the batch gate failed: nothing merged, reasons in gate_result
    RESOLVED = "resolved"  # every accepted row linked to a person or sent to review
    MERGED = "merged"  # golden records and history updated
    PUBLISHED = "published"  # change events written
    COUNTED = "counted"  # the decision statistics include the batch
    COMPLETED = "completed"  # the receipt is written: nothing left to do
    FAILED = "failed"  # a step raised; error holds what happened, a rerun resumes that step

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _BATCH_STATE_LABELS[self]


_BATCH_STATE_LABELS = {
    BatchState.RECEIVED: "已接收",
    BatchState.REJECTED: "整文件拒收",
    BatchState.PARSED: "已解析",
    BatchState.GATED: "已通过闸门",
    BatchState.QUARANTINED: "已隔离",
    BatchState.RESOLVED: "已识别",
    BatchState.MERGED: "已合并",
    BatchState.PUBLISHED: "已发布",
    BatchState.COUNTED: "已计入统计",
    BatchState.COMPLETED: "已完成",
    BatchState.FAILED: "失败",
}


class ColumnKind(StrEnum):
    """What a column's values look like; the batch gate checks conformance per kind."""

    TEXT = "text"
    ID_NO = "id_no"  # a resident ID number (18 or 15 digits)
    DOC_TYPE = "doc_type"  # an identity document type name
    DOC_NO = "doc_no"  # a document number whose meaning depends on the row's doc_type
    NAME = "name"
    SEX = "sex"
    ETHNICITY = "ethnicity"
    DATE = "date"
    AREA_CODE = "area_code"  # a 12-digit community code
    PHONE = "phone"
    EVENT = "event"  # the column whose values name the row's event
