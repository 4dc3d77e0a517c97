"""The utilities' main flags and error paths, and permission denial as a non-root user."""

from __future__ import annotations

from pathlib import Path

import pytest

from macsim.mac import VirtualMac

from .shell_fixtures import make_mac, run


@pytest.fixture(scope="module")
def mac(tmp_path_factory: pytest.TempPathFactory) -> VirtualMac:
    return make_mac(tmp_path_factory.mktemp("shellutil"), arch="arm64", rosetta=False, host_name=None)


@pytest.mark.parametrize(
    ("command", "status", "out", "err"),
    [
        ("rm /Library/Keychains", 1, "", "rm: /Library/Keychains: is a directory\n"),
        ("rm /Library/nope", 1, "", "rm: /Library/nope: No such file or directory\n"),
        ("rm -f /Library/nope", 0, "", ""),
        ("sudo touch /Library/f; rm /Library/f", 1, "", "rm: /Library/f: Permission denied\n"),
        ("mkdir /Library/x", 1, "", "mkdir: /Library/x: Permission denied\n"),
        ("cat /x", 1, "", "cat: /x: No such file or directory\n"),
        ("cat /var/root/x", 1, "", "cat: /var/root/x: Permission denied\n"),
        (
            "ls -Q",
            1,
            "",
            "ls: illegal option -- Q\nusage: ls [-@ABCFGHILOPRSTUWXabcdefghiklmnopqrstuvwxy1%,]"
            " [--color=when] [-D format] [file ...]\n",
        ),
        ("head -z", 1, "", "head: illegal option -- z\nusage: head [-n lines | -c bytes] [file ...]\n"),
        (
            "chmod 644 /bin/sh",
            1,
            "",
            "chmod: Unable to change file mode on /bin/sh: Operation not permitted\n",
        ),
        ("mv /bin/sh /tmp/sh", 1, "", "mv: rename /bin/sh to /tmp/sh: Permission denied\n"),
        ("grep -q x /nope", 2, "", "grep: /nope: No such file or directory\n"),
        ("sysctl -n nope.x", 1, "", "sysctl: unknown oid 'nope.x'\n"),
        ("scutil --get HostName", 1, "", "HostName: not set\n"),  # chef/chef PR 10724: stderr
        ("scutil --set HostName x", 1, "", "SCPreferencesCommitChanges() failed: Permission denied\n"),
        ("arch -x86_64 true", 1, "", "arch: posix_spawnp: true: Bad CPU type in executable\n"),
        ("./nope", 127, "", "zsh:1: no such file or directory: ./nope\n"),
        ("/Library/Keychains", 126, "", "zsh:1: permission denied: /Library/Keychains\n"),
        ("base64 -d <<< '!!!'", 1, "", "base64: stdin: (null): error decoding base64 input stream\n"),
        ("test 1 -eq x", 2, "", "test: x: bad number\n"),
    ],
)
async def test_errors(mac: VirtualMac, command: str, status: int, out: str, err: str) -> None:
    r = await run(mac, command)
    assert (r.status, r.out, r.err) == (status, out, err)


@pytest.mark.parametrize(
    ("command", "out"),
    [
        ("printf 'a\\nb\\nc\\n' | tail -n 2", "b\nc\n"),
        ("printf 'a\\nb\\nc\\n' | tail -n +2", "b\nc\n"),
        ("printf 'abcdef' | tail -c 3", "def"),
        ("printf 'a\\nb\\nc\\n' | head -n 1", "a\n"),
        ("printf 'Foo\\nbar\\nfoo\\n' | grep -i foo", "Foo\nfoo\n"),
        ("printf 'Foo\\nbar\\n' | grep -v Foo", "bar\n"),
        ("printf 'ab\\naab\\n' | grep -c -E 'a+b'", "2\n"),
        ("printf 'a.b\\naxb\\n' | grep -F a.b", "a.b\n"),
        ("printf 'a\\nb\\n' | grep -e a -e b | wc -l", "       2\n"),
        ("echo hello | tr -d l", "heo\n"),
        ("echo hello | tr 'a-y' 'b-z'", "ifmmp\n"),
        ("printf 'a b\\n' | tr ' ' '\\n'", "a\nb\n"),
        ("printf 'a\\0b\\0' | xargs -0 -n 1 echo", "a\nb\n"),
        ("echo a b c | xargs -n 2 echo", "a b\nc\n"),
        ("printf 'x\\ny\\n' | xargs -I % echo [%]", "[x]\n[y]\n"),
        ("echo abc | shasum -a 256", "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb  -\n"),
        ("echo abc | shasum", "03cfd743661f07975fa2f1220c5194cbaff48451  -\n"),
        ("printf 'a b\\nc\\n' | wc -l", "       2\n"),
        ("printf 'a b\\nc\\n' | wc -w", "       3\n"),
        ("echo 'a:b:c' | cut -d: -f2,3", "b:c\n"),
        ("printf 'b\\na\\nb\\n' | sort | uniq -c", "   1 a\n   2 b\n"),
        ("echo aGk= | base64 -D", "hi"),
        ("printf hi | base64", "aGk=\n"),
        ("basename /a/b.sh .sh; dirname /a/b.sh; dirname b", "b\n/a\n.\n"),
        ("sw_vers -productVersion; sw_vers -buildVersion", "14.6.1\n23G93\n"),
        ("uname -m; uname -p; arch; sysctl -n hw.optional.arm64", "arm64\narm\narm64\n1\n"),
        ("hostname; scutil --get LocalHostName", "mac-01.local\nmac-01\n"),
        ("id -u; id -un; whoami; sudo id -g", "501\nadmin\nadmin\n0\n"),
        ("env -i FOO=1 env", "FOO=1\n"),
        ("command -v cat; command -v cd; command -v nope || echo none", "/bin/cat\ncd\nnone\n"),
        ("test -d /tmp && [ ! -f /tmp ] && [ -z '' ] && [ a != b ] && echo ok", "ok\n"),
        ("[ -w /Library ] || [ -x /bin/ls -a -r /etc ] && echo yes", "yes\n"),
        ("date +%s | grep -c '^[0-9]*$'", "1\n"),
    ],
)
async def test_outputs(mac: VirtualMac, command: str, out: str) -> None:
    r = await run(mac, command)
    assert (r.status, r.out, r.err) == (0, out, "")


async def test_mktemp_modes_and_owner(mac: VirtualMac) -> None:
    r = await run(mac, "mktemp")
    f = r.out.strip()
    assert f.startswith("/var/folders/") and "/T/tmp." in f
    assert mac.fs.owner(f) == 501
    assert mac.fs.real(f).stat().st_mode & 0o777 == 0o600
    r = await run(mac, "mktemp -d -t macfleet")
    d = r.out.strip()
    assert "/T/macfleet." in d
    assert mac.fs.real(d).stat().st_mode & 0o777 == 0o700
    r = await run(mac, "mktemp /Library/x.XXXX")
    assert (r.status, r.err) == (1, "mktemp: mkstemp failed on /Library/x.XXXX: Permission denied\n")


async def test_file_lifecycle(mac: VirtualMac) -> None:
    r = await run(
        mac,
        "cd /tmp && mkdir -p -m 700 life/a/b && echo x > life/a/f && cp -R life life2 && "
        "mv life2 life3 && chmod u+x life/a/f && ls life/a && rm -r life life3 && ls life",
    )
    assert r.out == "b\nf\n"
    assert r.err == "ls: life: No such file or directory\n"
    assert mac.fs.exists("/tmp/life") is False
    r = await run(mac, "mkdir /tmp/d; mkdir /tmp/d")
    assert r.err == "mkdir: /tmp/d: File exists\n"


async def test_df_reports_free_space(mac: VirtualMac) -> None:
    r = await run(mac, "df -k /")
    header, line = r.out.splitlines()
    assert header.split()[:4] == ["Filesystem", "1024-blocks", "Used", "Available"]
    assert int(line.split()[3]) == mac.free_bytes() // 1024
    r = await run(mac, "df -P /")
    assert r.out.splitlines()[0].split()[1] == "512-blocks"


async def test_echo_dialects(mac: VirtualMac) -> None:
    r = await run(mac, "echo -n a; echo 'b\\tc'; /bin/echo 'd\\te'; sh -c \"echo -n f\"")
    assert r.out == "ab\tc\nd\\te\n-n f\n"


async def test_shell_scripts_dispatch_by_shebang(mac: VirtualMac) -> None:
    r = await run(
        mac,
        "printf '#!/bin/sh\\necho \"$0:$1:$#\"\\nexit 5\\n' > /tmp/s.sh; /tmp/s.sh x; echo $?; "
        "chmod +x /tmp/s.sh; /tmp/s.sh x y; echo $?; sh /tmp/s.sh z",
    )
    assert r.err == "zsh:1: permission denied: /tmp/s.sh\n"
    assert r.out == "126\n/tmp/s.sh:x:2\n5\n/tmp/s.sh:z:1\n"


async def test_rm_removes_a_dangling_symlink_as_unlink_does(tmp_path: Path) -> None:
    m = make_mac(tmp_path)
    r = await run(m, "mkdir -p /private/tmp/d/stage /private/tmp/d/mnt && touch /private/tmp/d/mnt/x.pkg && "
                     "ln -s /private/tmp/d/mnt/x.pkg /private/tmp/d/stage/ && rm /private/tmp/d/mnt/x.pkg && "
                     "rm -rf /private/tmp/d && echo gone")  # fmt: skip
    assert (r.status, r.out, r.err) == (0, "gone\n", "")
    assert not m.fs.exists("/private/tmp/d")
    plain = await run(m, "mkdir /private/tmp/e && ln -s /nowhere /private/tmp/e/l && rm /private/tmp/e/l && echo ok")
    assert (plain.out, plain.err) == ("ok\n", "")
