"""One vocabulary: every coded concept users see is an enum in schemas/canonical.py with a Chinese label,
and the codes the platform writes are members of it."""

import ast
import inspect
import re
from enum import StrEnum
from pathlib import Path

import pytest

from registry.events import EVENT_RULES
from schemas import canonical
from schemas.canonical import (
    AirflowState,
    AuditCategory,
    ChangeEventType,
    Channel,
    ColumnKind,
    Dag,
    DagTask,
    label_of,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("base", "registry", "exchange", "collection", "sharing_api", "decision", "monitor", "popex")
HAN = re.compile(r"[\u4e00-\u9fff]")

VOCABULARIES = [
    obj
    for _, obj in inspect.getmembers(canonical, inspect.isclass)
    if issubclass(obj, StrEnum) and obj is not StrEnum and isinstance(getattr(obj, "label", None), property)
]


def _sources(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]


def test_the_vocabularies_are_found() -> None:
    names = {v.__name__ for v in VOCABULARIES}
    assert {"BatchState", "PopulationType", "Channel", "ChangeEventType", "AirflowState", "DagTask"} <= names


@pytest.mark.parametrize("vocabulary", VOCABULARIES, ids=lambda v: v.__name__)
def test_every_member_has_a_chinese_label(vocabulary: type[StrEnum]) -> None:
    labels = [member.label for member in vocabulary]  # type: ignore[attr-defined]
    assert all(HAN.search(label) for label in labels), labels
    assert len(set(labels)) == len(labels), f"two codes of {vocabulary.__name__} read the same"


def test_label_of_tolerates_codes_it_does_not_know() -> None:
    assert label_of(AirflowState, "success") == "成功"
    assert label_of(AirflowState, "a_state_of_airflow_4") == "a_state_of_airflow_4"
    assert label_of(AirflowState, None) == ""


def test_change_events_are_the_ones_published() -> None:
    """Batches' rules, a clerk's operations, and the two the sharing feed serves a client."""
    from registry.events import CLERK_EVENTS
    from sharing_api.feed import SCOPE_EVENTS

    assert set(EVENT_RULES) | set(CLERK_EVENTS) | set(SCOPE_EVENTS) == set(ChangeEventType)


def _passed(node: ast.AST) -> list[tuple[str | None, ast.expr]]:
    """What a call's keywords or a dict literal's constant keys pass (dicts: rows written with SQL)."""
    if isinstance(node, ast.keyword):
        return [(node.arg, node.value)]
    if isinstance(node, ast.Dict):
        return [
            (k.value, v)
            for k, v in zip(node.keys, node.values, strict=True)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    return []


def _strings(value: ast.expr) -> set[str]:
    """A literal's string, an f-string's leading text, or both strings of `a if c else b`."""
    if isinstance(value, ast.JoinedStr) and value.values:
        value = value.values[0]
    if isinstance(value, ast.IfExp):
        return _strings(value.body) | _strings(value.orelse)
    return {value.value} if isinstance(value, ast.Constant) and isinstance(value.value, str) else set()


def _literal_arguments(name: str, folders: tuple[str, ...]) -> set[str]:
    """Every string passed as keyword `name`, or under a dict key `name`, in the packages."""
    return {
        text
        for path in _sources(*folders)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for arg, value in _passed(node)
        if arg == name
        for text in _strings(value)
    }


def test_every_audit_action_has_a_category() -> None:
    actions = _literal_arguments("action", PACKAGES)
    assert "file.received" in actions and "sharing." in actions  # the scan sees the writers
    prefixes = {a.split(".", 1)[0] for a in actions if "." in a}
    assert prefixes <= set(AuditCategory), prefixes - set(AuditCategory)


def test_every_channel_written_is_a_channel() -> None:
    channels = _literal_arguments("channel", PACKAGES)
    assert {"push", "landing", "collection"} <= channels
    assert channels <= set(Channel), channels - set(Channel)


def _dag_parts() -> tuple[set[str], set[str]]:
    dags, tasks = set(), set()
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                names = {
                    d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in node.decorator_list
                }
                calls = {
                    d.func.id
                    for d in node.decorator_list
                    if isinstance(d, ast.Call) and isinstance(d.func, ast.Name)
                }
                if "task" in names | calls:
                    tasks.add(node.name)
                if "dag" in names | calls:
                    dags.add(node.name)
    return dags, tasks


def test_every_dag_and_task_has_a_name() -> None:
    dags, tasks = _dag_parts()
    assert "exchange_daily" in dags and "parse" in tasks
    assert dags <= set(Dag), dags - set(Dag)
    assert tasks <= set(DagTask), tasks - set(DagTask)


def test_no_label_dict_of_a_vocabulary_outside_the_canonical_module() -> None:
    """A dict literal mapping a vocabulary's codes to words, typed again somewhere, is a second vocabulary."""
    # ColumnKind's codes are also canonical field names (name, sex …), which forms label as columns
    coded = {v.__name__: {m.value for m in v} for v in VOCABULARIES if v is not ColumnKind}
    copies = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            pairs = [
                (k.value, v.value)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str)
            ]
            worded = {k for k, v in pairs if HAN.search(v)}
            for name, codes in coded.items():
                if len(worded & codes) >= 2:
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not copies, "\n".join(copies)
