"""Request and response models of the sharing API."""

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.canonical import ChangeEventType

MAX_BATCH = 1000
EventType = ChangeEventType  # the change events the publish step writes, one vocabulary with the pages

PersonNo = Annotated[str, StringConstraints(pattern=r"^P\d{11}$")]
AreaCode = Annotated[str, StringConstraints(pattern=r"^(\d{6}|\d{9}|\d{12})$")]
IdType = Literal["RID", "PASSPORT", "HKMO", "TW", "FPR"]
# Text that PostgreSQL can store and compare: no control characters (NUL cannot be stored at all).
_PLAIN = r"^[^\x00-\x1f\x7f]+$"
DocumentNo = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_PLAIN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PLAIN)]


class Check(StrEnum):
    """What a verification answers: identity always; alive and resident need `status` granted."""

    ALIVE = "alive"
    RESIDENT = "resident"


class PersonOut(BaseModel):
    """A golden record as this client may see it: only granted (and requested) fields are present."""

    person_no: str = Field(description="统一人口编号")
    merged_from: str | None = Field(None, description="请求的编号已合并到本记录时，原编号")
    name: str | None = None
    sex: str | None = None
    ethnicity: str | None = None
    birth_date: date | None = None
    death_date: date | None = None
    id_type: str | None = None
    id_no: str | None = Field(None, description="未授权明文时脱敏")
    phone: str | None = Field(None, description="未授权明文时脱敏")
    address: str | None = None
    community_code: str | None = None
    population_type: str | None = None
    marital_status: str | None = None
    status: str | None = None


class DocumentQuery(BaseModel):
    """Find a person by an identity document."""

    model_config = ConfigDict(extra="forbid")

    id_type: IdType = "RID"
    id_no: DocumentNo


class SearchQuery(BaseModel):
    """Find persons by exact name and birth date, optionally within an area."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    birth_date: date
    area: AreaCode | None = None


class SearchResult(BaseModel):
    """Persons matching a search, at most `limit`."""

    items: list[PersonOut]
    truncated: bool = Field(description="还有更多匹配记录未返回")


class VerifyQuery(BaseModel):
    """Does this document number belong to this name and birth date (those given)?"""

    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(None, max_length=64, description="调用方自定义的条目标识，原样返回")
    id_type: IdType = "RID"
    id_no: DocumentNo
    name: Name | None = Field(None, description="须获授权比对姓名（授权策略 verifiable）")
    birth_date: date | None = Field(None, description="须获授权比对出生日期（授权策略 verifiable）")


class SingleVerifyQuery(VerifyQuery):
    """One verification, with the checks to answer besides identity."""

    checks: list[Check] | None = Field(None, description="缺省：获授权 status 字段时回答 alive 与 resident")


class VerifyResult(BaseModel):
    """Yes or no; alive and resident are answered only for a match and only when asked."""

    ref: str | None = None
    match: bool | None = Field(None, description="是否相符；limited 时不作答")
    alive: bool | None = None
    resident: bool | None = None
    limited: bool | None = Field(
        None, description="该证件、或该姓名与出生日期 24 小时内核验不符次数已达上限：未予核验"
    )


class BatchVerifyQuery(BaseModel):
    """Up to 1,000 verifications in one call."""

    model_config = ConfigDict(extra="forbid")

    items: list[VerifyQuery] = Field(json_schema_extra={"maxItems": MAX_BATCH})
    checks: list[Check] | None = Field(None, description="缺省：获授权 status 字段时回答 alive 与 resident")


class BatchVerifyResult(BaseModel):
    """One result per item, in the order given."""

    results: list[VerifyResult]
    matched: int
    limited: int = Field(description="因核验不符次数已达上限而未予核验的条数")


class ChangeOut(BaseModel):
    """One change to a golden record; `payload` holds the changed attributes this client may see."""

    cursor: int
    event_type: str
    event_date: date | None
    recorded_at: datetime
    person_no: str
    community_code: str | None = None
    payload: dict[str, Any]


class ChangeFeed(BaseModel):
    """A page of the change feed; call again with since=next_cursor."""

    items: list[ChangeOut]
    next_cursor: int
    has_more: bool


class BaselinePage(BaseModel):
    """A page of the baseline extract; follow with after=next_cursor until has_more is false."""

    items: list[PersonOut]
    next_cursor: int | None
    has_more: bool
    change_cursor: int = Field(description="变更订阅的起点：取第一页时的值，之后用 /changes?since= 接续")


class AccessOut(BaseModel):
    """One access to a person's data."""

    at: datetime
    client: str
    end_user: str
    purpose: str
    operation: str
    outcome: str
    fields: list[str]


class AccessRecord(BaseModel):
    """One entry of a person's whole access record (the operators' channel): a client's request, an
    operator's export or review view; `client` empty for an operator."""

    at: datetime
    client: str
    who: str
    purpose: str
    action: str
    outcome: str
    fields: list[str]


class AccessHistory(BaseModel):
    """Who looked at a person, when and why, newest first."""

    person_no: str
    items: list[AccessOut]
    next_before: int | None
