"""A client's policy: what it may do, for which purposes, on whom, which fields, how often.

A policy is data (YAML or JSON, stored as JSONB on api_client), read in one screen:

    operations: [lookup, verify, changes]        # endpoints it may call
    purposes: [social_security_payment]          # X-Purpose values it may cite
    fields: [name, sex, birth_date, id_no, status, death_date, community_code]
    unmasked: [id_no]                            # returned in clear; id_no and phone are masked otherwise
    population_types: [registered, floating]     # whom it may see
    areas: ["330102"]                            # district / street / community codes, or "*" (whole city)
    rate_limit: {per_second: 50, burst: 100}
"""

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import ColumnElement, and_, false, or_, true

from registry.masking import mask_id_no, mask_phone


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


# Masked unless the policy lists the field under `unmasked`.
MASKS: dict[str, Callable[[str | None], str | None]] = {"id_no": mask_id_no, "phone": mask_phone}

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

    @model_validator(mode="after")
    def _unmasked_are_granted(self) -> "Policy":
        missing = set(self.unmasked) - set(self.fields)
        if missing:
            raise ValueError(f"unmasked fields must also be granted in fields: {sorted(missing)}")
        return self

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
        for name in fields:
            value = values.get(name)
            mask = MASKS.get(name)
            shown[name] = mask(value) if mask and name not in self.unmasked else value
        return shown
