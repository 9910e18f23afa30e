"""The conformance suite every connector passes, against its simulator over real HTTP.

A connector joins with one line::

    class TestOneStop(ConnectorConformance):
        source = "one_stop"

Each test is one promise of the sync pipeline (sources.md, "Rules for every connector"), on
SQLite and on PostgreSQL through the ``engine`` fixture.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, delete, select

from connectors.base import Connector, ConnectorContext, build_connector
from connectors.http import HttpClient, HttpConnector
from connectors.wardsim import DEFAULT_CREDENTIALS, SimClock, SimServer, WardDataset, generate
from sync_agent.config import ConnectorSettings, Settings, parse_settings
from sync_agent.errors import TransientSourceError
from sync_agent.model import Page
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.runs import get_cursor
from sync_agent.store.tables import dossiers, quarantine, sync_cursors, sync_runs
from sync_agent.sync import SyncResult, sync_source

TZ_NAME = "Asia/Ho_Chi_Minh"
NOW = dt.datetime(2026, 2, 20, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
RECORDS = 120
ID_SHAPED = re.compile(r"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])")


@dataclass(frozen=True)
class WireSpec:
    """How to touch one record of a source's wire format (for the late-update test)."""

    id_key: str
    updated_key: str
    rename: Callable[[MutableMapping[str, Any], str], None]
    options: dict[str, Any]
    page_size: int | None
    has_session: bool


def _set(key: str) -> Callable[[MutableMapping[str, Any], str], None]:
    def rename(item: MutableMapping[str, Any], value: str) -> None:
        item[key] = value
    return rename


def _set_procedure_name(item: MutableMapping[str, Any], value: str) -> None:
    item["procedure"] = {**item["procedure"], "name": value}


def _creds(source: str) -> dict[str, Any]:
    c = DEFAULT_CREDENTIALS[source]
    return {
        "one_stop": {"username": c.username, "password": c.password},
        "civil_status": {"client_id": c.username, "client_secret": c.password},
        "residence": {"api_key": c.api_key},
        "household_business": {"username": c.username, "password": c.password},
    }[source]


SPECS: dict[str, WireSpec] = {
    "one_stop": WireSpec("MaHoSo", "NgayCapNhat", _set("TenTTHC"), _creds("one_stop"), 25, True),
    "civil_status": WireSpec("maHoSo", "ngayCapNhat", _set("tenTTHC"), _creds("civil_status"), 25, True),
    "residence": WireSpec("id", "updated_at", _set_procedure_name, _creds("residence"), 25, False),
    "household_business": WireSpec("MaHoSo", "NgayCapNhat", _set("TenTTHC"), _creds("household_business"),
                                   None, False),
}


class ConnectorConformance:
    source: ClassVar[str]

    # --- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def dataset(self) -> WardDataset:
        return generate(17, RECORDS, NOW, only=self.source)

    @pytest.fixture
    def sim(self, dataset: WardDataset) -> Iterator[SimServer]:
        server = SimServer(self.source, clock=SimClock(NOW), seed=3)
        server.load_dataset(dataset)
        with server:
            yield server

    @pytest.fixture
    def settings(self, sim: SimServer, tmp_path: Path) -> Settings:
        spec = SPECS[self.source]
        table: dict[str, Any] = {"type": self.source, "base_url": sim.url, **spec.options,
                                 "retry_after_cap": 10, "request_deadline": 60}
        if spec.page_size:
            table["page_size"] = spec.page_size
        return parse_settings(
            {"agent": {"ward_code": "11311", "ward_name": "Phường Thạch Khôi", "timezone": TZ_NAME,
                       "id_hash_key": "conformance-key", "database_url": "sqlite:///unused.db"},
             "connectors": {self.source: table}},
            base_dir=tmp_path,
        )

    @pytest.fixture
    def sleeps(self) -> list[float]:
        return []

    def factory(self, sleeps: list[float],
                after_page: Callable[[int], None] | None = None,
                fail_after: int | None = None) -> Callable[[ConnectorSettings, ConnectorContext], Connector]:
        """Connectors whose waits are recorded instead of slept, optionally with a hook per page."""
        def make(cs: ConnectorSettings, ctx: ConnectorContext) -> Connector:
            connector = build_connector(cs, ctx)
            assert isinstance(connector, HttpConnector)
            connector.http = HttpClient(cs, sleep=sleeps.append)
            if after_page is None and fail_after is None:
                return connector
            original = connector.fetch

            def fetch(since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
                for n, page in enumerate(original(since, until), start=1):
                    yield page
                    if after_page is not None:
                        after_page(n)
                    if fail_after is not None and n >= fail_after:
                        raise TransientSourceError(f"simulated crash after page {n}")
            connector.fetch = fetch  # type: ignore[method-assign]
            return connector
        return make

    def sync(self, engine: Engine, settings: Settings, sleeps: list[float], **kw: Any) -> SyncResult:
        return sync_source(engine, settings, self.source, connector_factory=self.factory(sleeps, **kw))

    @staticmethod
    def stored(engine: Engine) -> dict[str, str]:
        with read_connection(engine) as conn:
            return dict(conn.execute(select(dossiers.c.source_id, dossiers.c.content_hash)).all())

    @staticmethod
    def cursor(engine: Engine, source: str) -> dt.datetime | None:
        with read_connection(engine) as conn:
            return get_cursor(conn, source)

    @staticmethod
    def wipe(engine: Engine) -> None:
        with write_transaction(engine) as conn:
            for table in (dossiers, quarantine, sync_cursors, sync_runs):
                conn.execute(delete(table))

    # --- the promises ---------------------------------------------------------------------------

    def test_first_sync_stores_every_record(self, engine: Engine, settings: Settings, sleeps: list[float],
                                            sim: SimServer) -> None:
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert result.inserted == len(self.stored(engine)) == len(sim.store) == RECORDS

    def test_two_syncs_in_a_row_the_second_inserts_and_changes_nothing(
        self, engine: Engine, settings: Settings, sleeps: list[float]
    ) -> None:
        first = self.sync(engine, settings, sleeps)
        before = self.stored(engine)
        second = self.sync(engine, settings, sleeps)
        assert first.ok and second.ok
        assert (second.inserted, second.updated, second.quarantined) == (0, 0, 0)
        assert self.stored(engine) == before

    def test_resuming_from_any_checkpoint_loses_nothing(
        self, engine: Engine, settings: Settings, sleeps: list[float]
    ) -> None:
        assert self.sync(engine, settings, sleeps).ok
        clean = self.stored(engine)
        pages = self._last_run_pages(engine)
        assert pages >= 2, "the data set must span several pages"
        for k in range(1, pages):
            self.wipe(engine)
            crashed = self.sync(engine, settings, sleeps, fail_after=k)
            assert crashed.status == "failed"
            assert len(self.stored(engine)) <= len(clean)
            resumed = self.sync(engine, settings, sleeps)
            assert resumed.ok, resumed.error
            assert self.stored(engine) == clean, f"resuming after page {k} lost or changed records"

    @staticmethod
    def _last_run_pages(engine: Engine) -> int:
        with read_connection(engine) as conn:
            return int(conn.execute(select(sync_runs.c.pages).order_by(sync_runs.c.id.desc())).scalars().first()
                       or 0)

    def test_duplicates_across_pages_give_one_row(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        sim.faults.set_duplicates(True)
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert result.fetched > RECORDS
        assert len(self.stored(engine)) == RECORDS

    def test_an_update_that_lands_late_within_the_lookback_is_picked_up(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer, dataset: WardDataset
    ) -> None:
        spec = SPECS[self.source]
        assert self.sync(engine, settings, sleeps).ok
        cursor = self.cursor(engine, self.source)
        assert cursor is not None
        item, updated_ts, _ = next(iter(dataset.items(self.source)))
        late = dict(item)
        spec.rename(late, "Tên thủ tục đã sửa")
        mapping = importlib.import_module(f"connectors.{self.source}.mapping")
        ctx = ConnectorContext(ward_code="11311", timezone=settings.connector(self.source).timezone,
                               hasher=_noop_hasher())
        original = dt.datetime.fromtimestamp(updated_ts, dt.UTC)
        when = max(original + dt.timedelta(seconds=1), cursor - dt.timedelta(minutes=30))
        late[spec.updated_key] = mapping.format_time(when, ctx)
        sim.add([late], visible_from=NOW)  # visible only now, though stamped before the cursor
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert result.updated == 1
        with read_connection(engine) as conn:
            name = conn.execute(select(dossiers.c.procedure_name)
                                .where(dossiers.c.source_id == str(item[spec.id_key]))).scalar_one()
        assert name == "Tên thủ tục đã sửa"

    def test_an_expired_session_is_renewed(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        if not SPECS[self.source].has_session:
            pytest.skip(f"{self.source} has no session or token")
        result = self.sync(engine, settings, sleeps, after_page=lambda n: sim.expire_sessions() if n == 1 else None)
        assert result.ok, result.error
        assert len(self.stored(engine)) == RECORDS
        logins = [r for r in sim.requests if r.kind == "login"]
        assert len(logins) >= 2

    @pytest.mark.parametrize("http_date", [False, True])
    def test_a_429_waits_as_told(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer, http_date: bool
    ) -> None:
        sim.faults.throttle_next(1, retry_after=7, http_date=http_date)
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert len(sleeps) == 1
        # an HTTP-date has one-second resolution and is read against the wall clock
        assert sleeps[0] == pytest.approx(7, abs=1.5)
        assert len(self.stored(engine)) == RECORDS

    def test_a_5xx_is_retried_then_succeeds(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        sim.faults.fail_next(2, 502)
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert len(sleeps) == 2

    def test_a_5xx_that_persists_fails_the_run_with_the_cursor_unchanged(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        assert self.sync(engine, settings, sleeps).ok
        cursor = self.cursor(engine, self.source)
        sim.faults.fail_next(1000, 503)
        result = self.sync(engine, settings, sleeps)
        assert result.status == "failed"
        assert result.error and "503" in result.error
        assert len(sleeps) == settings.connector(self.source).max_attempts - 1
        assert self.cursor(engine, self.source) == cursor

    def test_a_quarantined_record_is_kept_with_its_reason(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        sim.faults.bad_records_next(3)
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert result.quarantined == 3
        with read_connection(engine) as conn:
            rows = conn.execute(select(quarantine.c.reason, quarantine.c.raw_payload)).all()
        assert len(rows) == 3
        assert all(r.reason for r in rows)
        assert len(self.stored(engine)) == RECORDS

    def test_a_record_holding_text_no_store_keeps_is_quarantined_and_the_run_goes_on(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer, dataset: WardDataset
    ) -> None:
        spec = SPECS[self.source]
        items = [dict(item) for item, _, _ in list(dataset.items(self.source))[:3]]
        for item, tag in zip(items, ("NUL", "SUR", "LONG"), strict=True):
            item[spec.id_key] = f"{item[spec.id_key]}-{tag}"
        spec.rename(items[0], "Đăng ký\x00 khai sinh")  # PostgreSQL refuses a NUL in text
        spec.rename(items[1], "Đăng ký khai sinh \ud83d")  # half an emoji, cut by a UTF-16 count
        items[2][spec.id_key] = "H" * 200  # longer than the store's source id
        sim.add(items)
        result = self.sync(engine, settings, sleeps)
        assert result.ok, result.error
        assert result.quarantined == 3
        assert len(self.stored(engine)) == RECORDS
        with read_connection(engine) as conn:
            reasons = sorted(conn.execute(select(quarantine.c.reason)).scalars())
        assert reasons == ["procedure_name holds \\ud83d, which is not Unicode text (half a character, or a "
                           "byte that is not UTF-8)",
                           "procedure_name holds a NUL character (U+0000), which the store cannot keep",
                           "source_id is 200 characters long, longer than the 128 the store keeps"]

    def test_no_id_number_is_stored_in_clear(
        self, engine: Engine, settings: Settings, sleeps: list[float], sim: SimServer
    ) -> None:
        sim.faults.bad_records_next(2)
        assert self.sync(engine, settings, sleeps).ok
        with read_connection(engine) as conn:
            payloads = [*conn.execute(select(dossiers.c.raw_payload)).scalars(),
                        *conn.execute(select(quarantine.c.raw_payload)).scalars()]
        assert payloads
        leaks = [m.group(0) for p in payloads for m in ID_SHAPED.finditer(p)]
        assert not leaks, [p for p in payloads if ID_SHAPED.search(p)][:2]


def _noop_hasher() -> Any:
    from sync_agent.privacy import IdHasher
    return IdHasher("unused")
