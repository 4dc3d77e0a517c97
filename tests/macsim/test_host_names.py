"""macsim's `hostname` follows configd's order (HostName, else a DHCP/reverse-DNS name, else
LocalHostName.local), and `scutil --get` reports each name as a real Mac does ("KEY: not set" on stderr,
exit 1, when HostName is unset: chef/chef pull request 10724)."""

from __future__ import annotations

from pathlib import Path

import pytest

from macsim.spec import parse_spec

from .shell_fixtures import make_mac, run

PROBE = "hostname; scutil --get HostName; scutil --get LocalHostName; scutil --get ComputerName"


@pytest.mark.parametrize(
    ("spec", "out", "err"),
    [
        # nothing but LocalHostName: `hostname` is the Sharing-pane name
        ({"local_host_name": "Lab-iMac"}, "Lab-iMac.local\nLab-iMac\nmac-01\n", "HostName: not set\n"),
        # HostName unset, a DHCP name: `hostname` prints the DHCP name, LocalHostName is unchanged
        (
            {"local_host_name": "Lab-iMac", "network_host_name": "host-0-1.dhcp.example.net",
             "computer_name": "Lab iMac"},
            "host-0-1.dhcp.example.net\nLab-iMac\nLab iMac\n",
            "HostName: not set\n",
        ),
        # HostName set: it wins over the DHCP name
        (
            {"local_host_name": "Lab-iMac", "network_host_name": "host-0-1.dhcp.example.net",
             "host_name": "lab-imac.corp.example.com"},
            "lab-imac.corp.example.com\nlab-imac.corp.example.com\nLab-iMac\nmac-01\n",
            "",
        ),
    ],
    ids=["local-only", "dhcp-name", "hostname-set"],
)  # fmt: skip
async def test_configd_order(tmp_path: Path, spec: dict[str, str], out: str, err: str) -> None:
    mac = make_mac(tmp_path, **spec)
    r = await run(mac, PROBE)
    assert (r.out, r.err) == (out, err)


async def test_unknown_pref_is_a_usage_error(tmp_path: Path) -> None:
    r = await run(make_mac(tmp_path), "scutil --get HostNames")
    assert r.status == 64 and "usage: scutil --get pref" in r.err and r.out == ""


def test_network_host_name_is_validated() -> None:
    with pytest.raises(ValueError, match="not a valid host name"):
        parse_spec({"hosts": [{"name": "a", "network_host_name": "bad_name.example"}]})
