"""Signed anchors of the audit chain, kept outside the database: a shortened, emptied or re-chained log
no longer matches them.

The hash chain shows a row changed or removed in the middle, but not the newest rows removed, the
table emptied, or a change followed by re-hashing every later row: each leaves a chain that verifies.
An anchor fixes the head of the chain as it was (the newest id, its hash, the number of rows up to
it), signed with HMAC-SHA256 under a key the database does not hold (POPEX_AUDIT_ANCHOR_KEY, or the
file named by POPEX_AUDIT_ANCHOR_KEY_FILE), one JSON line appended per anchor to
`<POPEX_AUDIT_ANCHOR_DIR>/audit-anchors.jsonl`. Anchors are written by `popex audit anchor` (run it at
intervals: what happens after the newest anchor is only as safe as the chain alone) and after each
`popex audit verify` that passes; `popex audit verify` checks the log against every anchor. Keep the
directory on storage the database's administrators cannot rewrite (another host, append-only).
"""

import hashlib
import hmac
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.orm import Session

from base.settings import ROOT
from registry.audit import ChainCheck, ChainStart, record_audit, verify_chain
from registry.partitions import Expired, detach

ANCHOR_FILE = "audit-anchors.jsonl"
T = TypeVar("T")
START_FILE = "audit-start.jsonl"  # where the log starts after its oldest months were detached
RESTORE_FILE = "audit-restores.jsonl"  # the head the log was restored to from a backup, each time


class AnchorSettings(BaseSettings):
    """The anchors' signing key (or the file holding it) and the directory the anchors go to."""

    model_config = SettingsConfigDict(env_prefix="POPEX_")

    audit_anchor_key: SecretStr | None = None
    audit_anchor_key_file: Path | None = None
    audit_anchor_dir: Path = ROOT / "var" / "anchors"

    def key(self) -> bytes | None:
        """The signing key, or None when neither the key nor its file is set."""
        if self.audit_anchor_key is not None and self.audit_anchor_key.get_secret_value():
            return self.audit_anchor_key.get_secret_value().encode()
        if self.audit_anchor_key_file is not None:
            return self.audit_anchor_key_file.read_bytes().strip()
        return None

    @property
    def path(self) -> Path:
        """The anchors file."""
        return self.audit_anchor_dir / ANCHOR_FILE

    @property
    def start_path(self) -> Path:
        """The starts file: a signed line each time retention detaches the log's oldest month."""
        return self.audit_anchor_dir / START_FILE

    @property
    def restore_path(self) -> Path:
        """The restores file: a signed line each time the database was restored from a backup."""
        return self.audit_anchor_dir / RESTORE_FILE


def _mac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of a signed line's message under the anchor key."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """The head of the chain at one moment: newest id, its hash, rows up to it; signed."""

    id: int
    hash: str
    count: int
    signed_at: str  # UTC, ISO 8601
    mac: str = ""

    def message(self) -> bytes:
        """What the signature covers: a JSON array of the fields, in a fixed order."""
        return json.dumps([self.id, self.hash, self.count, self.signed_at], separators=(",", ":")).encode()

    def signed(self, key: bytes) -> "Anchor":
        """This anchor with its signature."""
        return replace(self, mac=_mac(key, self.message()))

    def valid(self, key: bytes) -> bool:
        """True when the signature is this anchor's under `key`."""
        return hmac.compare_digest(_mac(key, self.message()), self.mac)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Anchor":
        """An anchor from its JSON line."""
        return cls(
            int(data["id"]), str(data["hash"]), int(data["count"]), str(data["signed_at"]), str(data["mac"])
        )

    def chain_start(self) -> ChainStart:
        """This point as where verification starts (a start: the last detached record)."""
        return ChainStart(self.id, self.hash, self.count)


@dataclass(frozen=True)
class Restore:
    """The head the log was restored to from a backup (`popex audit restored`): its id, hash and the
    records up to it, and how many anchors the anchors file held then (those are from before the
    restore; the later ones from after it); signed."""

    id: int
    hash: str
    count: int
    anchors: int
    signed_at: str  # UTC, ISO 8601
    mac: str = ""

    def message(self) -> bytes:
        """What the signature covers: a JSON array of the fields, in a fixed order."""
        fields = [self.id, self.hash, self.count, self.anchors, self.signed_at]
        return json.dumps(fields, separators=(",", ":")).encode()

    def signed(self, key: bytes) -> "Restore":
        """This restore with its signature."""
        return replace(self, mac=_mac(key, self.message()))

    def valid(self, key: bytes) -> bool:
        """True when the signature is this restore's under `key`."""
        return hmac.compare_digest(_mac(key, self.message()), self.mac)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Restore":
        """A restore from its JSON line."""
        return cls(
            int(data["id"]), str(data["hash"]), int(data["count"]), int(data["anchors"]),
            str(data["signed_at"]), str(data["mac"]),
        )  # fmt: skip


Point = Anchor | Restore  # what the log is checked against


def read_restores(settings: AnchorSettings, key: bytes) -> tuple[list[Restore], list[str]]:
    """The restores signed by the key, in the order they were made, and what is wrong with the file (Chinese)."""
    lines, problems = _read_lines(settings.restore_path, "恢复记录文件", Restore.parse)
    restores = []
    for r in lines:
        if r.valid(key):
            restores.append(r)
        else:
            problems.append(
                f"恢复记录 id={r.id}（签于 {r.signed_at}）签名不符：恢复记录文件被改动或伪造，或密钥不对"
            )
    return restores, problems


def kept(anchors: list[Anchor], restores: list[Restore]) -> tuple[list[Point], list[Anchor]]:
    """(what the log is checked against: the anchors and restore points that no later restore lost, in
    the order they were made; the anchors lost in a restore). An anchor made before a restore, of a record
    after the head the log went back to, is lost: that record is gone and its id was given again."""
    # A restore made when the file held k anchors comes after anchor k - 1 and before anchor k.
    points: list[tuple[int, int, Point]] = [(i, len(restores), a) for i, a in enumerate(anchors)]
    points += [(r.anchors, j, r) for j, r in enumerate(restores)]
    points.sort(key=lambda p: (p[0], p[1]))
    out: list[Point] = []
    lost: list[Anchor] = []
    earliest_later = None  # the lowest head any later restore went back to (read from the end)
    for _, _, point in reversed(points):
        if earliest_later is not None and earliest_later < point.id:
            if isinstance(point, Anchor):
                lost.append(point)
        else:
            out.append(point)
        if isinstance(point, Restore):
            earliest_later = point.id if earliest_later is None else min(earliest_later, point.id)
    return out[::-1], lost[::-1]


class AnchorRefused(RuntimeError):
    """The head cannot be anchored: the log no longer matches the newest anchor (message in Chinese)."""


class RetentionRefused(RuntimeError):
    """An audit month cannot be detached (message in Chinese: why, and what to do)."""


def _read_lines(path: Path, what: str, parse: Callable[[dict[str, Any]], T]) -> tuple[list[T], list[str]]:
    """The signed lines of a file (none if it does not exist) and a problem for each that does not parse."""
    if not path.exists():
        return [], []
    found: list[T] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            problems.append(f"{what}第 {n} 行无法解析")
    return found, problems


def read_anchors(path: Path, what: str = "锚点文件") -> tuple[list[Anchor], list[str]]:
    """The anchors in the file (none if it does not exist) and a problem for each line that does not parse."""
    return _read_lines(path, what, Anchor.parse)


def read_start(settings: AnchorSettings, key: bytes | None) -> tuple[Anchor | None, list[str]]:
    """Where the log starts: the newest line of the starts file (None: at its first record), and what is
    wrong with the file (Chinese). With a key the start must be signed by it; a start that is not is
    not used (verification then begins at the first record, and reports the detached months as a break)."""
    starts, problems = read_anchors(settings.start_path, "起点文件")
    if not starts:
        return None, problems
    newest = starts[-1]
    if key is not None and not newest.valid(key):
        return None, [
            *problems,
            f"审计日志起点 id={newest.id}（签于 {newest.signed_at}）签名不符：起点文件被改动或伪造，或密钥不对",
        ]
    if any(a.id > b.id for a, b in itertools.pairwise(starts)):
        problems.append("起点文件中的起点没有按记录 id 递增：起点文件被改动")
    return newest, problems


def check_anchors(
    check: ChainCheck, anchors: Sequence[Point], key: bytes, start: Anchor | None = None
) -> tuple[list[str], int]:
    """What the log, as `verify_chain(anchored=[a.id …])` found it, contradicts in the anchors (Chinese),
    and how many anchors fell in detached months (checked against the log's start only: their records
    are in the archive)."""
    problems: list[str] = []
    archived = 0
    last_id = last_count = 0
    for a in anchors:
        when = f"锚点 id={a.id}（签于 {a.signed_at}，当时共 {a.count} 条）"
        if not a.valid(key):
            problems.append(f"{when}签名不符：锚点被改动或伪造，或密钥不对")
            continue
        if a.id < last_id or a.count < last_count:
            problems.append(f"{when}早于前一个锚点：锚点文件被改动")
        last_id, last_count = max(last_id, a.id), max(last_count, a.count)
        if start is not None and a.id <= start.id:
            archived += 1
            if (a.id == start.id and (a.hash, a.count) != (start.hash, start.count)) or (
                a.id < start.id and a.count >= start.count
            ):
                problems.append(
                    f"{when}与审计日志起点 id={start.id}（共 {start.count} 条）不符：起点或锚点被改动"
                )
            continue
        if a.id not in check.anchored:
            if check.rows == (start.count if start is not None else 0):
                problems.append(f"审计日志被清空：{when}的记录已不存在")
            else:
                problems.append(f"审计日志被截短或删除了记录：{when}的记录已不存在")
            continue
        digest, position = check.anchored[a.id]
        if digest != a.hash:
            problems.append(f"审计日志被改写后重新计算了哈希：{when}的记录哈希与锚点不符")
        elif position != a.count:
            problems.append(f"{when}之前的记录数现为 {position}：有记录被删除或插入")
    return problems, archived


def head(session: Session, start: Anchor | None = None) -> Anchor | None:
    """The chain's head now (unsigned), or None when the log is empty; its count includes the records
    detached before `start`."""
    row = session.execute(text("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")).one_or_none()
    if row is None:
        return None
    after, before = (start.id, start.count) if start is not None else (0, 0)
    count = session.scalar(
        text("SELECT count(*) FROM audit_log WHERE id > :after AND id <= :id"), {"after": after, "id": row.id}
    )
    return Anchor(row.id, row.hash, before + (count or 0), datetime.now(UTC).isoformat(timespec="seconds"))


def _append(path: Path, anchor: Point) -> None:
    """Append one line to an anchors or starts file, on disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(asdict(anchor), separators=(",", ":")) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def write_anchor(*, session: Session, settings: AnchorSettings, key: bytes) -> Anchor | None:
    """Sign the chain's head and append it to the anchors file; None when the log is empty.

    Refuses (AnchorRefused) when the newest anchor's row is gone or has another hash, or the log's start
    is not signed: anchoring then would make the shortened or re-chained log the one later
    verifications accept.
    """
    start, problems = read_start(settings, key)
    if problems:
        raise AnchorRefused(f"{problems[0]}；不再签新锚点，请执行 popex audit verify")
    anchors, _ = read_anchors(settings.path)
    restores, _ = read_restores(settings, key)
    points, _ = kept(anchors, restores)
    latest = next((p for p in reversed(points) if p.valid(key)), None)
    if latest is not None and (start is None or latest.id >= start.id):
        now = (
            start.hash
            if start is not None and latest.id == start.id
            else session.scalar(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": latest.id})
        )
        if now != latest.hash:
            raise AnchorRefused(
                f"最近的锚点 id={latest.id}（签于 {latest.signed_at}）与审计日志不符，不再签新锚点；"
                "请执行 popex audit verify"
            )
    current = head(session, start)
    if current is None:
        return None
    anchor = current.signed(key)
    _append(settings.path, anchor)
    return anchor


def detach_audit_month(*, session: Session, settings: AnchorSettings, part: Expired) -> Anchor | None:
    """Detach an expired month of the audit log and move the log's signed start past it; the start
    (None: the month was empty and there is no start yet).

    The month must be the oldest still in the log (months leave in the chain's order) and its records
    must verify, from the current start and against the anchors among them: what goes to the archive
    left intact. The new start (the month's last record, its hash, the records up to it) is signed and
    on disk before the DETACH, so a crash between the two leaves a start whose records are still in the
    log: verification reads from the start on, and a rerun detaches the month without a second start.
    Refused (RetentionRefused) without a signing key: afterwards nobody could tell the month's detach
    from its deletion.
    """
    key = settings.key()
    if key is None:
        raise RetentionRefused(
            "未配置锚点密钥（POPEX_AUDIT_ANCHOR_KEY 或 _KEY_FILE）：审计日志的月份分离后无法证明是按保留期限分离而非删除，"
            f"不分离 {part.name}"
        )
    start, problems = read_start(settings, key)
    if problems:
        raise RetentionRefused(f"{problems[0]}；不分离 {part.name}，请先执行 popex audit verify")
    after = start.id if start is not None else 0
    older = session.scalar(
        text("SELECT count(*) FROM audit_log WHERE logged_on < :first AND id > :after"),
        {"first": part.start, "after": after},
    )
    if older:
        raise RetentionRefused(f"{part.name} 之前的月份还有 {older} 条记录未分离：审计日志按月份先后分离")
    last = session.scalar(text(f"SELECT max(id) FROM {part.name}"))
    if last is None or last <= after:  # empty, or a run cut off before its DETACH already signed it past
        detach(session, part)
        return start
    points, _ = kept(read_anchors(settings.path)[0], read_restores(settings, key)[0])
    anchors = [a for a in points if after < a.id <= last]
    check = verify_chain(
        session=session, start=start.chain_start() if start is not None else None, upto=last,
        anchored=[a.id for a in anchors],
    )  # fmt: skip
    if not check.ok:
        bad = check.first_bad_id or check.backwards_id
        raise RetentionRefused(
            f"审计日志在记录 id={bad} 处校验失败，不分离 {part.name}：请先执行 popex audit verify"
        )
    problems, _ = check_anchors(check, anchors, key, start)
    if problems:
        raise RetentionRefused(f"{problems[0]}；不分离 {part.name}")
    digest = session.scalar(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": last})
    new = Anchor(last, digest, check.rows, datetime.now(UTC).isoformat(timespec="seconds")).signed(key)
    _append(settings.start_path, new)
    detach(session, part)
    return new


@dataclass(frozen=True)
class Verdict:
    """The chain verified against the anchors: what is wrong (Chinese), and what could not be checked."""

    check: ChainCheck
    problems: list[str]
    anchors: int  # anchors checked
    unanchored: bool  # no key set: shortening, emptying and re-chaining go unnoticed
    start: Anchor | None = None  # the log's start when its oldest months were detached
    archived: int = 0  # anchors in detached months: checked against the start only
    restores: tuple[Restore, ...] = ()  # the heads the log was restored to from backups
    lost: int = 0  # anchors whose records were lost in a restore (not checked)

    @property
    def ok(self) -> bool:
        """True when the chain verifies and matches every anchor."""
        return not self.problems


def verify_log(
    *,
    session: Session,
    settings: AnchorSettings,
    progress: Callable[[int, int], None] | None = None,
) -> Verdict:
    """Verify the chain (registry.audit.verify_chain) from the log's start and check it against the
    anchors, if a key is set."""
    key = settings.key()
    start, problems = read_start(settings, key)
    anchors, unreadable = read_anchors(settings.path) if key is not None else ([], [])
    restores, unsigned = read_restores(settings, key) if key is not None else ([], [])
    problems += unreadable + unsigned
    points, lost = kept(anchors, restores)
    check = verify_chain(
        session=session, progress=progress, anchored=[a.id for a in points],
        start=start.chain_start() if start is not None else None,
    )  # fmt: skip
    if check.first_bad_id is not None:
        problems.append(f"哈希链在记录 id={check.first_bad_id} 处断开：该记录被改动，或其前面的记录被删除")
    if check.backwards_id is not None:
        problems.append(
            f"记录 id={check.backwards_id} 的时间早于前一条：时间不是服务器写入的（绕过了触发器写入或改动）"
        )
    archived = 0
    if key is not None:
        # A scan stopped at a bad row has not reached the later anchors: only those it read are checked.
        after = start.id if start is not None else 0
        checked = points if check.ok else [a for a in points if a.id in check.anchored or a.id <= after]
        found, archived = check_anchors(check, checked, key, start)
        problems += found
    checked_anchors = sum(isinstance(p, Anchor) for p in points)
    return Verdict(check, problems, checked_anchors, key is None, start, archived, tuple(restores), len(lost))


class RestoreRefused(RuntimeError):
    """The restored log cannot be recorded as restored (message in Chinese: why); nothing_lost: because
    no anchor is newer than its head (a backup taken after the newest anchor: nothing to record)."""

    def __init__(self, message: str, *, nothing_lost: bool = False) -> None:
        super().__init__(message)
        self.nothing_lost = nothing_lost


def record_restore(
    *, session: Session, settings: AnchorSettings, actor: str, note: str
) -> tuple[Restore, int]:
    """After the database was restored from a backup: sign the log's head as the point it was restored
    to, so that the anchors signed since the backup (their records are gone, and their ids will be given
    again) are reported as lost in this restore instead of as a shortened log. Returns the restore point
    and how many anchors it gives up.

    Refused (RestoreRefused) without the signing key, when the restored log does not verify against the
    anchors up to its head (a restore brings back the log as it was, not a changed one), and when no
    anchor is newer than the head (nothing was lost: nothing to record). Audited (audit.restored)."""
    key = settings.key()
    if key is None:
        raise RestoreRefused("未配置锚点密钥（POPEX_AUDIT_ANCHOR_KEY 或 _KEY_FILE）：无法签恢复记录")
    start, problems = read_start(settings, key)
    anchors, unreadable = read_anchors(settings.path)
    restores, unsigned = read_restores(settings, key)
    if problems or unreadable or unsigned:
        raise RestoreRefused(f"{(problems + unreadable + unsigned)[0]}；不签恢复记录")
    current = head(session, start)
    if current is None:
        raise RestoreRefused("审计日志为空：恢复的备份里没有审计日志，请检查恢复的数据库")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    point = Restore(current.id, current.hash, current.count, len(anchors), now).signed(key)
    points, given_up = kept(anchors, [*restores, point])
    if not given_up:
        raise RestoreRefused(
            f"没有比审计日志当前最新记录（id={current.id}）更新的锚点：无需签恢复记录", nothing_lost=True
        )
    # The log as restored must be the log as it was: it verifies against every anchor up to its head.
    check = verify_chain(
        session=session, anchored=[p.id for p in points], start=start.chain_start() if start else None
    )
    found, _ = check_anchors(check, points, key, start) if check.ok else (["哈希链断开"], 0)
    if found:
        raise RestoreRefused(
            f"恢复后的审计日志与恢复点之前的锚点不符（{found[0]}）：恢复的不是原样的备份，"
            "或恢复后平台已写入新的审计记录（须在恢复数据库后、启动平台之前执行）"
        )
    _append(settings.restore_path, point)
    record_audit(
        session=session,
        actor=actor,
        action="audit.restored",
        detail={"head": current.id, "count": current.count, "anchors_lost": len(given_up), "note": note},
    )
    return point, len(given_up)
