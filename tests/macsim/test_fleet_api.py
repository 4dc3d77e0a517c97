"""The Fleet API: state directory, keys, lazy hosts, MDM-trusted CAs, spec errors at start."""

from __future__ import annotations

import datetime
import shutil
import socket
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from macsim.fleet import Fleet
from macsim.keychain import cert_sha1
from macsim.spec import SpecError, parse_spec

from .conftest import connect, small_spec, transport_exec

EXAMPLE = Path(__file__).resolve().parents[2] / "macsim" / "examples" / "fleet.yaml"


def _ca_pem(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_keys_and_host_state_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Fleet.start(small_spec(1), state, exec_handler=transport_exec) as fleet:
        host = fleet.hosts["mac-01"]
        first_host_key = host.host_key_public
        first_client_key = fleet.client_public_key
        assert fleet.client_key_path == state / "client_ed25519"
        assert fleet.client_key_path.stat().st_mode & 0o777 == 0o600
        assert (state / "client_ed25519.pub").read_text().strip() == first_client_key
        host.mac.fs.write_bytes("/private/tmp/marker", b"1")
    async with Fleet.start(small_spec(1), state, exec_handler=transport_exec) as fleet:
        host = fleet.hosts["mac-01"]
        assert host.host_key_public == first_host_key
        assert fleet.client_public_key == first_client_key
        assert host.mac.fs.read_bytes("/private/tmp/marker") == b"1"
        async with connect(fleet, host) as conn:
            assert (await conn.run("echo again", check=False)).stdout == "again\n"


async def test_temporary_state_dir_is_removed_at_stop() -> None:
    async with Fleet.start(small_spec(1), exec_handler=transport_exec) as fleet:
        state = fleet.state_dir
        assert fleet.client_key_path.exists()
    assert not state.exists()


async def test_hosts_are_created_lazily(tmp_path: Path) -> None:
    async with Fleet.start(small_spec(3), tmp_path / "s", exec_handler=transport_exec) as fleet:
        assert all(not (h.state_dir / "root").exists() for h in fleet.hosts.values())
        assert fleet.hosts["mac-02"].mac.fs.exists("/Library/Keychains")
        assert (fleet.hosts["mac-02"].state_dir / "root").exists()
        assert not (fleet.hosts["mac-03"].state_dir / "root").exists()


async def test_known_hosts_lines_and_fixed_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    spec = parse_spec({"hosts": [{"name": "a", "port": free}, {"name": "b"}]})
    async with Fleet.start(spec, tmp_path / "s", exec_handler=transport_exec) as fleet:
        a, b = fleet.hosts["a"], fleet.hosts["b"]
        assert a.port == free
        assert a.known_hosts_line() == f"[127.0.0.1]:{free} {a.host_key_public}"
        path = fleet.write_known_hosts(tmp_path / "known_hosts")
        assert path.read_text() == f"{a.known_hosts_line()}\n{b.known_hosts_line()}\n"


async def test_taken_port_is_a_spec_error_naming_the_host(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        spec = parse_spec({"hosts": [{"name": "a"}, {"name": "b", "port": taken}]})
        with pytest.raises(SpecError, match=rf"hosts\[1\]\.port: cannot listen on 127\.0\.0\.1:{taken}"):
            async with Fleet.start(spec, tmp_path / "s", exec_handler=transport_exec):
                pass


async def test_spec_authorized_keys_log_in_and_bad_lines_are_named(tmp_path: Path) -> None:
    extra = asyncssh.generate_private_key("ssh-ed25519")
    line = extra.export_public_key("openssh").decode().strip()
    async with Fleet.start(small_spec(1, authorized_keys=[line]), tmp_path / "s",
                           exec_handler=transport_exec) as fleet:
        host = fleet.hosts["mac-01"]
        async with connect(fleet, host, client_keys=[extra]) as conn:
            assert (await conn.run("whoami", check=False)).stdout == "admin\n"
    with pytest.raises(SpecError, match=r"hosts\[0\]\.authorized_keys\[1\]: not an OpenSSH public key"):
        async with Fleet.start(small_spec(1, authorized_keys=[line, "ssh-ed25519 !!!"]), tmp_path / "t"):
            pass


async def test_trusted_cas_are_in_the_keychain_as_a_profile_leaves_them(tmp_path: Path) -> None:
    pem = _ca_pem("Lab Root")
    (tmp_path / "lab.pem").write_bytes(pem)
    spec = small_spec(1, trusted_cas=[str(tmp_path / "lab.pem")])
    async with Fleet.start(spec, tmp_path / "s", exec_handler=transport_exec) as fleet:
        kc = fleet.hosts["mac-01"].mac.keychain
        sha1 = cert_sha1(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
        assert [c.label for c in kc.certs] == ["Lab Root"]
        trust = kc.trust_for(sha1)
        assert trust is not None and (trust.domain, trust.result) == ("profile", "trustRoot")
        assert kc.trust_for(sha1, ("admin",)) is None  # not what `add-trusted-cert -d` writes


async def test_missing_ca_file_names_the_field(tmp_path: Path) -> None:
    spec = small_spec(1, trusted_cas=[str(tmp_path / "absent.pem")])
    with pytest.raises(SpecError, match=r"hosts\[0\]\.trusted_cas\[0\]: cannot read CA file .*absent\.pem"):
        async with Fleet.start(spec, tmp_path / "s"):
            pass


async def test_real_shell_runs_over_ssh(tmp_path: Path) -> None:
    """The default exec handler is the macsim shell."""
    async with Fleet.start(small_spec(1, arch="arm64"), tmp_path / "s") as fleet:
        host = fleet.hosts["mac-01"]
        async with connect(fleet, host) as conn:
            r = await conn.run("uname -m && hostname && echo $HOME", check=False)
            missing = await conn.run("no-such-tool", check=False)
    assert r.stdout == "arm64\nmac-01.local\n/Users/admin\n"
    assert "command not found: no-such-tool" in missing.stderr  # exact wording is the shell's tests' job
    assert missing.exit_status == 127
    assert [c.command for c in host.mac.commands] == ["uname -m && hostname && echo $HOME", "no-such-tool"]


async def test_example_fleet_starts_with_artifacts(tmp_path: Path) -> None:
    from macsim.spec import load_spec

    shutil.copy(EXAMPLE, tmp_path / "fleet.yaml")
    (tmp_path / "artifacts").mkdir()
    # the file names `python -m macsim artifacts` writes (macsim.artifacts.certs)
    (tmp_path / "artifacts" / "lab-root-ca.pem").write_bytes(_ca_pem("macfleet Lab Root CA"))
    (tmp_path / "artifacts" / "switch-root-ca.pem").write_bytes(_ca_pem("macfleet Switch Root CA"))
    spec = load_spec(tmp_path / "fleet.yaml")
    async with Fleet.start(spec, tmp_path / "state") as fleet:
        assert len(fleet.hosts) == len(spec.hosts)
        profile_host = fleet.hosts["lab-m2-01"]
        assert {c.label for c in profile_host.mac.keychain.certs} == {
            "macfleet Lab Root CA", "macfleet Switch Root CA"}
        finance = fleet.hosts["finance-mbp-07"]
        async with connect(fleet, finance) as conn:
            assert (await conn.run("hostname", check=False)).stdout == "finance-mbp-07.corp.example.test\n"


async def test_installed_client_is_set_up_at_host_creation(tmp_path: Path) -> None:
    spec = small_spec(1, installed_client={"version": "8.0.1.23"})
    async with Fleet.start(spec, tmp_path / "s") as fleet:
        mac = fleet.hosts["mac-01"].mac
        assert mac.fs.exists("/Library/Application Support/1E/Client/1E.Client")
        assert "com.1e.pkg.1E.Client" in mac.state.launchd
