"""One request's access: the client, the end user and purpose it cites, and the checks of its policy.

The service records what a request touched (`record`), and every refusal of personal data by policy
(field, area) like an access (`refuse`); the route commits those records (`commit`) before its
response leaves, and a request whose records cannot be committed gets no data.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sharing_api.audit import AccessAudit, AccessEntry
from sharing_api.clients import ClientContext
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.policy import Operation, PersonField, Policy
from sharing_api.reads import PersonReads


@dataclass(frozen=True)
class Access:
    """The checked context of one request: who, for whom, why, doing what."""

    client: ClientContext
    end_user: str
    purpose: str
    operation: Operation
    audit: AccessAudit
    # The single-person routes' reads, awaited on the event loop (async routes only).
    reads: PersonReads
    entries: list[AccessEntry] = field(default_factory=list)
    # Takes n more tokens from the client's rate limit: 0 when taken, else the seconds to wait.
    take_tokens: Callable[[int], float] = lambda n: 0.0
    # The client's budget of lookups by document that found no one: the tokens left, and taking one.
    lookup_misses_left: Callable[[], float] = lambda: 1.0
    take_lookup_miss: Callable[[], float] = lambda: 0.0

    @property
    def policy(self) -> Policy:
        """The client's policy."""
        return self.client.policy

    def record(
        self,
        *,
        outcome: str,
        person_nos: list[str] | None = None,
        fields: list[str] | None = None,
        **extra: Any,
    ) -> None:
        """Note this request's audit record; `commit` writes it."""
        self.entries.append(
            AccessEntry(
                client=self.client.code,
                end_user=self.end_user,
                purpose=self.purpose,
                operation=self.operation.value,
                outcome=outcome,
                person_nos=person_nos or [],
                fields=fields or [],
                extra=dict(extra),
            )
        )

    def failed(self, code: ErrorCode) -> None:
        """The request went unanswered by a fault on our side: one record saying so replaces what was
        noted (no data left), for the monitor to count (monitor/alerts.py api_failures)."""
        self.entries.clear()
        self.record(outcome="error", code=code.value)

    async def commit(self) -> None:
        """Write the records noted so far; AUDIT_UNAVAILABLE when they cannot be written."""
        if not self.entries:
            return
        entries = list(self.entries)
        self.entries.clear()
        try:
            await self.audit.write(entries)
        except Exception as exc:
            raise SharingError(ErrorCode.AUDIT_UNAVAILABLE) from exc

    def refuse(self, code: ErrorCode, message: str | None = None, **detail: Any) -> SharingError:
        """Audit a refusal and return the error to raise."""
        self.record(outcome="refused", code=code.value, **detail)
        return SharingError(code, message, detail=detail or None)

    def take(self, items: int) -> None:
        """Count a batch's items against the rate limit (admission took one token for the request)."""
        burst = self.policy.rate_limit.burst
        if items > burst:
            raise self.refuse(
                ErrorCode.BATCH_TOO_LARGE, f"本单位每次最多核验 {burst} 条（频率限制的突发上限）", items=items
            )
        wait = self.take_tokens(items - 1) if items > 1 else 0.0
        if wait:
            error = self.refuse(ErrorCode.RATE_LIMITED, items=items)
            error.headers["Retry-After"] = str(math.ceil(wait))
            raise error

    def fields(self, requested: list[PersonField] | None) -> list[str]:
        """The fields to return: those requested, or every granted one; a field not granted is refused."""
        granted = [f.value for f in self.policy.fields]
        if requested is None:
            return granted
        denied = sorted({f.value for f in requested} - set(granted))
        if denied:
            raise self.refuse(
                ErrorCode.FIELD_NOT_GRANTED, f"请求的字段未获授权：{', '.join(denied)}", fields=denied
            )
        return [f for f in granted if f in requested]  # policy order, no duplicates

    def area(self, area: str | None) -> None:
        """Refuse an explicit area filter outside the granted areas."""
        if area is not None and not self.policy.covers_area(area):
            raise self.refuse(ErrorCode.AREA_NOT_GRANTED, area=area)
