"""The package's own version, read on the Mac from its PackageInfo before anything is installed.

`installer -pkginfo -verbose -pkg P` does not print a version: its fields are Package, Status, Will Restart,
Size, Must Authenticate, Title, Description, Message (a public transcript: ask.wireshark.org question 9479,
"Wireshark 1.6.5 fails to install on Mac OS X 10.7.3", 2012; munki's getInstallerPkgInfo reads only Title,
Size, Description and Will Restart from its -plist form). The version is an attribute of the `pkg-info`
element of the package's PackageInfo file, which `pkgutil --expand PKG DIR` writes (pkgutil(1): "Expand the
flat package at pkg-path into a new directory specified by dir-path"): `DIR/PackageInfo` for a component
package, `DIR/<component>.pkg/PackageInfo` inside a product archive. A public PackageInfo:
`<pkg-info format-version="2" identifier="com.macrosilicon.usbdisplay" version="3.0.4.13" ...>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.model import ProbeOutput

# Run by /bin/sh as root after the mount: expand every .pkg at the image's root into a scratch
# directory, print one `macfleet-pkginfo NAME<TAB><its PackageInfo on one line>` per PackageInfo (the
# explainer names what the image really holds from these lines), and succeed only when the package named
# $2 carries identifier $3 and version $4. Constant text; the mount point, pkg name, identifier, version
# and scratch directory arrive as $1..$5. The XML declaration is dropped first (its ` version="1.0"` is
# not the package's). Uses only what POSIX sh and the macsim shell share (no `case`, no `continue`).
PKG_VERSION_SCRIPT = (
    "status=1; "
    'for pkg in "$1"/*.pkg; do '
    'if [ -f "$pkg" ]; then '
    'rm -rf "$5" && pkgutil --expand "$pkg" "$5" || exit 1; '
    'name=$(basename "$pkg"); '
    'for info in "$5"/PackageInfo "$5"/*.pkg/PackageInfo; do '
    'if [ -f "$info" ]; then '
    "tag=$(grep -v -F '<?xml' \"$info\" | tr '\\n' ' '); "
    "printf 'macfleet-pkginfo %s\\t%s\\n' \"$name\" \"$tag\"; "
    'if [ "$name" = "$2" ] && printf \'%s\\n\' "$tag" | grep -F " identifier=\\"$3\\"" '
    '| grep -q -F " version=\\"$4\\""; then status=0; fi; '
    "fi; "
    "done; "
    'rm -rf "$5"; '
    "fi; "
    "done; "
    'exit "$status"'
)
PKG_VERSION_NAME = "check-package-version"  # $0 of the script: how the explainer recognises its failure
MARKER = "macfleet-pkginfo "

_TAG = re.compile(r"<pkg-info\b([^>]*)>", re.S)
_ATTR = re.compile(r'([A-Za-z_:][-A-Za-z0-9_.:]*)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class PackageInfo:
    """What a PackageInfo's `pkg-info` element says about its package."""

    identifier: str | None
    version: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"identifier": self.identifier, "version": self.version}


@dataclass(frozen=True)
class ImagePackage:
    """One package the check found at the image's root (file name) and what its PackageInfo says."""

    file_name: str
    info: PackageInfo


def package_info(text: str) -> PackageInfo | None:
    """The identifier and version of the first `pkg-info` element in text, or None when there is none."""
    m = _TAG.search(text)
    if m is None:
        return None
    attrs = dict(_ATTR.findall(m.group(1)))
    return PackageInfo(attrs.get("identifier"), attrs.get("version"))


def parse_package_info(out: ProbeOutput) -> PackageInfo | None:
    """A PackageInfo file's content (`cat DIR/PackageInfo`); None when it holds no pkg-info element."""
    return package_info(out.stdout) if out.exit_status == 0 else None


def image_packages(stdout: str) -> list[ImagePackage]:
    """The `macfleet-pkginfo NAME<TAB>PACKAGEINFO` lines PKG_VERSION_SCRIPT printed, in order."""
    found: list[ImagePackage] = []
    for line in stdout.splitlines():
        if not line.startswith(MARKER):
            continue
        name, _, rest = line[len(MARKER) :].partition("\t")
        info = package_info(rest)
        if name and info is not None:
            found.append(ImagePackage(name, info))
    return found
