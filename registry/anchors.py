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
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.orm import Session

from base.settings import ROOT
from registry.audit import ChainCheck, verify_chain

ANCHOR_FILE = "audit-anchors.jsonl"


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
        mac = hmac.new(key, self.message(), hashlib.sha256).hexdigest()
        return Anchor(self.id, self.hash, self.count, self.signed_at, mac)

    def valid(self, key: bytes) -> bool:
        """True when the signature is this anchor's under `key`."""
        return hmac.compare_digest(self.signed(key).mac, self.mac)


class AnchorRefused(RuntimeError):
    """The head cannot be anchored: the log no longer matches the newest anchor (message in Chinese)."""


def read_anchors(path: Path) -> tuple[list[Anchor], list[str]]:
    """The anchors in the file (none if it does not exist) and a problem for each line that does not parse."""
    if not path.exists():
        return [], []
    anchors: list[Anchor] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            anchors.append(
                Anchor(
                    int(data["id"]),
                    str(data["hash"]),
                    int(data["count"]),
                    str(data["signed_at"]),
                    str(data["mac"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            problems.append(f"锚点文件第 {n} 行无法解析")
    return anchors, problems


def check_anchors(check: ChainCheck, anchors: list[Anchor], key: bytes) -> list[str]:
    """What the log, as `verify_chain(anchored=[a.id …])` found it, contradicts in the anchors (Chinese)."""
    problems: list[str] = []
    last_id = last_count = 0
    for a in anchors:
        when = f"锚点 id={a.id}（签于 {a.signed_at}，当时共 {a.count} 条）"
        if not a.valid(key):
            problems.append(f"{when}签名不符：锚点被改动或伪造，或密钥不对")
            continue
        if a.id < last_id or a.count < last_count:
            problems.append(f"{when}早于前一个锚点：锚点文件被改动")
        last_id, last_count = max(last_id, a.id), max(last_count, a.count)
        if a.id not in check.anchored:
            if check.rows == 0:
                problems.append(f"审计日志被清空：{when}的记录已不存在")
            else:
                problems.append(f"审计日志被截短或删除了记录：{when}的记录已不存在")
            continue
        digest, position = check.anchored[a.id]
        if digest != a.hash:
            problems.append(f"审计日志被改写后重新计算了哈希：{when}的记录哈希与锚点不符")
        elif position != a.count:
            problems.append(f"{when}之前的记录数现为 {position}：有记录被删除或插入")
    return problems


def head(session: Session) -> Anchor | None:
    """The chain's head now (unsigned), or None when the log is empty."""
    row = session.execute(text("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")).one_or_none()
    if row is None:
        return None
    count = session.scalar(text("SELECT count(*) FROM audit_log WHERE id <= :id"), {"id": row.id}) or 0
    return Anchor(row.id, row.hash, count, datetime.now(UTC).isoformat(timespec="seconds"))


def write_anchor(*, session: Session, settings: AnchorSettings, key: bytes) -> Anchor | None:
    """Sign the chain's head and append it to the anchors file; None when the log is empty.

    Refuses (AnchorRefused) when the newest anchor's row is gone or has another hash: anchoring
    then would make the shortened or re-chained log the one later verifications accept.
    """
    anchors, _ = read_anchors(settings.path)
    latest = next((a for a in reversed(anchors) if a.valid(key)), None)
    if latest is not None:
        now = session.scalar(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": latest.id})
        if now != latest.hash:
            raise AnchorRefused(
                f"最近的锚点 id={latest.id}（签于 {latest.signed_at}）与审计日志不符，不再签新锚点；"
                "请执行 popex audit verify"
            )
    current = head(session)
    if current is None:
        return None
    anchor = current.signed(key)
    settings.audit_anchor_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(asdict(anchor), separators=(",", ":")) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return anchor


@dataclass(frozen=True)
class Verdict:
    """The chain verified against the anchors: what is wrong (Chinese), and what could not be checked."""

    check: ChainCheck
    problems: list[str]
    anchors: int  # anchors checked
    unanchored: bool  # no key set: shortening, emptying and re-chaining go unnoticed

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
    """Verify the chain (registry.audit.verify_chain) and check it against the anchors, if a key is set."""
    key = settings.key()
    anchors, problems = read_anchors(settings.path) if key is not None else ([], [])
    check = verify_chain(session=session, progress=progress, anchored=[a.id for a in anchors])
    if check.first_bad_id is not None:
        problems.append(f"哈希链在记录 id={check.first_bad_id} 处断开：该记录被改动，或其前面的记录被删除")
    if check.backwards_id is not None:
        problems.append(
            f"记录 id={check.backwards_id} 的时间早于前一条：时间不是服务器写入的（绕过了触发器写入或改动）"
        )
    if key is not None:
        # A scan stopped at a bad row has not reached the later anchors: only those it read are checked.
        checked = anchors if check.ok else [a for a in anchors if a.id in check.anchored]
        problems += check_anchors(check, checked, key)
    return Verdict(check, problems, len(anchors), key is None)
