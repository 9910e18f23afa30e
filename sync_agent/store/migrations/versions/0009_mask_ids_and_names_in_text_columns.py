"""mask ID numbers and repeated applicant names in the text columns an earlier release stored

From this revision a procedure's, field's and applicant's name is stored with any ID-shaped
digits masked, and the applicant's full name, where the procedure's or field's name repeats it,
masked as emails show it (``privacy.clean_text_field``). Rows stored before keep them in clear,
and these columns reach emails and webhooks as they are: this masks them in ``dossiers`` and
``cases``. Data only; the rows are found by SQL (a run of nine digits, or the name inside the
other text), so a store with none costs one scan per table. The first sync after it counts each
record it changed as updated once: the stored content hash is of the text before.

It also masks what quarantine reasons showed of an ID number in a bad value: cut to 60
characters first and masked after, a 12-digit ID cut to 10 or 11 digits before the "..."; and
written out by Python first, an ID after a "\n", "\t" or "\u200b", which then followed a letter.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:20:00
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("procedure_name", "field_name", "applicant_name")
#: rows updated per statement
_BATCH = 1000

# ``privacy.clean_text_field`` as it was written with this revision, kept here so that a later
# change to it cannot change what this migration does
_ID_IN_TEXT = re.compile(r"(?<![A-Za-z\d])(\d{9}|\d{12})(?![A-Za-z\d])")


def _mask_name(name: str) -> str:
    parts = name.split()
    if len(parts) == 1:
        return parts[0][0] + "*" * (len(parts[0]) - 1)
    return " ".join(p[0] + "." for p in parts[:-1]) + " " + parts[-1]


def _clean(text: str | None, applicant_name: str | None = None) -> str | None:
    if not text:
        return text
    text = _ID_IN_TEXT.sub("[id-redacted]", text)
    words = applicant_name.split() if applicant_name else []
    if len(words) > 1:
        text = unicodedata.normalize("NFC", text)
        name = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(unicodedata.normalize("NFC", w)) for w in words)
                          + r"(?!\w)", re.IGNORECASE)
        text = name.sub(_mask_name(" ".join(words)), text)
    return text


_BOUNDARY = r"(?:(?<![A-Za-z\d])|(?<=\\[abfnrtv])|(?<=\\x[0-9a-f]{2})|(?<=\\u[0-9a-f]{4}))"
_CUT_ID = re.compile(_BOUNDARY + r"\d{10,11}(?=\.\.\.)")
_ESCAPED_ID = re.compile(_BOUNDARY + r"(\d{9}|\d{12})(?![A-Za-z\d])")


def _clean_reason(reason: str) -> str:
    return _ESCAPED_ID.sub("[id-redacted]", _CUT_ID.sub("[id-redacted]", reason))


def _candidates(dialect: str) -> str:
    if dialect == "postgresql":
        digits = " OR ".join(f"{c} ~ '[0-9]{{9}}'" for c in _COLUMNS)
        name = ("strpos(lower(procedure_name), lower(applicant_name)) > 0 "
                "OR strpos(lower(field_name), lower(applicant_name)) > 0")
    else:
        run = "*" + "[0-9]" * 9 + "*"
        digits = " OR ".join(f"{c} GLOB '{run}'" for c in _COLUMNS)
        name = "instr(procedure_name, applicant_name) > 0 OR instr(field_name, applicant_name) > 0"
    return f"({digits}) OR (applicant_name <> '' AND ({name}))"


def upgrade() -> None:
    bind = op.get_bind()
    where = _candidates(bind.dialect.name)
    for table in ("dossiers", "cases"):
        t = sa.table(table, sa.column("id"), *(sa.column(c) for c in _COLUMNS))
        rows = bind.execute(sa.text(f"SELECT id, {', '.join(_COLUMNS)} FROM {table} WHERE {where}")).all()
        changed: list[dict[str, Any]] = []
        for row_id, procedure_name, field_name, applicant_name in rows:
            name = _clean(applicant_name)
            clean = {"procedure_name": _clean(procedure_name, name), "field_name": _clean(field_name, name),
                     "applicant_name": name}
            if clean != {"procedure_name": procedure_name, "field_name": field_name, "applicant_name": applicant_name}:
                changed.append({"row_id": row_id, **{f"new_{k}": v for k, v in clean.items()}})
        update = (sa.update(t).where(t.c.id == sa.bindparam("row_id"))
                  .values(**{c: sa.bindparam(f"new_{c}") for c in _COLUMNS}))
        for i in range(0, len(changed), _BATCH):
            bind.execute(update, changed[i:i + _BATCH])
    digits = "reason ~ '[0-9]{9}'" if bind.dialect.name == "postgresql" else f"reason GLOB '*{'[0-9]' * 9}*'"
    q = sa.table("quarantine", sa.column("id"), sa.column("reason"))
    reasons = [{"row_id": row_id, "new_reason": _clean_reason(reason)}
               for row_id, reason in bind.execute(sa.text(f"SELECT id, reason FROM quarantine WHERE {digits}"))
               if _clean_reason(reason) != reason]
    update = sa.update(q).where(q.c.id == sa.bindparam("row_id")).values(reason=sa.bindparam("new_reason"))
    for i in range(0, len(reasons), _BATCH):
        bind.execute(update, reasons[i:i + _BATCH])


def downgrade() -> None:
    pass  # what was masked is not kept anywhere
