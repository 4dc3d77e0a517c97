"""Wave rollouts, decided from facts in the database (pure: counts in, decisions out).

`--waves 1,5%,25%,100%` gives CUMULATIVE sizes: one device, then up to 5% of the target set in all, then
25%, then everyone. `--max-failures 2%` or `--max-failures 3` is the threshold over every device attempted
so far: a percentage is crossed when failed/attempted exceeds it, a count when failed exceeds it. A wave
opens only when the previous one finished within the threshold; once crossed, no new device starts.

`unverified` devices (installed and running, but no evidence of a Switch connection within the verify
window) count as failures here (FINISHED_BAD): a canary that cannot be confirmed is not a green light.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class WaveSpecError(ValueError):
    """A --waves or --max-failures value that cannot be used (the message says why and gives an example)."""


@dataclass(frozen=True)
class Threshold:
    """At most `count` failures, or at most `percent` % of the attempted devices."""

    count: int | None = None
    percent: float | None = None

    def crossed(self, failed: int, attempted: int) -> bool:
        if self.count is not None:
            return failed > self.count
        assert self.percent is not None
        return attempted > 0 and failed * 100 > self.percent * attempted

    def describe(self) -> str:
        if self.count is not None:
            return f"{self.count} device(s)"
        return f"{self.percent:g}% of attempted devices"

    def as_text(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_threshold(text: str, name: str = "--max-failures") -> Threshold:
    """The threshold in text; `name` is what messages call the setting (the flag, or the config key)."""
    t = text.strip()
    try:
        if t.endswith("%"):
            pct = float(t[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return Threshold(percent=pct)
        n = int(t)
        if n < 0:
            raise ValueError
        return Threshold(count=n)
    except ValueError:
        raise WaveSpecError(
            f"{name} {text!r}: give a count (e.g. 3) or a percentage of attempted devices (e.g. 2%)"
        ) from None


def parse_waves(text: str, total: int, name: str = "--waves") -> list[int]:
    """Cumulative wave sizes for `total` devices, strictly increasing, the last equal to `total`.

    Percentages round up (5% of 30 is 2), counts are capped at total, sizes that add no device are dropped
    and a final wave with everyone is added when the list stops short. `name` is what messages call the
    setting (the flag, or the config key)."""
    if total < 0:
        raise ValueError("total must be >= 0")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise WaveSpecError(f"{name} is empty: give cumulative sizes such as 1,5%,25%,100%")
    sizes: list[int] = []
    for part in parts:
        try:
            if part.endswith("%"):
                pct = float(part[:-1])
                if not 0 < pct <= 100:
                    raise ValueError
                n = math.ceil(total * pct / 100)
            else:
                n = int(part)
                if n <= 0:
                    raise ValueError
        except ValueError:
            raise WaveSpecError(
                f"{name}: {part!r} is not a device count (>0) or a percentage (0-100%): "
                "give cumulative sizes such as 1,5%,25%,100%"
            ) from None
        n = min(n, total)
        if sizes and n < sizes[-1]:
            raise WaveSpecError(f"{name} sizes are cumulative and must not shrink: {text!r}")
        if n and (not sizes or n > sizes[-1]):
            sizes.append(n)
    if total and (not sizes or sizes[-1] < total):
        sizes.append(total)
    return sizes


def assign_waves(
    names: Sequence[str], cumulative: Sequence[int], canary: Sequence[str] = ()
) -> dict[str, int]:
    """Wave index per device: canaries first (in the order given), then the rest in sorted order."""
    unknown = [c for c in canary if c not in names]
    if unknown:
        raise WaveSpecError(f"--canary names devices not in the target set: {', '.join(unknown)}")
    order = list(dict.fromkeys([*canary, *sorted(n for n in names if n not in canary)]))
    out: dict[str, int] = {}
    wave = 0
    for i, name in enumerate(order):
        while wave < len(cumulative) - 1 and i >= cumulative[wave]:
            wave += 1
        out[name] = wave
    return out


@dataclass(frozen=True)
class GateDecision:
    """open: the next wave may start; halt: the threshold is crossed (reason names it); done: nothing left."""

    action: str  # "open" | "halt" | "done" | "wait"
    wave: int | None = None
    reason: str = ""


FINISHED_BAD = ("failed", "rolled_back", "unverified")  # what counts against --max-failures (docstring)


def decide(
    waves: Mapping[int, Mapping[str, int]], threshold: Threshold, failed_names: Sequence[str] = ()
) -> GateDecision:
    """The gate: `waves` maps wave index -> {job status: count}. Returns what to do next.

    "wait" while a wave is still running; "halt" once failures over all attempted devices cross the
    threshold; "open" the lowest wave with pending devices; "done" when every wave is finished."""
    attempted = failed = 0
    for counts in waves.values():
        failed += sum(counts.get(s, 0) for s in FINISHED_BAD)
        attempted += sum(v for s, v in counts.items() if s not in ("pending",))
    if threshold.crossed(failed, attempted):
        names = ", ".join(failed_names[:10]) + (" ..." if len(failed_names) > 10 else "")
        return GateDecision(
            "halt",
            reason=f"{failed} of {attempted} attempted device(s) failed (unverified included), over the "
            "threshold of "
            f"{threshold.describe()}" + (f" (failed: {names})" if names else ""),
        )
    for index in sorted(waves):
        counts = waves[index]
        # queued: handed to a Celery worker, not yet started — in flight like running
        if counts.get("running", 0) or counts.get("queued", 0) or counts.get("interrupted", 0):
            return GateDecision("wait", index)
        if counts.get("pending", 0):
            return GateDecision("open", index)
    return GateDecision("done")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in "90", "30s", "5m", "2h", "1d" (also "1h30m")."""
    t = text.strip().lower()
    if _PLAIN_SECONDS.fullmatch(t):
        return _finite(float(t), text)
    total, number = 0.0, ""
    for ch in t:
        if ch in "0123456789.":
            number += ch
        elif ch in _UNITS and number and number.count(".") <= 1 and number != ".":
            total += float(number) * _UNITS[ch]
            number = ""
        else:
            number = "x"
            break
    if number or not t:
        raise WaveSpecError(f"duration {text!r}: give e.g. 90s, 5m, 2h or 1h30m")
    return _finite(total, text)


# ASCII digits only: str.isdigit() also accepts "²", which float() refuses
_PLAIN_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def _finite(seconds: float, text: str) -> float:
    if not math.isfinite(seconds):
        raise WaveSpecError(f"duration {text!r} is too long: give e.g. 90s, 5m, 2h or 1h30m")
    return seconds
