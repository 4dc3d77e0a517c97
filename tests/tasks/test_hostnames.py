"""tasks/hostnames.py: the names each rule accepts, and names read back from stored facts."""

from __future__ import annotations

import pytest

from tasks.hostnames import MacNames, match_names

SET = MacNames("mac.corp.example", "Mac-01", "mac.corp.example", "Mac 01")
DHCP = MacNames("host-3.dhcp.example", "Mac-01", None)
PLAIN = MacNames("Mac-01.local", "Mac-01", None)


@pytest.mark.parametrize(
    ("names", "rule", "accepted"),
    [
        (SET, "either", ("Mac-01.local", "mac.corp.example")),
        (SET, "sharing", ("Mac-01.local",)),
        (SET, "hostname", ("mac.corp.example",)),
        (DHCP, "either", ("Mac-01.local",)),  # a DHCP name is not a HostName
        (DHCP, "hostname", ("host-3.dhcp.example",)),
        (PLAIN, "either", ("Mac-01.local",)),  # one name, listed once
        (PLAIN, "hostname", ("Mac-01.local",)),
    ],
)
def test_accepted_names(names: MacNames, rule: str, accepted: tuple[str, ...]) -> None:
    assert tuple(n for _, n in names.accepted(rule)) == accepted


def test_the_preferred_name_is_what_check_asks_and_issue_issues_for() -> None:
    assert SET.preferred("either") == "Mac-01.local" and SET.preferred("hostname") == "mac.corp.example"
    no_local = MacNames("host-3.dhcp.example", None, None)  # no LocalHostName: nothing `sharing` accepts
    assert no_local.preferred("sharing") == "host-3.dhcp.example"


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="name_rule must be one of sharing, hostname, either"):
        PLAIN.accepted("both")


def test_match_is_exact_and_case_sensitive() -> None:
    m = match_names(["mac-01.local"], SET, "either")
    assert not m.ok and m.folded == ("mac-01.local", "Mac-01.local")
    assert "differ only in case" in m.hint()
    m = match_names(["x", "mac.corp.example"], SET, "either")
    assert (m.kind, m.name) == ("hostname", "mac.corp.example")
    assert "while the Sharing-pane name is 'Mac-01.local'" in m.describe()


def test_from_facts_with_and_without_host_name() -> None:
    assert MacNames.from_facts({"hostname": "a.local", "local_host_name": "a", "host_name": None}) == MacNames(
        "a.local", "a", None, None
    )
    # facts stored before HostName was gathered: a `hostname` other than the Sharing-pane name is a HostName
    old = MacNames.from_facts({"hostname": "a.corp.example", "local_host_name": "a"})
    assert old is not None and old.host_name == "a.corp.example"
    assert MacNames.from_facts({"local_host_name": "a"}) is None
