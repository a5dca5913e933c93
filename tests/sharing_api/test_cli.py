"""`popex clients …` and `popex audit …` on the test's session."""

import json
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from popex.cli import app
from registry.models import AuditLog
from registry.operator import os_user
from sharing_api.clients import authenticate
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.models import ApiClient
from tests.sharing_api.support import person

runner = CliRunner()
KEY = re.compile(r"pxk_[A-Za-z0-9_-]{43}")

POLICY_YAML = """
# 人社局社保中心：核验与死亡订阅
operations: [verify, changes]
purposes: [pension_payment]
fields: [name, birth_date, status, death_date, id_no]
unmasked: [id_no]
population_types: [registered, floating]
areas: ["330102"]
rate_limit: {per_second: 20, burst: 40}
"""


@pytest.fixture(autouse=True)
def _cli_on_test_session(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_create_from_yaml_prints_a_working_key_once(session, tmp_path: Path) -> None:
    policy_file = tmp_path / "rs.yaml"
    policy_file.write_text(POLICY_YAML, encoding="utf-8")
    out = _invoke("clients", "create", "rs_sbj", "--name", "人社局社保中心", "--policy", str(policy_file))
    [key] = KEY.findall(out)
    client = authenticate(session=session, key=key)
    assert client.code == "rs_sbj"
    assert [o.value for o in client.policy.operations] == ["verify", "changes"]
    assert client.policy.unmasked == ["id_no"] and client.policy.rate_limit.per_second == 20
    stored = session.scalar(select(ApiClient).where(ApiClient.code == "rs_sbj"))
    assert stored is not None and key not in json.dumps(stored.policy) and stored.key_hash != key


def test_create_from_options_and_list(session) -> None:
    _invoke(
        "clients", "create", "wj_fy", "--name", "卫健委妇幼处",
        "--operation", "lookup", "--purpose", "birth_registration", "--field", "name",
        "--population-type", "registered", "--area", "*", "--rate", "5", "--burst", "10", "--key-days", "0",
    )  # fmt: skip
    [row] = [r for r in json.loads(_invoke("clients", "list", "--json")) if r["code"] == "wj_fy"]
    assert row["status"] == "active" and row["key_expires_at"] is None
    assert row["policy"]["areas"] == ["*"] and row["policy"]["rate_limit"] == {"per_second": 5.0, "burst": 10}


def test_invalid_policy_is_refused_with_reasons(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY_YAML.replace("unmasked: [id_no]", "unmasked: [phone]"), encoding="utf-8")
    result = runner.invoke(app, ["clients", "create", "x", "--name", "x", "--policy", str(bad)])
    assert result.exit_code == 2 and "授权策略不合法" in result.output


def test_rotate_and_disable(session, tmp_path: Path) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(POLICY_YAML, encoding="utf-8")
    [old] = KEY.findall(_invoke("clients", "create", "gaj", "--name", "公安局", "--policy", str(policy_file)))
    [new] = KEY.findall(_invoke("clients", "rotate", "gaj"))
    with pytest.raises(SharingError) as refused:
        authenticate(session=session, key=old)
    assert refused.value.code == ErrorCode.CREDENTIAL_INVALID
    assert authenticate(session=session, key=new).code == "gaj"
    _invoke("clients", "disable", "gaj")
    with pytest.raises(SharingError) as disabled:
        authenticate(session=session, key=new)
    assert disabled.value.code == ErrorCode.CREDENTIAL_INVALID  # like an unknown key
    result = runner.invoke(app, ["clients", "disable", "nobody"])
    assert result.exit_code == 1 and "nobody" in result.output


def test_audit_verify_passes_then_detects_a_tampered_row(http, session, new_client) -> None:
    p = person(session)
    headers = new_client()
    for _ in range(3):
        http.get(f"/api/v1/persons/{p.person_no}", headers=headers)
    assert "校验通过" in _invoke("audit", "verify")
    ids = session.scalars(text("SELECT id FROM audit_log ORDER BY id")).all()
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    session.execute(
        text("UPDATE audit_log SET detail = jsonb_set(detail, '{purpose}', '\"other\"') WHERE id = :id"),
        {"id": ids[2]},
    )
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and f"id={ids[2]}" in result.output


def test_audit_history_is_the_whole_record_and_is_audited(http, session, new_client, tmp_path: Path) -> None:
    p = person(session)
    http.get(f"/api/v1/persons/{p.person_no}", headers=new_client())
    http.get(
        f"/api/v1/persons/{p.person_no}",
        headers=new_client(purposes=["medical_insurance"])
        | {"X-Purpose": "medical_insurance", "X-End-User": "doctor-1"},
    )
    _invoke(
        "export",
        "persons",
        "--purpose",
        "人口普查比对",
        "--out",
        str(tmp_path / "all.csv"),
        "--actor",
        "张科长",
    )
    refused = runner.invoke(app, ["audit", "history", p.person_no, "--purpose", " . "])
    assert refused.exit_code == 2 and "须说明用途" in refused.output
    rows = json.loads(
        _invoke("audit", "history", p.person_no, "--purpose", "答复居民查询申请 118 号", "--json")
    )
    me = os_user()
    assert [(r["action"], r["purpose"], r["who"], r["outcome"]) for r in rows] == [
        ("audit.person_record", "答复居民查询申请 118 号", me, ""),  # this look-up, on record first
        ("export.persons.rows", "人口普查比对", f"{me}（张科长）", ""),  # the OS user, the name beside
        ("lookup", "medical_insurance", "doctor-1", "ok"),
        ("lookup", "social_security", "clerk-007", "ok"),
    ]
    assert rows[2]["client"] != rows[3]["client"] and rows[0]["client"] == rows[1]["client"] == ""
    [looked] = session.execute(
        select(AuditLog.actor, AuditLog.detail).where(AuditLog.action == "audit.person_record")
    ).all()
    assert looked.actor == me and looked.detail["person_nos"] == [p.person_no]
    assert "运营方" in _invoke("audit", "history", p.person_no, "--purpose", "答复居民查询申请 118 号")


def test_the_example_policy_files_own_command_registers_the_client(session, monkeypatch) -> None:
    root = Path(__file__).resolve().parents[2]
    example = root / "sharing_api" / "example_policy.yaml"
    [command] = [
        line[2:] for line in example.read_text(encoding="utf-8").splitlines() if "popex clients" in line
    ]
    words = shlex.split(command)
    assert words[0] == "popex"
    monkeypatch.chdir(root)  # the command names the file relative to the project
    [key] = KEY.findall(_invoke(*words[1:]))
    client = authenticate(session=session, key=key)
    assert client.code == "rs_sbj"
    assert session.scalar(select(ApiClient.department_code).where(ApiClient.code == "rs_sbj")) == "rsj"
    policy = client.policy
    assert policy.whole_city and policy.unmasked == ["id_no"] and "pension_payment" in policy.purposes


def test_an_unknown_department_or_a_code_in_use_is_refused_in_one_line(session, tmp_path: Path) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(POLICY_YAML, encoding="utf-8")
    create = ["clients", "create", "mz_hy", "--name", "民政局婚姻处", "--policy", str(policy_file)]
    unknown = runner.invoke(app, [*create, "--department", "mz"])
    said = "".join(unknown.output.split())  # rich wraps at the terminal's width
    assert unknown.exit_code == 2, unknown.output
    assert "成员单位代码mz不存在" in said and "mzj（民政局）" in said and "Traceback" not in said
    assert session.scalar(select(ApiClient.id).where(ApiClient.code == "mz_hy")) is None
    _invoke(*create, "--department", "mzj")
    again = runner.invoke(app, [*create, "--department", "mzj"])
    said = "".join(again.output.split())
    assert again.exit_code == 2 and "接入单位代码mz_hy已被使用" in said and "popexclientsrotatemz_hy" in said
