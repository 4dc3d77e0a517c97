"""The install workflow: roll the 1E Client out to a Mac (see decide.py for the idempotency rules)."""

from tasks.facts import MacFacts
from tasks.install.params import CaRef, DmgRef, IdentityRef, InstallParams, rollback_params
from tasks.install.workflow import INSTALL, fact_commands, identity_import_stdin, parse_facts

__all__ = [
    "INSTALL",
    "CaRef",
    "DmgRef",
    "IdentityRef",
    "InstallParams",
    "MacFacts",
    "fact_commands",
    "identity_import_stdin",
    "parse_facts",
    "rollback_params",
]
