"""What a Mac reports about itself, parsed into typed facts. Pure: parsers take `ProbeOutput`s, do no I/O.

Each parser reads one probe's output (real macOS tool output; see tests/tasks/fixtures/facts/). A probe
that fails because the thing is absent (no receipt, no conf, job not loaded, no trust settings) is a normal
fact, not an error; a probe that did not run to its end (exit status None) is an error (`FactsError`).

By duty: `common` (names, paths, FactsError), parsers per tool in `system`, `client` and `keychain`, the
records built from one round trip in `mac` (MacFacts, HostFacts) and `lifecycle` (ClientFacts).
"""

from tasks.facts.client import (
    LaunchdJob,
    LogBlock,
    parse_client_sockets,
    parse_conf,
    parse_launchctl_print,
    parse_log_tail,
    parse_pkg_files,
    parse_pkg_info,
    parse_pkg_location,
)
from tasks.facts.common import (
    BINARY,
    CLIENT_DIR,
    CLIENT_LOG,
    CONF,
    DAEMON_LOG,
    KNOWN_PATHS,
    LABEL,
    LOG_TAIL_LINES,
    LSOF,
    PID_FILTER,
    PKG_ID,
    PLIST,
    START_LINE,
    SYSTEM_KEYCHAIN,
    UPDATECONF,
    FactsError,
    facts_to_json,
    require,
)
from tasks.facts.keychain import (
    Identity,
    KeychainCert,
    TrustEntry,
    parse_dump_trust_settings,
    parse_find_certificate,
    parse_find_identity,
)
from tasks.facts.lifecycle import ClientFacts, client_fact_commands, parse_client_facts
from tasks.facts.mac import (
    SOCKETS_SCRIPT,
    HostFacts,
    MacFacts,
    host_fact_commands,
    mac_fact_commands,
    parse_host_facts,
    parse_mac_facts,
)
from tasks.facts.system import (
    parse_df_k,
    parse_hostname,
    parse_ls_d,
    parse_rosetta,
    parse_scutil_get,
    parse_shasum,
    parse_sw_vers,
    parse_uname_m,
)

__all__ = [
    "BINARY",
    "CLIENT_DIR",
    "CLIENT_LOG",
    "CONF",
    "DAEMON_LOG",
    "KNOWN_PATHS",
    "LABEL",
    "LOG_TAIL_LINES",
    "LSOF",
    "PID_FILTER",
    "PKG_ID",
    "PLIST",
    "SOCKETS_SCRIPT",
    "START_LINE",
    "SYSTEM_KEYCHAIN",
    "UPDATECONF",
    "ClientFacts",
    "FactsError",
    "HostFacts",
    "Identity",
    "KeychainCert",
    "LaunchdJob",
    "LogBlock",
    "MacFacts",
    "TrustEntry",
    "client_fact_commands",
    "facts_to_json",
    "host_fact_commands",
    "mac_fact_commands",
    "parse_client_facts",
    "parse_client_sockets",
    "parse_conf",
    "parse_df_k",
    "parse_dump_trust_settings",
    "parse_find_certificate",
    "parse_find_identity",
    "parse_host_facts",
    "parse_hostname",
    "parse_launchctl_print",
    "parse_log_tail",
    "parse_ls_d",
    "parse_mac_facts",
    "parse_pkg_files",
    "parse_pkg_info",
    "parse_pkg_location",
    "parse_rosetta",
    "parse_scutil_get",
    "parse_shasum",
    "parse_sw_vers",
    "parse_uname_m",
    "require",
]
