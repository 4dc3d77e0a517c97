"""BSD getopt(3) as macOS utilities use it: options end at the first operand or `--`."""

from __future__ import annotations


class UsageError(Exception):
    """A bad option. `message` is getopt's complaint (`illegal option -- x`), printed as `prog: message`
    before the tool's usage text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def getopt(args: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Parse `args` (argv without argv[0]) against a getopt spec like "fm:p". Returns (options, operands);
    each option is (letter, argument or ""). Raises UsageError with BSD getopt's wording."""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            k = spec.find(c)
            if c == ":" or k < 0:
                raise UsageError(f"illegal option -- {c}")
            if k + 1 < len(spec) and spec[k + 1] == ":":
                if j + 1 < len(a):
                    opts.append((c, a[j + 1 :]))
                elif i + 1 < len(args):
                    i += 1
                    opts.append((c, args[i]))
                else:
                    raise UsageError(f"option requires an argument -- {c}")
                break
            opts.append((c, ""))
            j += 1
        i += 1
    return opts, args[i:]
