"""Text utilities as macOS ships them (BSD): echo, printf, cat, head, tail, grep, tr, wc, cut, sort, uniq,
base64, shasum. Usage texts are the macOS 14 ones."""

from __future__ import annotations

import base64 as b64
import binascii
import hashlib
import re

from macsim.shell.fileaccess import inputs, read_operand, strerror, usage, write_new_file
from macsim.shell.options import UsageError, getopt
from macsim.shell.proc import Proc, Tool
from macsim.vfs import VfsError

_ESC = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def _escapes(s: str, echo_style: bool) -> tuple[str, bool]:
    """Backslash escapes as echo -e/printf %b (`\\0NNN` octal, `\\c` stops output: second value False)
    or as a printf format (`\\NNN`)."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "c":
            return "".join(out), False
        if n in _ESC:
            out.append(_ESC[n])
            i += 2
            continue
        m = re.match(r"0[0-7]{0,3}" if echo_style else r"[0-7]{1,3}", s[i + 1 :])
        if m:
            digits = m.group()[1:] if echo_style else m.group()
            out.append(chr(int(digits or "0", 8)))
            i += 1 + m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out), True


# ---- echo ---------------------------------------------------------------------------------------------
async def echo_bsd(p: Proc) -> int:
    """/bin/echo: only a leading -n; no escapes except a trailing \\c."""
    args = p.argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline = False
        args = args[1:]
    text = " ".join(args)
    if text.endswith("\\c"):
        text, newline = text[:-2], False
    p.stdout.write(text + ("\n" if newline else ""))
    return 0


async def echo_zsh(p: Proc) -> int:
    """zsh's builtin: -n -e -E flags (any combination), escapes interpreted by default."""
    args = p.argv[1:]
    newline, esc = True, True
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for c in args[0][1:]:
            newline = newline and c != "n"
            esc = {"e": True, "E": False}.get(c, esc)
        args = args[1:]
    if args and args[0] == "-":
        args = args[1:]
    text = " ".join(args)
    if esc:
        text, more = _escapes(text, echo_style=True)
        newline = newline and more
    p.stdout.write(text + ("\n" if newline else ""))
    return 0


async def echo_sh(p: Proc) -> int:
    """macOS /bin/sh is bash built for strict POSIX with xpg_echo on: its echo takes no options at all
    (so `echo -n x` prints `-n x`) and interprets backslash escapes (bash manual, `echo` builtin)."""
    text, more = _escapes(" ".join(p.argv[1:]), echo_style=True)
    p.stdout.write(text + ("\n" if more else ""))
    return 0


# ---- printf -------------------------------------------------------------------------------------------
_CONV = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?([diouxXcsbeEfgG%])")


def _num(p: Proc, arg: str, integer: bool) -> tuple[float | int, bool]:
    s = arg.strip()
    if s[:1] in ("'", '"') and len(s) > 1:
        return ord(s[1]), True
    try:
        return (int(s, 0) if integer else float(s)), True
    except ValueError:
        try:
            return (int(float(s)) if integer else float(s)), True
        except ValueError:
            p.err(f"printf: {arg}: invalid number" if s else "printf: : invalid number")
            return 0, False


async def printf(p: Proc) -> int:
    """printf FORMAT [ARG...]: the format is reused while arguments remain."""
    args = p.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        p.err("usage: printf format [arguments ...]")
        return 1
    fmt, rest = args[0], args[1:]
    status = 0
    out: list[str] = []
    while True:
        used = 0
        pos = 0
        for m in _CONV.finditer(fmt):
            lit, more = _escapes(fmt[pos : m.start()], echo_style=False)
            out.append(lit)
            if not more:
                p.stdout.write("".join(out))
                return status
            pos = m.end()
            flags, width, prec, conv = m.groups()
            if conv == "%":
                out.append("%")
                continue
            if width == "*":
                width = rest[used] if used < len(rest) else "0"
                used += 1
            if prec == "*":
                prec = rest[used] if used < len(rest) else "0"
                used += 1
            arg = rest[used] if used < len(rest) else None
            used += 1
            spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "")
            if conv in "sb":
                text = arg or ""
                if conv == "b":
                    text, more = _escapes(text, echo_style=True)
                    if not more:
                        out.append(text)
                        p.stdout.write("".join(out))
                        return status
                out.append((spec + "s") % text)
            elif conv == "c":
                out.append((spec + "s") % (arg or "")[:1])
            else:
                integer = conv in "diouxX"
                val, ok = _num(p, arg, integer) if arg is not None else (0, True)
                status = status if ok else 1
                c = "d" if conv in "iu" else conv
                out.append((spec + c) % (int(val) if integer else float(val)))
        tail, more = _escapes(fmt[pos:], echo_style=False)
        out.append(tail)
        if not more or used == 0 or used >= len(rest):
            break
        rest = rest[used:]
    p.stdout.write("".join(out))
    return status


# ---- cat, head, tail ----------------------------------------------------------------------------------
async def cat(p: Proc) -> int:
    try:
        opts, files = getopt(p.argv[1:], "belnstuv")
    except UsageError as e:
        return usage(p, "usage: cat [-belnstuv] [file ...]", e)
    number = any(o == "n" for o, _ in opts)
    status = 0
    n = 0
    for _name, data in await inputs(p, files):
        if data is None:
            status = 1
            continue
        if number:
            lines = data.split(b"\n")
            for k, line in enumerate(lines):
                if k == len(lines) - 1 and not line:
                    break
                n += 1
                p.stdout.write(f"{n:6d}\t".encode() + line + (b"\n" if k < len(lines) - 1 else b""))
        else:
            p.stdout.write(data)
    return status


def _legacy_count(args: list[str]) -> list[str]:
    """`head -5` / `tail -5` / `tail +5`: the obsolete count forms both still accept."""
    if args and re.fullmatch(r"-\d+", args[0]):
        return ["-n", args[0][1:], *args[1:]]
    if args and re.fullmatch(r"\+\d+", args[0]):
        return ["-n", args[0], *args[1:]]
    return args


async def head(p: Proc) -> int:
    u = "usage: head [-n lines | -c bytes] [file ...]"
    try:
        opts, files = getopt(_legacy_count(p.argv[1:]), "n:c:")
    except UsageError as e:
        return usage(p, u, e)
    lines, count = 10, None
    for o, a in opts:
        if not a.isdigit() or int(a) == 0:
            p.err(f"head: illegal {'line' if o == 'n' else 'byte'} count -- {a}")
            return 1
        if o == "n":
            lines = int(a)
        else:
            count = int(a)
    status = 0
    many = len(files) > 1
    for k, (name, data) in enumerate(await inputs(p, files)):
        if data is None:
            status = 1
            continue
        if many:
            p.stdout.write(f"{'' if k == 0 else chr(10)}==> {name} <==\n")
        if count is not None:
            p.stdout.write(data[:count])
        else:
            p.stdout.write(b"".join(data.splitlines(keepends=True)[:lines]))
    return status


async def tail(p: Proc) -> int:
    u = "usage: tail [-F | -f | -r] [-q] [-b # | -c # | -n #] [file ...]"
    try:
        opts, files = getopt(_legacy_count(p.argv[1:]), "n:c:b:fFrq")
    except UsageError as e:
        return usage(p, u, e)
    mode, spec = "n", "10"
    for o, a in opts:
        if o in "ncb":
            mode, spec = o, a
        elif o in "fF":
            p.err("tail: following files is not supported by macsim")
            return 1
    m = re.fullmatch(r"([+-]?)(\d+)", spec)
    if not m:
        p.err(f"tail: illegal offset -- {spec}")
        return 1
    from_start, n = m.group(1) == "+", int(m.group(2))
    status = 0
    for _name, data in await inputs(p, files[-1:] if files else []):
        if data is None:
            status = 1
            continue
        if mode == "c" or mode == "b":
            size = n * (512 if mode == "b" else 1)
            out = data[max(0, size - 1) :] if from_start else (data[-size:] if size else b"")
        else:
            lines = data.splitlines(keepends=True)
            out = b"".join(lines[max(0, n - 1) :] if from_start else (lines[-n:] if n else []))
        p.stdout.write(out)
    return status


# ---- grep ---------------------------------------------------------------------------------------------
_GREP_USAGE = (
    "usage: grep [-abcdDEFGHhIiJLlMmnOopqRSsUVvwXxZz] [-A num] [-B num] [-C[num]]\n"
    "\t[-e pattern] [-f file] [--binary-files=value] [--color=when]\n"
    "\t[--context[=num]] [--directories=action] [--label] [--line-buffered]\n"
    "\t[--null] [pattern] [file ...]"
)


def _bre_to_py(pat: str) -> str:
    """A POSIX basic regular expression as a Python one: `\\(`, `\\{`, `\\|`, `\\+`, `\\?` are the
    operators and the bare characters are literals."""
    out: list[str] = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            n = pat[i + 1]
            out.append(n if n in "(){}|+?" else "\\" + n)
            i += 2
            continue
        if c in "(){}|+?":
            out.append("\\" + c)
        elif c == "*" and (not out or out[-1] in ("(", "^")):
            out.append("\\*")
        else:
            out.append(c)
        i += 1
    return "".join(out)


async def grep(p: Proc) -> int:
    args = [a for a in p.argv[1:]]
    # grep permutes its arguments (GNU-style getopt_long): options may follow the pattern and files
    spec = "abcdDEFGHhIiJLlMmnOopqRSsUVvwXxZze:f:A:B:C:"
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            operands.extend(args[i + 1 :])
            break
        if a.startswith("--"):
            p.err(f"grep: unrecognized option `{a}'")
            p.err(_GREP_USAGE)
            return 2
        if a.startswith("-") and a != "-":
            try:
                found, rest = getopt(args[i:], spec)
            except UsageError as e:
                msg = e.message.replace("illegal option", "invalid option")
                return usage(p, _GREP_USAGE, UsageError(msg), status=2)
            consumed = len(args[i:]) - len(rest)
            opts.extend(found)
            i += consumed
            continue
        operands.append(a)
        i += 1
    flags = {o for o, _ in opts}
    patterns = [a for o, a in opts if o == "e"]
    for o, a in opts:
        if o == "f":
            data = read_operand(p, a)
            if data is None:
                return 2
            patterns.extend(data.decode("utf-8", "replace").splitlines())
    if not patterns:
        if not operands:
            p.err(_GREP_USAGE)
            return 2
        patterns = [operands.pop(0)]
    pats: list[str] = []
    for pat in patterns:
        for piece in pat.split("\n"):
            if "F" in flags:
                pats.append(re.escape(piece))
            elif "E" in flags:
                pats.append(piece)
            else:
                pats.append(_bre_to_py(piece))
    if "x" in flags:
        pats = [f"(?:{x})\\Z" for x in pats]
    if "w" in flags:
        pats = [f"(?<!\\w)(?:{x})(?!\\w)" for x in pats]
    try:
        rx = re.compile("|".join(f"(?:{x})" for x in pats), re.IGNORECASE if "i" in flags else 0)
    except re.error:
        p.err("grep: invalid regular expression")
        return 2
    invert, quiet, count = "v" in flags, "q" in flags, "c" in flags
    list_files, numbers = "l" in flags, "n" in flags
    show_name = ("H" in flags or len(operands) > 1) and "h" not in flags
    matched_any, error = False, False
    for name, data in await inputs(p, operands):
        if data is None:
            error = True
            continue
        label = "(standard input)" if name == "-" else name
        n_match = 0
        text = data.decode("utf-8", "replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for ln, line in enumerate(lines, 1):
            hit = (rx.match(line) if "x" in flags else rx.search(line)) is not None
            if hit == invert:
                continue
            n_match += 1
            matched_any = True
            if quiet:
                return 0
            if count or list_files:
                continue
            prefix = (f"{label}:" if show_name else "") + (f"{ln}:" if numbers else "")
            p.stdout.write(f"{prefix}{line}\n")
        if count:
            p.stdout.write(f"{label}:{n_match}\n" if show_name else f"{n_match}\n")
        if list_files and n_match:
            p.stdout.write(f"{label}\n")
    if error and not (quiet and matched_any):
        return 2
    return 0 if matched_any else 1


# ---- tr -----------------------------------------------------------------------------------------------
_CLASSES = {
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "digit": "0123456789",
    "space": " \t\n\r\f\v",
    "blank": " \t",
    "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
}
_CLASSES["alpha"] = _CLASSES["upper"] + _CLASSES["lower"]
_CLASSES["alnum"] = _CLASSES["alpha"] + _CLASSES["digit"]
_CLASSES["xdigit"] = _CLASSES["digit"] + "ABCDEFabcdef"


def _tr_set(s: str) -> list[str]:
    chars: list[str] = []
    i = 0
    while i < len(s):
        m = re.match(r"\[:([a-z]+):\]", s[i:])
        if m and m.group(1) in _CLASSES:
            chars.extend(_CLASSES[m.group(1)])
            i += m.end()
            continue
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            m2 = re.match(r"[0-7]{1,3}", s[i + 1 :])
            if m2:
                c = chr(int(m2.group(), 8))
                i += 1 + m2.end()
            else:
                c = _ESC.get(s[i + 1], s[i + 1])
                i += 2
        else:
            i += 1
        if i + 1 < len(s) and s[i] == "-":
            end = s[i + 1]
            step = 2
            if end == "\\" and i + 2 < len(s):
                end = _ESC.get(s[i + 2], s[i + 2])
                step = 3
            if ord(end) < ord(c):
                raise ValueError(f"{c}-{end}")
            chars.extend(chr(x) for x in range(ord(c), ord(end) + 1))
            i += step
            continue
        chars.append(c)
    return chars


async def tr(p: Proc) -> int:
    u = (
        "usage: tr [-Ccsu] string1 string2\n       tr [-Ccu] -d string1\n       tr [-Ccu] -s string1\n"
        "       tr [-Ccu] -ds string1 string2"
    )
    try:
        opts, sets = getopt(p.argv[1:], "Ccdsu")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    delete, squeeze, comp = "d" in flags, "s" in flags, bool(flags & {"c", "C"})
    need = 2 if (not delete and not squeeze) or (delete and squeeze) else 1
    if len(sets) != need and not (squeeze and not delete and len(sets) == 2):
        return usage(p, u)
    try:
        s1 = _tr_set(sets[0])
        s2 = _tr_set(sets[1]) if len(sets) > 1 else []
    except ValueError as e:
        p.err(f"tr: Range out of order: {e}" if "-" in str(e) else f"tr: {e}")
        return 1
    text = (await p.stdin.read(-1)).decode("latin-1")
    set1 = set(s1)

    def in1(ch: str) -> bool:
        return (ch not in set1) if comp else (ch in set1)

    out: list[str] = []
    if delete:
        text = "".join(ch for ch in text if not in1(ch))
        sq = set(s2) if squeeze else set()
    elif squeeze and not s2:
        sq = {ch for ch in map(chr, range(256)) if in1(ch)}
    else:
        if not s2:
            p.err("tr: empty string2")
            return 1
        if comp:
            table = {ch: s2[-1] for ch in map(chr, range(256)) if in1(ch)}
        else:
            table = {ch: (s2[k] if k < len(s2) else s2[-1]) for k, ch in enumerate(s1)}
        text = "".join(table.get(ch, ch) for ch in text)
        sq = set(s2) if squeeze else set()
    for ch in text:
        if sq and out and out[-1] == ch and ch in sq:
            continue
        out.append(ch)
    p.stdout.write("".join(out).encode("latin-1"))
    return 0


# ---- wc, cut, sort, uniq ------------------------------------------------------------------------------
async def wc(p: Proc) -> int:
    try:
        opts, files = getopt(p.argv[1:], "clmwL")
    except UsageError as e:
        return usage(p, "usage: wc [-Lclmw] [file ...]", e)
    flags = {o for o, _ in opts} or {"l", "w", "c"}
    status = 0
    totals = [0, 0, 0]
    results = await inputs(p, files)
    for name, data in results:
        if data is None:
            status = 1
            continue
        counts = [data.count(b"\n"), len(data.split()), len(data)]
        if "m" in flags:
            counts[2] = len(data.decode("utf-8", "replace"))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        _wc_line(p, counts, flags, "" if name == "-" else name)
    if len(files) > 1:
        _wc_line(p, totals, flags, "total")
    return status


def _wc_line(p: Proc, counts: list[int], flags: set[str], name: str) -> None:
    cols = [
        c for c, f in zip(counts, ("l", "w", "c"), strict=True) if f in flags or (f == "c" and "m" in flags)
    ]
    p.stdout.write("".join(f" {c:7d}" for c in cols) + (f" {name}" if name else "") + "\n")


def _ranges(spec: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for item in spec.split(","):
        m = re.fullmatch(r"(\d*)-(\d*)|(\d+)", item)
        if not m or item in ("", "-"):
            raise ValueError(spec)
        if m.group(3):
            n = int(m.group(3))
            if n == 0:
                raise ValueError(spec)
            out.append((n, n))
        else:
            lo = int(m.group(1) or 1)
            hi = int(m.group(2)) if m.group(2) else 1 << 30
            out.append((lo, hi))
    return out


async def cut(p: Proc) -> int:
    u = (
        "usage: cut -b list [-n] [file ...]\n       cut -c list [file ...]\n"
        "       cut -f list [-s] [-w | -d delim] [file ...]"
    )
    try:
        opts, files = getopt(p.argv[1:], "b:c:d:f:nsw")
    except UsageError as e:
        return usage(p, u, e)
    o = dict(opts)
    modes = [m for m in "bcf" if m in o]
    if len(modes) != 1:
        return usage(p, u)
    mode = modes[0]
    try:
        ranges = _ranges(o[mode])
    except ValueError:
        p.err(
            "cut: [-bcf] list: illegal list value"
            if o[mode]
            else "cut: [-bcf] list: values may not include zero"
        )
        return 1
    delim = o.get("d", "\t")
    if len(delim) != 1:
        p.err("cut: bad delimiter")
        return 1
    status = 0

    def pick(n: int) -> bool:
        return any(lo <= n <= hi for lo, hi in ranges)

    for _name, data in await inputs(p, files):
        if data is None:
            status = 1
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            if mode == "f":
                if delim not in line:
                    if "s" not in o:
                        p.stdout.write(line + "\n")
                    continue
                fields = line.split(delim)
                p.stdout.write(delim.join(f for k, f in enumerate(fields, 1) if pick(k)) + "\n")
            else:
                p.stdout.write("".join(c for k, c in enumerate(line, 1) if pick(k)) + "\n")
    return status


async def sort(p: Proc) -> int:
    try:
        opts, files = getopt(p.argv[1:], "rnufbt:k:")
    except UsageError as e:
        msg = e.message.replace("illegal option", "invalid option")
        return usage(
            p,
            "Usage: sort [-bcCdfghiRMmnrsuVz] [-k field1[,field2]] [-S memsize] [-T dir] "
            "[-t separator] [-o output] [file ...]",
            UsageError(msg),
            status=2,
        )
    flags = {o for o, _ in opts}
    lines: list[str] = []
    status = 0
    for _name, data in await inputs(p, files):
        if data is None:
            return 2
        lines.extend(data.decode("utf-8", "replace").splitlines())

    def key(line: str) -> tuple[float, str]:
        s = line.lstrip() if "b" in flags else line
        if "n" in flags:
            m = re.match(r"\s*(-?\d+(?:\.\d*)?)", s)
            return (float(m.group(1)) if m else 0.0, s)
        return (0.0, s.lower() if "f" in flags else s)

    lines.sort(key=key, reverse="r" in flags)
    if "u" in flags:
        seen: set[tuple[float, str]] = set()
        uniq_lines = []
        for line in lines:
            k = key(line)
            if k not in seen:
                seen.add(k)
                uniq_lines.append(line)
        lines = uniq_lines
    p.stdout.write("".join(x + "\n" for x in lines))
    return status


async def uniq(p: Proc) -> int:
    u = "usage: uniq [-c | -d | -D | -u] [-i] [-f fields] [-s chars] [input [output]]"
    try:
        opts, files = getopt(p.argv[1:], "cdDuif:s:")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    if len(files) > 1:
        return usage(p, u)
    res = await inputs(p, files)
    data = res[0][1]
    if data is None:
        return 1
    groups: list[tuple[str, int]] = []
    for line in data.decode("utf-8", "replace").splitlines():
        k = line.lower() if "i" in flags else line
        if groups and (groups[-1][0].lower() if "i" in flags else groups[-1][0]) == k:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((line, 1))
    for line, n in groups:
        if ("d" in flags and n < 2) or ("u" in flags and n > 1):
            continue
        p.stdout.write((f"{n:4d} " if "c" in flags else "") + line + "\n")
    return 0


# ---- base64, shasum -----------------------------------------------------------------------------------
_B64_USAGE = (
    "Usage:\tbase64 [-Ddh] [-b num] [-i in_file] [-o out_file]\n"
    "  -b, --break       break encoded output up into lines of length num\n"
    "  -D, -d, --decode  decode input\n"
    "  -h, --help        display this message\n"
    '  -i, --input       input file (default: "-" for stdin)\n'
    '  -o, --output      output file (default: "-" for stdout)'
)


async def base64(p: Proc) -> int:
    args = [
        {"--decode": "-d", "--input": "-i", "--output": "-o", "--break": "-b", "--help": "-h"}.get(a, a)
        for a in p.argv[1:]
    ]
    try:
        opts, rest = getopt(args, "Ddhb:i:o:")
    except UsageError as e:
        msg = e.message.replace("illegal option", "invalid option")
        return usage(p, _B64_USAGE, UsageError(msg), status=64)
    o = dict(opts)
    if "h" in o or len(rest) > 1:
        return usage(p, _B64_USAGE, status=0 if "h" in o else 64)
    src = o.get("i", rest[0] if rest else "-")
    if src == "-":
        data: bytes | None = await p.stdin.read(-1)
    else:
        data = read_operand(p, src)
    if data is None:
        return 1
    if "d" in o or "D" in o:
        try:
            out = b64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            p.err(
                "base64: stdin: (null): error decoding base64 input stream"
                if src == "-"
                else f"base64: {src}: (null): error decoding base64 input stream"
            )
            return 1
    else:
        enc = b64.b64encode(data)
        width = int(o.get("b", "0") or 0)
        if width > 0:
            enc = b"\n".join(enc[k : k + width] for k in range(0, len(enc), width))
        out = enc + b"\n"
    dst = o.get("o", "-")
    if dst == "-":
        p.stdout.write(out)
        return 0
    path = p.path(dst)
    try:
        p.mac.fs.check_write(path, p.uid)
    except VfsError as e:
        p.err(f"base64: {dst}: {strerror(e)}")
        return 1
    write_new_file(p, path, out)
    return 0


_ALGOS = {
    "1": "sha1",
    "224": "sha224",
    "256": "sha256",
    "384": "sha384",
    "512": "sha512",
    "512224": "sha512_224",
    "512256": "sha512_256",
}


async def shasum(p: Proc) -> int:
    """shasum (a Perl script on macOS): `HASH  FILE` lines; -c checks them."""
    try:
        opts, files = getopt(p.argv[1:], "a:bctpsU0w")
    except UsageError as e:
        letter = e.message.rsplit(" ", 1)[-1]
        p.err(f"Unknown option: {letter}")
        p.err("Type shasum -h for help")
        return 1
    o = dict(opts)
    algo = _ALGOS.get(o.get("a", "1"))
    if algo is None:
        p.err("shasum: Unrecognized algorithm")
        p.err("Type shasum -h for help")
        return 1
    mark = "*" if "b" in o else " "
    if "c" in o:
        return await _shasum_check(p, algo, files)
    status = 0
    for name, data in await inputs(p, files):
        if data is None:
            status = 1
            continue
        p.stdout.write(f"{hashlib.new(algo, data).hexdigest()} {mark}{name}\n")
    return status


async def _shasum_check(p: Proc, algo: str, files: list[str]) -> int:
    bad = 0
    missing = 0
    for _name, data in await inputs(p, files):
        if data is None:
            return 1
        for line in data.decode("utf-8", "replace").splitlines():
            m = re.fullmatch(r"([0-9a-fA-F]+) [ *](.+)", line)
            if not m:
                continue
            target = m.group(2)
            content = read_operand(p, target)
            if content is None:
                p.stdout.write(f"{target}: FAILED open or read\n")
                missing += 1
                continue
            ok = hashlib.new(algo, content).hexdigest() == m.group(1).lower()
            p.stdout.write(f"{target}: {'OK' if ok else 'FAILED'}\n")
            bad += 0 if ok else 1
    if missing:
        p.err(f"shasum: WARNING: {missing} listed file{'s' if missing > 1 else ''} could not be read")
    if bad:
        p.err(f"shasum: WARNING: {bad} computed checksum{'s' if bad > 1 else ''} did NOT match")
    return 1 if bad or missing else 0


TOOLS: dict[str, Tool] = {
    "echo": echo_bsd,
    "printf": printf,
    "cat": cat,
    "head": head,
    "tail": tail,
    "grep": grep,
    "tr": tr,
    "wc": wc,
    "cut": cut,
    "sort": sort,
    "uniq": uniq,
    "base64": base64,
    "shasum": shasum,
}
