"""The four connectors end to end against minimal fakes: paging over data that changes while
it is read, checkpoints, auth renewal and refusal."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from structlog.testing import capture_logs

from connectors.base import ConnectorContext
from connectors.civil_status.connector import CivilStatusConnector
from connectors.household_business import connector as hkd_module
from connectors.household_business.connector import HouseholdBusinessConnector
from connectors.http import HttpClient
from connectors.one_stop.connector import OneStopConnector
from connectors.residence.connector import ResidenceConnector
from sync_agent.config import parse_settings
from sync_agent.errors import ConfigError, FatalSourceError, SessionExpired, TransientSourceError
from sync_agent.model import Page
from sync_agent.sync import sync_source

from . import samples
from .conftest import TZ, FakeClock, make_settings
from .fakehttp import FakeServer, Request
from .fakesources import CivilStatusFake, HouseholdBusinessFake, OneStopFake, ResidenceFake

BASE = dt.datetime(2026, 1, 20, 8, 0, tzinfo=TZ)
SINCE = BASE - dt.timedelta(hours=1)
UNTIL = BASE + dt.timedelta(days=1)
AFTER_UNTIL = UNTIL + dt.timedelta(minutes=5)
ClientFor = Callable[..., HttpClient]


def minutes(n: float) -> dt.datetime:
    return BASE + dt.timedelta(minutes=n)


def ids(pages: list[Page]) -> set[str]:
    return {r.source_id for p in pages for r in p.records}


def check_checkpoints(pages: list[Page], until: dt.datetime = UNTIL) -> None:
    marks = [p.checkpoint for p in pages if p.checkpoint is not None]
    assert marks == sorted(marks), "checkpoints must never go back"
    assert all(m <= until for m in marks), "no checkpoint beyond until"
    assert pages[-1].checkpoint == until


def check_coverage(pages: list[Page], times: dict[str, dt.datetime], since: dt.datetime = SINCE) -> None:
    """Resuming from any checkpoint loses nothing: every record updated before a page's
    checkpoint was yielded by that page or an earlier one."""
    for n, page in enumerate(pages):
        if page.checkpoint is None:
            continue
        seen = ids(pages[: n + 1])
        missing = {i for i, t in times.items() if since <= t < page.checkpoint and i not in seen}
        assert not missing, f"page {n} checkpoint {page.checkpoint} claims {missing}"


@pytest.fixture
def started() -> Iterator[Callable[[Callable[[Request], Any]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(handler: Callable[[Request], Any]) -> FakeServer:
        server = FakeServer(handler).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


# --- one_stop --------------------------------------------------------------------------------


def os_fmt(moment: dt.datetime) -> str:
    return moment.astimezone(TZ).strftime("%Y%m%d%H%M%S")


def os_items(times: list[dt.datetime]) -> list[dict[str, Any]]:
    return [samples.one_stop(MaHoSo=f"HS{n:04d}", NgayCapNhat=os_fmt(t)) for n, t in enumerate(times)]


def one_stop(url: str, context: ConnectorContext, client_for: ClientFor, **settings: Any) -> OneStopConnector:
    s = make_settings(
        url, name="one_stop", type="one_stop", options={"username": "tiepnhan", "password": "mk"}, **settings
    )
    return OneStopConnector(s, context, http=client_for(s))


def naive_one_stop_read(fake: OneStopFake, size: int) -> set[str]:
    """What a plain page-number loop would get: the failure the keyset emulation prevents."""
    login = fake(
        Request("POST", "/dangnhap", {}, {}, json.dumps({"username": "tiepnhan", "password": "mk"}).encode())
    )
    seen: set[str] = set()
    page = 1
    while True:
        body = {
            "session": login.body["session"],
            "madonvi": "11311",
            "service": "LayDanhSachHoSo",
            "TuNgay": os_fmt(SINCE),
            "DenNgay": os_fmt(UNTIL),
            "TrangSo": page,
            "SoBanGhi": size,
        }
        data = fake(Request("POST", "/dichvu", {}, {}, json.dumps(body).encode())).body["data"]
        seen |= {d["MaHoSo"] for d in data}
        if len(data) < size:
            return seen
        page += 1


def _move_second_record_after_first_page(fake: OneStopFake) -> None:
    def hook(call: int) -> None:
        if call == 2:
            fake.items[1]["NgayCapNhat"] = os_fmt(AFTER_UNTIL)

    fake.before_data = hook


def test_one_stop_a_record_updated_mid_run_skips_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    items = os_items([minutes(i) for i in range(10)])
    all_ids = {i["MaHoSo"] for i in items}
    naive = OneStopFake(os_items([minutes(i) for i in range(10)]))
    _move_second_record_after_first_page(naive)
    assert len(naive_one_stop_read(naive, 3)) == 9  # the fake really does shift records

    fake = OneStopFake(items)
    _move_second_record_after_first_page(fake)
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == all_ids
    check_checkpoints(pages)


def test_one_stop_pages_shorter_than_asked_for_end_the_read_only_when_the_total_says_so(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(11)]
    fake = OneStopFake(os_items(times), cap=4)  # documents 1000 a page, sends at most 4
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=10).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(11)}
    assert [p.checkpoint for p in pages] == [minutes(3), minutes(6), minutes(9), UNTIL]
    check_coverage(pages, {f"HS{n:04d}": t for n, t in enumerate(times)})


def test_one_stop_capped_pages_that_share_one_timestamp_lose_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(0)] * 6 + [minutes(i) for i in range(1, 6)]  # the page number must advance
    fake = OneStopFake(os_items(times), cap=4)
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=10).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(11)}
    check_checkpoints(pages)


def test_one_stop_a_record_updated_while_one_second_takes_several_pages_skips_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # ten records of one second, pages of 4: once the read has moved to that second (second
    # request), it goes by page number. Between that second's pages 1 and 2 a record of page 1
    # is updated: it moves to the end, the records behind it move up one, and the fifth
    # crosses into page 1, already read
    times = [minutes(1)] * 10 + [minutes(2), minutes(3)]
    fake = OneStopFake(os_items(times))

    def update_after_first_page(call: int) -> None:
        if call == 3:
            fake.items[1]["NgayCapNhat"] = os_fmt(minutes(4))

    fake.before_data = update_after_first_page
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=4).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(12)}
    check_checkpoints(pages)


def test_one_stop_a_second_whose_records_keep_moving_fails_the_run_with_the_checkpoint_before_it(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(1)] * 10 + [minutes(2)]
    fake = OneStopFake(os_items(times))
    fake.before_data = lambda call: fake.items.append(  # every read of that second finds another
        samples.one_stop(MaHoSo=f"MOI{call:03d}", NgayCapNhat=os_fmt(minutes(1))))
    server = started(fake)
    pages = []
    with pytest.raises(TransientSourceError, match="kept moving over 4 reads"):
        for page in one_stop(server.url, context, client_for, page_size=4).fetch(SINCE, UNTIL):
            pages.append(page)
    assert max(p.checkpoint for p in pages if p.checkpoint) == minutes(1)  # the next run starts there


def test_one_stop_a_page_longer_than_asked_for_is_not_taken_for_the_whole_total(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(8)]
    fake = OneStopFake(os_items(times))
    # broken copies sent along with the first page, which TongSoBanGhi does not count
    fake.extra = [samples.one_stop(MaHoSo=f"LOI{n}", NgayCapNhat=os_fmt(minutes(1)), TrangThaiHoSo="??")
                  for n in range(5)]
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=5).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(8)}
    assert sum(len(p.quarantined) for p in pages) == 5


def test_one_stop_a_capped_server_with_uncounted_broken_copies_loses_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # six records, pages capped at 4, and two broken copies with the first page: six items
    # arrive on the first page, as many as the total, yet two records are still to come
    times = [minutes(i) for i in range(6)]
    fake = OneStopFake(os_items(times), cap=4)
    fake.extra = [samples.one_stop(MaHoSo=f"LOI{n}", NgayCapNhat=os_fmt(minutes(1)), TrangThaiHoSo="??")
                  for n in range(2)]
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=10).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(6)}
    check_coverage(pages, {f"HS{n:04d}": t for n, t in enumerate(times)})


def test_one_stop_a_capped_server_with_an_uncounted_duplicate_under_one_timestamp_loses_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # nine records of one minute, pages capped at 4. The first answer moves the read to that
    # minute; a copy of its first record comes with the next one: from that minute on, nine
    # items arrive by the second page, but only eight records
    times = [minutes(1)] * 9
    items = os_items(times)
    fake = OneStopFake(items, cap=4)
    fake.extra, fake.extra_on = [dict(items[0])], 2
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=10).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(9)}
    check_checkpoints(pages)


def test_one_stop_keyset_requests_and_checkpoints(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(7)]
    fake = OneStopFake(os_items(times))
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    bodies = [r.json() for r in fake.data_requests]
    # the third answer's TongSoBanGhi (3) says it is the last page: no fourth request
    assert [(b["TuNgay"], b["TrangSo"]) for b in bodies] == [
        (os_fmt(SINCE), 1),
        (os_fmt(minutes(2)), 1),
        (os_fmt(minutes(4)), 1),
    ]
    first = bodies[0]
    assert first["madonvi"] == "11311" and first["DenNgay"] == os_fmt(UNTIL) and first["SoBanGhi"] == 3
    assert first["session"] == "S1"
    assert [p.checkpoint for p in pages] == [minutes(2), minutes(4), UNTIL]
    check_coverage(pages, {f"HS{n:04d}": t for n, t in enumerate(times)})


def test_one_stop_a_page_sharing_one_timestamp_advances_the_page_number(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(1)] * 7 + [minutes(2)] * 4 + [minutes(3)]
    fake = OneStopFake(os_items(times))
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HS{n:04d}" for n in range(len(times))}
    pages_asked = [(r.json()["TuNgay"], r.json()["TrangSo"]) for r in fake.data_requests]
    assert (os_fmt(minutes(1)), 2) in pages_asked and (os_fmt(minutes(1)), 3) in pages_asked
    check_checkpoints(pages)
    check_coverage(pages, {f"HS{n:04d}": t for n, t in enumerate(times)})


def test_one_stop_duplicates_within_a_page_are_kept_once_as_last_seen(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    items = os_items([minutes(1), minutes(2)])
    items.append({**items[0], "TrangThaiHoSo": "9", "NgayKetThucXuLy": os_fmt(minutes(3))})
    server = started(OneStopFake(items))
    pages = list(one_stop(server.url, context, client_for).fetch(SINCE, UNTIL))
    records = pages[0].records  # the source counts three: the read goes on from minute 2 to be sure
    assert len(records) == 2
    assert next(r for r in records if r.source_id == "HS0000").status.value == "resolved"
    assert ids(pages) == {"HS0000", "HS0001"}


def test_one_stop_expired_session_logs_in_again_once(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = OneStopFake(os_items([minutes(i) for i in range(5)]))
    fake.before_data = lambda call: fake.sessions.clear() if call == 1 else None
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for, page_size=2).fetch(SINCE, UNTIL))
    assert len(ids(pages)) == 5
    assert fake.logins == 2 and fake.expired_answers == 1


def test_one_stop_session_refused_after_a_new_login_raises_session_expired(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = OneStopFake(os_items([minutes(1)]))
    fake.accept_sessions = False
    server = started(fake)
    with pytest.raises(SessionExpired):
        list(one_stop(server.url, context, client_for).fetch(SINCE, UNTIL))
    assert fake.logins == 2


def test_one_stop_session_is_renewed_before_it_runs_out(
    started: Any, context: ConnectorContext, client_for: ClientFor, clock: FakeClock
) -> None:
    fake = OneStopFake(os_items([minutes(i) for i in range(4)]), expires_in=100)
    server = started(fake)
    connector = one_stop(server.url, context, client_for, page_size=2)
    connector.read_ahead = False  # the clock jumps between pages, with no request in flight
    pages = connector.fetch(SINCE, UNTIL)
    next(pages)
    clock.advance(95)  # past 90 % of the session's life
    list(pages)
    assert fake.logins == 2 and fake.expired_answers == 0


def test_one_stop_bad_credentials_are_fatal(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    server = started(OneStopFake([]))
    s = make_settings(
        server.url, name="one_stop", type="one_stop", options={"username": "x", "password": "y"}
    )
    connector = OneStopConnector(s, context, http=client_for(s))
    with pytest.raises(FatalSourceError, match="error_code 401"):
        connector.login()
    with pytest.raises(FatalSourceError):
        list(connector.fetch(SINCE, UNTIL))


def test_one_stop_whole_history_starts_in_the_far_past_or_at_start_date(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = OneStopFake([])
    server = started(fake)
    pages = list(one_stop(server.url, context, client_for).fetch(None, UNTIL))
    assert fake.data_requests[0].json()["TuNgay"] == "19700101000000"
    assert pages[-1].checkpoint == UNTIL
    list(one_stop(server.url, context, client_for, start_date=dt.date(2025, 6, 1)).fetch(None, UNTIL))
    assert fake.data_requests[1].json()["TuNgay"] == "20250601000000"


def test_one_stop_bad_records_are_quarantined_not_raised(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    items = os_items([minutes(1), minutes(2), minutes(3)])
    items[1]["TrangThaiHoSo"] = "99"
    items[2]["NgayTiepNhan"] = "hôm qua"
    server = started(OneStopFake(items))
    pages = list(one_stop(server.url, context, client_for).fetch(SINCE, UNTIL))
    assert ids(pages) == {"HS0000"}
    # the source counts three records and only one is well formed: the read makes sure of the
    # last minute, and meets the bad record there again (the store keeps one copy of it)
    reasons = sorted({q.reason for p in pages for q in p.quarantined})
    assert reasons == [
        "field NgayTiepNhan: 'hôm qua' is not a date in the form yyyyMMddHHmmss",
        "field TrangThaiHoSo: unknown code '99'",
    ]


def test_a_run_counts_each_bad_record_once_though_the_read_meets_it_twice(
    started: Any, engine: Engine, tmp_path: Path
) -> None:
    # TongSoBanGhi counts three and one is well formed: the read makes sure of the last minute
    # and meets both bad records there again
    items = os_items([minutes(1), minutes(2), minutes(2)])
    items[1]["TrangThaiHoSo"], items[2]["TrangThaiHoSo"] = "99", "98"
    fake = OneStopFake(items)
    server = started(fake)
    settings = parse_settings(
        {"agent": {"ward_code": "11311", "ward_name": "P", "id_hash_key": "k", "database_url": "sqlite:///x.db"},
         "connectors": {"one_stop": {"type": "one_stop", "base_url": server.url, "username": "tiepnhan",
                                     "password": "mk", "start_date": "2026-01-01"}}},
        base_dir=tmp_path)
    result = sync_source(engine, settings, "one_stop", clock=lambda: UNTIL.astimezone(dt.UTC))
    assert result.ok, result.error
    assert result.fetched > 3  # it did meet them more than once
    assert (result.inserted, result.quarantined) == (1, 2)


def test_nothing_to_read_when_since_is_not_before_until(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = OneStopFake([])
    server = started(fake)
    assert list(one_stop(server.url, context, client_for).fetch(UNTIL, UNTIL)) == []
    assert fake.logins == 0


def test_a_missing_required_option_names_its_key(context: ConnectorContext) -> None:
    s = make_settings(name="one_stop", type="one_stop", options={"username": "u"})
    with pytest.raises(ConfigError, match=r"connectors\.one_stop\.password"):
        OneStopConnector(s, context).login()


# --- civil_status ----------------------------------------------------------------------------


def cs_fmt(moment: dt.datetime) -> str:
    return moment.astimezone(TZ).strftime("%d/%m/%Y %H:%M:%S")


def cs_items(times: list[dt.datetime]) -> list[dict[str, Any]]:
    return [samples.civil_status(maHoSo=f"HT{n:04d}", ngayCapNhat=cs_fmt(t)) for n, t in enumerate(times)]


def civil(
    url: str, context: ConnectorContext, client_for: ClientFor, **settings: Any
) -> CivilStatusConnector:
    options = {"client_id": "phuong", "client_secret": "bi-mat", **settings.pop("options", {})}
    s = make_settings(url, name="civil_status", type="civil_status", options=options, **settings)
    return CivilStatusConnector(s, context, http=client_for(s))


def test_civil_status_a_record_updated_while_one_second_takes_several_pages_skips_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # as for one_stop: the second request reads that second's page 0, and a record of it is
    # updated before page 1 is asked for
    times = [minutes(1)] * 10 + [minutes(2), minutes(3)]
    fake = CivilStatusFake(cs_items(times))

    def update_after_first_page(call: int) -> None:
        if call == 3:
            fake.items[1]["ngayCapNhat"] = cs_fmt(minutes(4))

    fake.before_data = update_after_first_page
    server = started(fake)
    pages = list(civil(server.url, context, client_for, page_size=4).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HT{n:04d}" for n in range(12)}
    check_checkpoints(pages)


def test_civil_status_pages_shorter_than_asked_for_end_the_read_only_when_the_totals_say_so(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(11)]
    fake = CivilStatusFake(cs_items(times), cap=4)
    server = started(fake)
    pages = list(civil(server.url, context, client_for, page_size=10).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HT{n:04d}" for n in range(11)}
    check_checkpoints(pages)
    check_coverage(pages, {f"HT{n:04d}": t for n, t in enumerate(times)})


def test_civil_status_a_record_updated_mid_run_skips_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(9)] + [minutes(9)] * 5
    fake = CivilStatusFake(cs_items(times))

    def hook(call: int) -> None:
        if call == 2:
            fake.items[0]["ngayCapNhat"] = cs_fmt(AFTER_UNTIL)
        if call == 4:
            fake.items[5]["ngayCapNhat"] = cs_fmt(AFTER_UNTIL)

    fake.before_data = hook
    server = started(fake)
    pages = list(civil(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"HT{n:04d}" for n in range(len(times))}
    check_checkpoints(pages)
    first = fake.data_requests[0].query
    assert first == {
        "maDonVi": "11311",
        "tuNgay": cs_fmt(SINCE),
        "denNgay": cs_fmt(UNTIL),
        "page": "0",
        "size": "3",
    }
    assert {r.query["page"] for r in fake.data_requests} >= {"0", "1"}  # the same-time block was paged


def test_civil_status_a_401_gets_a_new_token_and_repeats_once(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = CivilStatusFake(cs_items([minutes(i) for i in range(4)]))
    fake.before_data = lambda call: fake.tokens.clear() if call == 1 else None
    server = started(fake)
    pages = list(civil(server.url, context, client_for, page_size=2).fetch(SINCE, UNTIL))
    assert len(ids(pages)) == 4
    assert fake.issued == 2 and fake.refused == 1


def test_civil_status_token_refused_again_raises_session_expired(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = CivilStatusFake(cs_items([minutes(1)]))
    server = started(fake)
    connector = civil(server.url, context, client_for)
    fake.accept_tokens = False
    with pytest.raises(SessionExpired):
        list(connector.fetch(SINCE, UNTIL))
    assert fake.issued == 2


def test_civil_status_token_is_renewed_before_it_expires(
    started: Any, context: ConnectorContext, client_for: ClientFor, clock: FakeClock
) -> None:
    fake = CivilStatusFake(cs_items([minutes(i) for i in range(4)]), expires_in=300)
    server = started(fake)
    connector = civil(server.url, context, client_for, page_size=2)
    connector.read_ahead = False  # the clock jumps between pages, with no request in flight
    pages = connector.fetch(SINCE, UNTIL)
    next(pages)
    clock.advance(275)  # within the last 10 % of the token's life
    list(pages)
    assert fake.issued == 2 and fake.refused == 0


def test_civil_status_bad_client_credentials_are_fatal(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    server = started(CivilStatusFake([]))
    connector = civil(server.url, context, client_for, options={"client_secret": "sai"})
    with pytest.raises(FatalSourceError, match="401"):
        connector.login()


def test_civil_status_field_options_reach_the_records(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    server = started(CivilStatusFake(cs_items([minutes(1)])))
    connector = civil(
        server.url, context, client_for, options={"field_code": "HT", "field_name": "Hộ tịch (HT)"}
    )
    (record,) = [r for p in connector.fetch(SINCE, UNTIL) for r in p.records]
    assert (record.field_code, record.field_name, record.source) == ("HT", "Hộ tịch (HT)", "civil_status")


def test_civil_status_an_error_status_is_fatal(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = CivilStatusFake([])
    inner = fake.__call__

    def handler(request: Request) -> Any:
        reply = inner(request)
        if request.path == "/api/hotich/hoso":
            return type(reply)(200, {"status": "0", "message": "Lỗi hệ thống"})
        return reply

    server = started(handler)
    with pytest.raises(FatalSourceError, match="status 0: Lỗi hệ thống"):
        list(civil(server.url, context, client_for).fetch(SINCE, UNTIL))


# --- residence -------------------------------------------------------------------------------


def rs_items(times: list[dt.datetime]) -> list[dict[str, Any]]:
    return [samples.residence(id=f"CT{n:04d}", updated_at=t.isoformat()) for n, t in enumerate(times)]


def residence(
    url: str, context: ConnectorContext, client_for: ClientFor, **settings: Any
) -> ResidenceConnector:
    options = {"api_key": "khoa", **settings.pop("options", {})}
    s = make_settings(url, name="residence", type="residence", options=options, **settings)
    return ResidenceConnector(s, context, http=client_for(s))


def test_residence_follows_the_cursor_and_stops_at_until(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [SINCE, *[minutes(i) for i in range(7)], AFTER_UNTIL, AFTER_UNTIL + dt.timedelta(hours=1)]
    fake = ResidenceFake(rs_items(times))
    server = started(fake)
    pages = list(residence(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    # the record updated exactly at since is in: updated_after is exclusive
    assert ids(pages) == {f"CT{n:04d}" for n in range(8)}
    assert len(fake.data_requests) == 3  # the third page reaches past until: no fourth request
    first = fake.data_requests[0].query
    assert first == {"unit": "11311", "updated_after": "2026-01-20T06:59:59+07:00", "limit": "3"}
    assert "cursor" in fake.data_requests[1].query
    assert [p.checkpoint for p in pages] == [minutes(1), minutes(4), UNTIL]
    check_coverage(pages, {f"CT{n:04d}": t for n, t in enumerate(times)})


def test_residence_an_empty_page_with_a_cursor_is_not_the_end(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(7)]
    fake = ResidenceFake(rs_items(times), empty_on=frozenset({2}))
    server = started(fake)
    pages = list(residence(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"CT{n:04d}" for n in range(7)}
    assert len(fake.data_requests) == 4  # 3 records, none (a cursor all the same), 3, the last one
    assert [p.checkpoint for p in pages] == [minutes(2), minutes(2), minutes(5), UNTIL]
    check_coverage(pages, {f"CT{n:04d}": t for n, t in enumerate(times)})


def test_residence_a_long_stretch_filtered_to_nothing_is_crossed(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # fourteen empty pages in a row, each with a new cursor, then the rest of the records
    times = [minutes(i) for i in range(7)]
    fake = ResidenceFake(rs_items(times), empty_on=frozenset(range(2, 16)))
    server = started(fake)
    pages = list(residence(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"CT{n:04d}" for n in range(7)}
    assert len(fake.data_requests) == 1 + 14 + 2
    assert pages[-1].checkpoint == UNTIL
    check_coverage(pages, {f"CT{n:04d}": t for n, t in enumerate(times)})


def test_residence_a_source_that_hands_back_the_cursor_it_was_sent_has_nothing_more(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(5)]
    fake = ResidenceFake(rs_items(times), tail=True)
    server = started(fake)
    pages = list(residence(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"CT{n:04d}" for n in range(5)}
    assert pages[-1].checkpoint == UNTIL


def test_residence_a_source_that_never_stops_giving_new_cursors_fails_its_run_with_its_records_kept(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(5)]
    fake = ResidenceFake(rs_items(times), tail=True, fresh_tail=True)
    server = started(fake)
    pages = []
    read = residence(server.url, context, client_for, page_size=3, options={"max_empty_pages": 20})
    with pytest.raises(FatalSourceError, match=r"20 empty pages in a row.*connectors\.residence\.max_empty_pages"):
        for page in read.fetch(SINCE, UNTIL):
            pages.append(page)
    assert ids(pages) == {f"CT{n:04d}" for n in range(5)}
    assert len(fake.data_requests) == 2 + 20
    assert max(p.checkpoint for p in pages if p.checkpoint) == minutes(4)  # not until: the next run starts there


def test_residence_a_cursor_given_again_is_a_loop(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [minutes(i) for i in range(7)]
    fake = ResidenceFake(rs_items(times), loop_on=3)
    server = started(fake)
    with pytest.raises(FatalSourceError, match="cursor it had given before"):
        list(residence(server.url, context, client_for, page_size=3).fetch(SINCE, UNTIL))
    assert len(fake.data_requests) == 3


def test_residence_429_retry_after_is_honoured(
    started: Any, context: ConnectorContext, client_for: ClientFor, clock: FakeClock
) -> None:
    fake = ResidenceFake(rs_items([minutes(1)]), busy=2)
    server = started(fake)
    pages = list(residence(server.url, context, client_for).fetch(SINCE, UNTIL))
    assert ids(pages) == {"CT0000"}
    assert clock.sleeps == [2.0, 2.0]


def test_residence_a_wrong_key_is_fatal(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    server = started(ResidenceFake([]))
    connector = residence(server.url, context, client_for, options={"api_key": "sai"})
    with pytest.raises(FatalSourceError, match="403"):
        connector.login()
    assert len(server.requests) == 1  # not retried


def test_residence_records_updated_mid_run_are_read_once_more_not_lost(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    fake = ResidenceFake(rs_items([minutes(i) for i in range(6)]))
    fake.before_data = lambda call: (
        fake.items[0].update(updated_at=minutes(30).isoformat()) if call == 2 else None
    )
    server = started(fake)
    pages = list(residence(server.url, context, client_for, page_size=2).fetch(SINCE, UNTIL))
    assert ids(pages) == {f"CT{n:04d}" for n in range(6)}
    latest = [r for p in pages for r in p.records if r.source_id == "CT0000"][-1]
    assert latest.source_updated_at == minutes(30)


# --- household_business ----------------------------------------------------------------------


def hk_fmt(moment: dt.datetime) -> str:
    return moment.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")


def hk_items(times: list[dt.datetime]) -> list[dict[str, Any]]:
    return [
        samples.household_business(MaHoSo=f"HKD{n:05d}", NgayCapNhat=hk_fmt(t)) for n, t in enumerate(times)
    ]


def hk_items_with_a_twin() -> list[dict[str, Any]]:
    """99 records of day 0 from 8:00, one a minute; the source lists HKD00010 (8:10, page 1) a
    second time at 11:00 (page 2)."""
    items = hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(99)])
    items.append({**items[10], "NgayCapNhat": hk_fmt(day(0, 11))})
    return items


def household(
    url: str, context: ConnectorContext, client_for: ClientFor, **settings: Any
) -> HouseholdBusinessConnector:
    options = {"username": "phuong-11311", "password": "mk", **settings.pop("options", {})}
    s = make_settings(url, name="household_business", type="household_business", options=options, **settings)
    return HouseholdBusinessConnector(s, context, http=client_for(s))


def day(n: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 10 + n, hour, minute, tzinfo=TZ)


def test_household_business_reads_past_days_then_the_last_day(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    since, until = day(0, 0), day(3, 12)
    times = [day(d, 8) + dt.timedelta(minutes=m) for d in range(4) for m in range(60)] + [day(3, 13)]
    fake = HouseholdBusinessFake(hk_items(times))
    server = started(fake)
    pages = list(household(server.url, context, client_for, page_size=10).fetch(since, until))
    assert ids(pages) == {f"HKD{n:05d}" for n, t in enumerate(times) if t < until}
    windows = [(r.query["tuNgay"], r.query["denNgay"], r.query["trang"]) for r in fake.data_requests]
    assert windows == [
        ("2026-01-10", "2026-01-12", "1"),
        ("2026-01-10", "2026-01-12", "2"),
        ("2026-01-10", "2026-01-12", "3"),
        ("2026-01-10", "2026-01-12", "4"),
        *(("2026-01-10", "2026-01-12", str(n)) for n in range(1, 5)),  # read again to settle it
        ("2026-01-13", "2026-01-13", "1"),
        ("2026-01-13", "2026-01-13", "2"),
        ("2026-01-13", "2026-01-13", "1"),
        ("2026-01-13", "2026-01-13", "2"),
    ]
    assert fake.data_requests[0].query["maPhuongXa"] == "11311"
    assert [p.checkpoint for p in pages] == [None, None, None, None, day(3, 0), day(3, 0), day(3, 0), until]
    check_checkpoints(pages, until)
    check_coverage(pages, {f"HKD{n:05d}": t for n, t in enumerate(times)}, since)


def naive_hkd_read(fake: HouseholdBusinessFake, d1: str, d2: str) -> set[str]:
    seen: set[str] = set()
    trang = 1
    auth = "Basic " + base64.b64encode(b"phuong-11311:mk").decode()
    while True:
        q = {"maPhuongXa": "11311", "tuNgay": d1, "denNgay": d2, "trang": str(trang)}
        body = fake(Request("GET", "/apiDKKD/HoKinhDoanh/danhSachHoSo", q, {"Authorization": auth}, b"")).body
        seen |= {h["MaHoSo"] for h in body["HoSo"]}
        if len(body["HoSo"]) < 50:
            return seen
        trang += 1


def hkd_update_after_first_page(fake: HouseholdBusinessFake, to: dt.datetime) -> None:
    """Between the first and the second request, the fourth record is updated at ``to``."""
    def hook(call: int) -> None:
        if call == 2:
            fake.items[3]["NgayCapNhat"] = hk_fmt(to)

    fake.before_data = hook


def test_household_business_a_window_whose_total_changed_is_read_again(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    since, until = day(0, 0), day(2, 12)
    times = [day(d, 8) + dt.timedelta(minutes=m) for d in range(2) for m in range(60)] + [day(2, 9)]

    def moving(fake: HouseholdBusinessFake) -> None:  # between page 1 and page 2 of the past-days window
        hkd_update_after_first_page(fake, day(2, 15))  # updated "now", after until

    naive = HouseholdBusinessFake(hk_items(times))
    moving(naive)
    assert len(naive_hkd_read(naive, "2026-01-10", "2026-01-11")) == 119  # one really is skipped

    fake = HouseholdBusinessFake(hk_items(times))
    moving(fake)
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(since, until))
    assert ids(pages) == {f"HKD{n:05d}" for n in range(len(times))}
    past = [r.query["trang"] for r in fake.data_requests if r.query["denNgay"] == "2026-01-11"]
    assert past == ["1", "2", "3"] * 3  # read, total changed, read again, and alike once more
    check_checkpoints(pages, until)
    # the first read of the window must not have moved the checkpoint past it
    assert [p.checkpoint for p in pages[:3]] == [None, None, None]


def test_household_business_a_record_leaving_as_a_late_one_lands_is_not_lost(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    """Between page 1 and page 2 of a range of past days, a record read on page 1 is updated
    (it leaves the range) and a late update lands in the range behind the boundary: TongSo
    holds, nothing comes twice, and the record that crossed onto page 1 was never read."""
    since, until = day(0, 0), day(2, 12)
    times = [day(1, 8) + dt.timedelta(minutes=m) for m in range(60)]

    def moving(fake: HouseholdBusinessFake) -> None:
        def hook(call: int) -> None:
            if call == 2:
                fake.items[0]["NgayCapNhat"] = hk_fmt(day(2, 9))
                fake.items.append(samples.household_business(MaHoSo="LATE", NgayCapNhat=hk_fmt(day(1, 17))))
        fake.before_data = hook

    naive = HouseholdBusinessFake(hk_items(times))
    moving(naive)
    assert len(naive_hkd_read(naive, "2026-01-10", "2026-01-11")) == 60  # 61 there, HKD00050 skipped

    fake = HouseholdBusinessFake(hk_items(times))
    moving(fake)
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(since, until))
    assert ids(pages) == {f"HKD{n:05d}" for n in range(len(times))} | {"LATE"}
    past = [r.query["trang"] for r in fake.data_requests if r.query["denNgay"] == "2026-01-11"]
    assert past == ["1", "2", "1", "2", "1", "2", "1", "2"]  # read, not alike, read, alike
    assert [p.checkpoint for p in pages[:2]] == [None, None]  # the first read moved nothing
    check_checkpoints(pages, until)


def test_household_business_the_day_still_running_is_read_once_whatever_is_filed_meanwhile(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No record can leave a day that has not ended (an update keeps it in the day, and shows as
    a move): a TongSo that grows is filings that came meanwhile, which skip nothing. Taken for a
    change, or met by a second read, they failed the runs of a busy day."""
    until = day(0, 12)
    monkeypatch.setattr(hkd_module, "_now", lambda tz: until + dt.timedelta(minutes=1))
    fake = HouseholdBusinessFake(hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(60)]))

    def filing(call: int) -> None:  # before every request: TongSo changes between the pages too
        fake.items.append(samples.household_business(MaHoSo=f"NEW{call}", NgayCapNhat=hk_fmt(day(0, 12, call))))
    fake.before_data = filing
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 60
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2"]
    assert pages[-1].checkpoint == until
    check_checkpoints(pages, until)


def test_household_business_a_record_moving_within_the_day_still_running_is_read_again(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = day(0, 12)
    monkeypatch.setattr(hkd_module, "_now", lambda tz: until + dt.timedelta(minutes=1))
    times = [day(0, 8) + dt.timedelta(minutes=m) for m in range(120)]
    fake = HouseholdBusinessFake(hk_items(times))
    hkd_update_after_first_page(fake, day(0, 11, 30))
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert ids(pages) == {f"HKD{n:05d}" for n in range(len(times))}
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "3", "1", "2", "3"]  # moved: again


def test_household_business_a_day_that_ended_during_the_read_is_read_twice(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = day(0, 23, 59)
    monkeypatch.setattr(hkd_module, "_now", lambda tz: day(1, 0, 1))
    fake = HouseholdBusinessFake(hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(60)]))
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 60
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "1", "2"]
    assert pages[-1].checkpoint == until


def test_household_business_a_window_of_one_page_is_read_once(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    since, until = day(0, 0), day(2, 12)
    fake = HouseholdBusinessFake(hk_items([day(0, 8), day(1, 8), day(2, 8)]))
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(since, until))
    assert len(ids(pages)) == 3
    assert [(r.query["denNgay"], r.query["trang"]) for r in fake.data_requests] == [
        ("2026-01-11", "1"), ("2026-01-12", "1")]
    assert [p.checkpoint for p in pages] == [day(2, 0), until]


def test_household_business_a_record_updated_within_the_day_being_read_skips_nothing(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    until = day(0, 12)
    times = [day(0, 8) + dt.timedelta(minutes=m) for m in range(120)]

    def moving(fake: HouseholdBusinessFake) -> None:  # it stays in the day, so TongSo stays 120
        hkd_update_after_first_page(fake, day(0, 11, 30))

    naive = HouseholdBusinessFake(hk_items(times))
    moving(naive)
    assert len(naive_hkd_read(naive, "2026-01-10", "2026-01-10")) == 119  # one really is skipped

    fake = HouseholdBusinessFake(hk_items(times))
    moving(fake)
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert ids(pages) == {f"HKD{n:05d}" for n in range(len(times))}
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "3"] * 3
    assert [p.checkpoint for p in pages[:3]] == [None, None, None]  # the first read moved nothing
    check_checkpoints(pages, until)


def test_household_business_a_record_delivered_twice_unchanged_is_not_a_change(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    until = day(0, 12)
    items = hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(99)])
    items.append(dict(items[49]))  # a duplicate: the last of page 1 comes again first on page 2
    fake = HouseholdBusinessFake(items)
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 99
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "1", "2"]  # read, and alike again
    assert pages[-1].checkpoint == until


def test_household_business_a_record_listed_twice_on_one_page_is_not_a_change(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    until = day(0, 12)
    items = hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(99)])
    items.append({**items[10], "NgayCapNhat": hk_fmt(day(0, 8, 11))})  # the same MaHoSo, another time
    fake = HouseholdBusinessFake(items)
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 99
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "1", "2"]  # read, and alike again
    assert pages[-1].checkpoint == until


def test_household_business_a_record_listed_twice_on_two_pages_does_not_stop_every_run(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # the source holds two rows for one MaHoSo, 8:10 (page 1) and 11:00 (page 2), and nothing
    # moves: the first read looks like a move, the second read is the same record by record
    until = day(0, 12)
    items = hk_items_with_a_twin()
    fake = HouseholdBusinessFake(items)
    server = started(fake)
    with capture_logs() as logs:
        pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 99
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "1", "2"]  # read twice, alike
    assert pages[-1].checkpoint == until
    warned = [e for e in logs if e["event"] == "source_lists_a_record_twice"]
    assert [(e["log_level"], e["source_ids"]) for e in warned] == [("warning", ["HKD00010"])]


def test_household_business_a_record_listed_twice_on_a_busy_day_still_running_does_not_fail_the_run(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same two rows for one MaHoSo as above, on the day still running while filings come in
    # before every request: no two reads are alike, but the twin is the same in each, which a
    # record that really moved (updated again later) never is
    until = day(0, 12)
    monkeypatch.setattr(hkd_module, "_now", lambda tz: until + dt.timedelta(minutes=1))
    items = hk_items_with_a_twin()
    fake = HouseholdBusinessFake(items)

    def filing(call: int) -> None:
        fake.items.append(samples.household_business(MaHoSo=f"NEW{call}", NgayCapNhat=hk_fmt(day(0, 12, call))))
    fake.before_data = filing
    server = started(fake)
    with capture_logs() as logs:
        pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert len(ids(pages)) == 99
    assert [r.query["trang"] for r in fake.data_requests] == ["1", "2", "3", "1", "2", "3"]  # twice, same twin
    assert pages[-1].checkpoint == until
    warned = [e for e in logs if e["event"] == "source_lists_a_record_twice"]
    assert [(e["log_level"], e["source_ids"]) for e in warned] == [("warning", ["HKD00010"])]


def test_household_business_a_twin_in_a_range_of_past_days_is_told_from_a_move_at_every_read(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    # a record listed twice (8:10 on page 1, 11:00 on page 2) on a day that has ended, while two
    # other records leave the day, during the second read and during the check of the third: the
    # twin must be told from a move at each read, not only every other one, or the day runs out
    # of reads and fails the run
    since, until = day(0, 0), day(1, 12)
    items = hk_items_with_a_twin()
    fake = HouseholdBusinessFake(items)

    def leaving(call: int) -> None:
        if call in (4, 8):  # before page 2 of the second read, and of the third read's check
            items[20 + call]["NgayCapNhat"] = hk_fmt(day(1, 9, call))
    fake.before_data = leaving
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(since, until))
    assert len(ids(pages)) == 99
    check_checkpoints(pages, until)


def test_household_business_a_twin_whose_times_change_between_reads_is_a_move(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one MaHoSo listed twice (a stale row at 8:03), and its live row updated during every read:
    # each read sees other times for it, so the twin cannot be told from a move, and the day
    # counts as one that kept changing
    until = day(0, 12)
    monkeypatch.setattr(hkd_module, "_now", lambda tz: until + dt.timedelta(minutes=1))
    items = hk_items([day(0, 8) + dt.timedelta(minutes=m) for m in range(120)])
    live = {**items[3], "NgayCapNhat": hk_fmt(day(0, 8, 30))}
    items.append(live)
    fake = HouseholdBusinessFake(items)

    def updating(call: int) -> None:
        if call % 3 == 2:  # between page 1 and page 2 of every read
            live["NgayCapNhat"] = hk_fmt(day(0, 11, call))
    fake.before_data = updating
    server = started(fake)
    with pytest.raises(TransientSourceError, match="kept changing"):
        list(household(server.url, context, client_for).fetch(day(0, 0), until))


def test_household_business_records_at_or_after_until_are_left_for_the_next_run(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    until = day(0, 12)
    times = [day(0, 11, 59), day(0, 12), day(0, 12, 1)]
    server = started(HouseholdBusinessFake(hk_items(times)))
    pages = list(household(server.url, context, client_for).fetch(day(0, 0), until))
    assert ids(pages) == {"HKD00000"}
    assert pages[-1].checkpoint == until


def test_household_business_large_ranges_are_split(
    started: Any, context: ConnectorContext, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hkd_module, "MAX_WINDOW_PAGES", 2)
    since, until = day(0, 0), day(8, 12)
    times = [day(d, 8) + dt.timedelta(minutes=m) for d in range(8) for m in range(40)]
    fake = HouseholdBusinessFake(hk_items(times))
    server = started(fake)
    pages = list(household(server.url, context, client_for).fetch(since, until))
    assert ids(pages) == {f"HKD{n:05d}" for n in range(len(times))}
    ranges = {(r.query["tuNgay"], r.query["denNgay"]) for r in fake.data_requests}
    assert ("2026-01-10", "2026-01-17") in ranges  # asked once, too big...
    assert ("2026-01-10", "2026-01-11") in ranges  # ...so read in pieces of at most 2 pages
    assert ("2026-01-10", "2026-01-13") in ranges
    check_checkpoints(pages, until)
    check_coverage(pages, {f"HKD{n:05d}": t for n, t in enumerate(times)}, since)


def test_household_business_a_day_that_keeps_changing_fails_the_run_transiently(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    times = [day(0, 8) + dt.timedelta(minutes=m) for m in range(60)]
    fake = HouseholdBusinessFake(hk_items(times))
    fake.before_data = lambda call: fake.items.append(
        samples.household_business(MaHoSo=f"NEW{call}", NgayCapNhat=hk_fmt(day(0, 11)))
    )
    server = started(fake)
    with pytest.raises(TransientSourceError, match="kept changing"):
        list(household(server.url, context, client_for).fetch(day(0, 0), day(0, 12)))


def test_household_business_wrong_credentials_are_fatal(
    started: Any, context: ConnectorContext, client_for: ClientFor
) -> None:
    server = started(HouseholdBusinessFake([]))
    connector = household(server.url, context, client_for, options={"password": "sai"})
    with pytest.raises(FatalSourceError, match="401"):
        list(connector.fetch(day(0, 0), day(0, 12)))
    assert len(server.requests) == 1


def test_household_business_page_size_is_fixed(context: ConnectorContext) -> None:
    s = make_settings(
        name="household_business",
        type="household_business",
        page_size=10,
        options={"username": "u", "password": "p"},
    )
    assert HouseholdBusinessConnector(s, context).page_size == 50


# --- every connector -------------------------------------------------------------------------


@pytest.mark.parametrize(("read_ahead", "requests"), [(False, 1), (True, 2)])
def test_request_stop_ends_the_read_between_pages(
    started: Any, context: ConnectorContext, client_for: ClientFor, read_ahead: bool, requests: int
) -> None:
    """With read-ahead, the request already sent for the next page is answered, and its answer
    dropped."""
    fake = OneStopFake(os_items([minutes(i) for i in range(9)]))
    server = started(fake)
    connector = one_stop(server.url, context, client_for, page_size=3)
    connector.read_ahead = read_ahead
    pages = connector.fetch(SINCE, UNTIL)
    next(pages)
    connector.request_stop()
    assert list(pages) == []
    assert len(fake.data_requests) == requests


@pytest.mark.parametrize(
    ("cls", "page_sizes"),
    [
        (OneStopConnector, (500, 1000)),
        (CivilStatusConnector, (200, 500)),
        (ResidenceConnector, (100, 200)),
        (HouseholdBusinessConnector, (50, 50)),
    ],
)
def test_page_sizes(cls: type, page_sizes: tuple[int, int]) -> None:
    assert (cls.default_page_size, cls.max_page_size) == page_sizes


def test_options_are_declared_with_secrets_marked() -> None:
    def secrets(cls: Any) -> set[str]:
        return {k for k, o in cls.options.items() if o.secret}

    assert secrets(OneStopConnector) == {"password"}
    assert secrets(CivilStatusConnector) == {"client_secret"}
    assert secrets(ResidenceConnector) == {"api_key"}
    assert secrets(HouseholdBusinessConnector) == {"password"}
    assert CivilStatusConnector.options["field_code"].default == "HOTICH"
    assert ResidenceConnector.options["field_name"].default == "Cư trú"
    assert HouseholdBusinessConnector.options["field_code"].default == "DKKD"
    assert HouseholdBusinessConnector.options["field_name"].default == "Đăng ký kinh doanh"
    assert set(OneStopConnector.options) == {"username", "password"}


def test_request_stop_cuts_short_a_wait_between_retries(started: Any, context: ConnectorContext) -> None:
    import threading
    import time

    fake = ResidenceFake(rs_items([minutes(1)]), busy=1)
    fake_reply = fake.__call__

    def slow_down(request: Request) -> Any:
        reply = fake_reply(request)
        if reply.status == 429:
            return type(reply)(429, reply.body, headers={"Retry-After": "60"})
        return reply

    server = started(slow_down)
    s = make_settings(
        server.url, name="residence", type="residence", options={"api_key": "khoa"}, request_deadline=300.0
    )
    connector = ResidenceConnector(s, context)  # its own client: real sleep, interruptible
    threading.Timer(0.3, connector.request_stop).start()
    started_at = time.monotonic()
    pages = list(connector.fetch(SINCE, UNTIL))
    connector.close()
    assert time.monotonic() - started_at < 5
    assert len(pages) <= 1
