"""Personal data handling: citizens' ID numbers never leave a connector in clear.

The ID number is only needed to recognise the same applicant across systems, so a keyed hash
(HMAC-SHA256 with a secret key from the environment) is enough and cannot be reversed by
someone who copies the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

# A Vietnamese personal ID (CCCD) has 12 digits; old ID cards have 9. Anything that looks like
# one in free text is masked; a longer digit run (a dossier code, a timestamp) is left alone.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{9}|\d{12})(?![0-9A-Za-z])")
ID_PLACEHOLDER = "[id-redacted]"


class IdHasher:
    """Keyed hash of ID numbers; one instance per configured key."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the ID hash key must not be empty")
        self._key = key.encode("utf-8")

    def __call__(self, id_number: str | None) -> str | None:
        """The applicant key for an ID number, or ``None`` when there is no number."""
        if id_number is None:
            return None
        digits = "".join(ch for ch in str(id_number) if not ch.isspace())
        if not digits:
            return None
        return hmac.new(self._key, digits.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def redact_text(text: str) -> str:
    """Mask anything shaped like an ID number in free text (log lines, error messages)."""
    return _ID_IN_TEXT.sub(ID_PLACEHOLDER, text)


def redact_payload(value: Any, id_keys: frozenset[str], hasher: IdHasher) -> Any:
    """Copy of a JSON payload with every ``id_keys`` field replaced by its keyed hash.

    Free-text strings elsewhere are masked too: a citizen may type their ID number into a
    dossier summary.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in id_keys and isinstance(v, str | int) and not isinstance(v, bool):
                key = hasher(str(v))
                out[k] = f"hmac:{key}" if key else v
            else:
                out[k] = redact_payload(v, id_keys, hasher)
        return out
    if isinstance(value, list):
        return [redact_payload(v, id_keys, hasher) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def mask_name(name: str | None) -> str:
    """Mask a Vietnamese full name for emails: keep the family name's initial and the given name.

    ``Nguyễn Văn An`` becomes ``N. V. An``: enough for staff to recognise a dossier they hold,
    not enough to identify a citizen from a forwarded email.
    """
    if not name or not name.strip():
        return ""
    parts = name.split()
    if len(parts) == 1:
        word = parts[0]
        return word[0] + "*" * (len(word) - 1)
    return " ".join(p[0] + "." for p in parts[:-1]) + " " + parts[-1]
