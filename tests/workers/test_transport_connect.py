"""connect() against a real OpenSSH sshd: host key policy, authentication, unreachable targets."""

from __future__ import annotations

import os
import time
from pathlib import Path

import asyncssh
import pytest

from tests.workers.sshd import Sshd
from workers.ssh import (
    AuthFailed,
    HostKeyMismatch,
    HostKeyPolicy,
    HostKeyUnknown,
    SshAuth,
    SshTarget,
    Timeouts,
    Unreachable,
    connect,
    fingerprint,
    parse_public_key,
)


def _fresh_public_line() -> str:
    return (
        asyncssh.generate_private_key("ssh-ed25519").convert_to_public().export_public_key().decode().strip()
    )


async def test_pinned_key_connects_and_reports_the_key(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts
) -> None:
    ed = sshd.host_keys["ssh-ed25519"]
    async with await connect(target, HostKeyPolicy.pin([ed]), auth, timeouts) as conn:
        assert conn.host_key == ed
        assert conn.host_key_fingerprint == fingerprint(parse_public_key(ed))
        assert conn.host_key_is_new is False
        assert conn.cipher == "aes128-gcm@openssh.com"
        result = await conn.run(["id", "-un"])
        assert result.stdout.decode().strip() == sshd.user


async def test_pin_of_the_second_key_type_is_asked_for(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts
) -> None:
    # Only the ECDSA key is pinned: the client must ask the server for that key type, not fail on ed25519.
    ecdsa = sshd.host_keys["ecdsa-sha2-nistp256"]
    async with await connect(target, HostKeyPolicy.pin([ecdsa]), auth, timeouts) as conn:
        assert conn.host_key == ecdsa


async def test_wrong_pin_is_a_mismatch_naming_both_fingerprints(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    other_line = other.export_public_key().decode().strip()
    with pytest.raises(HostKeyMismatch) as caught:
        await connect(target, HostKeyPolicy.pin([other_line]), auth, timeouts)
    err = caught.value
    served = sshd.host_keys["ssh-ed25519"]
    assert err.host == "127.0.0.1" and err.port == sshd.port
    assert err.expected == [fingerprint(other)]
    assert err.presented == served
    message = str(err)
    assert f"127.0.0.1:{sshd.port}" in message
    assert fingerprint(other) in message
    assert fingerprint(parse_public_key(served)) in message
    assert "replace the pinned key" in message


async def test_no_pin_without_tofu_is_unknown_with_the_presented_key(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts
) -> None:
    with pytest.raises(HostKeyUnknown) as caught:
        await connect(target, HostKeyPolicy(), auth, timeouts)
    assert caught.value.presented in sshd.host_keys.values()
    assert "--trust-on-first-use" in str(caught.value)


async def test_tofu_accepts_and_reports_the_key_to_pin(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts
) -> None:
    async with await connect(target, HostKeyPolicy.tofu(), auth, timeouts) as conn:
        assert conn.host_key_is_new is True
        assert conn.host_key in sshd.host_keys.values()
        learned = conn.host_key
    # the reported key, pinned, is then accepted strictly
    async with await connect(target, HostKeyPolicy.pin([learned]), auth, timeouts) as again:
        assert again.host_key == learned and again.host_key_is_new is False


async def test_tofu_never_overrides_a_pin(target: SshTarget, auth: SshAuth, timeouts: Timeouts) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public().export_public_key().decode()
    with pytest.raises(HostKeyMismatch):
        await connect(target, HostKeyPolicy.tofu(pinned=[other]), auth, timeouts)


async def test_known_hosts_file_with_port_entry(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_keys['ssh-ed25519']}\n")
    async with await connect(target, HostKeyPolicy(known_hosts=known), auth, timeouts) as conn:
        assert conn.host_key == sshd.host_keys["ssh-ed25519"]


async def test_known_hosts_file_wrong_key_is_mismatch(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public().export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    with pytest.raises(HostKeyMismatch):
        await connect(target, HostKeyPolicy(known_hosts=known, trust_on_first_use=True), auth, timeouts)


async def test_known_hosts_entry_without_port_does_not_vouch_for_another_port(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    # OpenSSH semantics: "127.0.0.1 KEY" is port 22 only (asyncssh alone would fall back to it).
    known = tmp_path / "known_hosts"
    known.write_text(f"127.0.0.1 {sshd.host_keys['ssh-ed25519']}\n")
    with pytest.raises(HostKeyUnknown):
        await connect(target, HostKeyPolicy(known_hosts=known), auth, timeouts)


async def test_known_hosts_file_is_read_again_when_it_changes(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    # Parsed once per version (cached across connections): an edited file must take effect at once.
    known = tmp_path / "known_hosts"
    old = time.time() - 60
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_keys['ssh-ed25519']}\n")
    os.utime(known, (old, old))  # settled: the parse is cached
    policy = HostKeyPolicy(known_hosts=known)
    for _ in range(2):
        async with await connect(target, policy, auth, timeouts) as conn:
            assert conn.host_key == sshd.host_keys["ssh-ed25519"]
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public().export_public_key().decode()
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    os.utime(known, (old + 1, old + 1))  # changed, and settled again
    with pytest.raises(HostKeyMismatch):
        await connect(target, policy, auth, timeouts)


def test_unreadable_known_hosts_file_is_a_value_error(tmp_path: Path) -> None:
    from workers.ssh.hostkeys import HostKeyCheck

    with pytest.raises(ValueError, match="cannot read known_hosts file"):
        HostKeyCheck(HostKeyPolicy(known_hosts=tmp_path / "absent"), "h", 22)


def test_bad_pinned_line_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ValueError, match=r"pinned host key #2: not an OpenSSH public key line"):
        HostKeyPolicy.pin([_fresh_public_line(), "garbage-key-line"])


async def test_unknown_client_key_is_auth_failed(
    sshd: Sshd, target: SshTarget, pinned: HostKeyPolicy, timeouts: Timeouts, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    with pytest.raises(AuthFailed) as caught:
        await connect(target, pinned, SshAuth(key_files=(stranger,)), timeouts)
    assert f"127.0.0.1:{sshd.port}" in str(caught.value)
    assert repr(sshd.user) in str(caught.value)


async def test_password_refused_is_auth_failed_and_not_echoed(
    target: SshTarget, pinned: HostKeyPolicy, timeouts: Timeouts
) -> None:
    # the test sshd allows public keys only: any password is refused
    with pytest.raises(AuthFailed) as caught:
        await connect(target, pinned, SshAuth(password=b"canary-pw-3141"), timeouts)
    assert "canary-pw-3141" not in str(caught.value)
    assert "canary-pw-3141" not in repr(SshAuth(password=b"canary-pw-3141"))


async def test_missing_key_file_is_auth_failed(
    target: SshTarget, pinned: HostKeyPolicy, tmp_path: Path
) -> None:
    with pytest.raises(AuthFailed, match="cannot read private key"):
        await connect(target, pinned, SshAuth(key_files=(tmp_path / "nope",)))


async def test_refused_port_is_unreachable_fast(pinned: HostKeyPolicy, auth: SshAuth) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, read it, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        await connect(SshTarget("127.0.0.1", "nobody", port), pinned, auth, Timeouts(connect=3))
    assert time.monotonic() - started < 2
    assert "connection refused" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "Remote Login" in caught.value.hint


async def test_silent_server_is_unreachable_within_the_connect_timeout(
    pinned: HostKeyPolicy, auth: SshAuth
) -> None:
    import socket

    # a listener that accepts (kernel backlog) but never speaks SSH
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(Unreachable, match="no answer within"):
            await connect(
                SshTarget("127.0.0.1", "nobody", port), pinned, auth, Timeouts(connect=0.5, login=5)
            )
        assert time.monotonic() - started < 3


async def test_unresolvable_name_is_unreachable(pinned: HostKeyPolicy, auth: SshAuth) -> None:
    with pytest.raises(Unreachable, match="does not resolve"):
        await connect(SshTarget("no-such-host.invalid", "nobody", 22), pinned, auth, Timeouts(connect=3))


def test_target_and_auth_validation_messages() -> None:
    with pytest.raises(ValueError, match="out of range"):
        SshTarget("h", "u", 0)
    with pytest.raises(ValueError, match="has no username"):
        SshTarget("h", "", 22)
    with pytest.raises(ValueError, match="no SSH authentication method"):
        SshAuth()


async def test_known_hosts_file_without_the_host_falls_back_to_tofu_only_when_allowed(
    sshd: Sshd, target: SshTarget, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[10.0.0.9]:22 {_fresh_public_line()}\n")
    with pytest.raises(HostKeyUnknown):
        await connect(target, HostKeyPolicy(known_hosts=known), auth, timeouts)
    policy = HostKeyPolicy(known_hosts=known, trust_on_first_use=True)
    async with await connect(target, policy, auth, timeouts) as conn:
        assert conn.host_key_is_new and conn.host_key in sshd.host_keys.values()
