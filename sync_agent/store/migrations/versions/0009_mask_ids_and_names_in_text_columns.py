"""mask ID numbers and repeated applicant names in the text columns an earlier release stored

From this revision a procedure's, field's and applicant's name is stored with any ID-shaped
digits masked, and the applicant's full name, where the procedure's or field's name repeats it,
masked as emails show it (``privacy.clean_text_field``). Rows stored before keep them in clear,
and these columns reach emails and webhooks as they are: this masks them in ``dossiers`` and
``cases``. Data only; the rows are found by SQL (a run of nine digits, or the name inside the
other text), so a store with none costs one scan per table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sync_agent.privacy import clean_text_field

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("procedure_name", "field_name", "applicant_name")


def _candidates(dialect: str) -> str:
    if dialect == "postgresql":
        digits = " OR ".join(f"{c} ~ '[0-9]{{9}}'" for c in _COLUMNS)
        name = "strpos(procedure_name, applicant_name) > 0 OR strpos(field_name, applicant_name) > 0"
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
        for row_id, procedure_name, field_name, applicant_name in rows:
            name = clean_text_field(applicant_name)
            clean = {"procedure_name": clean_text_field(procedure_name, name),
                     "field_name": clean_text_field(field_name, name), "applicant_name": name}
            if clean != {"procedure_name": procedure_name, "field_name": field_name, "applicant_name": applicant_name}:
                bind.execute(sa.update(t).where(t.c.id == row_id).values(**clean))


def downgrade() -> None:
    pass  # what was masked is not kept anywhere
