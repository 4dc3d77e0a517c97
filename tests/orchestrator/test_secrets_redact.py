"""Redactor: masks secret values and their common encodings in text, bytes and logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import shlex
from urllib.parse import quote

from orchestrator.redact import Redactor

PW = "s3cr'et pa$$"


def test_masks_raw_quoted_json_url_and_base64_forms() -> None:
    r = Redactor([PW])
    b64 = base64.b64encode(PW.encode()).decode()
    text = (
        f"raw={PW} | sh={shlex.quote(PW)} | json={json.dumps(PW)} | url={quote(PW, safe='')} | "
        f"b64={b64} | b64u={base64.urlsafe_b64encode(PW.encode()).decode().rstrip('=')}"
    )
    out = r.redact(text)
    assert out == 'raw=*** | sh=*** | json="***" | url=*** | b64=*** | b64u=***'


def test_longest_form_wins_and_other_text_is_kept() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.redact("x abcdef y abc z") == "x *** y *** z"
    assert r.redact("nothing here") == "nothing here"


def test_bytes_and_empty_values() -> None:
    r = Redactor([b"\xffraw-bytes", ""])
    assert r.redact_bytes(b"out: \xffraw-bytes\n") == b"out: ***\n"
    assert Redactor().redact("unchanged") == "unchanged"
    assert "raw-bytes" not in repr(r)


def test_logging_filter_masks_message_args_and_exception() -> None:
    r = Redactor([PW])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(r.logging_filter())
    logger = logging.getLogger("test.redact.child")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("sending %s to sudo", PW)
        try:
            raise RuntimeError(f"sudo said no to {PW}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "sending *** to sudo" in out
    assert "RuntimeError: sudo said no to ***" in out
    assert PW not in out


def test_clear_forgets_values() -> None:
    r = Redactor(["gone"])
    r.clear()
    assert r.redact("gone") == "gone"
    r.add("back")
    assert r.redact("back gone") == "*** gone"


def test_discard_undoes_one_add_and_keeps_other_values_masked() -> None:
    from orchestrator.redact import Redactor

    r = Redactor()
    r.add("otp-one-AAAA")
    r.add("shared-pw")
    r.add("shared-pw")  # two devices with the same login password
    assert r.redact("otp-one-AAAA shared-pw") == "*** ***"
    r.discard("otp-one-AAAA")
    r.discard("shared-pw")
    assert r.redact("otp-one-AAAA shared-pw") == "otp-one-AAAA ***"  # one device still runs with it
    r.discard("shared-pw")
    r.discard("never-added")
    assert r.redact("otp-one-AAAA shared-pw") == "otp-one-AAAA shared-pw"
    assert r.redact_bytes(b"shared-pw") == b"shared-pw"

