"""ioreg(8), only as far as the IOPlatformExpertDevice node: `ioreg [-r] [-d N] -c IOPlatformExpertDevice`
prints that node's serial number, hardware UUID and a few neighbouring properties.

Shape after public output (the node line `+-o NAME  <class IOPlatformExpertDevice, id 0x..., registered,
matched, active, busy 0 (N ms), retain N>`, then `{`, one `"key" = value` line per property, `}`), and the
keys that tools read from it ("IOPlatformUUID", "IOPlatformSerialNumber"). Only a subset of the node's
properties is printed (invented: the real node has about twenty); any other class, plane or option that is
not emulated fails loudly (macsim's wording, marked) rather than printing something made up."""

from __future__ import annotations

from macsim.shell.fileaccess import usage
from macsim.shell.options import UsageError, getopt
from macsim.shell.proc import Proc, Tool

_USAGE = "usage: ioreg [-abfilrtxy] [-c class] [-d depth] [-k key] [-n name] [-p plane] [-w width]"


async def ioreg(p: Proc) -> int:
    try:
        opts, args = getopt(p.argv[1:], "abc:d:fik:ln:p:rStw:xy")
    except UsageError as e:
        return usage(p, _USAGE, e)
    given = dict(opts)
    if args:
        return usage(p, _USAGE)
    if given.get("c") != "IOPlatformExpertDevice" or set(given) - {"r", "d", "w", "c", "l"}:
        p.err("ioreg: macsim emulates only `ioreg -rd1 -c IOPlatformExpertDevice`")  # macsim's wording
        return 1
    spec = p.mac.spec
    arm = spec.arch == "arm64"
    node = "J314sAP" if arm else "Mac-827FAC58A8FDFA22"  # invented board names
    model = "Mac14,9" if arm else "Macmini8,1"
    lines = [
        f"+-o {node}  <class IOPlatformExpertDevice, id 0x100000110, registered, matched, active, busy 0 "
        "(25 ms), retain 40>",
        "  {",
        f'    "IOPlatformUUID" = "{spec.effective_hardware_uuid}"',
        '    "manufacturer" = <"Apple Inc.">',
        f'    "model" = <"{model}">',
        f'    "IOPlatformSerialNumber" = "{spec.effective_serial_number}"',
        '    "target-type" = <"Mac">',
        "  }",
        "",
    ]
    p.out("\n".join(lines))
    return 0


TOOLS: dict[str, Tool] = {"ioreg": ioreg}
