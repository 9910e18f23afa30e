"""Every fault, on the wire: what a connector sees, which requests it hits, and that it replays."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
from typing import Any

import pytest
import requests

from connectors.wardsim import SimServer
from connectors.wardsim.faults import Faults
from tests.simulators import clients as c

SOURCES = ("one_stop", "civil_status", "residence", "household_business")


def data_call(source: str, server: SimServer, page: int = 1) -> requests.Response:
    """One data request (logging in first where the source needs it)."""
    url = server.url
    if source == "one_stop":
        return c.os_call(url, c.os_login(url)["session"], page, 20)
    if source == "civil_status":
        return c.cs_call(url, c.cs_token(url).json()["access_token"], page - 1, 20)
    if source == "residence":
        return c.rs_call(url, limit=20)
    return c.hk_call(url, page)


def items_of(source: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    key = {"one_stop": "data", "civil_status": "content", "residence": "items", "household_business": "HoSo"}
    items: list[dict[str, Any]] = body[key[source]]
    return items


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_fail_next_answers_the_next_data_requests_only(servers: dict[str, SimServer], status: int) -> None:
    server = servers["one_stop"]
    server.faults.fail_next(2, status=status)
    login = c.os_login(server.url)  # login is not a data request: untouched
    assert login["error_code"] == "0"
    assert [c.os_call(server.url, login["session"]).status_code for _ in range(3)] == [status, status, 200]
    assert [r.fault for r in server.requests] == [None, f"error:{status}", f"error:{status}", None]


def test_faults_can_target_login(servers: dict[str, SimServer]) -> None:
    server = servers["civil_status"]
    server.faults.fail_next(1, status=503, target="login")
    assert c.cs_token(server.url).status_code == 503
    token = c.cs_token(server.url).json()["access_token"]
    assert c.cs_call(server.url, token).status_code == 200


def test_fail_rate_is_seeded_and_replays() -> None:
    def draws(seed: int) -> list[str | None]:
        f = Faults(seed=seed).fail_rate(0.3)
        return [t.label if (t := f.before("data")) else None for _ in range(200)]

    first = draws(3)
    assert first == draws(3) and first != draws(4)
    assert 30 < sum(x is not None for x in first) < 90
    assert {x for x in first if x} <= {"error:500", "error:502", "error:503", "error:504"}
    assert Faults(seed=3).fail_rate(0.3).before("login") is None  # data only by default


def test_throttle_with_retry_after_in_seconds_and_as_a_date(servers: dict[str, SimServer]) -> None:
    server = servers["residence"]
    server.faults.throttle_next(1, retry_after=7)
    r = c.rs_call(server.url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    server.faults.throttle_next(1, retry_after=30, http_date=True)
    r = c.rs_call(server.url)
    when = email.utils.parsedate_to_datetime(r.headers["Retry-After"])
    assert r.status_code == 429 and 20 < (when - dt.datetime.now(dt.UTC)).total_seconds() <= 31
    assert c.rs_call(server.url).status_code == 200


def test_latency(servers: dict[str, SimServer]) -> None:
    server = servers["household_business"]
    server.faults.set_latency(0.3, "data")
    started = time.monotonic()
    assert c.hk_call(server.url).status_code == 200
    assert time.monotonic() - started >= 0.3
    server.faults.set_latency(0)
    started = time.monotonic()
    c.hk_call(server.url)
    assert time.monotonic() - started < 0.3


def test_expired_sessions_get_each_formats_answer(servers: dict[str, SimServer]) -> None:
    os_url = servers["one_stop"].url
    session = c.os_login(os_url)["session"]
    cs_url = servers["civil_status"].url
    token = c.cs_token(cs_url).json()["access_token"]
    for s in servers.values():
        s.faults.expire_sessions()
    r = c.os_call(os_url, session)
    assert r.status_code == 200 and r.json() == {"error_code": "-1", "message": "Phiên làm việc đã hết hạn"}
    assert c.cs_call(cs_url, token).status_code == 401
    assert c.rs_call(servers["residence"].url).status_code == 200  # no sessions: nothing to expire
    assert c.hk_call(servers["household_business"].url).status_code == 200
    # logging in again works
    assert c.os_call(os_url, c.os_login(os_url)["session"]).json()["error_code"] == "00"


@pytest.mark.parametrize("source", SOURCES)
def test_truncated_body_with_status_200(servers: dict[str, SimServer], source: str) -> None:
    server = servers[source]
    server.faults.truncate_next(1)
    r = data_call(source, server)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(r.content)
    assert data_call(source, server).json()  # only the next one


@pytest.mark.parametrize("source", SOURCES)
def test_html_error_page_with_status_200(servers: dict[str, SimServer], source: str) -> None:
    server = servers[source]
    server.faults.html_error_next(1)
    r = data_call(source, server)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>") and "bảo trì" in r.text


def test_html_error_on_login_only(servers: dict[str, SimServer]) -> None:
    server = servers["one_stop"]
    server.faults.html_error_next(1, target="login")
    r = requests.post(
        f"{server.url}/dangnhap", json={"username": c.OS.username, "password": c.OS.password}, timeout=5
    )
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    assert c.os_login(server.url)["error_code"] == "0"


@pytest.mark.parametrize("source", SOURCES)
def test_duplicates_repeat_the_last_record_of_a_page_at_the_start_of_the_next(
    servers: dict[str, SimServer], source: str
) -> None:
    server = servers[source]
    server.faults.set_duplicates(True)
    url = server.url
    if source == "residence":
        first = c.rs_call(url, limit=20).json()
        second = c.rs_call(url, limit=20, cursor=first["next_cursor"]).json()
        pages = [first["items"], second["items"]]
    elif source == "household_business":
        pages = [items_of(source, c.hk_call(url, p).json()) for p in (1, 2)]
    else:
        pages = [items_of(source, data_call(source, server, p).json()) for p in (1, 2)]
    size = 50 if source == "household_business" else 20
    assert len(pages[0]) == size and len(pages[1]) == size + 1
    assert pages[1][0] == pages[0][-1]
    assert any(r.fault == "duplicates" for r in server.requests)


@pytest.mark.parametrize("source", SOURCES)
def test_bad_records_a_connector_must_quarantine(servers: dict[str, SimServer], source: str) -> None:
    server = servers[source]
    handler = server.handler
    server.faults.bad_records_next(3)
    size = 50 if source == "household_business" else 20
    items = items_of(source, data_call(source, server).json())
    assert len(items) == size + 3
    missing = [i for i in items if handler.id_field not in i]
    unknown = [i for i in items if i.get(handler.status_field) == handler.unknown_status]
    bad_date = [i for i in items if i.get(handler.date_field) == handler.bad_date]
    assert (len(missing), len(unknown), len(bad_date)) == (1, 1, 1)
    ids = [handler.id_of(i) for i in items if handler.id_of(i)]
    assert len(ids) == len(set(ids))  # broken copies carry ids of their own
    assert len(items_of(source, data_call(source, server).json())) == size  # used up


def test_bad_record_rate_is_seeded(servers: dict[str, SimServer]) -> None:
    server = servers["household_business"]

    def run() -> list[str]:
        server.faults.reset(seed=9).bad_records_rate(0.1)
        return [json.dumps(i, sort_keys=True) for i in c.hk_call(server.url).json()["HoSo"]]

    first = run()
    assert first == run() and len(first) > 50


def test_request_log_masks_secrets(servers: dict[str, SimServer]) -> None:
    server = servers["one_stop"]
    session = c.os_login(server.url)["session"]
    c.os_call(server.url, session, 2, 30)
    login, data = server.requests
    assert (login.method, login.path, login.kind, login.status) == ("POST", "/dangnhap", "login", 200)
    assert login.body is not None and login.body["password"] == "***" and login.body["username"] == "tiepnhan"
    assert data.kind == "data" and data.body is not None
    assert data.body["TrangSo"] == 2 and data.body["SoBanGhi"] == 30 and data.body["session"] == "***"
    c.hk_call(servers["household_business"].url)
    assert servers["household_business"].requests[0].auth == "basic:phuong-11311"
    c.rs_call(servers["residence"].url, limit=5)
    [rs] = servers["residence"].requests
    assert rs.auth == "api-key" and rs.query["limit"] == "5"
