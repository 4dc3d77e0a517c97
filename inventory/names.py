"""What counts as a valid host name, address, group name, user name, secret name and variable name.

Every check returns None when the value is valid, else a message a person can act on. Values that fail are
rejected, never repaired: an inventory value is data and must arrive exactly as written.
"""

from __future__ import annotations

import ipaddress
import re

# RFC 1123 §2.1: a label is 1-63 letters, digits or hyphens, not starting or ending with a hyphen
# (a leading digit is allowed); the whole name is at most 253 characters without the trailing dot.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Group names are used as CLI arguments and Ansible group names: letters, digits, '_', '-', '.'.
_GROUP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# macOS short user names: letters, digits, '_', '-', '.', not starting with '-' (ssh would read an option).
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
# Secret names (orchestrate secrets) and variable names.
_SECRET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def host_name_problem(name: str) -> str | None:
    """None if `name` is an RFC 1123 host name (labels of letters, digits, hyphens; at most 253 chars)."""
    if not name:
        return "is empty"
    if len(name) > 253:
        return f"is {len(name)} characters long; a host name has at most 253"
    for label in name.split("."):
        if not _LABEL.match(label):
            return (
                f"{name!r} is not a valid host name: label {label!r} must be 1-63 letters, digits or "
                "hyphens, not starting or ending with a hyphen (RFC 1123)"
            )
    if name.rsplit(".", 1)[-1].isdigit():
        # RFC 1123 §2.1: the highest-level label is never all digits, so a name cannot pass for an address.
        return f"{name!r} is not a valid host name: its last label is all digits (RFC 1123)"
    return None


def address_problem(address: str) -> str | None:
    """None if `address` is an IPv4 or IPv6 address (without brackets) or a valid host name."""
    if not address:
        return "is empty"
    try:
        ipaddress.ip_address(address)
        return None
    except ValueError:
        pass
    if address.startswith("[") and address.endswith("]"):
        return f"{address!r}: write an IPv6 address without brackets"
    if all(part.isdigit() for part in address.split(".")):
        return f"{address!r} is not a valid IPv4 address"
    if host_name_problem(address) is None:
        return None
    return f"{address!r} is neither an IP address nor a valid host name (RFC 1123)"


def port_problem(port: object) -> str | None:
    """None if `port` is an int (not a bool) in 1-65535."""
    if isinstance(port, bool) or not isinstance(port, int):
        return f"{port!r} is not a port number (an integer 1-65535)"
    if not 1 <= port <= 65535:
        return f"{port} is out of range (1-65535)"
    return None


def group_name_problem(name: str) -> str | None:
    """None if `name` is a group name: letters, digits, '_', '.', '-', not starting with '.' or '-'."""
    if _GROUP.match(name):
        return None
    return f"{name!r} is not a valid group name (letters, digits, '_', '.', '-'; at most 128)"


def user_problem(user: str) -> str | None:
    """None if `user` is a plausible macOS short user name."""
    if _USER.match(user):
        return None
    return f"{user!r} is not a valid user name (letters, digits, '_', '.', '-'; not starting with '-')"


def secret_name_problem(name: str) -> str | None:
    """None if `name` is a valid secret name (the handle of a secret stored with `orchestrate secrets`)."""
    if _SECRET.match(name):
        return None
    return f"{name!r} is not a valid secret name (letters, digits, '_', '.', '-')"


def var_name_problem(name: str) -> str | None:
    """None if `name` is a variable name: a letter or '_' then letters, digits, '_' (as Ansible requires)."""
    if _VAR.match(name):
        return None
    return f"{name!r} is not a valid variable name (a letter or '_', then letters, digits or '_')"


def text_problem(value: str) -> str | None:
    """None if `value` is Unicode text that UTF-8 can carry (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate; it is not valid Unicode text"
    return None
