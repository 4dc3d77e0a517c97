"""The 1E Client's configuration file (`1E.Client.conf`, `Key=Value` lines) and the installer property
names that `1E.Client.updateconf.sh` maps onto its keys.

The real conf has more settings; we keep the ones the rollout touches. Property names follow 1E's
"installer properties" convention (upper case: SWITCH, BACKGROUNDCHANNELURL, LOGGINGLEVEL, ...).
"""

from __future__ import annotations

DEFAULT_CONF = """\
# 1E Client configuration
# Switch: host:port of the Tachyon Switch (several separated by ';')
Switch=
# BackgroundChannelUrl: URL of the Tachyon Background Channel (several separated by ';')
BackgroundChannelUrl=
# LoggingLevel: Error | Warning | Normal | Info | Debug | Trace
LoggingLevel=Normal
LogFile=/Library/Logs/1E.Client.log
LogFileSize=10000000
Module.Inventory.Enabled=true
Module.Interaction.Enabled=false
"""

# Installer property (as given to updateconf.sh, case-insensitive) -> conf key.
PROPERTIES: dict[str, str] = {
    "SWITCH": "Switch",
    "BACKGROUNDCHANNELURL": "BackgroundChannelUrl",
    "LOGGINGLEVEL": "LoggingLevel",
    "LOGFILE": "LogFile",
    "LOGFILESIZE": "LogFileSize",
    "MODULE.INVENTORY.ENABLED": "Module.Inventory.Enabled",
    "MODULE.INTERACTION.ENABLED": "Module.Interaction.Enabled",
}
LOGGING_LEVELS = ("Error", "Warning", "Normal", "Info", "Debug", "Trace")


def parse_conf(text: str) -> dict[str, str]:
    """Key -> value for every `Key=Value` line (comments and blank lines ignored; last one wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def update_conf(text: str, values: dict[str, str]) -> str:
    """The conf text with each key in values set (replaced in place, or appended when absent)."""
    lines = text.splitlines()
    done: set[str] = set()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("#") or "=" not in s:
            continue
        k = s.split("=", 1)[0].strip()
        if k in values:
            lines[i] = f"{k}={values[k]}"
            done.add(k)
    lines += [f"{k}={v}" for k, v in values.items() if k not in done]
    return "\n".join(lines) + "\n"


def property_key(name: str) -> str | None:
    """The conf key an installer property maps to, or None when unknown."""
    return PROPERTIES.get(name.upper())


def first_switch(value: str) -> str:
    """The first Switch of a `;`-separated list."""
    return value.split(";")[0].strip()
