"""SSH transport to the Macs (asyncssh): connect with strict host keys, exec argv lists, sudo, upload.

Import from here: `connect`, `Connection`, `SshTarget`, `SshAuth`, `Timeouts`, `HostKeyPolicy`,
`SudoMode`, `NOPASSWD`, the result records and the typed errors.
"""

from workers.ssh.connect import ENCRYPTION_ALGS, Connection, SshAuth, SshTarget, Timeouts, connect
from workers.ssh.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectionLost,
    HostKeyError,
    HostKeyMismatch,
    HostKeyUnknown,
    SudoAuthFailed,
    SudoError,
    SudoNotAllowed,
    SudoRequiresPassword,
    TransportError,
    Unreachable,
    UploadError,
)
from workers.ssh.exec import ExecResult, ScriptLine, ScriptResult, StepOutcome, render
from workers.ssh.hostkeys import HostKeyPolicy, fingerprint, key_line, parse_public_key
from workers.ssh.sudo import NOPASSWD, SudoMode
from workers.ssh.upload import (
    UploadItem,
    UploadResult,
    remote_sha256,
    upload,
    upload_many,
    upload_many_with_retry,
    upload_with_retry,
)

__all__ = [
    "ENCRYPTION_ALGS",
    "NOPASSWD",
    "AuthFailed",
    "CommandTimeout",
    "Connection",
    "ConnectionLost",
    "ExecResult",
    "HostKeyError",
    "HostKeyMismatch",
    "HostKeyPolicy",
    "HostKeyUnknown",
    "ScriptLine",
    "ScriptResult",
    "SshAuth",
    "SshTarget",
    "StepOutcome",
    "SudoAuthFailed",
    "SudoError",
    "SudoMode",
    "SudoNotAllowed",
    "SudoRequiresPassword",
    "Timeouts",
    "TransportError",
    "Unreachable",
    "UploadError",
    "UploadItem",
    "UploadResult",
    "connect",
    "fingerprint",
    "key_line",
    "parse_public_key",
    "remote_sha256",
    "render",
    "upload",
    "upload_many",
    "upload_many_with_retry",
    "upload_with_retry",
]
