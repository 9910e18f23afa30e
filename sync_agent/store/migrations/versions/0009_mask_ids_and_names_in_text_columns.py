"""mask ID numbers and repeated applicant names in the text columns an earlier release stored

From this revision a procedure's, field's and applicant's name is stored with any ID-shaped
digits masked, and the applicant's full name, where the procedure's or field's name repeats it,
masked as emails show it (``privacy.clean_text_fields``). Rows stored before keep them in clear,
and these columns reach emails and webhooks as they are: this masks them in ``dossiers`` and
``cases``. Data only. Every row is read, in batches of 5,000 (the masking itself takes about
1.6 s a million rows, measured alone). The first sync after it counts each record it changed
as updated once: the stored content hash is of the text before.

It also masks what quarantine reasons showed of an ID number in a bad value: cut to 60
characters first and masked after, the digits an ID was cut to before the "..."; and written
out by Python first, an ID after a "\n", "\t" or "\u200b", which then followed a letter.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:20:00
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("procedure_name", "field_name", "applicant_name")
#: rows read, and updated, per statement
_BATCH = 5000

# ``privacy.clean_text_fields`` as it was written with this revision, kept here so that a later
# change to it cannot change what this migration does

#: where a run of digits starts: not after a letter or digit, or right after an escape Python wrote
_RUN_START = (r"(?:(?<![A-Za-z\d])|(?<=\\[abfnrtv])|(?<=\\x[0-9a-fA-F]{2})|(?<=\\u[0-9a-fA-F]{4})"
              r"|(?<=\\U[0-9a-fA-F]{8}))")
_ID_IN_TEXT = re.compile(_RUN_START + r"(\d{9}|\d{12})(?![A-Za-z\d])")
_DIGIT_RUN = re.compile(r"\d\d{8}")
#: what an earlier release's quarantine reason kept of an ID it cut short, before the "..." that
#: replaced the rest of the quoted value (the closing quote with it; a value that holds "..." is
#: still quoted after it)
_CUT_DIGITS = re.compile(_RUN_START + r"\d{1,11}(?=\.\.\.(?!['\"]))")


def _mask_name(name: str) -> str:
    parts = name.split()
    if len(parts) == 1:
        return parts[0][0] + "*" * (len(parts[0]) - 1)
    return " ".join(p[0] + "." for p in parts[:-1]) + " " + parts[-1]


def _clean(text: str | None, applicant_name: str | None = None) -> str | None:
    if not text:
        return text
    if _DIGIT_RUN.search(text) is not None:
        text = _ID_IN_TEXT.sub("[id-redacted]", text)
    words = applicant_name.split() if applicant_name else []
    if len(words) > 1:
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        if unicodedata.normalize("NFC", words[-1]).casefold() in text.casefold():
            name = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(unicodedata.normalize("NFC", w)) for w in words)
                              + r"(?!\w)", re.IGNORECASE)
            text = name.sub(_mask_name(" ".join(words)), text)
    return text


def _clean_reason(reason: str) -> str:
    return _CUT_DIGITS.sub("[id-redacted]", _ID_IN_TEXT.sub("[id-redacted]", reason))


def _rows(bind: sa.Connection, table: str, columns: Sequence[str]) -> Iterator[Sequence[Any]]:
    """Every row of ``table``, a batch at a time by id. Every row is looked at: an SQL filter
    would see only ASCII digits and exact names, and miss what the masking above finds."""
    last: int | None = None  # the first batch from the lowest id, a row's put in by hand too
    while True:
        after = "" if last is None else "WHERE id > :last "
        batch = bind.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table} {after}"
                                     f"ORDER BY id LIMIT {_BATCH}"), {"last": last}).all()
        yield from batch
        if len(batch) < _BATCH:
            return
        last = batch[-1][0]


def _update(bind: sa.Connection, table: str, changed: list[dict[str, Any]], columns: Sequence[str]) -> None:
    t = sa.table(table, sa.column("id"), *(sa.column(c) for c in columns))
    update = (sa.update(t).where(t.c.id == sa.bindparam("row_id"))
              .values(**{c: sa.bindparam(f"new_{c}") for c in columns}))
    for i in range(0, len(changed), _BATCH):
        bind.execute(update, changed[i:i + _BATCH])


def upgrade() -> None:
    bind = op.get_bind()
    for table in ("dossiers", "cases"):
        changed: list[dict[str, Any]] = []
        for row_id, procedure_name, field_name, applicant_name in _rows(bind, table, _COLUMNS):
            name = _clean(applicant_name)
            clean = {"procedure_name": _clean(procedure_name, name), "field_name": _clean(field_name, name),
                     "applicant_name": name}
            if clean != {"procedure_name": procedure_name, "field_name": field_name, "applicant_name": applicant_name}:
                changed.append({"row_id": row_id, **{f"new_{k}": v for k, v in clean.items()}})
        _update(bind, table, changed, _COLUMNS)
    reasons = [{"row_id": row_id, "new_reason": masked} for row_id, reason in _rows(bind, "quarantine", ("reason",))
               if (masked := _clean_reason(reason)) != reason]
    _update(bind, "quarantine", reasons, ("reason",))


def downgrade() -> None:
    pass  # what was masked is not kept anywhere
