"""The exit codes of every `orchestrate` command (README: "Exit codes"), in one place."""

from __future__ import annotations

EXIT_FAILED = 1  # a device failed, or the command could not do its work
EXIT_BAD_INPUT = 2  # bad input: nothing was done (the message says what to fix)
EXIT_UNVERIFIED = 3  # no device failed, but some ran without a confirmed Switch connection
EXIT_AWAITING_TRUST = 4  # no device failed or unverified, but some wait for their CA trust (MDM profile)
EXIT_INTERRUPTED = 130  # Ctrl-C: the run is left for `runs resume`
