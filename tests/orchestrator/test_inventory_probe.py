"""`orchestrate inventory probe` against a macsim fleet, and what the live names it stores do for `certs add`
(mapping a PFX by the name it carries when the inventory names none) and `certs check` (judging against the
Mac's names under [certs] name_rule), before any deploy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

import orchestrator.cli as cli
from orchestrator.cli import context
from orchestrator.state.models import ClientCertificate, Device
from tests.orchestrator.certs import certmaterial as m
from tests.workers.lab import lab

HOSTS = [
    {"name": "mac-plain"},  # `hostname` is the Sharing-pane name
    {"name": "mac-hn", "local_host_name": "Mac-HN", "host_name": "mac-hn.corp.example", "computer_name": "Mac HN"},
    {"name": "mac-dhcp", "local_host_name": "Lab-DHCP", "network_host_name": "host-5.dhcp.example"},
    {"name": "mac-down", "faults": {"refuse_connections": True}},
]  # fmt: skip
PW = "probe-test-pw"


def _pfx(dir_: Path, name: str, cn: str, *san: str) -> Path:
    """A client PFX from the test lab CA (certmaterial) naming cn (and SANs)."""
    lab_ = m.lab()
    key, cert = m.make_leaf(m.Leaf(cn=cn, san=san), lab_["inter"])
    p = dir_ / name
    p.write_bytes(m.pfx(key, cert, [lab_["inter"][0], lab_["root"][0]], PW.encode(), legacy=True))
    return p


async def test_probe_stores_live_names_then_certs_add_and_check_use_them(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS, ssh={"connect_timeout": 5.0}) as L:
        st = L.settings
        for var, value in {
            "DATABASE_URL": engine.url.render_as_string(hide_password=False), "DATA_DIR": str(st.data_dir),
            "SECRET_KEY": str(st.secret_key), "SSH__KNOWN_HOSTS": str(st.ssh.known_hosts),
            "SSH__CONNECT_TIMEOUT": "5",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"ORCHESTRATE_{var}", value)
        monkeypatch.setenv("COLUMNS", "200")
        cli._register()

        async def run(*args: str) -> Any:
            # a worker thread: the simulated Macs are served by this test's event loop
            return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args))

        (tmp_path / "pw").write_text(PW + "\n")
        pw = ["--password-file", str(tmp_path / "pw")]
        root = tmp_path / "root.pem"
        root.write_bytes(m.pem(m.lab()["root"][0]))
        assert (await run("certs", "ca", "add", str(root))).exit_code == 0
        sharing_pfx = _pfx(tmp_path, "mac-hn-sharing.pfx", "Mac-HN.local")

        # before the probe the inventory knows no host name: the PFX maps to no device
        r = await run("certs", "add", str(sharing_pfx), *pw, "--json")
        assert r.exit_code == 1 and "orchestrate inventory probe" in r.stderr, r.output

        marks = L.marks()
        r = await run("inventory", "probe", "--group", "lab", "--json")
        assert r.exit_code == 1, r.output  # mac-down cannot be reached
        rows = {x["device"]: x for x in json.loads(r.stdout)}
        assert not rows["mac-down"]["ok"] and rows["mac-down"]["error_type"] == "Unreachable"
        assert "mac-down" in rows["mac-down"]["error"] or "refused" in rows["mac-down"]["error"]
        got = {n: (x["hostname"], x["sharing_name"], x["host_name"], x["computer_name"])
               for n, x in rows.items() if x["ok"]}  # fmt: skip
        assert got == {
            "mac-plain": ("mac-plain.local", "mac-plain.local", None, "mac-plain"),
            "mac-hn": ("mac-hn.corp.example", "Mac-HN.local", "mac-hn.corp.example", "Mac HN"),
            "mac-dhcp": ("host-5.dhcp.example", "Lab-DHCP.local", None, "mac-dhcp"),
        }
        for n in ("mac-plain", "mac-hn", "mac-dhcp"):  # ONE exec each, not as root
            assert rows[n]["execs"] == 1
            new = L.commands(n, since=marks[n])
            assert len(new) == 1 and "sudo" not in new[0] and "scutil --get HostName" in new[0], new
        with Session(engine) as s:
            devs = {d.name: d for d in s.exec(select(Device)).all()}
        assert devs["mac-hn"].reported_hostname == "mac-hn.corp.example"
        assert json.loads(devs["mac-hn"].facts_json or "{}")["local_host_name"] == "Mac-HN"
        assert devs["mac-down"].facts_json is None and devs["mac-down"].reported_hostname is None

        # the plain form shows progress lines and the names table
        r = await run("inventory", "probe", "--limit", "mac-hn")
        assert r.exit_code == 0, r.output
        assert "[1/1] mac-hn succeeded" in r.stdout and "Mac-HN.local" in r.stdout and "(not set)" not in r.stdout
        r = await run("inventory", "show", "mac-dhcp")
        assert "Lab-DHCP.local" in r.stdout and "(not set)" in r.stdout

        # now the PFX for mac-hn's Sharing-pane name maps to it, and the record says which name it carries
        r = await run("certs", "add", str(sharing_pfx), *pw, "--json")
        assert r.exit_code == 0, r.output
        [added] = json.loads(r.stdout)
        assert added["device"] == "mac-hn" and added["verdict"]["status"] == "ok"
        assert added["verdict"]["names"]["matched"] == "sharing"
        assert "Sharing-pane name" in added["verdict"]["reason"] and "mac-hn.corp.example" in added["verdict"]["reason"]

        # a PFX carrying two Macs' live names is ambiguous: nothing is stored
        both = _pfx(tmp_path, "both.pfx", "Mac-HN.local", "Mac-HN.local", "mac-plain.local")
        with Session(engine) as s:
            before = len(s.exec(select(ClientCertificate)).all())
        r = await run("certs", "add", str(both), *pw)
        assert r.exit_code == 1 and "several devices carry" in r.stderr and "--device" in r.stderr, r.output
        assert "mac-hn (Mac-HN.local)" in r.stderr and "mac-plain (mac-plain.local)" in r.stderr
        with Session(engine) as s:
            assert len(s.exec(select(ClientCertificate)).all()) == before

        # lab issuing takes the live name the rule prefers: the Sharing-pane name, not the DHCP name
        ca_key = m.lab()["root"][1]
        (tmp_path / "ca.key").write_bytes(ca_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))  # fmt: skip
        r = await run("certs", "issue", "--limit", "mac-dhcp", "--ca-cert", str(root), "--ca-key",
                      str(tmp_path / "ca.key"), "--out", str(tmp_path / "issued"), "--no-import", *pw,
                      "--json")  # fmt: skip
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)[0]["hostname"] == "Lab-DHCP.local"

        # certs check judges against the live names under the name rule, before any deploy
        r = await run("certs", "check", "--limit", "mac-hn,mac-dhcp,mac-plain", "--json")
        checks = {x["device"]: x for x in json.loads(r.stdout)}
        assert checks["mac-hn"]["status"] == "ok" and checks["mac-hn"]["names"]["matched"] == "sharing"
        assert checks["mac-plain"]["status"] == "ok"
        # the lab issued mac-dhcp's certificate for what `hostname` prints: a DHCP name, refused by `either`
        assert checks["mac-dhcp"]["status"] == "name mismatch", checks["mac-dhcp"]
        assert "name_rule = hostname" in checks["mac-dhcp"]["reason"]
        assert r.exit_code == 1
        monkeypatch.setenv("ORCHESTRATE_CERTS__NAME_RULE", "hostname")
        context.settings.cache_clear()  # the setting is read once per process
        r = await run("certs", "check", "--limit", "mac-hn,mac-dhcp", "--json")
        checks = {x["device"]: x for x in json.loads(r.stdout)}
        assert checks["mac-dhcp"]["status"] == "ok" and checks["mac-dhcp"]["names"]["matched"] == "hostname"
        assert checks["mac-hn"]["status"] == "name mismatch"  # it names the Sharing-pane name now
        assert r.exit_code == 1
