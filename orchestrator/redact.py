"""Masking of known secret values in text meant for people: transcripts, step output tails, logs.

A `Redactor` is given the secret values in play (a PFX password, a sudo password) and replaces each, in the
forms it commonly takes on its way into text, with `***`: the raw value, shell-quoted (`shlex.quote`),
JSON-escaped, URL-quoted, and base64 (standard and URL-safe, with and without padding).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import threading
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"


def _forms(value: str) -> set[str]:
    """The encodings under which value may show up in text."""
    raw = value.encode("utf-8", "surrogateescape")
    b64 = base64.b64encode(raw).decode("ascii")
    b64u = base64.urlsafe_b64encode(raw).decode("ascii")
    forms = {
        value,
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(raw, safe=""),
        b64,
        b64.rstrip("="),
        b64u,
        b64u.rstrip("="),
    }
    return {f for f in forms if f}


class Redactor:
    """Replaces registered secret values (and their common encodings) by `***`.

    Values of any length are masked (a short password makes transcripts ugly, not public). Longer forms are
    replaced first, so a value that contains another one is masked whole."""

    def __init__(self, values: Iterable[str | bytes] = (), mask: str = MASK) -> None:
        self.mask = mask
        self._values: dict[str, int] = {}  # value -> how many times it was added (discard undoes one add)
        self._value_forms: dict[str, set[str]] = {}  # value -> its forms (a discard need not remake them)
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._bpattern: re.Pattern[bytes] | None = None
        self._dirty = self._bdirty = False  # each pattern is remade when first needed (most jobs use one)
        self._lock = threading.Lock()
        for v in values:
            self.add(v)

    def __repr__(self) -> str:
        return f"Redactor({len(self._forms)} forms)"  # never the values

    @staticmethod
    def _text(value: str | bytes) -> str:
        return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value

    def add(self, value: str | bytes) -> None:
        """Register a secret value; bytes are read as UTF-8 (undecodable bytes kept as they are).

        Cheap: the pattern is rebuilt on the next redaction, not on every add (a controller adds one
        one-time password per device, thousands in a run)."""
        text = self._text(value)
        if not text:
            return
        with self._lock:
            self._values[text] = self._values.get(text, 0) + 1
            if self._values[text] == 1:
                self._value_forms[text] = _forms(text)
                self._forms |= self._value_forms[text]
                self._dirty = self._bdirty = True

    def discard(self, value: str | bytes) -> None:
        """Undo one `add` of value (a device's one-time password once its job is over), so a long-running
        process keeps a bounded set."""
        text = self._text(value)
        with self._lock:
            count = self._values.get(text, 0)
            if count > 1:
                self._values[text] = count - 1
            elif count == 1:
                del self._values[text], self._value_forms[text]
                self._forms = set().union(*self._value_forms.values())
                self._dirty = self._bdirty = True

    def clear(self) -> None:
        """Forget every registered value."""
        with self._lock:
            self._values.clear()
            self._value_forms.clear()
            self._forms.clear()
            self._pattern = self._bpattern = None
            self._dirty = self._bdirty = False

    def _str_pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._dirty:
                ordered = sorted(self._forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                self._dirty = False
            return self._pattern

    def _bytes_pattern(self) -> re.Pattern[bytes] | None:
        with self._lock:
            if self._bdirty:
                longest_first = sorted(self._forms, key=len, reverse=True)
                ordered = [f.encode("utf-8", "surrogateescape") for f in longest_first]
                self._bpattern = re.compile(b"|".join(map(re.escape, ordered))) if ordered else None
                self._bdirty = False
            return self._bpattern

    def redact(self, text: str) -> str:
        """text with every registered value masked."""
        if not text:
            return text
        pattern = self._str_pattern()
        return text if pattern is None else pattern.sub(self.mask, text)

    def redact_bytes(self, data: bytes) -> bytes:
        """data (e.g. raw command output) with every registered value masked."""
        if not data:
            return data
        bpattern = self._bytes_pattern()
        return data if bpattern is None else bpattern.sub(self.mask.encode(), data)

    def logging_filter(self) -> logging.Filter:
        """A filter for logging *handlers* (logger filters do not see records from child loggers) that masks
        the message, its arguments and any exception text."""
        return _RedactingFilter(self)


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor.redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


LOG_REDACTOR = Redactor()
"""Values masked by every log handler `orchestrator.config.configure_logging` installs: a command that reads
a secret value registers it here before it can reach any log."""
