"""Minimal fakes of the four sources, exactly as ``sources.md`` describes their paging.

Not the project's simulators: just enough to test the connectors' paging, auth and
checkpoints, with hooks that change the data between two page requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

from .fakehttp import Reply, Request

Hook = Callable[[int], None]


class _Fake:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.data_calls = 0
        self.before_data: Hook | None = None
        self.data_requests: list[Request] = []

    def _tick(self, request: Request) -> None:
        self.data_calls += 1
        self.data_requests.append(request)
        if self.before_data:
            self.before_data(self.data_calls)


class OneStopFake(_Fake):
    def __init__(self, items: list[dict[str, Any]], *, expires_in: int = 3600, cap: int | None = None) -> None:
        super().__init__(items)
        self.expires_in = expires_in
        self.cap = cap  # pages hold at most this many records, whatever SoBanGhi asks
        self.extra: list[dict[str, Any]] = []  # sent once more with one answer, not counted
        self.extra_on = 1  # the data request whose answer carries them
        self.sessions: set[str] = set()
        self.logins = 0
        self.expired_answers = 0
        self.accept_sessions = True

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        if request.path == "/dangnhap":
            if (body.get("username"), body.get("password")) != ("tiepnhan", "mk"):
                return Reply(200, {"error_code": "401", "message": "Sai tên đăng nhập hoặc mật khẩu"})
            self.logins += 1
            token = f"S{self.logins}"
            if self.accept_sessions:
                self.sessions.add(token)
            return Reply(200, {"error_code": "0", "session": token, "expires_in": self.expires_in})
        assert request.path == "/dichvu" and body["service"] == "LayDanhSachHoSo"
        if body["session"] not in self.sessions:
            self.expired_answers += 1
            return Reply(200, {"error_code": "-1", "message": "Phiên làm việc đã hết hạn"})
        self._tick(request)
        rows = sorted(
            (i for i in self.items if body["TuNgay"] <= i["NgayCapNhat"] < body["DenNgay"]),
            key=lambda i: (i["NgayCapNhat"], i["MaHoSo"]),
        )
        size, page = min(body["SoBanGhi"], self.cap or body["SoBanGhi"]), body["TrangSo"]
        extra = self.extra if self.data_calls == self.extra_on else []
        return Reply(
            200,
            {
                "error_code": "00",
                "message": "",
                "TongSoBanGhi": len(rows),
                "data": rows[(page - 1) * size : page * size] + extra,
            },
        )


def _civil_key(value: str) -> str:
    return dt.datetime.strptime(value, "%d/%m/%Y %H:%M:%S").isoformat()


class CivilStatusFake(_Fake):
    def __init__(self, items: list[dict[str, Any]], *, expires_in: int = 3600, cap: int | None = None) -> None:
        super().__init__(items)
        self.cap = cap  # pages hold at most this many records, whatever size asks (the answer says so)
        self.expires_in = expires_in
        self.tokens: set[str] = set()
        self.issued = 0
        self.refused = 0
        self.accept_tokens = True

    def __call__(self, request: Request) -> Reply:
        if request.path == "/api/token":
            form = request.form()
            if form != {"grant_type": "client_credentials", "client_id": "phuong", "client_secret": "bi-mat"}:
                return Reply(401, {"error": "invalid_client"})
            self.issued += 1
            token = f"T{self.issued}"
            if self.accept_tokens:
                self.tokens.add(token)
            return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})
        assert request.path == "/api/hotich/hoso"
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            self.refused += 1
            return Reply(401, {"error": "invalid_token"})
        self._tick(request)
        q = request.query
        t1, t2 = _civil_key(q["tuNgay"]), _civil_key(q["denNgay"])
        rows = sorted(
            (i for i in self.items if t1 <= _civil_key(i["ngayCapNhat"]) < t2),
            key=lambda i: (_civil_key(i["ngayCapNhat"]), i["maHoSo"]),
        )
        size, page = min(int(q["size"]), self.cap or int(q["size"])), int(q["page"])
        return Reply(
            200,
            {
                "status": "1",
                "message": "",
                "page": page,
                "size": size,
                "totalPages": math.ceil(len(rows) / size),
                "totalElements": len(rows),
                "content": rows[page * size : (page + 1) * size],
            },
        )


class ResidenceFake(_Fake):
    def __init__(self, items: list[dict[str, Any]], *, busy: int = 0, empty_on: frozenset[int] = frozenset(),
                 tail: bool = False, fresh_tail: bool = False, loop_on: int | None = None) -> None:
        super().__init__(items)
        self.busy = busy  # answer this many data requests with 429 first
        self.empty_on = empty_on  # these data requests get no items and a cursor to the same place
        self.tail = tail  # give a cursor past the end too: the one sent, or (fresh_tail) a new one
        self.fresh_tail = fresh_tail
        self.loop_on = loop_on  # this data request gets its records and the first cursor given again
        self.given: list[str] = []

    def __call__(self, request: Request) -> Reply:
        assert request.path == "/v1/dossiers"
        if request.headers.get("X-API-Key") != "khoa":
            return Reply(403, {"error": "forbidden"})
        if self.busy:
            self.busy -= 1
            return Reply(429, {"error": "slow down"}, headers={"Retry-After": "2"})
        self._tick(request)
        q = request.query
        after = dt.datetime.fromisoformat(q["updated_after"])
        position: tuple[dt.datetime, str] | None = None
        if q.get("cursor"):
            t, i = json.loads(base64.urlsafe_b64decode(q["cursor"]))[:2]
            position = (dt.datetime.fromisoformat(t), i)
        if self.data_calls in self.empty_on:  # e.g. what it found in this stretch was filtered out
            again = [position[0].isoformat(), position[1]] if position else [q["updated_after"], ""]
            cursor = base64.urlsafe_b64encode(json.dumps([*again, self.data_calls]).encode()).decode()
            return Reply(200, {"items": [], "next_cursor": cursor})
        rows = sorted(
            ((dt.datetime.fromisoformat(i["updated_at"]), i["id"], i) for i in self.items),
            key=lambda r: (r[0], r[1]),
        )
        rows = [r for r in rows if r[0] > after and (position is None or (r[0], r[1]) > position)]
        limit = int(q["limit"])
        page = rows[:limit]
        cursor = None
        if len(rows) > limit or (self.tail and page):
            last = page[-1]
            cursor = base64.urlsafe_b64encode(json.dumps([last[0].isoformat(), last[1]]).encode()).decode()
        elif self.tail:
            cursor = q.get("cursor") if not self.fresh_tail else base64.urlsafe_b64encode(
                json.dumps([*(json.loads(base64.urlsafe_b64decode(q["cursor"]))[:2]), self.data_calls]).encode()
            ).decode()
        if self.data_calls == self.loop_on and self.given:
            cursor = self.given[0]
        if cursor:
            self.given.append(cursor)
        return Reply(200, {"items": [r[2] for r in page], "next_cursor": cursor})


class HouseholdBusinessFake(_Fake):
    PAGE = 50

    def __call__(self, request: Request) -> Reply:
        assert request.path == "/apiDKKD/HoKinhDoanh/danhSachHoSo"
        expected = "Basic " + base64.b64encode(b"phuong-11311:mk").decode()
        if request.headers.get("Authorization") != expected:
            return Reply(401, {"error": "unauthorised"})
        self._tick(request)
        q = request.query
        rows = sorted(
            (i for i in self.items if q["tuNgay"] <= i["NgayCapNhat"][:10] <= q["denNgay"]),
            key=lambda i: (i["NgayCapNhat"], i["MaHoSo"]),
        )
        trang = int(q["trang"])
        return Reply(
            200,
            {
                "TongSo": len(rows),
                "Trang": trang,
                "SoTrang": math.ceil(len(rows) / self.PAGE),
                "HoSo": rows[(trang - 1) * self.PAGE : trang * self.PAGE],
            },
        )
