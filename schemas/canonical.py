"""The canonical vocabulary every feed is mapped onto: field names, population types, events, statuses."""

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

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


class BatchStep(StrEnum):
    """The steps that move a batch on, in order (exchange.flows.run_step, batch.step_seconds keys and
    batch.failed_step); `label` is the Chinese name, `starts` the state it works on, `ends` the states
    it may leave the batch in."""

    PARSE = "parse"
    GATE = "gate"
    RESOLVE = "resolve"
    MERGE = "merge"
    PUBLISH = "publish"
    STATISTICS = "statistics"
    RECEIPT = "receipt"

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _BATCH_STEPS[self][0]

    @property
    def starts(self) -> BatchState:
        """The state a batch must be in for this step to work on it."""
        return _BATCH_STEPS[self][1]

    @property
    def ends(self) -> frozenset[BatchState]:
        """The states this step may leave a batch in (a step that raises leaves it failed)."""
        return _BATCH_STEPS[self][2]

    @property
    def done_states(self) -> frozenset[BatchState]:
        """The states of a batch this step has been through (a failed batch has been through the steps
        before its failed_step: see `later`)."""
        return frozenset(_reachable(self.ends))

    @property
    def later(self) -> tuple["BatchStep", ...]:
        """The steps after this one."""
        steps = list(BatchStep)
        return tuple(steps[steps.index(self) + 1 :])

    @classmethod
    def starting_from(cls, state: BatchState) -> "BatchStep | None":
        """The step that moves a batch on from this state; None where none does (final, held, failed)."""
        return next((step for step in cls if step.starts == state), None)


def batch_state_label(state: str, failed_step: str | None = None) -> str:
    """A batch's state in Chinese; a failed batch's names the step it failed in: 失败（步骤「合并」）."""
    label = BatchState(state).label
    return f"{label}（步骤「{BatchStep(failed_step).label}」）" if failed_step else label


# The batch's life in one table: each step, the state it starts from and the states it ends in.
_BATCH_STEPS: dict[BatchStep, tuple[str, BatchState, frozenset[BatchState]]] = {
    BatchStep.PARSE: ("解析", BatchState.RECEIVED, frozenset({BatchState.PARSED, BatchState.REJECTED})),
    BatchStep.GATE: ("质量闸门", BatchState.PARSED, frozenset({BatchState.GATED, BatchState.QUARANTINED})),
    BatchStep.RESOLVE: ("识别", BatchState.GATED, frozenset({BatchState.RESOLVED})),
    BatchStep.MERGE: ("合并", BatchState.RESOLVED, frozenset({BatchState.MERGED})),
    BatchStep.PUBLISH: ("发布", BatchState.MERGED, frozenset({BatchState.PUBLISHED})),
    BatchStep.STATISTICS: ("统计", BatchState.PUBLISHED, frozenset({BatchState.COUNTED})),
    BatchStep.RECEIPT: ("回执", BatchState.COUNTED, frozenset({BatchState.COMPLETED})),
}
# An operator releases a quarantined batch after checking it (exchange.gate.release_batch).
RELEASE = (BatchState.QUARANTINED, BatchState.GATED)


def _batch_moves() -> dict[BatchState, frozenset[BatchState]]:
    """Every allowed move: each step's, the release, a step that raises (→ failed) and a rerun
    (failed → the state the failed step starts from)."""
    moves: dict[BatchState, set[BatchState]] = {state: set() for state in BatchState}
    for step in BatchStep:
        moves[step.starts] |= step.ends | {BatchState.FAILED}
        moves[BatchState.FAILED].add(step.starts)
    moves[RELEASE[0]].add(RELEASE[1])
    return {state: frozenset(targets) for state, targets in moves.items()}


BATCH_MOVES = _batch_moves()
# States a step or a rerun moves on without a person: what the day's run and `popex ingest` pick up.
# (Quarantined waits for an operator's release; rejected and completed are final.)
UNFINISHED_STATES = frozenset({step.starts for step in BatchStep} | {BatchState.FAILED})


def _reachable(start: frozenset[BatchState]) -> set[BatchState]:
    """The states reachable from these by steps and releases (not through a failure)."""
    seen, todo = set(start), list(start)
    while todo:
        for target in BATCH_MOVES[todo.pop()] - {BatchState.FAILED} - seen:
            seen.add(target)
            todo.append(target)
    return seen


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

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _COLUMN_KIND_LABELS[self]


_COLUMN_KIND_LABELS = {
    ColumnKind.TEXT: "文本",
    ColumnKind.ID_NO: "身份证号",
    ColumnKind.DOC_TYPE: "证件类型",
    ColumnKind.DOC_NO: "证件号码",
    ColumnKind.NAME: "姓名",
    ColumnKind.SEX: "性别",
    ColumnKind.ETHNICITY: "民族",
    ColumnKind.DATE: "日期",
    ColumnKind.AREA_CODE: "区划代码",
    ColumnKind.PHONE: "电话",
    ColumnKind.EVENT: "变动类型",
}


class Sex(StrEnum):
    """Sex as the registry stores it (GB/T 2261.1 codes); `label` is the Chinese word."""

    MALE = "1"
    FEMALE = "2"

    @property
    def label(self) -> str:
        """男 or 女."""
        return _SEX_LABELS[self]


_SEX_LABELS = {Sex.MALE: "男", Sex.FEMALE: "女"}


class IdType(StrEnum):
    """Identity document types as the registry stores them; `label` is the document's Chinese name."""

    RID = "RID"
    PASSPORT = "PASSPORT"
    HKMO = "HKMO"
    TW = "TW"
    FPR = "FPR"

    @property
    def label(self) -> str:
        """The document's name (居民身份证 …)."""
        return _ID_TYPE_LABELS[self]


_ID_TYPE_LABELS = {
    IdType.RID: "居民身份证",
    IdType.PASSPORT: "护照",
    IdType.HKMO: "港澳居民来往内地通行证",
    IdType.TW: "台湾居民来往大陆通行证",
    IdType.FPR: "外国人永久居留身份证",
}


class Channel(StrEnum):
    """How a file reached the exchange (delivery.channel); `label` is its Chinese name."""

    CLI = "cli"  # popex ingest
    PUSH = "push"  # the push API
    LANDING = "landing"  # the landing folder, taken by the day's run
    COLLECTION = "collection"  # the community officers' rows, forwarded as a file

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _CHANNEL_LABELS[self]


_CHANNEL_LABELS = {
    Channel.CLI: "命令行",
    Channel.PUSH: "接口推送",
    Channel.LANDING: "落地目录",
    Channel.COLLECTION: "社区采集",
}


class ChangeEventType(StrEnum):
    """The change events the publish step writes (change_event.event_type) and the sharing API serves."""

    PERSON_CREATED = "person_created"
    BORN = "born"
    DIED = "died"
    MOVED = "moved"  # to another community of the city
    LEFT_CITY = "left_city"
    RETURNED = "returned"
    ATTRIBUTE_CHANGED = "attribute_changed"
    MARRIED = "married"
    DIVORCED = "divorced"
    # A clerk's operations (registry/review.py) and what the sharing feed serves a client.
    MERGED = "merged"  # the retired number (person_no) was merged into payload.survivor
    SPLIT = "split"  # a new person (person_no) split off payload.split_from
    UNMERGED = "unmerged"  # a merge undone: the retired number (person_no) is a person again
    ENTERED_SCOPE = "entered_scope"  # came into the client's areas or population types (served only)
    LEFT_SCOPE = "left_scope"  # went out of them: drop the person (served only)

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _CHANGE_EVENT_LABELS[self]


_CHANGE_EVENT_LABELS = {
    ChangeEventType.PERSON_CREATED: "新增人员",
    ChangeEventType.BORN: "出生",
    ChangeEventType.DIED: "死亡",
    ChangeEventType.MOVED: "市内迁居",
    ChangeEventType.LEFT_CITY: "离开本市",
    ChangeEventType.RETURNED: "返回本市",
    ChangeEventType.ATTRIBUTE_CHANGED: "信息变更",
    ChangeEventType.MARRIED: "结婚",
    ChangeEventType.DIVORCED: "离婚",
    ChangeEventType.MERGED: "合并注销",
    ChangeEventType.SPLIT: "拆分新增",
    ChangeEventType.UNMERGED: "撤销合并",
    ChangeEventType.ENTERED_SCOPE: "进入授权范围",
    ChangeEventType.LEFT_SCOPE: "离开授权范围",
}


class AuditCategory(StrEnum):
    """What an audit record is about: the part of its action before the first dot (file.received → file)."""

    FILE = "file"
    BATCH = "batch"
    PUSH_KEY = "push_key"
    COLLECTION = "collection"
    SHARING = "sharing"
    REVIEW = "review"
    PERSON = "person"
    EXPORT = "export"
    AREAS = "areas"
    AUDIT = "audit"  # the log's own: a person's record looked up, the chain re-hashed
    DECISION = "decision"  # planners' keys, levels opened to everyone
    DB = "db"  # the database's own operation: restored from a backup, its history repaired

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _AUDIT_CATEGORY_LABELS[self]


_AUDIT_CATEGORY_LABELS = {
    AuditCategory.FILE: "文件接收",
    AuditCategory.BATCH: "批次处理",
    AuditCategory.PUSH_KEY: "推送密钥",
    AuditCategory.COLLECTION: "社区采集",
    AuditCategory.SHARING: "信息共享",
    AuditCategory.REVIEW: "人工核查",
    AuditCategory.PERSON: "人员合并拆分",
    AuditCategory.EXPORT: "数据导出",
    AuditCategory.AREAS: "区划数据",
    AuditCategory.AUDIT: "审计日志",
    AuditCategory.DECISION: "决策统计",
    AuditCategory.DB: "数据库运维",
}


class AirflowState(StrEnum):
    """States of an Airflow DAG run or task instance as Airflow 3 names them; NONE: not yet scheduled."""

    SUCCESS = "success"
    FAILED = "failed"
    RUNNING = "running"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    REMOVED = "removed"
    RESTARTING = "restarting"
    AWAITING_INPUT = "awaiting_input"
    NONE = "none"

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _AIRFLOW_STATE_LABELS[self]


_AIRFLOW_STATE_LABELS = {
    AirflowState.SUCCESS: "成功",
    AirflowState.FAILED: "失败",
    AirflowState.RUNNING: "运行中",
    AirflowState.QUEUED: "排队中",
    AirflowState.SCHEDULED: "已调度",
    AirflowState.UP_FOR_RETRY: "等待重试",
    AirflowState.UP_FOR_RESCHEDULE: "等待重新调度",
    AirflowState.UPSTREAM_FAILED: "上游失败",
    AirflowState.SKIPPED: "已跳过",
    AirflowState.DEFERRED: "已挂起",
    AirflowState.REMOVED: "已移除",
    AirflowState.RESTARTING: "重启中",
    AirflowState.AWAITING_INPUT: "等待人工输入",
    AirflowState.NONE: "未开始",
}


class Dag(StrEnum):
    """The Airflow DAGs of dags/ by their dag_id; `label` is what the run does, in Chinese."""

    EXCHANGE_DAILY = "exchange_daily"
    COLLECTION_DAILY = "collection_daily"
    MONITOR_ALERTS = "monitor_alerts"

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _DAG_LABELS[self]


_DAG_LABELS = {
    Dag.EXCHANGE_DAILY: "部门数据日处理",
    Dag.COLLECTION_DAILY: "社区采集日转交",
    Dag.MONITOR_ALERTS: "监控告警",
}


class DagTask(StrEnum):
    """The tasks of the DAGs by task_id (without a task group's prefix: batch.parse is PARSE); the batch
    steps they run are BatchStep (same names and words, but the task `receipts` runs the step `receipt`)."""

    DETECT = "detect"
    PARSE = "parse"
    GATE = "gate"
    RESOLVE = "resolve"
    MERGE = "merge"
    PUBLISH = "publish"
    STATISTICS = "statistics"
    RECEIPTS = "receipts"
    ALL_BATCHES_CHECKED = "all_batches_checked"
    FORWARD = "forward"
    PROCESS = "process"
    CLEARANCE = "clearance"
    EVALUATE = "evaluate"
    NOTIFY = "notify"

    @property
    def label(self) -> str:
        """The step's Chinese name."""
        return _DAG_TASK_LABELS[self]


_DAG_TASK_LABELS = {
    DagTask.DETECT: "发现文件",
    DagTask.PARSE: "解析",
    DagTask.GATE: "质量闸门",
    DagTask.RESOLVE: "识别",
    DagTask.MERGE: "合并",
    DagTask.PUBLISH: "发布",
    DagTask.STATISTICS: "统计",
    DagTask.RECEIPTS: "回执",
    DagTask.ALL_BATCHES_CHECKED: "全部批次已检查",
    DagTask.FORWARD: "转交交换平台",
    DagTask.PROCESS: "处理批次",
    DagTask.CLEARANCE: "一日一清",
    DagTask.EVALUATE: "评估告警",
    DagTask.NOTIFY: "发送告警",
}


class ReviewKind(StrEnum):
    """Why a record waits for a clerk (review_item.kind); `label` says it in Chinese."""

    ID_CONFLICT = "id_conflict"  # a known ID number, but the name or birth date contradicts the person
    PROBABLE_MATCH = "probable_match"  # no decisive number; the match score is between the thresholds

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _REVIEW_KIND_LABELS[self]


_REVIEW_KIND_LABELS = {
    ReviewKind.ID_CONFLICT: "证件号码与姓名/出生日期矛盾",
    ReviewKind.PROBABLE_MATCH: "疑似同一人",
}


class ReviewState(StrEnum):
    """Where a review item is (review_item.state); `label` says it in Chinese."""

    OPEN = "open"
    ACCEPTED = "accepted"  # the clerk decided: the same person
    REJECTED = "rejected"  # the clerk decided: not the same person

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _REVIEW_STATE_LABELS[self]


_REVIEW_STATE_LABELS = {
    ReviewState.OPEN: "待处理",
    ReviewState.ACCEPTED: "已确认为同一人",
    ReviewState.REJECTED: "已确认不是同一人",
}


class AreaLevel(StrEnum):
    """Levels of the city's areas (area.level); CITY is the whole city, which has no area row."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _AREA_LEVEL_LABELS[self]


_AREA_LEVEL_LABELS = {
    AreaLevel.CITY: "全市",
    AreaLevel.DISTRICT: "区县",
    AreaLevel.STREET: "街道",
    AreaLevel.COMMUNITY: "社区",
}


class FlowKind(StrEnum):
    """How a person entered or left the population the decision statistics count."""

    BIRTH = "birth"
    DEATH = "death"
    IN = "in"  # moved in
    OUT = "out"  # moved out
    OTHER = "other"  # a record retired by a merge

    @property
    def label(self) -> str:
        """The Chinese name shown on every page, CLI and export."""
        return _FLOW_KIND_LABELS[self]


_FLOW_KIND_LABELS = {
    FlowKind.BIRTH: "出生",
    FlowKind.DEATH: "死亡",
    FlowKind.IN: "迁入",
    FlowKind.OUT: "迁出",
    FlowKind.OTHER: "注销合并",
}


class Labelled(Protocol):
    """A vocabulary member: a code with its Chinese label."""

    @property
    def label(self) -> str:
        """The Chinese label."""
        ...


def label_of(vocabulary: Callable[[str], Labelled], code: str | None) -> str:
    """The Chinese label of `code` in `vocabulary` (an enum above); the code itself when the vocabulary
    lacks it (a state a newer Airflow adds, a row written before a member was renamed), '' for None.

    For codes the platform does not own; a code it writes itself is its enum's member, `.label` directly.
    """
    if code is None:
        return ""
    try:
        return vocabulary(code).label
    except ValueError:
        return code
