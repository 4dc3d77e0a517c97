"""CA trust on macOS 11+: the commands (bounded, never waiting on a dialog) and what a refusal means.

Since Big Sur a trust-settings change in the admin domain needs an administrator's confirmation even for root
(Apple, macOS Big Sur 11.0.1 release notes, Security: "Running as the root user alone is no longer sufficient
to modify certificate trust"; quoted in cloudflare/cloudflare-docs#18933, mkcert#322). Over SSH nobody can
confirm: `add-trusted-cert` fails, or, with a console user logged in, raises a dialog and waits
(mkcert#305: "two of these dialogs", munki#1003: "Munki will not run before the password has been entered
or aborted"). So:
- a root is trusted by `add-trusted-cert` under a watchdog: stdin closed, killed after TRUST_TIMEOUT s. macOS
  has no `timeout` binary, and the transport's own timeout is no bound on the Mac: sshd refuses signal
  requests in a root login's session (privsep; tests/workers/test_transport_exec.py) and closing the channel
  does not signal a command run without a pty, so a `security` waiting on a dialog would outlive the run
  (macsim cancels it, which is kinder than sshd). The bound lives on the Mac: a constant POSIX sh script,
  the command as positional parameters, inside the step's exec (no extra round trip);
- an intermediate gets no trust setting at all: `add-certificates` only puts it in the keychain;
- in profile mode nothing is changed: `verify-cert` tells whether the MDM profile's trust has arrived.
A refusal is not a failure of the device: the install goes on and the device awaits its trust (the profile
from `orchestrate certs profile`, delivered by MDM), which `converge` then sees.
"""

from __future__ import annotations

from tasks.facts import SYSTEM_KEYCHAIN
from tasks.install.params import CaRef, InstallParams
from tasks.model import Command, FailureReason

TRUST_TIMEOUT = 10  # seconds: a refusal comes back at once; only a dialog waits
TIMEOUT_STATUS = 137  # 128 + SIGKILL: what `wait` reports for the killed command in sh, bash and zsh
TIMEOUT_NOTE = "macfleet-watchdog: no answer within"  # our own wording, printed by the script below
# "$1": seconds, "$2"...: the command. The watchdog's descriptors go to /dev/null so a sleep left behind
# holds no pipe of the SSH session open; `wait` gives the command's status (137 when the watchdog killed it).
WATCHDOG_SCRIPT = (
    't=$1; shift; "$@" </dev/null & pid=$!; '
    '( sleep "$t"; kill -9 "$pid" ) </dev/null >/dev/null 2>&1 & dog=$!; '
    'wait "$pid"; rc=$?; kill "$dog" 2>/dev/null; '
    f'if [ "$rc" -eq {TIMEOUT_STATUS} ]; then echo "{TIMEOUT_NOTE} $t s: killed" >&2; fi; exit "$rc"'
)
# security(1) exits 1 when a Security call fails (trusted_cert_add.c, verify_cert.c): such a status lets the
# exec go on to the next steps; the explainer below then says what it meant (usage errors, 2, stop it).
TRUST_OK_CODES = (0, 1, TIMEOUT_STATUS)

PROFILE_HINT = (
    "deliver the CA trust by MDM (the profile from `orchestrate certs profile --out FILE`), then "
    "`orchestrate converge` finishes the device"
)

# Error types that leave the device installed and awaiting trust instead of failed.
AWAITING_TRUST_TYPES = frozenset(
    {
        "TrustInteractionNotAllowed",
        "TrustAuthorizationDenied",
        "TrustCanceled",
        "TrustTimeout",
        "TrustRefused",
        "TrustNotDelivered",
    }
)


def bounded(argv: tuple[str, ...], timeout: int = TRUST_TIMEOUT) -> tuple[str, ...]:
    """argv run under the watchdog: stdin closed, killed after `timeout` seconds."""
    return ("/bin/sh", "-c", WATCHDOG_SCRIPT, "trust-watchdog", str(timeout), *argv)


def trust_command(params: InstallParams, ca: CaRef) -> Command:
    pem = params.ca_path(ca)
    if not ca.self_signed:
        return Command(("security", "add-certificates", "-k", SYSTEM_KEYCHAIN, pem))
    probe = ("security", "verify-cert", "-c", pem, "-l", "-L", "-q")
    if params.trust_mode == "profile":
        return Command(probe, mutating=False, ok_codes=(0, 1))
    add = ("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", SYSTEM_KEYCHAIN, pem)
    return Command(bounded(add), unless=probe, ok_codes=TRUST_OK_CODES)


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "no output"


def classify_refusal(
    api: str, status: int | None, stdout: str, stderr: str, hint: str
) -> FailureReason | None:
    """A trust change macOS refused or did not answer, typed; None when the output shows none of these.

    Messages as cssmPerror prints the Authorization errors of Security's SecBase.h / Authorization.h:
    errAuthorizationDenied -60005 "The authorization was denied." (also `NO (-60005)` from `security
    authorizationdb write` on macOS 15: actions/runner-images#11893, #12438); errAuthorizationCanceled -60006
    "The authorization was canceled by the user." (munki#1003, quoting SecTrustSettingsSetTrustSettings);
    errAuthorizationInteractionNotAllowed -60007 "The authorization was denied since no user interaction was
    possible." (public code quoting SecTrustSettingsSetTrustSettings over SSH); errSecInternalComponent from
    SecTrustSettingsSetTrustSettings on macOS 11 runners without a GUI session (actions/runner-images#4734).
    Not errSecAuthFailed (-25293, a wrong keychain password)."""
    text = f"{stdout}\n{stderr}"
    last = _last_line(stderr or stdout)
    if status == TIMEOUT_STATUS or TIMEOUT_NOTE in text:
        return FailureReason(
            "TrustTimeout",
            f"{api} gave no answer within {TRUST_TIMEOUT} s (a confirmation dialog on the Mac's screen, "
            "most likely) and was stopped",
            hint,
        )
    if "no user interaction was possible" in text or "-60007" in text:
        return FailureReason(
            "TrustInteractionNotAllowed",
            f"macOS refused to change certificate trust without a user's confirmation: {last}",
            hint,
        )
    if "canceled by the user" in text or "-60006" in text:
        return FailureReason("TrustCanceled", f"someone at the Mac declined the trust change: {last}", hint)
    if "The authorization was denied" in text or "-60005" in text:
        return FailureReason("TrustAuthorizationDenied", f"macOS denied the trust change: {last}", hint)
    if "errSecInternalComponent" in text:
        return FailureReason("TrustRefused", f"macOS could not change certificate trust: {last}", hint)
    return None


def explain_trust_output(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    """The install trust step's commands, explained (see tasks/install/explain.py explain_trust)."""
    text = f"{stdout}\n{stderr}"
    if "verify-cert" in argv and "add-trusted-cert" not in argv:
        return FailureReason(
            "TrustNotDelivered",
            f"the CA {argv[argv.index('-c') + 1]} is not trusted yet (--trust profile): {_last_line(text)}",
            PROFILE_HINT,
        )
    if "add-certificates" in argv:
        return FailureReason(
            "CaAddFailed",
            f"could not add the intermediate CA to the System keychain: {_last_line(text)}",
            "check the CA file (`orchestrate certs list`) and the System keychain",
        )
    refusal = classify_refusal("add-trusted-cert", status, stdout, stderr, PROFILE_HINT)
    if refusal is not None:
        return refusal
    if "SecTrustSettingsSetTrustSettings" in text and "parameters" in text:
        return FailureReason(
            "CaNotRoot",
            "trustRoot can only be set on a self-signed root certificate: " + _last_line(text),
            "give the root CA, not an intermediate",
        )
    if "SecTrustSettingsSetTrustSettings" in text:
        return FailureReason(
            "TrustRefused",
            "macOS refused to change trust settings over SSH: " + _last_line(text),
            PROFILE_HINT,
        )
    return None
