"""File utilities as macOS ships them (BSD): rm, mkdir, rmdir, mv, cp, chmod, ls, touch, stat, ln, mktemp,
basename, dirname, df. Every access is checked for the caller's uid; messages are BSD's
(`rm: /Library/x: Permission denied`)."""

from __future__ import annotations

import errno
import os
import posixpath
import random
import shutil
import stat as st_mod
import time
from pathlib import Path

from macsim.shell.fileaccess import strerror, usage
from macsim.shell.options import UsageError, getopt
from macsim.shell.proc import Proc, Tool
from macsim.vfs import VfsError

UMASK = 0o022


def _lreal(p: Proc, path: str) -> Path:
    """The on-disk path of `path` itself (its parent's symlinks resolved, not its own)."""
    if path == "/":
        return p.mac.fs.root
    return p.mac.fs.real(posixpath.dirname(path)) / posixpath.basename(path)


def _lexists(p: Proc, path: str) -> bool:
    try:
        r = _lreal(p, path)
    except VfsError:
        return False
    return r.exists() or r.is_symlink()


# ---- rm, rmdir ----------------------------------------------------------------------------------------
async def rm(p: Proc) -> int:
    u = "usage: rm [-f | -i] [-dIPRrvWx] file ...\n       unlink [--] file"
    try:
        opts, files = getopt(p.argv[1:], "dfiIPRrvWx")
    except UsageError as e:
        return usage(p, u, e, status=64)
    flags = {o for o, _ in opts}
    force, recursive = "f" in flags, bool(flags & {"r", "R"})
    if not files:
        return 0 if force else usage(p, u, status=64)
    status = 0
    for f in files:
        path = p.path(f)
        if posixpath.basename(f.rstrip("/")) in (".", "..") or path == "/":
            p.err('rm: "." and ".." may not be removed' if path != "/" else 'rm: "/" may not be removed')
            status = 1
            continue
        if not _lexists(p, path):
            if not force:
                try:
                    p.mac.fs.check_traverse(path, p.uid)
                    p.err(f"rm: {f}: No such file or directory")
                except VfsError as e:
                    p.err(f"rm: {f}: {strerror(e)}")
                status = 1
            continue
        real = _lreal(p, path)
        if real.is_dir() and not real.is_symlink():
            if not recursive and "d" not in flags:
                p.err(f"rm: {f}: is a directory")
                status = 1
                continue
            if not _rm_tree(p, path, f, recursive):
                status = 1
            continue
        try:
            p.mac.fs.check_remove(path, p.uid)
        except VfsError as e:
            p.err(f"rm: {f}: {strerror(e)}")
            status = 1
            continue
        real.unlink()
        p.mac.fs.forget(path)
    return status


def _rm_tree(p: Proc, path: str, shown: str, recursive: bool) -> bool:
    fs = p.mac.fs
    real = _lreal(p, path)
    ok = True
    if recursive:
        try:
            fs.check_read(path, p.uid)
            fs.check_traverse(path + "/x", p.uid)
        except VfsError as e:
            p.err(f"rm: {shown}: {strerror(e)}")
            return False
        for child in sorted(real.iterdir()):
            cpath = posixpath.join(path, child.name)
            cshown = posixpath.join(shown, child.name)
            if child.is_dir() and not child.is_symlink():
                ok = _rm_tree(p, cpath, cshown, True) and ok
                continue
            try:
                fs.check_remove(cpath, p.uid)
            except VfsError as e:
                p.err(f"rm: {cshown}: {strerror(e)}")
                ok = False
                continue
            child.unlink()
            fs.forget(cpath)
    try:
        fs.check_remove(path, p.uid)
    except VfsError as e:
        p.err(f"rm: {shown}: {strerror(e)}")
        return False
    if any(real.iterdir()):
        if ok:
            p.err(f"rm: {shown}: Directory not empty")
        return False
    real.rmdir()
    fs.forget(path)
    return ok


async def rmdir(p: Proc) -> int:
    try:
        _opts, dirs = getopt(p.argv[1:], "pv")
    except UsageError as e:
        return usage(p, "usage: rmdir [-pv] directory ...", e, status=64)
    if not dirs:
        return usage(p, "usage: rmdir [-pv] directory ...", status=64)
    status = 0
    for d in dirs:
        path = p.path(d)
        try:
            p.mac.fs.check_remove(path, p.uid)
            real = _lreal(p, path)
            if not real.exists():
                raise VfsError(errno.ENOENT, path)
            if not real.is_dir():
                raise VfsError(errno.ENOTDIR, path)
            if any(real.iterdir()):
                raise VfsError(errno.ENOTEMPTY, path)
            real.rmdir()
            p.mac.fs.forget(path)
        except VfsError as e:
            p.err(f"rmdir: {d}: {strerror(e)}")
            status = 1
    return status


# ---- mkdir --------------------------------------------------------------------------------------------
def _parse_mode(spec: str, current: int, is_dir: bool) -> int:
    """An octal mode or a symbolic one (`u+x`, `go-w`, `a=rX`, comma lists). Raises ValueError."""
    if spec and all(c in "01234567" for c in spec):
        return int(spec, 8)
    mode = current & 0o7777
    for clause in spec.split(","):
        i = 0
        who = ""
        while i < len(clause) and clause[i] in "ugoa":
            who += clause[i]
            i += 1
        if i >= len(clause):
            raise ValueError(spec)
        while i < len(clause):
            op = clause[i]
            if op not in "+-=":
                raise ValueError(spec)
            i += 1
            perms = ""
            while i < len(clause) and clause[i] in "rwxXst":
                perms += clause[i]
                i += 1
            bits = 0
            for c in perms:
                if c == "r":
                    bits |= 0o444
                elif c == "w":
                    bits |= 0o222
                elif c == "x" or (c == "X" and (is_dir or mode & 0o111)):
                    bits |= 0o111
                elif c == "s":
                    bits |= 0o6000
                elif c == "t":
                    bits |= 0o1000
            mask = 0
            for w in who or "a":
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
            if not who:
                bits &= ~UMASK if op != "-" else 0o7777
            if op == "+":
                mode |= bits & mask
            elif op == "-":
                mode &= ~(bits & mask)
            else:
                mode = (mode & ~mask) | (bits & mask)
    return mode


async def mkdir(p: Proc) -> int:
    u = "usage: mkdir [-pv] [-m mode] directory_name ..."
    try:
        opts, dirs = getopt(p.argv[1:], "pvm:")
    except UsageError as e:
        return usage(p, u, e, status=64)
    o = dict(opts)
    if not dirs:
        return usage(p, u, status=64)
    mode = 0o777 & ~UMASK
    if "m" in o:
        try:
            mode = _parse_mode(o["m"], 0o777, True)
        except ValueError:
            p.err(f"mkdir: invalid file mode: {o['m']}")
            return 1
    status = 0
    fs = p.mac.fs
    for d in dirs:
        path = p.path(d)
        targets = [path]
        if "p" in o:
            targets = []
            cur = path
            while cur != "/" and not fs.exists(cur):
                targets.insert(0, cur)
                cur = posixpath.dirname(cur)
            if not targets and not fs.real(path).is_dir():
                p.err(f"mkdir: {d}: Not a directory")
                status = 1
                continue
        for k, t in enumerate(targets):
            try:
                if _lexists(p, t):
                    raise VfsError(errno.EEXIST, t)
                fs.check_create(t, p.uid)
            except VfsError as e:
                p.err(f"mkdir: {d if t == path or e.errno != errno.EACCES else t}: {strerror(e)}")
                status = 1
                break
            real = fs.real(t)
            real.mkdir()
            last = k == len(targets) - 1
            # -p intermediates get u+wx on top of the default mode
            os.chmod(real, mode if last else (0o777 & ~UMASK) | 0o300)
            fs.set_owner(t, p.uid)
            if "v" in o:
                p.out(t)
    return status


# ---- mv, cp -------------------------------------------------------------------------------------------
async def mv(p: Proc) -> int:
    u = "usage: mv [-f | -i | -n] [-hv] source target\n       mv [-f | -i | -n] [-v] source ... directory"
    try:
        opts, args = getopt(p.argv[1:], "finhv")
    except UsageError as e:
        return usage(p, u, e, status=64)
    flags = {o for o, _ in opts}
    if len(args) < 2:
        return usage(p, u, status=64)
    fs = p.mac.fs
    *srcs, dst = args
    dpath = p.path(dst)
    into_dir = fs.exists(dpath) and fs.real(dpath).is_dir()
    if len(srcs) > 1 and not into_dir:
        p.err(f"mv: {dst} is not a directory")
        return 1
    status = 0
    for s in srcs:
        spath = p.path(s)
        target = posixpath.join(dpath, posixpath.basename(spath)) if into_dir else dpath
        shown = posixpath.join(dst, posixpath.basename(spath)) if into_dir else dst
        try:
            if not _lexists(p, spath):
                fs.check_traverse(spath, p.uid)
                raise VfsError(errno.ENOENT, spath)
            fs.check_remove(spath, p.uid)
            fs.check_create(target, p.uid)
            if _lexists(p, target):
                if "n" in flags:
                    continue
                fs.check_remove(target, p.uid)
                treal = _lreal(p, target)
                if treal.is_dir() and not _lreal(p, spath).is_dir():
                    raise VfsError(errno.EISDIR, target)
        except VfsError as e:
            p.err(f"mv: rename {s} to {shown}: {strerror(e)}")
            status = 1
            continue
        fs.forget(target)
        os.replace(_lreal(p, spath), _lreal(p, target))
        fs.moved(spath, target)
        if "v" in flags:
            p.out(f"{s} -> {shown}")
    return status


async def cp(p: Proc) -> int:
    u = (
        "usage: cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file target_file\n"
        "       cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file ... target_directory"
    )
    try:
        opts, args = getopt(p.argv[1:], "RrHLPfinaclpSsvXx")
    except UsageError as e:
        return usage(p, u, e, status=64)
    flags = {o for o, _ in opts}
    recursive = bool(flags & {"R", "r", "a"})
    preserve = bool(flags & {"p", "a"})
    if len(args) < 2:
        return usage(p, u, status=64)
    fs = p.mac.fs
    *srcs, dst = args
    dpath = p.path(dst)
    into_dir = fs.exists(dpath) and fs.real(dpath).is_dir()
    if len(srcs) > 1 and not into_dir:
        p.err(f"cp: {dst} is not a directory")
        return 1
    status = 0
    for s in srcs:
        spath = p.path(s)
        target = posixpath.join(dpath, posixpath.basename(spath.rstrip("/"))) if into_dir else dpath
        try:
            fs.check_read(spath, p.uid)
        except VfsError as e:
            p.err(f"cp: {s}: {strerror(e)}")
            status = 1
            continue
        if fs.real(spath).is_dir():
            if not recursive:
                p.err(f"cp: {s} is a directory (not copied).")
                status = 1
                continue
            if not _cp_tree(p, spath, target, preserve, flags):
                status = 1
            continue
        if not _cp_file(p, spath, target, preserve, flags, s):
            status = 1
    return status


def _cp_file(p: Proc, spath: str, target: str, preserve: bool, flags: set[str], shown: str) -> bool:
    fs = p.mac.fs
    if "n" in flags and _lexists(p, target):
        return True
    try:
        fs.check_read(spath, p.uid)
        fs.check_write(target, p.uid)
        if fs.exists(target) and fs.real(target).is_dir():
            raise VfsError(errno.EISDIR, target)
    except VfsError as e:
        p.err(f"cp: {target if e.filename == target else shown}: {strerror(e)}")
        return False
    smode = fs.real(spath).stat().st_mode & 0o7777
    new = not fs.exists(target)
    fs.write_bytes(target, fs.read_bytes(spath), uid=p.uid)
    if preserve:
        os.chmod(fs.real(target), smode if p.uid == 0 else smode & 0o1777)
        shutil.copystat(fs.real(spath), fs.real(target))
        if p.uid == 0:
            fs.set_owner(target, fs.owner(spath))
    elif new:
        os.chmod(fs.real(target), smode & ~UMASK & 0o777)
    if "v" in flags:
        p.out(f"{spath} -> {target}")
    return True


def _cp_tree(p: Proc, spath: str, target: str, preserve: bool, flags: set[str]) -> bool:
    fs = p.mac.fs
    if not fs.exists(target):
        try:
            fs.check_create(target, p.uid)
        except VfsError as e:
            p.err(f"cp: {target}: {strerror(e)}")
            return False
        fs.real(target).mkdir()
        os.chmod(fs.real(target), fs.real(spath).stat().st_mode & (0o7777 if preserve else 0o777 & ~UMASK))
        fs.set_owner(target, fs.owner(spath) if preserve and p.uid == 0 else p.uid)
    ok = True
    for child in sorted(fs.real(spath).iterdir()):
        cs, ct = posixpath.join(spath, child.name), posixpath.join(target, child.name)
        if child.is_dir():
            ok = _cp_tree(p, cs, ct, preserve, flags) and ok
        else:
            ok = _cp_file(p, cs, ct, preserve, flags, cs) and ok
    return ok


# ---- chmod --------------------------------------------------------------------------------------------
async def chmod(p: Proc) -> int:
    u = (
        "usage:\tchmod [-fhv] [-R [-H | -L | -P]] [-a | +a | =a  [i][# [ n]]] mode|entry file ...\n"
        "\tchmod [-fhv] [-R [-H | -L | -P]] [-E | -C | -N | -i | -I] file ..."
    )
    args = p.argv[1:]
    flags: set[str] = set()
    # a symbolic mode like -w looks like an option: only known flags are options
    while args and args[0].startswith("-") and len(args[0]) > 1 and args[0] != "--":
        if all(c in "fhvRHLP" for c in args[0][1:]):
            flags.update(args[0][1:])
            args = args[1:]
        elif all(c in "rwxXst" for c in args[0][1:]):
            break
        else:
            bad = next(c for c in args[0][1:] if c not in "fhvRHLP")
            return usage(p, u, UsageError(f"illegal option -- {bad}"))
    if args and args[0] == "--":
        args = args[1:]
    if len(args) < 2:
        return usage(p, u)
    spec, files = args[0], args[1:]
    fs = p.mac.fs
    status = 0
    for f in files:
        path = p.path(f)
        targets = [path]
        if "R" in flags and fs.exists(path) and fs.real(path).is_dir():
            targets += [
                posixpath.join(path, posixpath.relpath(os.path.join(d, n), fs.real(path)))
                for d, ds, fs_ in os.walk(fs.real(path))
                for n in ds + fs_
            ]
        for t in targets:
            try:
                fs.check_chmod(t, p.uid)
                real = fs.real(t)
                mode = _parse_mode(spec, real.stat().st_mode, real.is_dir())
            except ValueError:
                p.err(f"chmod: Invalid file mode: {spec}")
                return 1
            except VfsError as e:
                if e.errno == errno.EPERM:
                    p.err(f"chmod: Unable to change file mode on {f}: Operation not permitted")
                else:
                    p.err(f"chmod: {f}: {strerror(e)}")
                status = 1
                continue
            os.chmod(real, mode)
    return status


# ---- ls -----------------------------------------------------------------------------------------------
def _owner_names(p: Proc, uid: int) -> tuple[str, str]:
    if uid == 0:
        return "root", "wheel"
    if uid == p.mac.spec.uid:
        return p.mac.spec.user, "staff"
    return str(uid), "staff"


def _long_line(p: Proc, path: str, name: str) -> str:
    real = _lreal(p, path)
    s = real.lstat()
    mode = st_mod.filemode(s.st_mode)
    user, group = _owner_names(p, p.mac.fs.owner(path) if not real.is_symlink() else 0)
    when = time.strftime("%b %e %H:%M", time.localtime(s.st_mtime))
    extra = f" -> {os.readlink(real)}" if real.is_symlink() else ""
    return f"{mode}  {s.st_nlink:>2} {user:<8} {group:<8} {s.st_size:>8} {when} {name}{extra}"


async def ls(p: Proc) -> int:
    u = "usage: ls [-@ABCFGHILOPRSTUWXabcdefghiklmnopqrstuvwxy1%,] [--color=when] [-D format] [file ...]"
    try:
        opts, files = getopt(p.argv[1:], "@ABCFGHILOPRSTUWXabcdefghiklmnopqrstuvwxy1%,")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    long, show_all, dir_only = "l" in flags, bool(flags & {"a", "A"}), "d" in flags
    fs = p.mac.fs
    status = 0
    names = files or ["."]
    plain: list[str] = []
    dirs: list[str] = []
    for f in names:
        path = p.path(f)
        try:
            fs.check_traverse(path, p.uid)
            if not _lexists(p, path):
                raise VfsError(errno.ENOENT, path)
        except VfsError as e:
            p.err(f"ls: {f}: {strerror(e)}")
            status = 1
            continue
        if fs.real(path).is_dir() and not dir_only:
            dirs.append(f)
        else:
            plain.append(f)
    for f in sorted(plain):
        p.out(_long_line(p, p.path(f), f) if long else f)
    for k, d in enumerate(sorted(dirs)):
        path = p.path(d)
        if len(names) > 1:
            p.out(("\n" if plain or k else "") + f"{d}:")
        try:
            fs.check_read(path, p.uid)
        except VfsError as e:
            p.err(f"ls: {d}: {strerror(e)}")
            status = 1
            continue
        entries = sorted(x.name for x in fs.real(path).iterdir())
        if "a" in flags:
            entries = [".", "..", *entries]
        if not show_all:
            entries = [e for e in entries if not e.startswith(".")]
        if long:
            blocks = sum((fs.real(path) / e).lstat().st_blocks for e in entries if e not in (".", ".."))
            p.out(f"total {blocks}")
            for ent in entries:
                p.out(_long_line(p, fs.normalize(ent, path), ent))
        else:
            for ent in entries:
                p.out(ent)
    return status


# ---- touch, stat, ln ----------------------------------------------------------------------------------
async def touch(p: Proc) -> int:
    u = (
        "usage: touch [-A [-][[hh]mm]SS] [-achm] [-r file] [-t [[CC]YY]MMDDhhmm[.SS]]\n"
        "       [-d YYYY-MM-DDThh:mm:SS[.frac][tz]] file ..."
    )
    try:
        opts, files = getopt(p.argv[1:], "A:achmr:t:d:")
    except UsageError as e:
        return usage(p, u, e)
    if not files:
        return usage(p, u)
    no_create = any(o == "c" for o, _ in opts)
    fs = p.mac.fs
    status = 0
    for f in files:
        path = p.path(f)
        try:
            if fs.exists(path):
                fs.check_write(path, p.uid)
                os.utime(fs.real(path))
            elif not no_create:
                fs.check_create(path, p.uid)
                fs.write_bytes(path, b"", mode=0o644, uid=p.uid)
        except VfsError as e:
            p.err(f"touch: {f}: {strerror(e)}")
            status = 1
    return status


def _stat_format(p: Proc, path: str, shown: str, fmt: str) -> str:
    real = _lreal(p, path)
    s = real.lstat()
    user, group = _owner_names(p, p.mac.fs.owner(path))
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "\\" and i + 1 < len(fmt):
            out.append({"n": "\n", "t": "\t"}.get(fmt[i + 1], fmt[i + 1]))
            i += 2
            continue
        if c != "%" or i + 1 >= len(fmt):
            out.append(c)
            i += 1
            continue
        j = i + 1
        mod = ""
        while j < len(fmt) and fmt[j] in "LHMS":
            mod += fmt[j]
            j += 1
        conv = fmt[j] if j < len(fmt) else ""
        i = j + 1
        if conv == "z":
            out.append(str(s.st_size))
        elif conv == "p":
            out.append(f"{s.st_mode & 0o7777:o}" if "L" in mod else f"{s.st_mode:o}")
        elif conv == "u":
            out.append(user if "S" in mod else str(p.mac.fs.owner(path)))
        elif conv == "g":
            out.append(group if "S" in mod else ("0" if group == "wheel" else "20"))
        elif conv == "N":
            out.append(shown)
        elif conv == "m":
            out.append(str(int(s.st_mtime)))
        elif conv == "%":
            out.append("%")
        else:
            out.append("%" + mod + conv)
    return "".join(out)


async def stat(p: Proc) -> int:
    u = "usage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file|handle ...]"
    try:
        opts, files = getopt(p.argv[1:], "FLnqf:lrsxt:")
    except UsageError as e:
        return usage(p, u, e)
    o = dict(opts)
    fmt = o.get("f", '%d %i %Sp %l %Su %Sg %r %z "%Sa" "%Sm" "%Sc" "%SB" %k %b %#Xf %N')
    status = 0
    for f in files:
        path = p.path(f)
        try:
            p.mac.fs.check_traverse(path, p.uid)
            if not _lexists(p, path):
                raise VfsError(errno.ENOENT, path)
        except VfsError as e:
            if "q" not in o:
                p.err(f"stat: {f}: stat: {strerror(e)}")
            status = 1
            continue
        p.stdout.write(_stat_format(p, path, f, fmt) + ("" if "n" in o else "\n"))
    return status


async def ln(p: Proc) -> int:
    u = (
        "usage: ln [-s [-F] | -L | -P] [-f | -i] [-hnv] source_file [target_file]\n"
        "       ln [-s [-F] | -L | -P] [-f | -i] [-hnv] source_file ... target_dir\n"
        "       link source_file target_file"
    )
    try:
        opts, args = getopt(p.argv[1:], "sFLPfihnv")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    if not args or len(args) > 2:
        return usage(p, u)
    if "s" not in flags:
        p.err("ln: hard links are not supported by macsim")
        return 1
    src = args[0]
    dst = args[1] if len(args) == 2 else posixpath.basename(src)
    fs = p.mac.fs
    dpath = p.path(dst)
    if (
        fs.exists(dpath)
        and fs.real(dpath).is_dir()
        and "n" not in flags
        and not _lreal(p, dpath).is_symlink()
    ):
        dpath = posixpath.join(dpath, posixpath.basename(src))
    try:
        fs.check_create(dpath, p.uid)
        if _lexists(p, dpath):
            if "f" not in flags:
                raise VfsError(errno.EEXIST, dpath)
            fs.check_remove(dpath, p.uid)
            _lreal(p, dpath).unlink()
    except VfsError as e:
        p.err(f"ln: {dst}: {strerror(e)}")
        return 1
    os.symlink(src, _lreal(p, dpath))
    fs.set_owner(posixpath.dirname(dpath), fs.owner(posixpath.dirname(dpath)))
    return 0


# ---- mktemp -------------------------------------------------------------------------------------------
_TEMP_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


async def mktemp(p: Proc) -> int:
    u = (
        "usage: mktemp [-d] [-p tmpdir] [-q] [-t prefix] [-u] template ...\n"
        "       mktemp [-d] [-p tmpdir] [-q] [-u] -t prefix "
    )
    try:
        opts, templates = getopt(p.argv[1:], "dp:qt:u")
    except UsageError as e:
        return usage(p, u, e)
    o = dict(opts)
    make_dir, quiet = "d" in o, "q" in o
    tmpdir = o.get("p") or p.env.get("TMPDIR") or "/tmp/"
    if not tmpdir.endswith("/"):
        tmpdir += "/"
    if "t" in o:
        templates.append(f"{tmpdir}{o['t']}.XXXXXXXX")
    elif not templates:
        templates.append(f"{tmpdir}tmp.XXXXXXXX")
    elif "p" in o:
        templates = [t if t.startswith("/") else tmpdir + t for t in templates]
    fs = p.mac.fs
    status = 0
    for t in templates:
        stem = t.rstrip("X")
        n_x = len(t) - len(stem)
        rng = random.SystemRandom()
        for _ in range(100):
            name = stem + "".join(rng.choice(_TEMP_CHARS) for _ in range(n_x))
            path = p.path(name)
            if not _lexists(p, path):
                break
        else:
            name, path = t, p.path(t)
        try:
            if _lexists(p, path):
                raise VfsError(errno.EEXIST, path)
            fs.check_create(path, p.uid)
        except VfsError as e:
            if not quiet:
                p.err(f"mktemp: {'mkdtemp' if make_dir else 'mkstemp'} failed on {t}: {strerror(e)}")
            status = 1
            continue
        if "u" not in o:
            if make_dir:
                fs.real(path).mkdir()
                os.chmod(fs.real(path), 0o700)
                fs.set_owner(path, p.uid)
            else:
                fs.write_bytes(path, b"", mode=0o600, uid=p.uid)
        p.out(name)
    return status


# ---- basename, dirname --------------------------------------------------------------------------------
def _basename(s: str, suffix: str = "") -> str:
    if s == "":
        return ""
    b = s.rstrip("/")
    if not b:
        return "/"
    b = b.rsplit("/", 1)[-1]
    if suffix and b.endswith(suffix) and b != suffix:
        b = b[: -len(suffix)]
    return b


async def basename(p: Proc) -> int:
    u = "usage: basename string [suffix]\n       basename [-a] [-s suffix] string [...]"
    try:
        opts, args = getopt(p.argv[1:], "as:")
    except UsageError as e:
        return usage(p, u, e)
    o = dict(opts)
    if not args:
        return usage(p, u)
    if "a" in o or "s" in o:
        for a in args:
            p.out(_basename(a, o.get("s", "")))
        return 0
    if len(args) > 2:
        return usage(p, u)
    p.out(_basename(args[0], args[1] if len(args) == 2 else ""))
    return 0


async def dirname(p: Proc) -> int:
    args = p.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args or (args[0].startswith("-") and args[0] != "-"):
        if args:
            p.err(f"dirname: illegal option -- {args[0][1:2]}")
        return usage(p, "usage: dirname string [...]")
    for a in args:
        s = a.rstrip("/")
        if not s:
            p.out("/" if a else ".")
            continue
        d = s.rsplit("/", 1)[0] if "/" in s else "."
        p.out(d.rstrip("/") or "/")
    return 0


# ---- df -----------------------------------------------------------------------------------------------
_SYSTEM_BYTES = 12 * 1024**3  # what the sealed system volume snapshot uses


def _human(n: int) -> str:
    units = "BKMGTP"
    v = float(n)
    for unit in units:
        if v < 1024 or unit == "P":
            if unit == "B":
                return f"{int(v)}B"
            return f"{v:.1f}{unit}" if v < 10 else f"{round(v):.0f}{unit}"
        v /= 1024
    return str(n)


async def df(p: Proc) -> int:
    u = (
        "usage: df [--libxo] [-b | -g | -H | -h | -k | -m | -P] [-acIilntY] [-,] [-T type]"
        " [file | filesystem ...]"
    )
    try:
        opts, files = getopt(p.argv[1:], "bgHhkmPacIilntY,T:")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    fs = p.mac.fs
    for f in files:
        try:
            fs.check_traverse(p.path(f), p.uid)
            if not fs.exists(p.path(f)):
                raise VfsError(errno.ENOENT, f)
        except VfsError as e:
            p.err(f"df: {f}: {strerror(e)}")
            return 1
    free = p.mac.free_bytes()
    budget = p.mac.spec.free_space_mb * 1024 * 1024
    used = max(0, budget - free) + _SYSTEM_BYTES
    total = used + free
    block = 512
    last = ""
    for o, _ in opts:
        if o in "kmgbhH":
            last = o
    if last == "k":
        block = 1024
    elif last == "m":
        block = 1024**2
    elif last == "g":
        block = 1024**3
    human = last in ("h", "H") and "P" not in flags
    cap = f"{(used * 100 + total - 1) // total}%"
    dev, mnt = "/dev/disk3s1s1", "/"
    if "P" in flags:
        hdr = f"{block}-blocks" if block in (512, 1024) else f"{block // 1024}-blocks"
        p.out(f"Filesystem     {hdr:>10} {'Used':>9} {'Available':>9} Capacity  Mounted on")
        p.out(f"{dev:<14} {total // block:>10} {used // block:>9} {free // block:>9} {cap:>8}    {mnt}")
        return 0
    iused, ifree = 404_000, 4_881_000_000
    ipct = f"{(iused * 100) // (iused + ifree)}%"
    if human:
        p.out("Filesystem       Size   Used  Avail Capacity iused      ifree %iused  Mounted on")
        p.out(
            f"{dev:<14} {_human(total):>6} {_human(used):>6} {_human(free):>6} {cap:>8} "
            f"{iused:>5} {ifree:>10} {ipct:>6}   {mnt}"
        )
        return 0
    hdr = {512: "512-blocks", 1024: "1024-blocks", 1024**2: "1M-blocks", 1024**3: "1G-blocks"}[block]
    p.out(
        f"Filesystem     {hdr:>11} {'Used':>9} {'Available':>9} Capacity iused      ifree %iused  Mounted on"
    )
    p.out(
        f"{dev:<14} {total // block:>11} {used // block:>9} {free // block:>9} {cap:>8} "
        f"{iused:>5} {ifree:>10} {ipct:>6}   {mnt}"
    )
    return 0


TOOLS: dict[str, Tool] = {
    "rm": rm,
    "rmdir": rmdir,
    "mkdir": mkdir,
    "mv": mv,
    "cp": cp,
    "chmod": chmod,
    "ls": ls,
    "touch": touch,
    "stat": stat,
    "ln": ln,
    "mktemp": mktemp,
    "basename": basename,
    "dirname": dirname,
    "df": df,
}
