"""Golden tests: each fixture file under fixtures/good loads (format detected) to the JSON beside it, and
each file under fixtures/bad fails with exactly the problems (file, line, field, message) beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inventory import InventoryError, detect_format, load_file, loads

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = sorted(p for p in (FIXTURES / "good").iterdir() if p.suffix != ".json")
BAD = sorted(p for p in (FIXTURES / "bad").iterdir() if p.suffix != ".json")


def _expected(p: Path) -> dict:
    return json.loads(p.with_name(p.name + ".json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_fixture_loads_to_golden_json(path: Path) -> None:
    want = _expected(path)
    assert detect_format(str(path), path.read_text(encoding="utf-8")) == want["format"]
    assert load_file(path).to_dict() == want["inventory"]
    # The explicit format gives the same result as detection.
    assert load_file(path, want["format"]).to_dict() == want["inventory"]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_fixture_reports_file_line_field(path: Path) -> None:
    want = _expected(path)["problems"]
    with pytest.raises(InventoryError) as exc:
        load_file(path)
    got = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.value.problems]
    assert got == want
    assert all(p.file == str(path) for p in exc.value.problems)
    # The exception text carries every problem as file:line: field: message.
    first = want[0]
    assert f"{path}:{first['line']}: {first['field']}: {first['message']}" in str(exc.value)


def test_password_values_never_appear_in_errors() -> None:
    with pytest.raises(InventoryError) as exc:
        load_file(FIXTURES / "bad" / "ini-password.ini")
    assert "hunter2" not in str(exc.value)


def test_hostile_values_are_data_in_every_format() -> None:
    """Shell metacharacters reach the model byte-identical, as plain strings, never evaluated."""
    hostile = ["x; rm -rf /", "$(id)", "`reboot`", "a && b | c > /etc/passwd", "'\"\\", "ünï cødé ☃"]
    for value in hostile:
        y = loads(f"hosts:\n  - name: mac01\n    vars: {{v: {json.dumps(value)}}}\n", "h.yaml")
        assert y.host("mac01").vars["v"] == value
        c = loads(f"name,vars.v\nmac01,{_csv_cell(value)}\n", "h.csv")
        assert c.host("mac01").vars["v"] == value
        a = loads(f"all:\n  hosts:\n    mac01:\n      v: {json.dumps(value)}\n", "h.yaml", "ansible-yaml")
        assert a.host("mac01").vars["v"] == value


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def test_ini_inline_vars_follow_ansible_literals() -> None:
    inv = loads("[lab]\nmac01 a=2222 b=\"x y\" c=[1,2] d=True e=$(id) f='quoted; rm'\n", "h.ini")
    v = inv.host("mac01").vars
    assert v == {"a": 2222, "b": "x y", "c": [1, 2], "d": True, "e": "$(id)", "f": "quoted; rm"}


def test_ini_group_vars_are_text_and_connection_vars_apply_to_hosts() -> None:
    inv = loads("[lab]\nmac01\nmac02 ansible_port=2200\n[lab:vars]\nansible_port=2222\nsize=5\n", "h.ini")
    assert inv.host("mac01").port == 2222
    assert inv.host("mac02").port == 2200  # host vars win over group vars
    assert inv.groups[0].vars == {"size": "5"}


def test_child_group_connection_vars_win_over_parent() -> None:
    text = (
        "[parent:children]\nchild\n[child]\nmac01\n"
        "[parent:vars]\nansible_user=p\n[child:vars]\nansible_user=c\n"
    )
    assert loads(text, "h.ini").host("mac01").user == "c"


def test_ranges_expand_with_width_letters_and_stride() -> None:
    from inventory.ansible_common import expand_host_pattern

    assert expand_host_pattern("mac[08:10].lab") == ["mac08.lab", "mac09.lab", "mac10.lab"]
    assert expand_host_pattern("m[a:c]") == ["ma", "mb", "mc"]
    assert expand_host_pattern("m[1:9:4]") == ["m1", "m5", "m9"]
    assert expand_host_pattern("r[1:2]s[a:b]") == ["r1sa", "r1sb", "r2sa", "r2sb"]
    with pytest.raises(ValueError, match="more than"):
        expand_host_pattern("m[0:9999999]")


def test_host_name_limits() -> None:
    label = "a" * 63
    ok = ".".join([label] * 3) + "." + "b" * 61  # 253 characters
    assert len(ok) == 253
    assert loads(f"hosts:\n  - name: {ok}\n", "h.yaml").hosts[0].name == ok
    with pytest.raises(InventoryError, match="at most 253"):
        loads(f"hosts:\n  - name: {ok}c\n", "h.yaml")
    with pytest.raises(InventoryError, match=r"label 'a{64}'"):
        loads(f"hosts:\n  - name: {'a' * 64}.lab\n", "h.yaml")


def test_ipv6_and_ipv4_addresses_accepted() -> None:
    inv = loads("hosts:\n  - {name: a, address: '::1'}\n  - {name: b, address: 192.0.2.7}\n", "h.yaml")
    assert [h.address for h in inv.hosts] == ["::1", "192.0.2.7"]


def test_expected_hostname_defaults_to_name_and_is_validated() -> None:
    inv = loads("hosts:\n  - {name: mac01}\n  - {name: mac02, expected_hostname: Mac02.local}\n", "h.yaml")
    assert inv.host("mac01").effective_expected_hostname == "mac01"
    assert inv.host("mac02").effective_expected_hostname == "Mac02.local"
    with pytest.raises(InventoryError, match=r"h.yaml:2: hosts.mac01.expected_hostname: 'My Mac'"):
        loads("hosts:\n  - {name: mac01, expected_hostname: My Mac}\n", "h.yaml")


def test_format_override_and_unknown_format() -> None:
    with pytest.raises(InventoryError, match="unknown format 'xml'"):
        loads("hosts: []\n", "h.yaml", "xml")
    # A CSV body forced to be read as our YAML fails as YAML, naming the file.
    with pytest.raises(InventoryError, match=r"h\.txt:1: "):
        loads("name,address\nmac01,10.0.0.1\n", "h.txt", "yaml")


def test_detection_by_content_without_extension() -> None:
    assert detect_format("hosts", "[lab]\nmac01\n") == "ansible-ini"
    assert detect_format("hosts", "mac01 ansible_host=10.0.0.1\n[lab]\nmac02\n") == "ansible-ini"
    assert detect_format("fleet", "name,address\nmac01,10.0.0.1\n") == "csv"
    assert detect_format("fleet", "hosts:\n  - name: mac01\n") == "yaml"
    assert detect_format("inventory.yml", "all:\n  hosts: {mac01: }\n") == "ansible-yaml"
    assert detect_format("x.cfg", "anything") == "ansible-ini"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope\.yaml: file: no such file"):
        load_file(tmp_path / "nope.yaml")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"name\nmac\xe9\n")
    with pytest.raises(InventoryError, match=r"latin\.csv:2: file: not UTF-8 text"):
        load_file(latin)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfname\nmac01\n")
    assert load_file(bom).hosts[0].name == "mac01"


def test_empty_files_are_empty_inventories() -> None:
    for name in ("e.yaml", "e.csv", "e.ini"):
        assert loads("", name).hosts == ()


def test_non_finite_and_unsupported_values_rejected() -> None:
    with pytest.raises(InventoryError, match=r"hosts.mac01.vars.x: nan is not a finite number"):
        loads("hosts:\n  - name: mac01\n    vars: {x: .nan}\n", "h.yaml")
    with pytest.raises(InventoryError, match=r"vars.b: a bytes value is not supported"):
        loads("hosts:\n  - name: mac01\n    vars: {b: !!binary aGk=}\n", "h.yaml")


def test_all_numeric_top_label_is_not_a_host_name() -> None:
    # RFC 1123 §2.1: a host name never has the dotted-decimal form, so "10.0.0.300" is neither.
    with pytest.raises(InventoryError, match=r"hosts.10.0.0.300.name: .*last label is all digits"):
        loads("hosts:\n  - name: 10.0.0.300\n", "h.yaml")
    with pytest.raises(InventoryError, match=r"hosts.mac01.address: '59' is not a valid IPv4 address"):
        loads("hosts:\n  - {name: mac01, address: '59'}\n", "h.yaml")


def test_ini_values_that_look_like_code_stay_text(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    call = f"__import__('os').system('touch {marker}')"
    inv = loads(f'[lab]\nmac01 x="{call}" y="$(touch {marker})"\n', "h.ini")
    assert inv.host("mac01").vars == {"x": call, "y": f"$(touch {marker})"}
    assert not marker.exists()


def test_error_text_escapes_control_characters() -> None:
    with pytest.raises(InventoryError) as exc:
        loads('name,"ev\x1b[2Jil"\nmac01,x\n', "h.csv")
    assert exc.value.problems[0].field == "ev\x1b[2Jil"  # the raw field, for programs
    assert "\x1b" not in str(exc.value) and "ev\\x1b[2Jil" in str(exc.value)
