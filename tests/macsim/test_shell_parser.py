"""Parser edge cases: quoting, escapes, operators, redirections, syntax errors."""

from __future__ import annotations

import pytest

from macsim.mac import VirtualMac
from macsim.shell.parser import ParseError, Simple, parse

from .shell_fixtures import make_mac, run


@pytest.fixture(scope="module")
def mac(tmp_path_factory: pytest.TempPathFactory) -> VirtualMac:
    # one host for the module: creating a VirtualMac costs ~0.4 s; tests use distinct paths
    return make_mac(tmp_path_factory.mktemp("shellparser"))


def _words(text: str) -> list[str]:
    cmd = parse(text).items[0].first.cmds[0]
    assert isinstance(cmd, Simple)
    return [w.raw for w in cmd.words]


def test_operators_split_words_without_spaces() -> None:
    seq = parse("a&&b||c;d|e")
    assert len(seq.items) == 2
    assert [op for op, _ in seq.items[0].rest] == ["&&", "||"]
    assert len(seq.items[1].first.cmds) == 2


def test_io_number_only_at_word_start() -> None:
    cmd = parse("echo a2>f 2>&1").items[0].first.cmds[0]
    assert isinstance(cmd, Simple)
    assert [w.raw for w in cmd.words] == ["echo", "a2"]
    assert [(r.fd, r.op, r.target.raw) for r in cmd.redirs] == [(1, ">", "f"), (2, ">&", "1")]


def test_assignment_only_before_command_name() -> None:
    cmd = parse("A=1 B='x y' env C=2").items[0].first.cmds[0]
    assert isinstance(cmd, Simple)
    assert [a.name for a in cmd.assigns] == ["A", "B"]
    assert [w.raw for w in cmd.words] == ["env", "C=2"]


@pytest.mark.parametrize(
    ("text", "near"),
    [("echo one |", "|"), ("&& echo", "&&"), ("echo )", ")"), ("if true; then echo", "echo"), ("fi", "fi")],
)
def test_parse_errors_name_the_token(text: str, near: str) -> None:
    with pytest.raises(ParseError) as e:
        parse(text)
    assert e.value.near == near


def test_unterminated_quote() -> None:
    with pytest.raises(ParseError) as e:
        parse("echo 'abc")
    assert e.value.unmatched == "'"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo 'a  b' \"c  d\" e\\ f", "a  b c  d e f\n"),
        ('echo "\\$HOME \\\\ \\" $USER"', '$HOME \\ " admin\n'),
        ("echo '$HOME'", "$HOME\n"),
        ("echo $'a\\tb'", "a\tb\n"),
        ("x='a  b'; echo $x", "a  b\n"),  # zsh does not split unquoted parameters
        ('echo "" | wc -c', "       1\n"),
        ("echo ${UNSET:-def} ${UNSET-x} ${HOME:+set} ${#USER}", "def x set 5\n"),
        ("echo $(echo a; echo b) \"$(printf 'x\\n\\n')\"", "a b x\n"),
        ("echo `echo back`", "back\n"),
        ("false; echo $?; true && echo ok || echo no", "1\nok\n"),
        ("false && echo no || echo yes", "yes\n"),
        ("! false && echo negated", "negated\n"),
        ("echo a\\\nb", "ab\n"),
        ("echo one # comment", "one\n"),
    ],
)
async def test_quoting_and_expansion(mac: VirtualMac, command: str, expected: str) -> None:
    r = await run(mac, command)
    assert (r.status, r.out, r.err) == (0, expected, "")


async def test_sh_splits_unquoted_parameters_and_positional(mac: VirtualMac) -> None:
    r = await run(mac, 'sh -c \'x="a  b"; printf "[%s]" $x "$@" $#\' me \'p 1\' p2')
    assert r.out == "[a][b][p 1][p2][2]"


async def test_zsh_parse_error_message_and_status(mac: VirtualMac) -> None:
    r = await run(mac, "echo one |")
    assert (r.status, r.out, r.err) == (1, "", "zsh:1: parse error near `|'\n")
    r = await run(mac, 'echo "abc')
    assert (r.status, r.err) == (1, 'zsh:1: unmatched "\n')


async def test_sh_syntax_error_message(mac: VirtualMac) -> None:
    r = await run(mac, "sh -c 'echo ;; x'")
    assert r.status == 2
    assert r.err == "sh: -c: line 1: syntax error near unexpected token `;;'\n"


async def test_redirections(mac: VirtualMac) -> None:
    r = await run(mac, "echo a > /tmp/f; echo b >> /tmp/f; cat < /tmp/f; cat /nope 2>/dev/null; echo $?")
    assert r.out == "a\nb\n1\n"
    r = await run(mac, "cat /nope 2>&1 >/dev/null | tr a-z A-Z")
    assert r.out == "CAT: /NOPE: NO SUCH FILE OR DIRECTORY\n"
    r = await run(mac, "cat /nope >/dev/null 2>&1; tr a b <<< banana")
    assert (r.out, r.err) == ("bbnbnb\n", "")


async def test_redirection_permission_denied_is_the_shells(mac: VirtualMac) -> None:
    r = await run(mac, "echo x > /Library/f; echo after")
    assert r.err == "zsh:1: permission denied: /Library/f\n"
    assert r.out == "after\n"
    r = await run(mac, "sudo echo x > /Library/f")  # the redirection is still done by the user's shell
    assert r.status == 1
    assert not mac.fs.exists("/Library/f")


async def test_control_flow(mac: VirtualMac) -> None:
    r = await run(mac, "for i in a b; do if [ $i = a ]; then echo A; elif true; then echo B; fi; done")
    assert r.out == "A\nB\n"
    r = await run(mac, "n=0; while [ $n != 3 ]; do n=$(echo $n | tr 012 123); done; echo $n")
    assert r.out == "3\n"
    r = await run(mac, "(cd /tmp; exit 3); echo $? $PWD; { echo g; } > /tmp/g; cat /tmp/g")
    assert r.out == "3\ng\n" or r.out.startswith("3 ")


async def test_exit_and_set_e(mac: VirtualMac) -> None:
    r = await run(mac, "echo a; exit 4; echo b")
    assert (r.status, r.out) == (4, "a\n")
    r = await run(mac, "set -e; false || true; if false; then :; fi; false; echo no")
    assert (r.status, r.out) == (1, "")


async def test_glob_star(mac: VirtualMac) -> None:
    r = await run(mac, "touch /tmp/a1 /tmp/a2; echo /tmp/a*; echo '/tmp/a*'")
    assert r.out == "/tmp/a1 /tmp/a2\n/tmp/a*\n"
    r = await run(mac, "echo /tmp/zz*")
    assert (r.status, r.err) == (1, "zsh:1: no matches found: /tmp/zz*\n")
