"""Who an operator is and why they act: what an operator's audited command records.

The operating-system account running the command is recorded always; a name stated on the command line
(`--actor`) is recorded beside it, never instead of it. A purpose must say something: a few letters or
digits, not blanks and punctuation.
"""

import os
import pwd
import unicodedata

MIN_PURPOSE_CHARS = 4  # letters or digits: "人口普查" passes, "x", "...." and "  " do not


def os_user() -> str:
    """The account the process runs as (its real user id, not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return f"uid:{os.getuid()}"


def purpose_problem(purpose: str | None) -> str | None:
    """Why a stated purpose is not one (a message for the operator), or None when it says something."""
    text = unicodedata.normalize("NFKC", purpose or "").strip()
    meaningful = sum(unicodedata.category(c)[0] in "LN" for c in text)
    if meaningful < MIN_PURPOSE_CHARS:
        return f"须说明用途：至少 {MIN_PURPOSE_CHARS} 个文字或数字（不能为空，也不能只有空格或标点）"
    return None


def clean_purpose(purpose: str) -> str:
    """The purpose as recorded: NFKC-normalised, trimmed, at most 200 characters."""
    return unicodedata.normalize("NFKC", purpose).strip()[:200]


def operator_detail(*, stated_actor: str | None, purpose: str) -> dict[str, str]:
    """The audit detail naming an operator's action: OS user, stated actor (when given), purpose."""
    detail = {"os_user": os_user(), "purpose": clean_purpose(purpose)}
    if stated_actor and stated_actor.strip() and stated_actor.strip() != detail["os_user"]:
        detail["stated_actor"] = unicodedata.normalize("NFKC", stated_actor).strip()[:64]
    return detail


def operator_actor(stated_actor: str | None) -> str:
    """The actor an operator's command records where only one name fits (review decisions, clerk
    operations): the OS user, with a stated name beside it in brackets when one was given."""
    user = os_user()
    stated = unicodedata.normalize("NFKC", stated_actor or "").strip()[:64]
    return user if not stated or stated == user else f"{user}（{stated}）"
