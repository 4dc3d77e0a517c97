"""Parse the POSIX-subset shell text an SSH client sends into a small syntax tree.

Covers quoting (single, double, backslash, `$'...'`), parameter expansion (`$X`, `${X}`, `${X:-w}` and
friends, specials), command substitution (`$(...)`, backquotes), `;` `&` `&&` `||` `|` `!`, redirections
(`>` `>>` `>|` `<` `<<<` `N>&M` `N<&M`), assignments, `if`/`for`/`while`/`until`, `{ }` and `( )`.
Not covered: here-documents, `case`, functions, arithmetic, globbing beyond `*`/`?` (done by the interpreter).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

_METACHARS = " \t\n;&|()<>"
_FD_REDIR = re.compile(r"\d+(?=[<>])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_SPECIAL_PARAMS = "?$#@*!-0123456789"
RESERVED = frozenset(
    {
        "if",
        "then",
        "elif",
        "else",
        "fi",
        "for",
        "in",
        "do",
        "done",
        "while",
        "until",
        "{",
        "}",
        "!",
        "case",
        "esac",
        "function",
        "select",
        "time",
    }
)
_ANSI_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


class ParseError(Exception):
    """The text is not valid shell. `near` is the offending token (zsh names it in its message);
    `unmatched` is set instead when a quote or bracket was never closed."""

    def __init__(self, near: str, line: int, unmatched: str | None = None) -> None:
        super().__init__(f"parse error near `{near}'" if unmatched is None else f"unmatched {unmatched}")
        self.near = near
        self.line = line
        self.unmatched = unmatched


# ---- syntax tree ------------------------------------------------------------------------------------
@dataclass
class Part:
    """One piece of a word. kind: `lit` text; `param` a parameter expansion (name, optional op and word);
    `cmd` a command substitution. `quoted` pieces are neither field-split nor globbed."""

    kind: Literal["lit", "param", "cmd"]
    text: str
    quoted: bool
    op: str = ""  # for param: "", ":-", "-", ":=", "=", ":+", "+", ":?", "?", "#" (length)
    arg: Word | None = None  # the word after op
    body: Seq | None = None  # for cmd


@dataclass
class Word:
    parts: list[Part]
    raw: str  # the source text, for reserved-word checks and error messages

    def literal(self) -> str | None:
        """The word's text when it is one unquoted literal (a candidate reserved word), else None."""
        if len(self.parts) == 1 and self.parts[0].kind == "lit" and not self.parts[0].quoted:
            return self.parts[0].text
        return None


@dataclass
class Redir:
    fd: int
    op: str  # ">", ">>", ">|", "<", "<<<", ">&", "<&", "&>" (stdout and stderr)
    target: Word


@dataclass
class Assign:
    name: str
    value: Word


@dataclass
class Simple:
    assigns: list[Assign]
    words: list[Word]
    redirs: list[Redir]
    line: int


@dataclass
class If:
    branches: list[tuple[Seq, Seq]]  # (condition, body)
    orelse: Seq | None
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class For:
    var: str
    items: list[Word] | None  # None: "$@"
    body: Seq
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class While:
    cond: Seq
    body: Seq
    until: bool
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Group:
    body: Seq
    subshell: bool
    redirs: list[Redir] = field(default_factory=list)


Command = Simple | If | For | While | Group


@dataclass
class Pipeline:
    cmds: list[Command]
    negate: bool


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]  # ("&&" | "||", pipeline)
    background: bool = False


@dataclass
class Seq:
    items: list[AndOr]


# ---- tokens -----------------------------------------------------------------------------------------
@dataclass
class _Tok:
    kind: Literal["word", "op", "nl", "eof"]
    text: str
    line: int
    word: Word | None = None
    fd: int | None = None  # an IO number before a redirection operator


_OPS = ("<<<", "&&", "||", ";;", "&>", ">>", ">&", "<&", ">|", "<<", ";", "&", "|", "(", ")", "<", ">")


_REDIR_OPS = ("<", ">", ">>", ">|", "<<<", ">&", "<&", "<<", "&>")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self._peeked: _Tok | None = None
        self._last = ""

    # ---- lexing -----------------------------------------------------------------------------------
    def _skip_blanks(self) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and s.startswith("\\\n", self.i):
                self.i += 2
                self.line += 1
            elif c == "#":
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def peek(self) -> _Tok:
        if self._peeked is None:
            self._peeked = self._lex()
        return self._peeked

    def next(self) -> _Tok:
        t = self.peek()
        self._peeked = None
        if t.kind != "eof":
            self._last = t.text
        return t

    def _lex(self) -> _Tok:
        self._skip_blanks()
        s = self.s
        if self.i >= len(s):
            return _Tok("eof", "", self.line)
        c = s[self.i]
        if c == "\n":
            self.i += 1
            self.line += 1
            return _Tok("nl", "\n", self.line - 1)
        m = _FD_REDIR.match(s, self.i)  # match at i: slicing the rest off made lexing quadratic
        if m:
            self.i = m.end()
            op = self._lex_op()
            assert op is not None
            return _Tok("op", op, self.line, fd=int(m.group()))
        op = self._lex_op()
        if op is not None:
            return _Tok("op", op, self.line)
        line = self.line
        start = self.i
        word = self._word(_METACHARS)
        return _Tok("word", s[start : self.i], line, word=word)

    def _lex_op(self) -> str | None:
        for op in _OPS:
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return op
        return None

    def _word(self, stops: str) -> Word:
        """Read one word up to an unquoted character in `stops`."""
        s = self.s
        start = self.i
        parts: list[Part] = []
        lit: list[str] = []

        def flush() -> None:
            if lit:
                parts.append(Part("lit", "".join(lit), False))
                lit.clear()

        while self.i < len(s) and s[self.i] not in stops:
            c = s[self.i]
            if c == "\\":
                if self.i + 1 >= len(s):
                    lit.append("\\")
                    self.i += 1
                    continue
                nxt = s[self.i + 1]
                self.i += 2
                if nxt == "\n":
                    self.line += 1
                    continue
                flush()
                parts.append(Part("lit", nxt, True))
            elif c == "'":
                flush()
                end = s.find("'", self.i + 1)
                if end < 0:
                    raise ParseError("'", self.line, unmatched="'")
                text = s[self.i + 1 : end]
                self.line += text.count("\n")
                parts.append(Part("lit", text, True))
                self.i = end + 1
            elif c == '"':
                flush()
                parts.extend(self._dquote())
            elif c == "$" and s.startswith("$'", self.i):
                flush()
                parts.append(Part("lit", self._ansi_c(), True))
            elif c == "$" or c == "`":
                p = self._dollar(quoted=False)
                if p is None:
                    lit.append(c)
                    self.i += 1
                else:
                    flush()
                    parts.append(p)
            else:
                # a run of plain characters at once (quoted scripts are long)
                m = _plain_run(stops).match(s, self.i)
                run = m.group() if m is not None and m.end() > self.i else c
                self.line += run.count("\n")
                lit.append(run)
                self.i += len(run)
        flush()
        return Word(parts, s[start : self.i])

    def _dquote(self) -> list[Part]:
        s = self.s
        open_line = self.line
        self.i += 1
        parts: list[Part] = []
        lit: list[str] = []
        saw_any = False
        while True:
            if self.i >= len(s):
                raise ParseError('"', open_line, unmatched='"')
            c = s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\" and self.i + 1 < len(s) and s[self.i + 1] in '$`"\\\n':
                if s[self.i + 1] == "\n":
                    self.line += 1
                else:
                    lit.append(s[self.i + 1])
                self.i += 2
                continue
            if c in "$`":
                p = self._dollar(quoted=True)
                if p is not None:
                    if lit:
                        parts.append(Part("lit", "".join(lit), True))
                        lit.clear()
                    parts.append(p)
                    saw_any = True
                    continue
            if c == "\n":
                self.line += 1
            lit.append(c)
            self.i += 1
        if lit or not saw_any:
            parts.append(Part("lit", "".join(lit), True))
        return parts

    def _ansi_c(self) -> str:
        s = self.s
        self.i += 2
        out: list[str] = []
        while True:
            if self.i >= len(s):
                raise ParseError("'", self.line, unmatched="'")
            c = s[self.i]
            if c == "'":
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < len(s):
                n = s[self.i + 1]
                if n in _ANSI_ESCAPES:
                    out.append(_ANSI_ESCAPES[n])
                    self.i += 2
                    continue
                m = re.match(r"[0-7]{1,3}", s[self.i + 1 :])
                if m:
                    out.append(chr(int(m.group(), 8)))
                    self.i += 1 + m.end()
                    continue
                m = re.match(r"x([0-9A-Fa-f]{1,2})", s[self.i + 1 :])
                if m:
                    out.append(chr(int(m.group(1), 16)))
                    self.i += 1 + m.end()
                    continue
                out.append(c)
                self.i += 1
                continue
            out.append(c)
            self.i += 1

    def _dollar(self, quoted: bool) -> Part | None:
        """At `$` or a backquote: the expansion it starts, or None when the `$` is a literal."""
        s = self.s
        if s[self.i] == "`":
            end = self.i + 1
            buf: list[str] = []
            while True:
                if end >= len(s):
                    raise ParseError("`", self.line, unmatched="`")
                if s[end] == "\\" and end + 1 < len(s) and s[end + 1] in "$`\\":
                    buf.append(s[end + 1])
                    end += 2
                    continue
                if s[end] == "`":
                    break
                buf.append(s[end])
                end += 1
            body = parse("".join(buf))
            self.i = end + 1
            return Part("cmd", "", quoted, body=body)
        nxt = s[self.i + 1] if self.i + 1 < len(s) else ""
        if nxt == "(":
            if s.startswith("$((", self.i):
                raise ParseError("((", self.line)  # arithmetic is not supported
            open_line = self.line
            self.i += 2
            sub = _Parser(s)
            sub.i = self.i
            sub.line = self.line
            body = sub.seq(stop={")"})
            t = sub.next()
            if t.kind != "op" or t.text != ")":
                raise ParseError("(", open_line, unmatched="(")
            self.i = sub.i
            self.line = sub.line
            return Part("cmd", "", quoted, body=body)
        if nxt == "{":
            return self._brace_param(quoted)
        if nxt and nxt in _SPECIAL_PARAMS:
            self.i += 2
            return Part("param", nxt, quoted)
        m = _NAME.match(s, self.i + 1)
        if m:
            self.i = m.end()
            return Part("param", m.group(), quoted)
        return None

    def _brace_param(self, quoted: bool) -> Part:
        s = self.s
        open_line = self.line
        self.i += 2
        length = False
        if s.startswith("#", self.i) and self.i + 1 < len(s) and s[self.i + 1] != "}":
            length = True
            self.i += 1
        m = _NAME.match(s, self.i)
        if m:
            name = m.group()
            self.i = m.end()
        elif self.i < len(s) and s[self.i] in _SPECIAL_PARAMS:
            name = s[self.i]
            self.i += 1
        else:
            raise ParseError("${", open_line)  # zsh: "bad substitution"
        if length:
            if not s.startswith("}", self.i):
                raise ParseError("${", open_line)
            self.i += 1
            return Part("param", name, quoted, op="#")
        if s.startswith("}", self.i):
            self.i += 1
            return Part("param", name, quoted)
        m2 = re.match(r":?[-=+?]", s[self.i :])
        if not m2:
            raise ParseError("${", open_line)
        op = m2.group()
        self.i += len(op)
        arg = self._word("}")
        if not s.startswith("}", self.i):
            raise ParseError("{", open_line, unmatched="{")
        self.i += 1
        if quoted:  # inside double quotes the operand is itself double-quoted
            arg = Word([Part(p.kind, p.text, True, p.op, p.arg, p.body) for p in arg.parts], arg.raw)
        return Part("param", name, quoted, op=op, arg=arg)

    # ---- grammar ----------------------------------------------------------------------------------
    def error(self, tok: _Tok) -> ParseError:
        if tok.kind == "eof":
            return ParseError(self._last or "\\n", tok.line)
        return ParseError("\\n" if tok.kind == "nl" else tok.text, tok.line)

    def _skip_newlines(self) -> None:
        while self.peek().kind == "nl":
            self.next()

    def _is_kw(self, tok: _Tok, *words: str) -> bool:
        return tok.kind == "word" and tok.word is not None and tok.word.literal() in words

    def seq(self, stop: set[str]) -> Seq:
        """A list of and-or items up to EOF, a `)` (when in stop) or a reserved word in stop."""
        items: list[AndOr] = []
        self._skip_newlines()
        while True:
            t = self.peek()
            if t.kind == "eof":
                break
            if t.kind == "op" and t.text in stop:
                break
            if t.kind == "word" and t.word is not None and t.word.literal() in stop:
                break
            item = self.and_or()
            items.append(item)
            t = self.peek()
            if t.kind == "op" and t.text in (";", "&"):
                self.next()
                item.background = t.text == "&"
                self._skip_newlines()
            elif t.kind == "nl":
                self._skip_newlines()
            else:
                break
        return Seq(items)

    def and_or(self) -> AndOr:
        first = self.pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self.peek().kind == "op" and self.peek().text in ("&&", "||"):
            op = self.next().text
            self._skip_newlines()
            rest.append((op, self.pipeline()))
        return AndOr(first, rest)

    def pipeline(self) -> Pipeline:
        negate = False
        if self._is_kw(self.peek(), "!"):
            self.next()
            negate = True
        cmds = [self.command()]
        while self.peek().kind == "op" and self.peek().text == "|":
            self.next()
            self._skip_newlines()
            cmds.append(self.command())
        return Pipeline(cmds, negate)

    def _expect_kw(self, word: str) -> None:
        t = self.next()
        if not self._is_kw(t, word):
            raise self.error(t)

    def _body(self, stop: set[str]) -> Seq:
        body = self.seq(stop)
        if not body.items:
            raise self.error(self.peek())
        return body

    def command(self) -> Command:
        t = self.peek()
        cmd: Command
        if t.kind == "op" and t.text == "(":
            self.next()
            body = self._body({")"})
            if self.next().text != ")":
                raise self.error(t)
            cmd = Group(body, subshell=True)
        elif self._is_kw(t, "{"):
            self.next()
            body = self._body({"}"})
            self._expect_kw("}")
            cmd = Group(body, subshell=False)
        elif self._is_kw(t, "if"):
            self.next()
            branches: list[tuple[Seq, Seq]] = []
            orelse: Seq | None = None
            while True:
                cond = self._body({"then"})
                self._expect_kw("then")
                branches.append((cond, self._body({"elif", "else", "fi"})))
                k = self.next()
                if self._is_kw(k, "elif"):
                    continue
                if self._is_kw(k, "else"):
                    orelse = self._body({"fi"})
                    self._expect_kw("fi")
                elif not self._is_kw(k, "fi"):
                    raise self.error(k)
                break
            cmd = If(branches, orelse)
        elif self._is_kw(t, "for"):
            self.next()
            v = self.next()
            if v.kind != "word" or v.word is None or not _NAME.fullmatch(v.word.literal() or ""):
                raise self.error(v)
            items: list[Word] | None = None
            self._skip_newlines()
            if self._is_kw(self.peek(), "in"):
                self.next()
                items = []
                while self.peek().kind == "word":
                    w = self.next().word
                    assert w is not None
                    items.append(w)
            t2 = self.peek()
            if t2.kind == "op" and t2.text == ";":
                self.next()
            self._skip_newlines()
            self._expect_kw("do")
            body = self._body({"done"})
            self._expect_kw("done")
            cmd = For(v.text, items, body)
        elif self._is_kw(t, "while", "until"):
            self.next()
            cond = self._body({"do"})
            self._expect_kw("do")
            body = self._body({"done"})
            self._expect_kw("done")
            cmd = While(cond, body, until=t.text == "until")
        elif self._is_kw(t, "then", "elif", "else", "fi", "do", "done", "}", "case", "esac", "in"):
            raise self.error(t)
        else:
            return self.simple()
        cmd.redirs.extend(self._redirs())
        return cmd

    def _redir(self) -> Redir:
        op_tok = self.next()
        target = self.next()
        if target.kind != "word" or target.word is None:
            raise self.error(target)
        fd = op_tok.fd if op_tok.fd is not None else (0 if op_tok.text.startswith("<") else 1)
        if op_tok.text == "<<":
            raise ParseError("<<", op_tok.line)  # here-documents are not supported
        return Redir(fd, op_tok.text, target.word)

    def _redirs(self) -> list[Redir]:
        out: list[Redir] = []
        while self.peek().kind == "op" and self.peek().text in _REDIR_OPS:
            out.append(self._redir())
        return out

    def simple(self) -> Simple:
        line = self.peek().line
        assigns: list[Assign] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            t = self.peek()
            if t.kind == "op" and t.text in _REDIR_OPS:
                redirs.append(self._redir())
                continue
            if t.kind != "word" or t.word is None:
                break
            self.next()
            w = t.word
            if not words:
                a = _assignment(w)
                if a is not None:
                    assigns.append(a)
                    continue
            words.append(w)
        if not (assigns or words or redirs):
            raise self.error(self.peek())
        return Simple(assigns, words, redirs, line)


def _assignment(w: Word) -> Assign | None:
    if not w.parts or w.parts[0].kind != "lit" or w.parts[0].quoted:
        return None
    m = _ASSIGN.match(w.parts[0].text)
    if not m:
        return None
    rest = w.parts[0].text[m.end() :]
    parts = ([Part("lit", rest, False)] if rest else []) + w.parts[1:]
    return Assign(m.group(1), Word(parts, w.raw[m.end() :]))


def parse(text: str) -> Seq:
    """Parse shell text into a Seq. Raises ParseError."""
    p = _Parser(text)
    seq = p.seq(stop=set())
    t = p.peek()
    if t.kind != "eof":
        raise p.error(t)
    return seq


@functools.cache
def _plain_run(stops: str) -> re.Pattern[str]:
    """Characters `_word` takes literally one by one: neither a stop nor a quote, escape or expansion."""
    return re.compile("[^" + re.escape(stops + "\\'\"$`") + "]+")
