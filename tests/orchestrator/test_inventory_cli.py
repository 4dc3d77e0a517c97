"""`orchestrate inventory ...` run in-process against a temporary database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import orchestrator.cli as cli

GOOD = Path(__file__).parent.parent / "inventory" / "fixtures" / "good"
HOSTILE_YAML = """\
hosts:
  - name: mac01
    address: 10.0.0.1
    groups: [lab]
    vars:
      note: "x; rm -rf /"
      probe: "$(id)"
      multi: "a\\nb\\u2028c"
  - {name: mac02, address: 10.0.0.2, groups: [lab-b]}
  - {name: kiosk1, address: "fd00::7", port: 2222, user: admin}
groups:
  lab: {children: [lab-b]}
  lab-b:
"""


@pytest.fixture
def run(orchestrate_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables wide enough not to truncate names
    if not any(g.name == "inventory" for g in cli.app.registered_groups):
        cli._register()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli.app, ["inventory", *args], input=input)

    return invoke


@pytest.fixture
def fleet(run, tmp_path: Path) -> Path:
    f = tmp_path / "fleet.yaml"
    f.write_text(HOSTILE_YAML, encoding="utf-8")
    r = run("import", str(f))
    assert r.exit_code == 0, r.output
    return f


def test_import_reports_counts_and_names(run, tmp_path: Path) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text(HOSTILE_YAML, encoding="utf-8")
    r = run("import", str(f))
    assert r.exit_code == 0, r.output
    assert f"3 added, 0 changed, 0 unchanged (3 hosts in {f})" in r.stdout
    assert "added: mac01, mac02, kiosk1" in r.stdout
    f.write_text(HOSTILE_YAML.replace("port: 2222", "port: 2200"), encoding="utf-8")
    r = run("import", str(f), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["changed"] == {"kiosk1": ["port"]}
    assert data["unchanged"] == ["mac01", "mac02"]
    assert data["added"] == []


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("hosts.ini", "ansible-ini"), ("hosts-ansible.yaml", "ansible-yaml"), ("devices.csv", "csv")],
)
def test_import_each_format(run, name: str, fmt: str) -> None:
    want = json.loads((GOOD / (name + ".json")).read_text(encoding="utf-8"))["inventory"]
    r = run("import", str(GOOD / name), "--format", fmt, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == [h["name"] for h in want["hosts"]]
    listed = json.loads(run("list", "--json").stdout)
    assert sorted(d["name"] for d in listed) == sorted(h["name"] for h in want["hosts"])


def test_bad_file_exits_2_with_file_line_field(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  - name: mac01\n    port: 70000\n  - name: mac_02\n", encoding="utf-8")
    r = run("import", str(bad))
    assert r.exit_code == 2
    assert f"error: {bad}:3: hosts.mac01.port: 70000 is out of range (1-65535)" in r.stderr
    assert f"error: {bad}:4: hosts.mac_02.name:" in r.stderr
    assert json.loads(run("list", "--json").stdout) == []


def test_missing_file_and_unknown_format_exit_2(run, tmp_path: Path) -> None:
    r = run("import", str(tmp_path / "nope.csv"))
    assert r.exit_code == 2 and "nope.csv: file: no such file (inventory file)" in r.stderr
    r = run("import", str(GOOD / "devices.csv"), "--format", "xml")
    assert (
        r.exit_code == 2 and "unknown format 'xml' (known: yaml, csv, ansible-ini, ansible-yaml)" in r.stderr
    )


def test_list_table_and_filters(run, fleet: Path) -> None:
    r = run("list")
    assert r.exit_code == 0, r.output
    assert "3 devices" in r.stdout
    assert "[fd00::7]:2222" in r.stdout and "10.0.0.1:22" in r.stdout
    r = run("list", "--group", "lab", "--json")
    assert [d["name"] for d in json.loads(r.stdout)] == ["mac01", "mac02"]
    r = run("list", "-g", "lab", "--limit", "*,!mac02", "--json")
    assert [d["name"] for d in json.loads(r.stdout)] == ["mac01"]
    r = run("list", "--limit", "kiosk*", "--limit", "mac02", "--json")
    rows = json.loads(r.stdout)
    assert [d["name"] for d in rows] == ["kiosk1", "mac02"]
    assert rows[0] | {"id": None} == {
        "id": None,
        "name": "kiosk1",
        "address": "fd00::7",
        "port": 2222,
        "user": "admin",
        "auth": None,
        "groups": [],
        "expected_hostname": "kiosk1",
        "installed_version": None,
        "last_outcome": None,
    }


def test_list_errors_exit_2(run, fleet: Path) -> None:
    r = run("list", "--group", "nope")
    assert r.exit_code == 2
    assert "unknown group 'nope' (known groups: lab, lab-b)" in r.stderr
    r = run("list", "--limit", "zzz*")
    assert r.exit_code == 2 and "no device matches --limit zzz*" in r.stderr


def test_show_keeps_hostile_values_as_data(run, fleet: Path) -> None:
    r = run("show", "mac01", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["vars"] == {"note": "x; rm -rf /", "probe": "$(id)", "multi": "a\nb\u2028c"}
    assert data["all_groups"] == ["lab"] and data["groups"] == ["lab"]
    r = run("show", "mac02")
    assert r.exit_code == 0 and "lab, lab-b" in r.stdout  # all groups, parents included
    r = run("show", "mac1")
    assert r.exit_code == 2 and "unknown device: 'mac1' (did you mean mac01" in r.stderr


def test_remove_asks_unless_yes(run, fleet: Path) -> None:
    r = run("remove", "mac02", input="n\n")
    assert r.exit_code == 1 and "aborted; nothing removed" in r.stderr
    assert run("show", "mac02").exit_code == 0
    r = run("remove", "mac02", input="y\n")
    assert r.exit_code == 0 and "removed 1: mac02" in r.stdout
    r = run("remove", "kiosk1", "ghost", "--yes")
    assert r.exit_code == 2 and "unknown device: 'ghost'" in r.stderr
    r = run("remove", "kiosk1", "mac01", "--yes", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"removed": ["kiosk1", "mac01"]}
    assert json.loads(run("list", "--json").stdout) == []


def test_rename_keeps_id(run, fleet: Path) -> None:
    old_id = json.loads(run("show", "mac01", "--json").stdout)["id"]
    r = run("rename", "mac01", "mac01b", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"id": old_id, "old": "mac01", "new": "mac01b"}
    assert json.loads(run("show", "mac01b", "--json").stdout)["id"] == old_id
    r = run("rename", "mac01b", "mac02")
    assert r.exit_code == 1 and "a device called mac02 already exists" in r.stderr
    r = run("rename", "mac01b", "bad_name")
    assert r.exit_code == 2 and "new name: 'bad_name' is not a valid host name" in r.stderr
