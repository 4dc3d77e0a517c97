"""The parser each fact probe's fixtures exercise (fixture dir name -> parser)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks import facts as f
from tasks.install import verify as v
from tasks.model import ProbeOutput

PARSERS: dict[str, Callable[[ProbeOutput], Any]] = {
    "sw_vers": f.parse_sw_vers,
    "arch": f.parse_uname_m,
    "x86_64": f.parse_rosetta,
    "hostname": f.parse_hostname,
    "local_host_name": f.parse_scutil_get,
    "pkg_info": f.parse_pkg_info,
    "binary_sha256": f.parse_shasum,
    "dmg_cache": f.parse_shasum,
    "conf": f.parse_conf,
    "launchd": f.parse_launchctl_print,
    "identities": f.parse_find_identity,
    "certificates": f.parse_find_certificate,
    "admin_trust": f.parse_dump_trust_settings,
    "df": f.parse_df_k,
    "client_log": f.parse_log_tail,
    "pkg_location": f.parse_pkg_location,
    "pkg_files": f.parse_pkg_files,
    "present": f.parse_ls_d,
    "client_sockets": f.parse_client_sockets,
    "log_mark": v.parse_log_mark,
    "verify_poll": v.parse_poll,
}
