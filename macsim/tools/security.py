"""`/usr/bin/security`: the command table, global options, usage messages and interactive mode (`-i`).

Source: Apple's SecurityTool security.c (apple-open-source/macos, Security/SecurityTool/macOS/security.c):
- global options "hilp:qvR"; an unknown one prints getopt's complaint then the usage (stdout), status 2;
- commands match by prefix, in table order ("find-c" runs find-certificate); an unknown one prints
  `security: unknown command "X"` with status 1; a subcommand returning 2 prints
  "Usage: NAME USAGE\\n        HELP" on stderr;
- `-i` reads one command per line with a 4,096-byte buffer: at most 4,095 characters are taken, the rest of a
  longer line is read as the next command (readline.c); a last line without a newline is dropped at EOF; the
  prompt ("security> ") is printed only when stdin is a tty (never over an SSH exec without a pty); words are
  split on blanks, "..." and '...' group, backslash escapes, at most 32 words (split_line); a failing command
  prints "NAME: returned N" on stderr unless -q; the exit status is the last command's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from macsim.shell.proc import Proc, Tool
from macsim.shell.resolve import hang_forever
from macsim.tools.security_common import SHOW_USAGE, Ctx, DialogWait, UsageError, exit_status, getopt
from macsim.tools.security_find import delete_certificate, delete_identity, find_certificate, find_identity
from macsim.tools.security_import import keychain_import
from macsim.tools.security_trust import (
    add_certificates,
    trusted_cert_add,
    trusted_cert_dump,
    trusted_cert_remove,
    verify_cert,
)

MAX_LINE_LEN = 4096
MAX_ARGS = 32
PROMPT = "security> "

Command = Callable[[Ctx, list[str]], int]


@dataclass(frozen=True)
class Entry:
    name: str
    func: Command | None  # None: a real command macsim does not emulate
    usage: str
    help: str


def _help_cmd(ctx: Ctx, argv: list[str]) -> int:
    """`security help [command...]`."""
    if len(argv) > 1:
        for word in argv[1:]:
            entry = _match(word)
            if entry is None:
                ctx.sec_error(f"{argv[0]}: no such command: {word}")
                return 1
            ctx.out(f"Usage: {entry.name} {entry.usage}\n")
        return 0
    ctx.out("".join(f"    {e.name:<36} {e.help}\n" for e in COMMANDS))
    return 0


# The real table, in order (prefix matching depends on it). Usage texts of emulated commands as security.c has
# them; other commands keep their one-line help only.
COMMANDS: list[Entry] = [
    Entry("help", _help_cmd, "[command ...]", "Show all commands, or show usage for a command."),
    Entry("list-keychains", None, "", "Display or manipulate the keychain search list."),
    Entry("list-smartcards", None, "", "Display available smartcards."),
    Entry("default-keychain", None, "", "Display or set the default keychain."),
    Entry("login-keychain", None, "", "Display or set the login keychain."),
    Entry("create-keychain", None, "", "Create keychains and add them to the search list."),
    Entry("delete-keychain", None, "", "Delete keychains and remove them from the search list."),
    Entry("lock-keychain", None, "", "Lock the specified keychain."),
    Entry("unlock-keychain", None, "", "Unlock the specified keychain."),
    Entry("set-keychain-settings", None, "", "Set settings for a keychain."),
    Entry("set-keychain-password", None, "", "Set password for a keychain."),
    Entry("show-keychain-info", None, "", "Show the settings for keychain."),
    Entry("dump-keychain", None, "", "Dump the contents of one or more keychains."),
    Entry("create-keypair", None, "", "Create an asymmetric key pair."),
    Entry("add-generic-password", None, "", "Add a generic password item."),
    Entry("add-internet-password", None, "", "Add an internet password item."),
    Entry(
        "add-certificates",
        add_certificates,
        "[-k keychain] file...\n"
        "If no keychain is specified, the certificates are added to the default keychain.",
        "Add certificates to a keychain.",
    ),
    Entry("find-generic-password", None, "", "Find a generic password item."),
    Entry("delete-generic-password", None, "", "Delete a generic password item."),
    Entry(
        "set-generic-password-partition-list", None, "", "Set the partition list of a generic password item."
    ),
    Entry("find-internet-password", None, "", "Find an internet password item."),
    Entry("delete-internet-password", None, "", "Delete an internet password item."),
    Entry(
        "set-internet-password-partition-list",
        None,
        "",
        "Set the partition list of a internet password item.",
    ),
    Entry("find-key", None, "", "Find keys in the keychain"),
    Entry("set-key-partition-list", None, "", "Set the partition list of a key."),
    Entry(
        "find-certificate",
        find_certificate,
        "[-a] [-c name] [-e emailAddress] [-m] [-p] [-Z] [keychain...]\n"
        "    -a  Find all matching certificates, not just the first one\n"
        '    -c  Match on "name" when searching (optional)\n'
        '    -e  Match on "emailAddress" when searching (optional)\n'
        "    -m  Show the email addresses in the certificate\n"
        "    -p  Output certificate in pem format\n"
        "    -Z  Print SHA-256 (and SHA-1) hash of the certificate\n"
        "If no keychains are specified to search, the default search list is used.",
        "Find a certificate item.",
    ),
    Entry(
        "find-identity",
        find_identity,
        "[-p policy] [-s string] [-v] [keychain...]\n"
        "    -p  Specify policy to evaluate (multiple -p options are allowed)\n"
        "        Supported policies: basic, ssl-client, ssl-server, smime, eap,\n"
        "        ipsec, ichat, codesigning, sys-default, sys-kerberos-kdc, macappstore, appleID\n"
        "    -s  Specify optional policy-specific string (e.g. DNS hostname for SSL,\n"
        "        or RFC822 email address for S/MIME)\n"
        "    -v  Show valid identities only (default is to show all identities)\n"
        "If no keychains are specified to search, the default search list is used.",
        "Find an identity (certificate + private key).",
    ),
    Entry(
        "delete-certificate",
        delete_certificate,
        "[-c name] [-Z hash] [-t] [keychain...]\n"
        "    -c  Specify certificate to delete by its common name\n"
        "    -Z  Specify certificate to delete by its SHA-256 (or SHA-1) hash value\n"
        "    -t  Also delete user trust settings for this certificate\n"
        "The certificate to be deleted must be uniquely specified either by a\n"
        "string found in its common name, or by its SHA-256 (or SHA-1) hash.\n"
        "If no keychains are specified to search, the default search list is used.",
        "Delete a certificate from a keychain.",
    ),
    Entry(
        "delete-identity",
        delete_identity,
        "[-c name] [-Z hash] [-t] [keychain...]\n"
        "    -c  Specify certificate to delete by its common name\n"
        "    -Z  Specify certificate to delete by its SHA-256 (or SHA-1) hash value\n"
        "    -t  Also delete user trust settings for this identity certificate\n"
        "The identity to be deleted must be uniquely specified either by a\n"
        "string found in its common name, or by its SHA-256 (or SHA-1) hash.\n"
        "If no keychains are specified to search, the default search list is used.",
        "Delete an identity (certificate + private key) from a keychain.",
    ),
    Entry("set-identity-preference", None, "", "Set the preferred identity to use for a service."),
    Entry("get-identity-preference", None, "", "Get the preferred identity to use for a service."),
    Entry("create-db", None, "", "Create a db using the DL."),
    Entry("export", None, "", "Export items from a keychain."),
    Entry(
        "import",
        keychain_import,
        "inputfile [-k keychain] [-t type] [-f format] [-w] [-P passphrase] [options...]\n"
        "    -k  Target keychain to import into\n"
        "    -t  Type = pub|priv|session|cert|agg\n"
        "    -f  Format = openssl|openssh1|openssh2|bsafe|raw|pkcs7|pkcs8|pkcs12|netscape|pemseq\n"
        "    -w  Specify that private keys are wrapped and must be unwrapped on import\n"
        "    -x  Specify that private keys are non-extractable after being imported\n"
        "    -P  Specify wrapping passphrase immediately (default is secure passphrase via GUI)\n"
        "    -a  Specify name and value of extended attribute (can be used multiple times)\n"
        "    -A  Allow any application to access the imported key without warning"
        " (insecure, not recommended!)\n"
        "    -T  Specify an application which may access the imported key (multiple -T options are allowed)\n"
        "Use of the -P option is insecure\n",
        "Import items into a keychain.",
    ),
    Entry("export-smartcard", None, "", "Export items from a smartcard."),
    Entry("cms", None, "", "Encode or decode CMS messages."),
    Entry("install-mds", None, "", "Install (or re-install) the MDS database."),
    Entry(
        "add-trusted-cert",
        trusted_cert_add,
        " [<options>] [certFile]\n"
        "    -d                  Add to admin cert store; default is user\n"
        "    -r resultType       resultType = trustRoot|trustAsRoot|deny|unspecified;\n"
        "                              default is trustRoot\n"
        "    -p policy           Specify policy constraint (ssl, smime, codeSign, IPSec, iChat,\n"
        "                              basic, swUpdate, pkgSign, pkinitClient, pkinitServer, eap)\n"
        "    -a appPath          Specify application constraint\n"
        "    -s policyString     Specify policy-specific string\n"
        "    -e allowedError     Specify allowed error (certExpired, hostnameMismatch) or integer\n"
        "    -u keyUsage         Specify key usage, an integer\n"
        "    -k keychain         Specify keychain to which cert is added\n"
        "    -i settingsFileIn   Input trust settings file; default is user domain\n"
        "    -o settingsFileOut  Output trust settings file; default is user domain\n"
        "    certFile            Certificate(s)",
        "Add trusted certificate(s).",
    ),
    Entry(
        "remove-trusted-cert",
        trusted_cert_remove,
        " [-d] [-D] [certFile]\n"
        "    -d                  Remove from admin cert store (default is user)\n"
        "    -D                  Remove default setting instead of per-cert setting\n"
        "    certFile            Certificate(s)",
        "Remove trusted certificate(s).",
    ),
    Entry(
        "dump-trust-settings",
        trusted_cert_dump,
        " [-s] [-d]\n"
        "    -s                  Display trusted system certs (default is user)\n"
        "    -d                  Display trusted admin certs (default is user)\n",
        "Display contents of trust settings.",
    ),
    Entry("user-trust-settings-enable", None, "", "Display or manipulate user-level trust settings."),
    Entry("trust-settings-export", None, "", "Export trust settings."),
    Entry("trust-settings-import", None, "", "Import trust settings."),
    Entry(
        "verify-cert",
        verify_cert,
        "[<options>] [<url>]\n"
        "    -c certFile         Certificate to verify. Can be specified multiple times, leaf first.\n"
        "    -r rootCertFile     Root Certificate. Can be specified multiple times.\n"
        "    -p policy           Verify Policy (basic, ssl, smime, codeSign, IPSec, swUpdate, pkgSign,\n"
        "                        eap, appleID, macappstore, timestamping); default is basic.\n"
        "    -C                  Set client policy to true. Default is server policy. (ssl, IPSec, eap)\n"
        "    -d date             Set date and time to use when verifying certificate,\n"
        "                        provided in the form of YYYY-MM-DD-hh:mm:ss (time optional) in GMT.\n"
        "    -k keychain         Keychain. Can be specified multiple times. Default is default search list.\n"
        "    -n name             Name to be verified. (ssl, IPSec, smime)\n"
        "    -N                  No keychain search list.\n"
        "    -L                  Local certificates only (do not try to fetch missing CA certs from net).\n"
        "    -l                  Leaf cert is a CA (normally an error, unless this option is given).\n"
        "    -q                  Quiet.\n",
        "Verify certificate(s).",
    ),
    Entry("authorize", None, "", "Perform authorization operations."),
    Entry("authorizationdb", None, "", "Make changes to the authorization policy database."),
    Entry("execute-with-privileges", None, "", "Execute tool with privileges."),
    Entry("leaks", None, "", "Run /usr/bin/leaks on this process."),
    Entry("error", None, "", "Display a descriptive message for the given error code(s)."),
    Entry(
        "create-filevaultmaster-keychain", None, "", "Create a keychain containing a key pair for FileVault."
    ),
    Entry("smartcards", None, "", "Enable, disable or list disabled smartcard tokens."),
    Entry("translocate-create", None, "", "Create a translocation point for the provided path"),
    Entry("translocate-policy-check", None, "", "Check whether a path would be translocated."),
    Entry("translocate-status-check", None, "", "Check whether a path is translocated."),
    Entry("translocate-original-path", None, "", "Find the original path for a translocated path."),
    Entry("requirement-evaluate", None, "", "Evaluate a requirement against a cert chain."),
]


def _match(word: str) -> Entry | None:
    """match_command: the first command whose name starts with word."""
    return next((e for e in COMMANDS if e.name.startswith(word)), None)


def usage_text(prog: str = "security") -> str:
    """What `security` prints (stdout) for bad global options or no command."""
    head = (
        f"Usage: {prog} [-h] [-i] [-l] [-p prompt] [-q] [-v] [command] [opt ...]\n"
        "    -i    Run in interactive mode.\n"
        "    -l    Run /usr/bin/leaks -nocontext before exiting.\n"
        '    -p    Set the prompt to "prompt" (implies -i).\n'
        "    -q    Be less verbose.\n"
        "    -v    Be more verbose about what's going on.\n"
        f"{prog} commands are:\n"
    )
    return head + "".join(f"    {e.name:<36} {e.help}\n" for e in COMMANDS)


def execute_command(ctx: Ctx, argv: list[str]) -> int:
    """Run one subcommand (argv[0] may be a prefix of its name); returns the command's int result."""
    if not argv:
        return 0
    entry = _match(argv[0])
    if entry is None:
        ctx.sec_error(f'unknown command "{argv[0]}"')
        return 1
    if ctx.verbose:
        ctx.err(entry.name + "".join(f' "{_redact(argv, i)}"' for i in range(1, len(argv))) + "\n")
    if entry.func is None:
        ctx.sec_error(f"{entry.name}: not emulated by macsim")
        return 1
    try:
        result = entry.func(ctx, [entry.name, *argv[1:]])
    except UsageError:
        result = SHOW_USAGE
    if result == SHOW_USAGE:
        ctx.err(f"Usage: {entry.name} {entry.usage}\n        {entry.help}\n")
    return result


def _redact(argv: list[str], i: int) -> str:
    # The real -v echoes every argument; we never echo a passphrase (macsim's rule for secrets).
    return "********" if i > 1 and argv[i - 1] == "-P" else argv[i]


def split_line(line: str) -> list[str]:
    """security.c split_line: blanks separate words, "..." and '...' group, a backslash escapes the next
    character; at most MAX_ARGS words (the rest of the line is ignored)."""
    args: list[str] = []
    cur: list[str] = []
    state = "skip"
    quote = ""
    chars = iter(line)
    for ch in chars:
        if state == "skip":
            if ch.isspace():
                continue
            if ch in "\"'":
                quote, state, cur = ch, "quoted", []
                continue
            state, cur = "arg", []
        if state == "arg":
            if ch == "\\":
                cur.append(next(chars, ""))
            elif ch.isspace():
                args.append("".join(cur))
                state = "skip"
                if len(args) >= MAX_ARGS:
                    return args
            else:
                cur.append(ch)
        elif state == "quoted":
            if ch == "\\":
                cur.append(next(chars, ""))
            elif ch == quote:
                args.append("".join(cur))
                state = "skip"
                if len(args) >= MAX_ARGS:
                    return args
            else:
                cur.append(ch)
    if state != "skip":
        args.append("".join(cur))
    return args


async def _read_lines(p: Proc) -> list[str] | None:
    """The commands one stdin line yields under readline()'s 4,095-character limit; None at EOF."""
    raw = await p.stdin.readline()
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    has_newline = text.endswith("\n")
    if has_newline:
        text = text[:-1]
    limit = MAX_LINE_LEN - 1
    out: list[str] = []
    while len(text) >= limit:
        out.append(text[:limit])
        text = text[limit:]
    if has_newline:
        out.append(text)
    return out  # a final fragment without newline is lost at EOF, as readline() returns NULL


async def _interactive(ctx: Ctx) -> int:
    result = 0
    while True:
        lines = await _read_lines(ctx.p)
        if lines is None:
            return result
        for line in lines:
            av = split_line(line)
            result = execute_command(ctx, av)
            if result and not ctx.quiet:
                ctx.err(f"{av[0]}: returned {result}\n")


async def security_main(p: Proc) -> int:
    """The `security` tool. Returns the exit status (8 bits of the last command's result)."""
    try:
        return await _security_main(p)
    except DialogWait:
        return await hang_forever()  # the dialog is never answered: until the command is killed


async def _security_main(p: Proc) -> int:
    ctx = Ctx(p)
    argv = list(p.argv)
    interactive = do_help = False
    try:
        opts, rest = getopt(ctx, argv, "hilp:qvR")
    except UsageError:
        ctx.out(usage_text())
        return SHOW_USAGE
    for ch, _arg in opts:
        if ch == "h":
            do_help = True
        elif ch in ("i", "p"):
            interactive = True  # -p sets the prompt, which is shown only on a tty
        elif ch == "q":
            ctx.quiet = True
        elif ch == "v":
            ctx.verbose = True
    if do_help:
        return exit_status(_help_cmd(ctx, ["help", *rest]))
    if rest:
        return exit_status(execute_command(ctx, rest))
    if interactive:
        return exit_status(await _interactive(ctx))
    ctx.out(usage_text())
    return SHOW_USAGE


TOOLS: dict[str, Tool] = {"security": security_main}
