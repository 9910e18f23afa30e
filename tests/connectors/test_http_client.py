"""The shared HTTP layer against a real loopback server: retries, Retry-After, deadline, errors."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from connectors.http import HttpClient, _host, parse_retry_after, status_error
from sync_agent.errors import FatalSourceError, SessionExpired, TransientSourceError

from .conftest import FakeClock, make_settings
from .fakehttp import Reply, Script, serving

OK = Reply(200, {"ok": True})
ClientFor = Callable[..., HttpClient]


def test_5xx_are_retried_then_the_answer_is_returned(client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(500), Reply(502), Reply(503), OK)
    with serving(script) as server:
        client = client_for(make_settings(server.url, max_attempts=5))
        assert client.get_json("/x") == {"ok": True}
    assert script.done
    assert len(clock.sleeps) == 3
    # exponential backoff with jitter: attempt n waits between half and all of 0.5 * 2**(n-1)
    for n, wait in enumerate(clock.sleeps, start=1):
        full = 0.5 * 2 ** (n - 1)
        assert full / 2 <= wait <= full


def test_exhausted_retries_raise_transient(client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(504), Reply(504), Reply(504))
    with serving(script) as server:
        client = client_for(make_settings(server.url, max_attempts=3))
        with pytest.raises(TransientSourceError, match=r"gave up after 3 attempt\(s\).*HTTP 504"):
            client.get_json("/x")
    assert script.done
    assert len(clock.sleeps) == 2


def test_429_retry_after_seconds_is_honoured(client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(429, headers={"Retry-After": "7"}), Reply(503, headers={"Retry-After": "2"}), OK)
    with serving(script) as server:
        assert client_for(make_settings(server.url)).get_json("/x") == {"ok": True}
    assert clock.sleeps == [7.0, 2.0]


def test_retry_after_http_date_is_honoured(client_for: ClientFor, clock: FakeClock) -> None:
    now = dt.datetime(2037, 10, 21, 7, 27, 15, tzinfo=dt.UTC)
    script = Script(Reply(429, headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"}), OK)
    with serving(script) as server:
        client = client_for(make_settings(server.url, request_deadline=100.0), now=lambda: now)
        assert client.get_json("/x") == {"ok": True}
    assert clock.sleeps == [45.0]


@pytest.mark.parametrize("header", ["3600", "Wed, 21 Oct 2037 09:00:00 GMT"])
def test_retry_after_is_capped(client_for: ClientFor, clock: FakeClock, header: str) -> None:
    now = dt.datetime(2037, 10, 21, 7, 0, 0, tzinfo=dt.UTC)
    script = Script(Reply(429, headers={"Retry-After": header}), OK)
    with serving(script) as server:
        client = client_for(
            make_settings(server.url, retry_after_cap=10.0, request_deadline=100.0), now=lambda: now
        )
        client.get_json("/x")
    assert clock.sleeps == [10.0]


def test_unreadable_retry_after_falls_back_to_backoff(client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(429, headers={"Retry-After": "soon"}), OK)
    with serving(script) as server:
        client_for(make_settings(server.url)).get_json("/x")
    assert len(clock.sleeps) == 1 and 0.25 <= clock.sleeps[0] <= 0.5


@pytest.mark.parametrize("status", [400, 404, 405, 409, 422, 501])
def test_other_errors_are_not_retried(client_for: ClientFor, clock: FakeClock, status: int) -> None:
    script = Script(Reply(status, {"error": "no"}))
    with serving(script) as server, pytest.raises(FatalSourceError, match=f"HTTP {status}"):
        client_for(make_settings(server.url)).get_json("/x")
    assert script.done and clock.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_is_fatal(client_for: ClientFor, status: int) -> None:
    with (
        serving(Script(Reply(status))) as server,
        pytest.raises(FatalSourceError, match="credentials refused"),
    ):
        client_for(make_settings(server.url)).get_json("/x")


def test_401_is_session_expired_where_the_connector_says_so(client_for: ClientFor) -> None:
    script = Script(Reply(401))
    with serving(script) as server, pytest.raises(SessionExpired):
        client_for(make_settings(server.url)).get_json("/x", session_expired_on={401})
    assert script.done


def test_redirects_are_not_followed(client_for: ClientFor) -> None:
    script = Script(Reply(302, headers={"Location": "http://127.0.0.1:9/elsewhere"}))
    with serving(script) as server, pytest.raises(FatalSourceError, match="redirect"):
        client_for(make_settings(server.url)).get_json("/x", headers={"X-API-Key": "k"})
    assert script.done


def test_a_read_timeout_is_retried(client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(200, {"late": True}, delay=1.0), OK)
    with serving(script) as server:
        client = client_for(make_settings(server.url, read_timeout=0.2))
        assert client.get_json("/x") == {"ok": True}
    assert script.done and len(clock.sleeps) == 1


def test_a_refused_connection_is_retried_then_transient(client_for: ClientFor, clock: FakeClock) -> None:
    with serving(Script()) as server:
        url = server.url
    # the server is gone: its port now refuses connections
    with pytest.raises(TransientSourceError, match="ConnectionError") as err:
        client_for(make_settings(url, max_attempts=3)).get_json("/x", params={"api_key": "secret"})
    assert len(clock.sleeps) == 2
    # what an operator needs in `runs` and `status`: where, and why, and no query string
    host = url.removeprefix("http://").rstrip("/")
    assert f"GET /x to {host}: ConnectionError (Connection refused)" in str(err.value)
    assert "secret" not in str(err.value)


def test_the_host_in_an_error_is_written_as_in_a_url() -> None:
    assert _host("http://user:pw@127.0.0.1:8103/v1/dossiers") == "127.0.0.1:8103"
    assert _host("http://[::1]:8103/v1/dossiers") == "[::1]:8103"
    assert _host("https://dvc.example.gov.vn/api") == "dvc.example.gov.vn"


@pytest.mark.parametrize(
    "bad",
    [
        Reply(200, "<html><body>502 Bad Gateway</body></html>", headers={"Content-Type": "text/html"}),
        Reply(200, '{"data": [1, 2'),
        Reply(200, b""),
        Reply(200, b'{"data": []}', claim_length=400),
        Reply(200, b"\xff\xfe{}"),
    ],
    ids=["html", "truncated-json", "empty", "short-body", "not-utf8"],
)
def test_a_200_without_json_is_retried(client_for: ClientFor, clock: FakeClock, bad: Reply) -> None:
    script = Script(bad, OK)
    with serving(script) as server:
        assert client_for(make_settings(server.url)).get_json("/x") == {"ok": True}
    assert script.done and len(clock.sleeps) == 1


def test_the_deadline_stops_retries_before_max_attempts(client_for: ClientFor, clock: FakeClock) -> None:
    # waits of 4 s against a 10 s deadline: attempts at t=0, 4, 8; the next would start at 12
    script = Script(*[Reply(503, headers={"Retry-After": "4"})] * 3)
    with serving(script) as server:
        client = client_for(make_settings(server.url, max_attempts=10, request_deadline=10.0))
        with pytest.raises(TransientSourceError, match="deadline") as err:
            client.get_json("/x")
    assert clock.sleeps == [4.0, 4.0]
    assert script.done
    assert err.value.retry_after == 4.0


def test_the_deadline_bounds_a_slowly_dripping_body() -> None:
    # the read timeout (5 s) is never hit, each byte comes in 0.05 s; the 1 s deadline must be
    script = Script(Reply(200, {"data": "x" * 400}, drip=0.05))
    with serving(script) as server:
        client = HttpClient(make_settings(server.url, read_timeout=5.0, request_deadline=1.0, max_attempts=1))
        started = time.monotonic()
        with pytest.raises(TransientSourceError, match="deadline"):
            client.get_json("/x")
        elapsed = time.monotonic() - started
        client.close()
    assert elapsed < 2.5


def test_requests_carry_params_form_json_and_auth(client_for: ClientFor) -> None:
    script = Script(OK, OK, OK)
    with serving(script) as server:
        client = client_for(make_settings(server.url))
        client.get_json("/a", params={"page": 0, "q": "x y"}, auth=("u", "p"))
        client.post_json("/b", form={"grant_type": "client_credentials"})
        client.post_json("/c", json_body={"TrangSo": 1})
    a, b, c = server.requests
    assert a.query == {"page": "0", "q": "x y"} and a.headers["Authorization"].startswith("Basic ")
    assert b.form() == {"grant_type": "client_credentials"}
    assert c.json() == {"TrangSo": 1}


def test_retries_are_logged_without_secrets_or_bodies(client_for: ClientFor) -> None:
    script = Script(Reply(503), OK)
    with serving(script) as server, capture_logs() as logs:
        client = client_for(make_settings(server.url))
        client.post_json(
            "/api/token",
            form={"client_secret": "s3cr3t-value", "id": "012345678901"},
            headers={"Authorization": "Bearer tok-abc"},
        )
    assert [e["event"] for e in logs] == ["source_request_retry"]
    entry = logs[0]
    assert entry["attempt"] == 1 and entry["source"] == "src" and entry["request"] == "POST /api/token"
    text = repr(logs)
    for secret in ("s3cr3t-value", "012345678901", "tok-abc"):
        assert secret not in text


def test_parse_retry_after() -> None:
    now = dt.datetime(2026, 1, 20, 8, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("Tue, 20 Jan 2026 08:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 20 Jan 2026 07:00:00 GMT", now) == 0.0  # in the past: now
    for junk in (None, "", "-5", "nan", "inf", "tomorrow", "Tue, 99 Foo 2026"):
        assert parse_retry_after(junk, now) is None


def test_status_error_sorts_statuses_in_one_place() -> None:
    assert status_error(200, "w") is None
    assert status_error(204, "w") is None
    for s in (429, 500, 502, 503, 504):
        err = status_error(s, "w", retry_after=3.0)
        assert isinstance(err, TransientSourceError) and err.retry_after == 3.0
    assert isinstance(status_error(401, "w", session_expired_on={401}), SessionExpired)
    assert isinstance(status_error(403, "w", session_expired_on={401}), FatalSourceError)
    for s in (301, 400, 401, 403, 404, 418, 501, 505):
        assert isinstance(status_error(s, "w"), FatalSourceError)


@pytest.mark.parametrize(("ours_ahead", "event", "level"), [
    (dt.timedelta(hours=2), "source_clock_differs", "error"),  # the source behind by more than the lookback
    (dt.timedelta(minutes=20), "source_clock_differs", "warning"),
    (dt.timedelta(minutes=-20), "source_clock_differs", "warning"),  # ahead: its records only wait
    (dt.timedelta(seconds=30), None, None),
])
def test_a_source_clock_far_from_ours_is_reported_once(client_for: ClientFor, ours_ahead: dt.timedelta,
                                                       event: str | None, level: str | None) -> None:
    """The cursor is set by our clock and the records' times by the source's: a source whose clock
    is behind ours by more than the lookback has its next updates stamped before the next read's
    start, and they are never read. Its answers' ``Date`` header tells."""
    with serving(Script(OK, OK)) as server, capture_logs() as logs:
        client = client_for(make_settings(server.url, lookback_minutes=60),
                            now=lambda: dt.datetime.now(dt.UTC) + ours_ahead)
        client.get_json("/x")
        client.get_json("/x")
    found = [(e["event"], e["log_level"]) for e in logs if e["event"] == "source_clock_differs"]
    assert found == ([(event, level)] if event else [])


def test_a_source_behind_by_more_than_a_short_lookback_is_reported(client_for: ClientFor) -> None:
    """Four minutes is below the warning's threshold, but beyond a two-minute lookback."""
    with serving(Script(OK)) as server, capture_logs() as logs:
        client = client_for(make_settings(server.url, lookback_minutes=2),
                            now=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4))
        client.get_json("/x")
    assert [e["log_level"] for e in logs if e["event"] == "source_clock_differs"] == ["error"]


def test_an_answer_a_cache_kept_is_dated_by_its_age() -> None:
    """A gateway's cached answer keeps the source's Date: its Age says how long ago that was."""
    from connectors.http import HttpClient

    now = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
    with capture_logs() as logs:
        client = HttpClient(make_settings(lookback_minutes=60), now=lambda: now)
        client._check_clock("Sun, 29 Nov 2026 09:40:00 GMT", "1200")
        client.close()
    assert [e for e in logs if e["event"] == "source_clock_differs"] == []


@pytest.mark.parametrize("age", ["1200", "2147483648", "9" * 5000, "x"])
def test_an_age_no_cache_could_mean_is_not_taken(age: str) -> None:
    """A proxy that dates its answers itself may pass the source's Age on; an Age beyond the
    lookback (or unreadable) says nothing of the source's clock, which is then judged alone."""
    from connectors.http import HttpClient

    now = dt.datetime(2026, 11, 29, 10, 20, tzinfo=dt.UTC)  # the source is 20 minutes behind
    with capture_logs() as logs:
        client = HttpClient(make_settings(lookback_minutes=15), now=lambda: now)
        client._check_clock("Sun, 29 Nov 2026 10:00:00 GMT", age)
        client.close()
    assert [(e["log_level"], e["seconds"]) for e in logs if e["event"] == "source_clock_differs"] == [
        ("error", -1200)]


@pytest.mark.parametrize(("value", "read"), [(7, 7), ("12", 12), (" 3 ", 3), ("²", None), ("", None), (True, None),
                                            ("x", None), (None, None), ("9" * 5000, None)])
def test_a_count_in_an_answer_is_read_or_ignored_never_raises(value: object, read: int | None) -> None:
    """``'²'.isdigit()`` is true, and ``int('²')`` raised: a source's odd total failed its run."""
    from connectors.http import json_int

    assert json_int({"TongSo": value}, "TongSo") == read


def test_an_answer_nested_deeper_than_the_agent_reads_fails_the_run_without_retries(
        client_for: ClientFor, clock: FakeClock) -> None:
    script = Script(Reply(200, b"[" * 5000 + b"]" * 5000), OK)
    with serving(script) as server, pytest.raises(FatalSourceError, match="nested deeper than the agent reads"):
        client_for(make_settings(server.url)).get_json("/x")
    assert clock.sleeps == []
