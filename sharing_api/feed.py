"""The change feed as one client sees it: every change to what it may see, so that its copy stays exact.

Each change_event says where its person was before and is after, as `[population_type,
community_code]` or null (registry/events.py). A client is served an event when either side is in
its scope (and in the area it asked for), and what it is served follows from the two sides:

- in scope before and after: the event itself (moved, died, attribute_changed, ...);
- only after: the event itself when it brings a person into being for the client (person_created,
  born, split, unmerged), else `entered_scope`;
- only before: `left_scope` (the client drops the person), or `merged` for a number merged away;
- neither: nothing.

Every served event but `left_scope` and `merged` carries the person's record (the granted fields,
masked as a lookup masks them): a subscriber applies an event by replacing its copy of `person_no`
with the payload's fields, or, for `left_scope` and `merged`, by deleting `person_no`. A version that
means several events is served one arrival or departure (`lead`). Events written before this
(without `scope`) are served as before: by the event's community and the person's population type.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal_column, or_, select
from sqlalchemy.orm import Session

from registry.events import RECORD_FIELDS
from registry.models import ChangeEvent, Person
from schemas.canonical import ChangeEventType
from sharing_api.access import Access
from sharing_api.policy import PersonField
from sharing_api.schemas import ChangeFeed, ChangeOut, EventType

ARRIVALS = frozenset({"person_created", "born", "split", "unmerged"})
REMOVALS = frozenset({ChangeEventType.LEFT_SCOPE.value, ChangeEventType.MERGED.value})
SCOPE_EVENTS = (ChangeEventType.ENTERED_SCOPE.value, ChangeEventType.LEFT_SCOPE.value)


def _side(side: str, n: int) -> ColumnElement[str]:
    return literal_column(f"change_event.payload #>> '{{scope,{side},{n}}}'")


def _sql_scope(access: Access, area: str | None) -> ColumnElement[bool]:
    """Events the client may be served: either side in its scope and area (or, unscoped, as before)."""
    policy = access.policy

    def side(name: str) -> ColumnElement[bool]:
        community = _side(name, 1)
        inside = policy.scope_sql(population_type=_side(name, 0), community_code=community)
        return and_(inside, community.startswith(area)) if area else inside

    scoped = ChangeEvent.payload.has_key("scope")
    legacy = policy.scope_sql(
        population_type=Person.population_type, community_code=ChangeEvent.community_code
    )
    if area:
        legacy = and_(legacy, ChangeEvent.community_code.startswith(area))
    return or_(and_(scoped, or_(side("before"), side("after"))), and_(~scoped, legacy))


def _covers(access: Access, keys: Sequence[Any] | None, area: str | None) -> bool:
    if not keys:
        return False
    population_type, community = keys
    inside = access.policy.covers(population_type=population_type, community_code=community)
    return inside and (area is None or (community or "").startswith(area))


def served_type(access: Access, event_type: str, payload: dict[str, Any], area: str | None) -> str | None:
    """What this client is served for the event, or None when nothing."""
    scope = payload.get("scope")
    if scope is None:
        return event_type  # unscoped: the query kept only events in scope
    before, after = _covers(access, scope.get("before"), area), _covers(access, scope.get("after"), area)
    lead = payload.get("lead", True)
    if event_type == ChangeEventType.MERGED.value:
        return event_type if before else None
    if after:
        if before or event_type in ARRIVALS or not lead:
            return event_type
        return ChangeEventType.ENTERED_SCOPE.value
    if before and lead:
        return ChangeEventType.LEFT_SCOPE.value
    return None


def _payload(
    access: Access, served: str, payload: dict[str, Any], fields: list[str], area: str | None
) -> dict[str, Any]:
    """The served event's payload: the record's granted fields (masked as usual) and the changed
    attribute names this client may see; the related person's number when it is in scope."""
    granted = set(fields)
    shown: dict[str, Any] = {}
    if served not in REMOVALS:
        keys = RECORD_FIELDS if "scope" in payload else payload
        shown = access.policy.show(payload, [k for k in keys if k in granted])
        changed = payload.get("changed")
        if isinstance(changed, list):
            shown["changed"] = [name for name in changed if name in granted]
    related = payload.get("related")
    if isinstance(related, dict) and _covers(access, related.get("scope"), area):
        shown[str(related["role"])] = related["person_no"]
    return shown


def _aware(column: Any) -> Any:
    """A timestamp column (stored without zone, in the database's time zone) as a timestamp with zone."""
    return func.timezone(func.current_setting("TimeZone"), column).label(column.key)


def changes(
    *,
    session: Session,
    access: Access,
    since: int,
    event_types: list[EventType] | None,
    area: str | None,
    limit: int,
    fields: list[PersonField] | None,
) -> ChangeFeed:
    """Change events after a cursor, in order, as this client is served them (module docstring).

    A page reads up to `limit` events that touch the client's scope; those it is served nothing for
    (a second departure of one version) or that the `event_types` asked leave out are skipped, so a
    page may hold fewer items; `next_cursor` is the last event read.
    """
    shown = access.fields(fields)
    access.area(area)
    stmt = (
        select(
            ChangeEvent.id,
            ChangeEvent.event_type,
            ChangeEvent.event_date,
            _aware(ChangeEvent.recorded_at),
            ChangeEvent.community_code,
            ChangeEvent.payload,
            Person.person_no,
        )
        .join(Person, Person.id == ChangeEvent.person_id)
        .where(ChangeEvent.id > since, _sql_scope(access, area))
        .order_by(ChangeEvent.id)
        .limit(limit + 1)
    )
    rows = session.execute(stmt).all()
    page = rows[:limit]
    wanted = {e.value for e in event_types} if event_types else None
    show_community = PersonField.COMMUNITY_CODE.value in shown
    items = []
    for r in page:
        payload = r.payload or {}
        served = served_type(access, r.event_type, payload, area)
        if served is None or (wanted is not None and served not in wanted):
            continue
        community = (
            payload.get("community_code", r.community_code) if "scope" in payload else r.community_code
        )
        items.append(
            ChangeOut(
                cursor=r.id,
                event_type=served,
                event_date=r.event_date,
                recorded_at=r.recorded_at,
                person_no=r.person_no,
                payload=_payload(access, served, payload, shown, area),
                **({"community_code": community} if show_community and served not in REMOVALS else {}),
            )
        )
    access.record(
        outcome="ok",
        person_nos=sorted({i.person_no for i in items}),
        fields=shown,
        since=since,
        events=len(items),
    )
    return ChangeFeed(items=items, next_cursor=page[-1].id if page else since, has_more=len(rows) > limit)
