"""`softwareupdate`, only as far as Rosetta 2 goes: `--install-rosetta [--agree-to-license]`.

On arm64 without --agree-to-license it asks for the licence (prompt text from kandji-inc/support#23) and,
reading EOF or anything but "A" (non-interactive SSH), fails with exit 1. With --agree-to-license it needs
root (as the 1E guide says) and prints `Install of Rosetta 2 finished successfully` (flutter/website#12178).
On Intel the option does not exist: getopt's "unrecognized option" line and the usage, exit 1 — harmless, as
the 1E guide puts it (getopt wording as softwareupdate prints it: microsoft/shell-intune-samples#50). The
exact text of the non-root refusal is our own (no public transcript found).
"""

from __future__ import annotations

from macsim.shell.proc import Proc

USAGE = """\
usage: softwareupdate <cmd> [<args> ...]

** Manage Updates:
\t-l | --list\t\tList all appropriate update labels (options:  --no-scan, --product-types)
\t-d | --download\t\tDownload Only
\t-i | --install\t\tInstall
\t\t<label> ...\tspecific updates
\t\t-a | --all\t\tAll appropriate updates
\t\t-R | --restart\t\tAutomatically restart (or shut down) if required to complete installation.
\t\t-r | --recommended\tOnly recommended updates
\t\t     --os-only\t\tOnly OS updates
\t\t     --safari-only\tOnly Safari updates
\t\t     --stdinpass\t\tPassword to authenticate as an owner. Apple Silicon only.
\t\t     --user\t\tLocal username to authenticate as an owner. Apple Silicon only.
\t--list-full-installers\t\tList the available macOS Installers
\t--fetch-full-installer\t\tInstall the latest recommended macOS Installer
\t--install-rosetta\tInstall Rosetta 2
\t--background\t\tTrigger a background scan and update operation

** Other Tools:
\t--dump-state\t\tLog the internal state of the SU daemon to /var/log/install.log
\t--evaluate-products\tEvaluate a list of product keys specified by the --products option
\t--history\t\tShow the install history.  By default, only displays updates installed by softwareupdate.

** Options:
\t--no-scan\t\tDo not scan when listing or installing updates (use available updates previously scanned)
\t--product-types <type>\tLimit a scan to a particular product type only - ignoring all user ignored updates
\t--products\t\tA comma-separated (no spaces) list of product keys to operate on.
\t--force\t\t\tForce an operation to complete.  Use with --background to trigger a background scan and \
update operation.
\t--agree-to-license\tAgree to the software license agreement without user interaction.

\t--verbose\t\tEnable verbose output
\t--help\t\t\tPrint this help
"""
LICENCE_PROMPT = (
    "I have read and agree to the terms of the software license agreement. A list of Apple SLAs may be "
    "found here: https://www.apple.com/legal/sla/\n\nType A and press return to agree: "
)


async def softwareupdate(p: Proc) -> int:
    """softwareupdate --install-rosetta [--agree-to-license]; anything else is a usage error (exit 1)."""
    args = p.argv[1:]
    arm = p.mac.spec.arch == "arm64"
    known = ("--install-rosetta", "--agree-to-license") if arm else ()
    bad = [a for a in args if a not in known]
    if bad or not args:
        for a in bad:
            p.err(
                f"softwareupdate: unrecognized option `{a}'"
                if a.startswith("--")
                else f"softwareupdate: invalid option -- {a.lstrip('-')[:1] or a}"
            )
        p.err(USAGE)
        return 1
    if "--install-rosetta" not in args:
        p.err(USAGE)
        return 1
    if "--agree-to-license" not in args:
        p.stdout.write(LICENCE_PROMPT)
        answer = await p.stdin.readline()
        if answer.strip() != b"A":
            p.out("")
            return 1
        p.out("Install of Rosetta 2 finished successfully")
        p.mac.state.rosetta = True
        p.mac.save_state()
        return 0
    if p.uid != 0:
        p.err("softwareupdate: Installing Rosetta 2 requires root privileges (run it with sudo).")
        return 1
    p.out(
        "By using the agreetolicense option, you are agreeing that you have run this tool with the license "
        "only option and have read and agreed to the terms."
    )
    p.out("If you do not agree, press CTRL-C and cancel this process immediately.")
    p.out("Install of Rosetta 2 finished successfully")
    p.mac.state.rosetta = True
    p.mac.save_state()
    return 0
