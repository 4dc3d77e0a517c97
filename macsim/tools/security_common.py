"""What every emulated `security` subcommand shares: getopt, error codes and their messages, keychain lookup.

Behaviour follows Apple's open source SecurityTool (apple-open-source/macos, Security/SecurityTool/macOS/):
`sec_perror` prints "security: API: message" (security.c), `cssmPerror` prints "API: message" without the
program name, a subcommand returning 2 makes security print its usage, and the process exit status is the
OSStatus truncated to 8 bits (errSecItemNotFound -25300 exits 44).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from cryptography import x509

from macsim.keychain import SYSTEM_KEYCHAIN, Keychain
from macsim.shell.proc import Proc
from macsim.vfs import VfsError

# OSStatus values and the strings SecCopyErrorMessageString gives for them.
ERR_PARAM = -50
ERR_WR_PERM = -61
ERR_NO_SUCH_KEYCHAIN = -25294
ERR_DUPLICATE_ITEM = -25299
ERR_ITEM_NOT_FOUND = -25300
ERR_INTERACTION_NOT_ALLOWED = -25308
ERR_UNKNOWN_FORMAT = -25257
ERR_NO_TRUST_SETTINGS = -25263
ERR_PKCS12_VERIFY = -25264
ERR_AUTH_INTERACTION_NOT_ALLOWED = -60007

MESSAGES: dict[int, str] = {
    ERR_PARAM: "One or more parameters passed to a function were not valid.",
    ERR_WR_PERM: "Write permissions error.",
    ERR_NO_SUCH_KEYCHAIN: "The specified keychain could not be found.",
    ERR_DUPLICATE_ITEM: "The specified item already exists in the keychain.",
    ERR_ITEM_NOT_FOUND: "The specified item could not be found in the keychain.",
    ERR_INTERACTION_NOT_ALLOWED: "User interaction is not allowed.",
    ERR_UNKNOWN_FORMAT: "Unknown format in import.",
    ERR_NO_TRUST_SETTINGS: "No Trust Settings were found.",
    ERR_PKCS12_VERIFY: "MAC verification failed during PKCS12 import (wrong password?)",
    ERR_AUTH_INTERACTION_NOT_ALLOWED: "The authorization was denied since no user interaction was possible.",
}

SHOW_USAGE = 2


def exit_status(result: int) -> int:
    """What the shell sees for a command result (main returns the int; the kernel keeps 8 bits)."""
    return result & 0xFF


class KeychainNotFound(Exception):
    """A keychain named on the command line does not exist (errSecNoSuchKeychain)."""


class UsageError(Exception):
    """getopt rejected the arguments; the caller returns SHOW_USAGE."""


class DialogWait(Exception):
    """A trust change raised SecurityAgent's confirmation dialog (`faults.trust_dialog`): over SSH nobody
    answers it, so `security` waits until it is killed (security_main turns this into that wait)."""


@dataclass
class Ctx:
    """One run of the `security` tool: its process, global flags, and `-v` echo."""

    p: Proc
    quiet: bool = False
    verbose: bool = False
    keychains: dict[str, Keychain] = field(default_factory=dict)

    def out(self, text: str) -> None:
        self.p.stdout.write(text)

    def err(self, text: str) -> None:
        self.p.stderr.write(text)

    def sec_error(self, msg: str) -> None:
        """security.c sec_error: "security: MSG"."""
        self.err(f"security: {msg}\n")

    def sec_perror(self, api: str, status: int) -> None:
        self.sec_error(f"{api}: {MESSAGES.get(status, f'OSStatus {status}')}")

    def cssm_perror(self, api: str, status: int) -> None:
        """cssmPerror: "API: message" on stderr, without the program name."""
        self.err(f"{api}: {MESSAGES.get(status, f'OSStatus {status}')}\n")

    @property
    def is_root(self) -> bool:
        return self.p.uid == 0

    # ---- files --------------------------------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        """A file's bytes, permission-checked for the caller. Raises VfsError (an OSError)."""
        full = self.p.path(path)
        self.p.mac.fs.check_read(full, self.p.uid)
        return self.p.mac.fs.read_bytes(full)

    # ---- keychains ----------------------------------------------------------------------------------
    def keychain_path(self, name: str) -> str:
        """Where SecKeychainOpen looks: a name without a slash is under ~/Library/Keychains."""
        if "/" not in name:
            home = "/private/var/root" if self.is_root else f"/Users/{self.p.user}"
            return posixpath.join(home, "Library/Keychains", name)
        return self.p.path(name)

    def open_keychain(self, name: str) -> Keychain:
        """The keychain at `name`. Only the System keychain exists on a virtual Mac (login keychains are not
        emulated). Raises KeychainNotFound."""
        try:
            canonical = self.p.mac.fs.canonical(self.keychain_path(name))
        except VfsError:
            raise KeychainNotFound(name) from None
        if canonical == SYSTEM_KEYCHAIN:
            return self.p.mac.keychain
        raise KeychainNotFound(name)

    def search_list(self, names: list[str]) -> list[Keychain]:
        """The keychains to search: those named, else the default search list (login, System). Raises
        KeychainNotFound."""
        if not names:
            return [self.p.mac.keychain]
        return [self.open_keychain(n) for n in names]

    def can_write_system_keychain(self) -> bool:
        """The System keychain file is root's, mode 0644: only root may change it."""
        return self.is_root


def getopt(ctx: Ctx, argv: list[str], spec: str, start: int = 1) -> tuple[list[tuple[str, str]], list[str]]:
    """BSD getopt(3) over argv[start:]: options until the first operand or `--`.

    Prints getopt's own diagnostics ("security: illegal option -- x", "security: option requires an
    argument -- k") and raises UsageError.
    """
    opts: list[tuple[str, str]] = []
    i = start
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            ch = arg[j]
            pos = spec.find(ch)
            if ch == ":" or pos < 0:
                ctx.err(f"security: illegal option -- {ch}\n")
                raise UsageError
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                if j + 1 < len(arg):
                    opts.append((ch, arg[j + 1 :]))
                elif i + 1 < len(argv):
                    i += 1
                    opts.append((ch, argv[i]))
                else:
                    ctx.err(f"security: option requires an argument -- {ch}\n")
                    raise UsageError
                break
            opts.append((ch, ""))
            j += 1
        i += 1
    return opts, argv[i:]


def read_cert_file(ctx: Ctx, path: str) -> x509.Certificate | None:
    """trusted_cert_utils.c readCertFile: PEM (only the FIRST block is decoded — cuPem.cpp pemDecode stops
    at the first "-----END") or DER. On failure prints what the real tool prints and returns None."""
    try:
        data = ctx.read_file(path)
    except OSError:
        ctx.out(f"***Error reading file {path}\n")
        return None
    try:
        if b"-----BEGIN " in data and b"-----END " in data:
            return x509.load_pem_x509_certificate(_first_pem_block(data))
        return x509.load_der_x509_certificate(data)
    except ValueError:
        ctx.cssm_perror("SecCertificateCreateFromData", ERR_UNKNOWN_FORMAT)
        return None


def _first_pem_block(data: bytes) -> bytes:
    start = data.index(b"-----BEGIN ")
    end_marker = data.index(b"-----END ", start)
    end = data.find(b"-----", end_marker + 9)
    return data[start : end + 5] + b"\n" if end >= 0 else data[start:]
