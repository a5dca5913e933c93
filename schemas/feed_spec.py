"""Feed specs: one YAML file per source in schemas/feeds/, loaded into validated pydantic models."""

from collections.abc import Mapping
from datetime import time
from functools import cache
from pathlib import Path
from typing import Annotated, Generic, Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.canonical import CANONICAL_FIELDS, ColumnKind, Event, PopulationType, ResidenceStatus

FEEDS_DIR = Path(__file__).parent / "feeds"
SOURCE_PATTERN = r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*"

# A source's trust rank for an attribute, 1 = most trusted. Bounded, so a rank is one digit in the
# survivorship sort key, and a source without a rank (registry.trust.UNRANKED) comes after every rank.
LOWEST_RANK = 8
Rank = Annotated[int, Field(ge=1, le=LOWEST_RANK)]
Ratio = Annotated[float, Field(ge=0, le=1)]
T = TypeVar("T", Event, PopulationType, ResidenceStatus)


class UnknownSourceError(LookupError):
    """No feed spec exists for the source."""

    def __init__(self, source: str, known: list[str]) -> None:
        self.source = source
        super().__init__(f"未知的数据来源「{source}」，已登记的来源：{'、'.join(known)}")


class FeedSpecError(ValueError):
    """A spec file cannot be read or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Department(_Model):
    """The sending department."""

    code: str
    name: str


class ColumnSpec(_Model):
    """One column of the feed: its exact Chinese header and the canonical field it maps to."""

    name: str = Field(min_length=1)
    field: str
    required: bool = False
    kind: ColumnKind

    @model_validator(mode="after")
    def _canonical(self) -> Self:
        if self.field not in CANONICAL_FIELDS:
            raise ValueError(f"column {self.name}: {self.field!r} is not a canonical field")
        return self


class Rule(_Model, Generic[T]):
    """A condition on one column: `filled` (blank or not) or `one_of` (value in a list); first match wins."""

    column: str
    filled: bool | None = None
    one_of: list[str] | None = None
    value: T

    @model_validator(mode="after")
    def _one_condition(self) -> Self:
        if (self.filled is None) == (self.one_of is None):
            raise ValueError(f"rule on {self.column}: give exactly one of filled, one_of")
        return self

    def matches(self, row: Mapping[str, str | None]) -> bool:
        """Whether the row meets the condition."""
        raw = (row.get(self.column) or "").strip()
        return bool(raw) == self.filled if self.one_of is None else raw in self.one_of


class Derivation(_Model, Generic[T]):
    """How a row's value is derived: rules first, then the column's value map, then the default."""

    column: str | None = None
    values: dict[str, T] = {}
    rules: list[Rule[T]] = []
    default: T | None = None

    @model_validator(mode="after")
    def _column_has_values(self) -> Self:
        if (self.column is None) != (not self.values):
            raise ValueError("column and values go together")
        return self

    def columns(self) -> set[str]:
        """The columns the derivation reads."""
        return {rule.column for rule in self.rules} | ({self.column} if self.column else set())

    def apply(self, row: Mapping[str, str | None]) -> T | None:
        """The derived value for a row; None when the column holds a value the map does not know."""
        for rule in self.rules:
            if rule.matches(row):
                return rule.value
        raw = (row.get(self.column) or "").strip() if self.column else ""
        return self.values.get(raw) if raw else self.default


class Schedule(_Model):
    """When the daily file is due: `deadline` local time on the day after the as-of date."""

    daily: bool = True
    deadline: time


class Volume(_Model):
    """Accepted row count relative to the median of recent batches."""

    min_rows_ratio: float = Field(ge=0)
    max_rows_ratio: float = Field(gt=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_rows_ratio >= 1:
            raise ValueError("min_rows_ratio must be below 1")
        return self


class Gate(_Model):
    """Batch gate thresholds: null rate of required columns, conformance rate per column kind."""

    max_null_rate: Ratio
    min_conformance: dict[ColumnKind, Ratio] = {}


class FeedSpec(_Model):
    """The data contract of one source: header, mapping, events, trust, schedule and gate."""

    source: str = Field(pattern=f"^{SOURCE_PATTERN}$")
    department: Department
    title: str
    formats: list[Literal["csv", "xlsx", "jsonl"]] = Field(min_length=1)
    encoding_hint: str | None = None
    columns: list[ColumnSpec] = Field(min_length=1)
    record_key: list[str] = Field(min_length=1)
    events: Derivation[Event]
    population_type: Derivation[PopulationType] | None = None
    residence_status: Derivation[ResidenceStatus] | None = None
    event_date_from: list[str] = []
    trust: dict[str, Rank]
    schedule: Schedule
    volume: Volume
    gate: Gate

    @property
    def column_names(self) -> list[str]:
        """Header names in the standard's order."""
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        """Header names that must be present and filled."""
        return [c.name for c in self.columns if c.required]

    @property
    def fields(self) -> set[str]:
        """Canonical fields the source provides, mapped from columns or derived."""
        derived = {
            "event": self.events,
            "population_type": self.population_type,
            "residence_status": self.residence_status,
            "event_date": self.event_date_from,
        }
        return {c.field for c in self.columns} | {name for name, how in derived.items() if how}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = self.column_names
        problems = [f"duplicate column {n}" for n in sorted({n for n in names if names.count(n) > 1})]
        fields = [c.field for c in self.columns]
        problems += [f"duplicate field {f}" for f in sorted({f for f in fields if fields.count(f) > 1})]
        referenced = set(self.record_key) | set(self.event_date_from)
        for how in (self.events, self.population_type, self.residence_status):
            referenced |= how.columns() if how else set()
        problems += [f"unknown column {n}" for n in sorted(referenced - set(names))]
        problems += [
            f"trust for a field the source lacks: {f}" for f in sorted(self.trust.keys() - self.fields)
        ]
        kinds = {c.kind for c in self.columns}
        problems += [
            f"gate for an unused kind: {k}" for k in sorted(self.gate.min_conformance.keys() - kinds)
        ]
        if not self.source.startswith(f"{self.department.code}_"):
            problems.append(
                f"source {self.source} does not start with department code {self.department.code}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


# libyaml's safe loader where PyYAML was built with it (the same documents, a tenth of the time: every
# command that reads a file reads the specs first); the pure-Python one otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_file(path: Path) -> FeedSpec:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
        spec = FeedSpec.model_validate(document)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise FeedSpecError(f"feed spec {path}: {exc}") from exc
    if spec.source != path.stem:
        raise FeedSpecError(f"feed spec {path}: source {spec.source} differs from the file name")
    return spec


@cache
def _load_dir(directory: Path) -> tuple[FeedSpec, ...]:
    return tuple(_load_file(path) for path in sorted(directory.glob("*.yaml")))


def load_feed_specs(directory: Path | None = None) -> dict[str, FeedSpec]:
    """All feed specs in `directory` (default: schemas/feeds/) by source; files are read once."""
    return {spec.source: spec for spec in _load_dir((directory or FEEDS_DIR).resolve())}


def get_feed_spec(source: str) -> FeedSpec:
    """The spec of a source from schemas/feeds/; UnknownSourceError if there is none."""
    specs = load_feed_specs()
    if source not in specs:
        raise UnknownSourceError(source, sorted(specs))
    return specs[source]
