"""A client's policy: what it may do, for which purposes, on whom, which fields, how often.

A policy is data (YAML or JSON, stored as JSONB on api_client), read in one screen:

    operations: [lookup, verify, changes]        # endpoints it may call
    purposes: [social_security_payment]          # X-Purpose values it may cite
    fields: [name, sex, birth_date, id_no, status, death_date, community_code]
    unmasked: [id_no]                            # returned in clear; id_no and phone are masked otherwise
    population_types: [registered, floating]     # whom it may see
    areas: ["330102"]                            # district / street / community codes, or "*" (whole city)
    rate_limit: {per_second: 50, burst: 100}
    verifiable: [id_no, name]                    # what a verification may compare (unset: id_no and the readable)
    masks: {id_no: {head: 6, tail: 0}}           # what a masked value shows (defaults: MASKS)

A client cannot confirm by guessing what it may not read: a verification compares only the fields
listed under `verifiable` (sharing_api/guessing.py limits its failures), and a masked ID number may not
show so much that, with the birth date and sex granted beside it, few numbers are left to try
(`id_candidates`).
"""

from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import ColumnElement, and_, false, or_, true


class Operation(StrEnum):
    """What a client may do: one per endpoint family."""

    LOOKUP = "lookup"
    SEARCH = "search"
    VERIFY = "verify"
    CHANGES = "changes"
    BASELINE = "baseline"
    ACCESS_HISTORY = "access_history"


class PersonField(StrEnum):
    """A golden-record attribute a policy can grant; person_no is always returned."""

    NAME = "name"
    SEX = "sex"
    ETHNICITY = "ethnicity"
    BIRTH_DATE = "birth_date"
    DEATH_DATE = "death_date"
    ID_TYPE = "id_type"
    ID_NO = "id_no"
    PHONE = "phone"
    ADDRESS = "address"
    COMMUNITY_CODE = "community_code"
    POPULATION_TYPE = "population_type"
    MARITAL_STATUS = "marital_status"
    STATUS = "status"


class Mask(BaseModel):
    """What a masked value shows: its first `head` and last `tail` characters, '*' for the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: int = Field(ge=0, le=32)
    tail: int = Field(ge=0, le=32)

    def apply(self, value: str | None) -> str | None:
        """The value masked (a value no longer than what would show is all '*')."""
        if not value:
            return value
        if len(value) <= self.head + self.tail:
            return "*" * len(value)
        return (
            value[: self.head] + "*" * (len(value) - self.head - self.tail) + value[len(value) - self.tail :]
        )


MaskedField = Literal["id_no", "phone"]
# Masked unless the policy lists the field under `unmasked`; a policy's `masks` replace these. The ID
# number shows its district and nothing after it: not the birth date (a client may be granted it
# anyway), nor the check digit, which with the district, birth date and sex would leave ~46 numbers.
MASKS: dict[str, Mask] = {"id_no": Mask(head=6, tail=0), "phone": Mask(head=3, tail=4)}
# The fewest resident ID numbers a masked one, with the fields granted beside it, may leave to try:
# at a handful of failed verifications a day (guessing.py), weeks of guessing the monitor sees.
MIN_ID_CANDIDATES = 100
CITY_DIGITS = 4  # every resident's number starts with the city's own code: known to any client


def id_candidates(mask: Mask, fields: set[str]) -> float:
    """How many 18-digit ID numbers agree with what a client sees: the masked number and the granted
    birth date (digits 7-14) and sex (the parity of digit 17); a shown check digit rules out 10 in 11."""
    known = set(range(max(mask.head, CITY_DIGITS))) | set(range(18 - mask.tail, 18))
    if PersonField.BIRTH_DATE in fields:
        known |= set(range(6, 14))
    count = 1.0
    for i in set(range(17)) - known:
        count *= 5 if i == 16 and PersonField.SEX in fields else 10
    return count / 11 if 17 in known and count > 1 else count


Verifiable = Literal["id_no", "name", "birth_date"]

PopulationType = Literal["registered", "floating", "foreign"]
AreaCode = Annotated[str, StringConstraints(pattern=r"^(\*|\d{6}|\d{9}|\d{12})$")]
Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,47}$")]


class RateLimit(BaseModel):
    """A token bucket: `burst` requests at once, refilled at `per_second`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0, le=100_000)
    burst: int = Field(ge=1, le=100_000)


class Policy(BaseModel):
    """What one client may do; everything not listed is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operations: list[Operation] = Field(min_length=1)
    purposes: list[Purpose] = Field(min_length=1)
    fields: list[PersonField] = Field(default_factory=list)
    unmasked: list[Literal["id_no", "phone"]] = Field(default_factory=list)
    population_types: list[PopulationType] = Field(min_length=1)
    areas: list[AreaCode] = Field(min_length=1)
    rate_limit: RateLimit
    # What a verification may compare with the record: the document number, and the name and birth
    # date claimed with it. A policy that does not say (every policy stored before this setting) may
    # compare the document number and those of the name and birth date it may read anyway: confirming
    # a value it cannot read (a birth date not granted) must be listed.
    verifiable: list[Verifiable] = Field(default_factory=list)
    masks: dict[MaskedField, Mask] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _verifiable_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "verifiable" not in data:
            readable = [f for f in ("name", "birth_date") if f in (data.get("fields") or [])]
            return {**data, "verifiable": ["id_no", *readable]}
        return data

    @model_validator(mode="after")
    def _unmasked_are_granted(self) -> "Policy":
        missing = set(self.unmasked) - set(self.fields)
        if missing:
            raise ValueError(f"unmasked fields must also be granted in fields: {sorted(missing)}")
        return self

    @model_validator(mode="after")
    def _masked_id_leaves_enough_to_guess(self) -> "Policy":
        if PersonField.ID_NO in self.fields and "id_no" not in self.unmasked:
            left = id_candidates(self.masks.get("id_no", MASKS["id_no"]), set(self.fields))
            if left < MIN_ID_CANDIDATES:
                raise ValueError(
                    f"脱敏后的证件号码与授权的出生日期、性别一起只剩约 {left:.0f} 个可能的号码"
                    f"（至少须 {MIN_ID_CANDIDATES} 个）：请少显示几位（masks.id_no 的 head/tail）"
                )
        return self

    @cached_property
    def _masking(self) -> dict[str, Mask]:
        """The mask of each field shown masked (not granted in clear)."""
        masks = dict(MASKS)
        for name, mask in self.masks.items():
            masks[name] = mask
        return {name: mask for name, mask in masks.items() if name not in self.unmasked}

    @property
    def whole_city(self) -> bool:
        """True when the policy covers every area."""
        return "*" in self.areas

    def covers_area(self, code: str | None) -> bool:
        """True when an area (or a person's community) lies inside the granted areas."""
        if self.whole_city:
            return True
        return code is not None and any(code.startswith(area) for area in self.areas)

    def covers(self, *, population_type: str | None, community_code: str | None) -> bool:
        """True when a person is within the policy's population types and areas."""
        return population_type in self.population_types and self.covers_area(community_code)

    def scope_sql(self, *, population_type: Any, community_code: Any) -> ColumnElement[bool]:
        """The same test as `covers`, as a SQL condition on the given columns."""
        areas = (
            true() if self.whole_city else or_(false(), *(community_code.startswith(a) for a in self.areas))
        )
        return and_(population_type.in_(self.population_types), areas)

    def show(self, values: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
        """The requested fields of a record, masked where the policy does not grant them in clear."""
        shown = {}
        masking = self._masking
        for name in fields:
            value = values.get(name)
            mask = masking.get(name)
            shown[name] = mask.apply(value) if mask else value
        return shown
