"""Process limits of the controller: one SSH connection per Mac costs at least one file descriptor."""

from __future__ import annotations

import resource


def raise_nofile_limit(target: int = 65536) -> int:
    """Raise the soft open-file limit towards `target`, never above the hard limit and never lowering it.

    Returns the soft limit in force afterwards. Raises ValueError for a target below 1."""
    if target < 1:
        raise ValueError(f"open-file target must be positive, got {target}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft >= ceiling:
        return soft
    if soft == resource.RLIM_INFINITY:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    except (ValueError, OSError):
        # macOS refuses soft limits above kern.maxfilesperproc even when the hard limit is "unlimited".
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
