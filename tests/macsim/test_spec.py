"""Fleet spec parsing: strict, with errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from macsim.spec import SpecError, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "macsim" / "examples" / "fleet.yaml"


def _err(data: object) -> str:
    with pytest.raises(SpecError) as ei:
        parse_spec(data, "fleet.yaml")
    return str(ei.value)


def test_unknown_top_level_key_is_named() -> None:
    msg = _err({"hosts": [{"name": "a"}], "hostz": []})
    assert msg.startswith("fleet.yaml: invalid fleet spec")
    assert "  hostz: unknown key" in msg


def test_unknown_host_key_is_named_with_its_index() -> None:
    assert "hosts.1.archh: unknown key" in _err({"hosts": [{"name": "a"}, {"name": "b", "archh": "arm64"}]})


def test_unknown_fault_knob_is_named() -> None:
    msg = _err({"hosts": [{"name": "a", "faults": {"latency": 5}}]})
    assert "hosts.0.faults.latency: unknown key" in msg


def test_bad_fault_value_is_named() -> None:
    msg = _err({"hosts": [{"name": "a", "faults": {"bandwidth_bytes_per_s": 0}}]})
    assert "hosts.0.faults.bandwidth_bytes_per_s: Input should be greater than 0" in msg


def test_duplicate_ports_name_both_hosts() -> None:
    msg = _err({"hosts": [{"name": "a", "port": 2222}, {"name": "b", "port": 2222}]})
    assert "hosts[1].port: port 2222 already used by 'a'" in msg


def test_port_zero_may_repeat() -> None:
    spec = parse_spec({"hosts": [{"name": "a", "port": 0}, {"name": "b", "port": 0}]})
    assert [h.port for h in spec.hosts] == [0, 0]


def test_duplicate_names() -> None:
    assert "hosts[1].name: duplicate host name 'a' (first at hosts[0])" in _err(
        {"hosts": [{"name": "a"}, {"name": "a"}]}
    )


@pytest.mark.parametrize("bad", ["has space", "-leading", "under_score", "x" * 64, "dot.ted"])
def test_invalid_host_names(bad: str) -> None:
    msg = _err({"hosts": [{"name": bad}]})
    assert "hosts.0.name: Value error, not a valid LocalHostName" in msg


def test_invalid_host_name_field() -> None:
    assert "hosts.0.host_name: Value error, not a valid host name" in _err(
        {"hosts": [{"name": "a", "host_name": "bad_name.example"}]}
    )


def test_root_user_is_rejected() -> None:
    assert "hosts.0.user: Value error, not a valid non-root short user name: 'root'" in _err(
        {"hosts": [{"name": "a", "user": "root"}]}
    )


def test_sudo_password_needs_a_password() -> None:
    msg = _err({"hosts": [{"name": "a", "sudo": "password"}]})
    assert "sudo: password needs a password for the user" in msg


def test_arch_must_be_a_mac_arch() -> None:
    msg = _err({"hosts": [{"name": "a", "arch": "ppc"}]})
    assert "hosts.0.arch: Input should be 'x86_64' or 'arm64'" in msg


def test_not_a_mapping_and_bad_defaults() -> None:
    assert _err(["a"]) == "fleet.yaml: a fleet spec is a mapping with a 'hosts' list"
    assert _err({"defaults": [1], "hosts": []}) == "fleet.yaml: defaults: must be a mapping"


def test_defaults_apply_and_hosts_override() -> None:
    spec = parse_spec({"defaults": {"arch": "arm64", "user": "ops"}, "hosts": [{"name": "a"}, {"name": "b",
                                                                                       "arch": "x86_64"}]})
    assert [(h.arch, h.user) for h in spec.hosts] == [("arm64", "ops"), ("x86_64", "ops")]


def test_hostname_rules() -> None:
    spec = parse_spec({"hosts": [{"name": "a"}, {"name": "b", "local_host_name": "Bee"},
                                 {"name": "c", "host_name": "c.corp.test"}]})
    assert [h.hostname for h in spec.hosts] == ["a.local", "Bee.local", "c.corp.test"]


def test_load_spec_resolves_paths_and_reports_yaml_errors(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    p.write_text("state_dir: st\nclient_key: keys/k\nhosts:\n  - name: a\n    trusted_cas: [ca/lab.pem]\n")
    spec = load_spec(p)
    assert spec.state_dir == str(tmp_path / "st")
    assert spec.client_key == str(tmp_path / "keys/k")
    assert spec.hosts[0].trusted_cas == [str(tmp_path / "ca/lab.pem")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match=r"missing\.yaml: cannot read: No such file or directory"):
        load_spec(tmp_path / "missing.yaml")


def test_example_fleet_covers_the_documented_cases() -> None:
    spec = load_spec(EXAMPLE)
    hosts = spec.hosts
    assert 18 <= len(hosts) <= 24
    assert any(h.arch == "x86_64" for h in hosts)
    assert any(h.arch == "arm64" and h.rosetta for h in hosts)
    assert any(h.arch == "arm64" and not h.rosetta for h in hosts)
    assert [h.installed_client.version for h in hosts if h.installed_client] == ["8.0.1.23"]
    assert sum(1 for h in hosts if h.trusted_cas) >= 2
    ca_names = {Path(c).name for h in hosts for c in h.trusted_cas}
    assert ca_names == {"lab-root-ca.pem", "switch-root-ca.pem"}
    assert any(h.faults.trust_refused for h in hosts)
    assert any(h.host_name for h in hosts)
    assert any(h.sudo == "password" for h in hosts)
    assert spec.client_key is None  # generated at start: no private key is committed
