"""SFTP over real SSH: macOS paths, the vfs permission model for the SSH user, modes, ownership, renames."""

from __future__ import annotations

import asyncssh
import pytest

from macsim.fleet import Fleet, SimHost

from .conftest import connect


async def _put(sftp: asyncssh.SFTPClient, path: str, data: bytes, mode: int | None = None) -> None:
    attrs = asyncssh.SFTPAttrs(permissions=mode) if mode is not None else asyncssh.SFTPAttrs()
    async with sftp.open(path, "wb", attrs) as f:
        await f.write(data)


async def test_upload_into_private_dir_keeps_modes_and_owner(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("/private/tmp/macfleet.x1", asyncssh.SFTPAttrs(permissions=0o700))
        await _put(sftp, "/private/tmp/macfleet.x1/id.pfx", b"\x30\x82secret", mode=0o600)
        await _put(sftp, "/private/tmp/macfleet.x1/default.txt", b"x")  # no mode: 0666 & ~022
        st = await sftp.stat("/private/tmp/macfleet.x1/id.pfx")
        dst = await sftp.stat("/private/tmp/macfleet.x1")
        dflt = await sftp.stat("/private/tmp/macfleet.x1/default.txt")
    assert st.permissions is not None and st.permissions & 0o7777 == 0o600
    assert st.uid == 501 and st.gid == 20
    assert dst.permissions is not None and dst.permissions & 0o7777 == 0o700
    assert dflt.permissions is not None and dflt.permissions & 0o7777 == 0o644
    fs = host.mac.fs
    assert fs.read_bytes("/private/tmp/macfleet.x1/id.pfx") == b"\x30\x82secret"
    assert fs.owner("/private/tmp/macfleet.x1/id.pfx") == 501
    assert fs.owner("/private/tmp/macfleet.x1") == 501
    assert fs.real("/private/tmp/macfleet.x1/id.pfx").stat().st_mode & 0o777 == 0o600


async def test_tmp_symlink_and_realpath(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await _put(sftp, "/tmp/via-link", b"hello")
        assert await sftp.realpath("/tmp") == "/private/tmp"
        assert await sftp.realpath(".") == "/Users/admin"
        assert await sftp.readlink("/tmp") == "private/tmp"
        async with sftp.open("/private/tmp/via-link", "rb") as f:
            assert await f.read() == b"hello"
        names = await sftp.listdir("/private/tmp")
    assert "via-link" in names
    assert host.mac.fs.real("/tmp/via-link") == host.mac.root / "private/tmp/via-link"


async def test_relative_paths_resolve_in_home(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await _put(sftp, "notes.txt", b"n")
    assert host.mac.fs.read_bytes("/Users/admin/notes.txt") == b"n"


async def test_user_cannot_write_to_library(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="Permission denied"):
            await _put(sftp, "/Library/LaunchDaemons/evil.plist", b"x")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="Permission denied"):
            await sftp.mkdir("/Library/Application Support/1E")
    assert not host.mac.fs.exists("/Library/LaunchDaemons/evil.plist")
    assert not host.mac.fs.exists("/Library/Application Support/1E")


async def test_root_owned_files_are_protected(fleet: Fleet, host: SimHost) -> None:
    fs = host.mac.fs
    fs.write_bytes("/private/tmp/root-secret", b"s", mode=0o600)  # root's, in the sticky /private/tmp
    fs.write_bytes("/private/tmp/root-public", b"p", mode=0o644)
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open("/private/tmp/root-secret", "rb"):
                pass
        async with sftp.open("/private/tmp/root-public", "rb") as f:
            assert await f.read() == b"p"
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.remove("/private/tmp/root-public")  # sticky dir: only the owner may remove
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.chmod("/private/tmp/root-public", 0o666)
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open("/private/tmp/root-public", "ab"):
                pass
    assert fs.read_bytes("/private/tmp/root-public") == b"p"


async def test_setstat_chmod_own_file_and_chown_denied(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await _put(sftp, "/tmp/mine", b"m", mode=0o644)
        await sftp.chmod("/tmp/mine", 0o600)
        assert (await sftp.stat("/tmp/mine")).permissions & 0o7777 == 0o600
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.chown("/tmp/mine", 0, 0)
    assert host.mac.fs.owner("/private/tmp/mine") == 501


async def test_rename_remove_and_rmdir(fleet: Fleet, host: SimHost) -> None:
    fs = host.mac.fs
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("/tmp/d")
        await _put(sftp, "/tmp/d/a", b"A")
        await _put(sftp, "/tmp/d/b", b"B")
        with pytest.raises(asyncssh.SFTPFailure, match="exists"):
            await sftp.rename("/tmp/d/a", "/tmp/d/b")  # SFTP v3 rename does not replace
        await sftp.posix_rename("/tmp/d/a", "/tmp/d/b")
        assert fs.read_bytes("/tmp/d/b") == b"A"
        await sftp.rename("/tmp/d/b", "/tmp/d/c")
        assert fs.owner("/tmp/d/c") == 501
        with pytest.raises(asyncssh.SFTPFailure):
            await sftp.rmdir("/tmp/d")  # not empty
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.remove("/tmp/d/nope")
        await sftp.remove("/tmp/d/c")
        await sftp.rmdir("/tmp/d")
    assert not fs.exists("/tmp/d")
    assert fs.owner("/private/tmp/d") == 0  # ownership record dropped with the directory


async def test_get_and_stat_of_missing_file(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat("/private/tmp/absent")
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            async with sftp.open("/private/tmp/absent", "rb"):
                pass


async def test_listing_shows_mac_owners(fleet: Fleet, host: SimHost) -> None:
    host.mac.fs.write_bytes("/private/tmp/by-root", b"r", mode=0o644)
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        await _put(sftp, "/private/tmp/by-user", b"u")
        entries = {n.filename: n for n in await sftp.readdir("/private/tmp")}
    assert entries["by-user"].attrs.uid == 501
    assert entries["by-root"].attrs.uid == 0
    assert " admin " in entries["by-user"].longname and " staff " in entries["by-user"].longname
    assert " root " in entries["by-root"].longname and " wheel " in entries["by-root"].longname


async def test_writes_past_free_space_fail(tmp_path) -> None:
    from .conftest import small_spec, transport_exec

    spec = small_spec(1, free_space_mb=1)
    async with Fleet.start(spec, tmp_path / "s", exec_handler=transport_exec) as fleet:
        host = fleet.hosts["mac-01"]
        async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
            await _put(sftp, "/tmp/fits", b"f" * 100_000)
            with pytest.raises(asyncssh.SFTPError, match="No space left on device"):
                await _put(sftp, "/tmp/too-big", b"t" * 2_000_000)
        assert host.mac.fs.read_bytes("/tmp/fits") == b"f" * 100_000


async def test_paths_and_symlinks_never_leave_the_mac(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            async with sftp.open("/../../../../../etc/hostname", "rb"):
                pass  # the host machine's /etc/hostname exists; the Mac's does not
        await sftp.symlink("/etc/hostname", "/tmp/escape")
        assert await sftp.readlink("/tmp/escape") == "/etc/hostname"
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            async with sftp.open("/tmp/escape", "rb"):
                pass
        await _put(sftp, "/Users/admin/target.txt", b"t")
        await sftp.symlink("/Users/admin/target.txt", "/Users/admin/link")
        async with sftp.open("/Users/admin/link", "rb") as f:
            assert await f.read() == b"t"
        await sftp.remove("/Users/admin/link")
        assert host.mac.fs.owner("/Users/admin/target.txt") == 501  # removing a link keeps its target's owner
        assert host.mac.fs.read_bytes("/Users/admin/target.txt") == b"t"
    assert host.mac.fs.owner("/private/etc/hostname") == 0  # the link gave the user no claim on its target
