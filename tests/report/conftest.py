"""Fixtures of the report tests: settings for the seed's ward, and the seed-figure store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sync_agent.config import AgentSettings, ConnectorSettings, ReportSettings, Settings, SmtpSettings
from sync_agent.store.engine import write_transaction
from sync_agent.store.tables import cases, dossiers, flags, sync_runs
from tests.report import seed

SOURCES = ("one_stop", "civil_status", "residence", "household_business")
NOW = seed.at(2026, 2, 15, 7, 30)


def make_settings(
    *,
    smtp: SmtpSettings | None = None,
    recipients: tuple[str, ...] = ("ttpvhcc@example.gov.vn",),
    start_day: int = 15,
) -> Settings:
    return Settings(
        agent=AgentSettings(
            ward_code="11311",
            ward_name="Phường Thạch Khôi",
            province_name="thành phố Hải Phòng",
            timezone=seed.ICT,
            database_url="sqlite://",
            id_hash_key="test-key",
            period_start_day=start_day,
        ),
        connectors=tuple(
            ConnectorSettings(name=s, type=s, base_url=f"http://127.0.0.1:81{i:02d}")
            for i, s in enumerate(SOURCES, start=1)
        ),
        report=ReportSettings(recipients=recipients, stale_after_hours=24),
        smtp=smtp
        or SmtpSettings(
            host="127.0.0.1", port=25, security="none", sender="sync-agent@thachkhoi.example.gov.vn"
        ),
        path=Path("test.toml"),
    )


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def insert_cases(engine: Engine, rows: list[dict[str, object]]) -> None:
    with write_transaction(engine) as conn:
        conn.execute(cases.insert(), rows)


def seed_store(engine: Engine) -> None:
    """The seed-figure cases, some stored records and flags, and sync runs."""
    insert_cases(engine, seed.cases_rows())
    with write_transaction(engine) as conn:
        ids = {
            r.case_key: r.id
            for r in conn.execute(cases.select().with_only_columns(cases.c.id, cases.c.case_key))
        }
        specs = {s.n: s for s in seed.counted_specs()}
        t = seed.at(2026, 2, 1)
        base = dict(
            procedure_code="1.001193",
            channel="online",
            status="in_progress",
            source_updated_at=t,
            raw_payload="{}",
            content_hash="h" * 64,
            first_seen_at=t,
            last_seen_at=t,
        )
        for row in (
            dict(base, source="one_stop", source_id="OS-1"),
            dict(base, source="one_stop", source_id="OS-2"),
            dict(base, source="civil_status", source_id="HT-1"),
            dict(
                base,
                source="household_business",
                source_id="HKD-1",
                applicant_name="Lý Văn Mười",
                procedure_code="2.000720",
                procedure_name="Đăng ký thành lập hộ kinh doanh",
                received_on=seed.E,
                submitted_at=seed.at(2026, 2, 14, 9),
            ),
        ):
            conn.execute(dossiers.insert().values(**row))
        hkd = conn.execute(dossiers.select().where(dossiers.c.source_id == "HKD-1")).first()
        assert hkd is not None
        mismatch = specs[seed.SPECIAL["ended_after"]]
        quality = specs[seed.SPECIAL["end_before_reception"]]
        bypassed = next(s for s in specs.values() if s.source == "civil_status")
        for row in (
            dict(
                kind="status_mismatch",
                subject_key=mismatch.case_key,
                case_id=ids[mismatch.case_key],
                state="open",
                details="Một cửa: đang giải quyết; Cư trú: đã giải quyết",
                raised_at=t,
            ),
            dict(
                kind="data_quality",
                subject_key=quality.case_key,
                case_id=ids[quality.case_key],
                state="open",
                details=f"Ngày kết thúc trước ngày tiếp nhận; trích yếu ghi CCCD {seed.ID_NUMBER}",
                raised_at=t,
                acknowledged_at=t,
                ack_note="đã báo đơn vị",
            ),
            dict(
                kind="unknown_reception_code",
                subject_key="household_business:HKD-1",
                dossier_id=hkd.id,
                state="open",
                details="Hồ sơ ghi mã tiếp nhận 000.00.11.H01-260101-9999",
                raised_at=t,
            ),
            dict(
                kind="bypassed_reception",
                subject_key=bypassed.case_key,
                case_id=ids[bypassed.case_key],
                state="open",
                raised_at=t,
            ),
            dict(kind="data_quality", subject_key="rc:cleared", state="cleared", raised_at=t, cleared_at=t),
        ):
            conn.execute(flags.insert().values(**row))
        runs = []
        for i, source in enumerate(SOURCES):
            finished = NOW - dt.timedelta(hours=2 + (30 if source == "residence" else i))
            runs.append(
                dict(
                    source=source,
                    started_at=finished - dt.timedelta(minutes=1),
                    finished_at=finished,
                    status="success",
                )
            )
        runs.append(
            dict(
                source="residence",
                started_at=NOW - dt.timedelta(hours=1),
                finished_at=NOW - dt.timedelta(hours=1),
                status="failed",
                error="TransientSourceError: HTTP 503 after 5 attempts",
            )
        )
        for row in runs:
            conn.execute(sync_runs.insert().values(**row))


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed_store(engine)
    return engine
