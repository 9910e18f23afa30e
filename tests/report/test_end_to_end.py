"""The seed's February through the whole pipeline: source records -> reconcile -> report.

The records of ``seed.records()`` are what the four connectors would deliver: shared dossiers
in one_stop and a ministry (linked by the reception code, or inferred from applicant and
procedure), bypassed dossiers only in a ministry, one_stop-only dossiers. Counting must see each
dossier once and give the seed's figures exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import Engine, func, select

from sync_agent.config import Settings
from sync_agent.model import DossierRecord
from sync_agent.report import Period, build_report, paragraph
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.records import save_records
from sync_agent.store.tables import cases
from tests.report import seed
from tests.report.conftest import NOW

reconcile_module = pytest.importorskip("sync_agent.reconcile", reason="reconciliation has not landed yet")


def load_records(engine: Engine) -> None:
    by_source: dict[str, list[DossierRecord]] = defaultdict(list)
    for rec in seed.records():
        by_source[rec.source].append(rec)
    with write_transaction(engine) as conn:
        for source, recs in by_source.items():
            for i in range(0, len(recs), 500):
                save_records(conn, source, recs[i : i + 500], seed.ICT, None, NOW)


@pytest.mark.slow
def test_seed_figures_through_reconciliation(engine: Engine, settings: Settings) -> None:
    load_records(engine)
    reconcile_module.reconcile(engine, seed.ICT, full=True, now=NOW)
    report = build_report(engine, settings, Period.parse("2026-02"), now=NOW)
    doc = report.to_json()
    for key, value in seed.EXPECTED_JSON_FIGURES.items():
        assert doc[key] == value, key
    assert paragraph(report) == seed.PARAGRAPH
    assert report.identity_holds

    specs = seed.counted_specs()
    assert {g.key: g.figures.received_total for g in report.by_source} == dict(
        Counter(s.source for s in specs)
    )
    assert {g.key: g.figures.received_total for g in report.by_field} == dict(
        Counter(s.field_code for s in specs)
    )
    assert doc["reconciliation"]["cases"] == 4899
    assert doc["reconciliation"]["bypassed_reception"] == sum(1 for s in specs if s.source != "one_stop")
    records = Counter(r.source for r in seed.records())
    assert doc["reconciliation"]["records_by_source"] == {
        s: records[s] for s in doc["reconciliation"]["records_by_source"]
    }
    with read_connection(engine) as conn:
        inferred = conn.execute(select(func.count()).where(cases.c.inferred.is_(True))).scalar()
    assert inferred == sum(1 for s in (*specs, *seed.noise_specs()) if s.inferred)
