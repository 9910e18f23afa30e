"""Visibility: late-arriving updates, records pushed while serving, the clock, and the index itself."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from connectors.wardsim import SimClock, SimServer, WardDataset
from connectors.wardsim.store import RecordStore
from tests.simulators import clients as c
from tests.simulators.conftest import NOW

FMT = "%Y%m%d%H%M%S"


def hoso(code: str, updated: dt.datetime, status: str = "2", **extra: Any) -> dict[str, Any]:
    return {
        "MaHoSo": code,
        "MaTTHC": "1.001193",
        "TrangThaiHoSo": status,
        "NgayCapNhat": updated.strftime(FMT),
        **extra,
    }


def codes(server: SimServer, since: dt.datetime, until: dt.datetime) -> list[tuple[str, str]]:
    items = c.os_all(server.url, since=since.strftime(FMT), until=until.strftime(FMT))
    return [(i["MaHoSo"], i["TrangThaiHoSo"]) for i in items]


def test_late_arriving_update_appears_at_its_old_update_time() -> None:
    clock = SimClock(NOW)
    with SimServer("one_stop", clock=clock) as server:
        hour_ago = NOW - dt.timedelta(hours=1)
        server.add([hoso("A", hour_ago - dt.timedelta(hours=1)), hoso("B", hour_ago)])
        window = (NOW - dt.timedelta(hours=3), NOW + dt.timedelta(hours=1))
        assert codes(server, *window) == [("A", "2"), ("B", "2")]
        # A's next version carries an update time 90 minutes back, but the source shows it only in 10 minutes
        server.add(
            [hoso("A", NOW - dt.timedelta(minutes=90), "9")], visible_from=NOW + dt.timedelta(minutes=10)
        )
        assert codes(server, *window) == [("A", "2"), ("B", "2")]
        clock.advance(dt.timedelta(minutes=10))
        assert codes(server, *window) == [("A", "9"), ("B", "2")]
        # a connector that only asks from its last checkpoint (NOW) never sees it: the lookback's job
        assert codes(server, NOW, NOW + dt.timedelta(hours=1)) == []
        clock.set(NOW)  # back in time: the old version again
        assert codes(server, *window) == [("A", "2"), ("B", "2")]


def test_default_visibility_of_pushed_items() -> None:
    clock = SimClock(NOW)
    with SimServer("one_stop", clock=clock) as server:
        future = NOW + dt.timedelta(minutes=5)
        server.add([hoso("PAST", NOW - dt.timedelta(days=2)), hoso("FUTURE", future)])
        window = (NOW - dt.timedelta(days=3), NOW + dt.timedelta(days=1))
        assert codes(server, *window) == [("PAST", "2")]  # past update time: visible now (arrived late)
        clock.advance(dt.timedelta(minutes=5))
        assert codes(server, *window) == [("PAST", "2"), ("FUTURE", "2")]


def test_pushing_into_a_generated_data_set(dataset: WardDataset) -> None:
    with SimServer("household_business", clock=SimClock(NOW)) as server:
        server.load_dataset(dataset)
        before = c.hk_call(server.url).json()["TongSo"]
        first = c.hk_call(server.url).json()["HoSo"][0]
        server.add([{**first, "TinhTrang": "DA_RUT", "NgayCapNhat": NOW.strftime("%Y-%m-%d %H:%M:%S")}])
        after = c.hk_all(server.url)
        assert len(after) == before  # a new version, not a new record
        assert after[-1]["MaHoSo"] == first["MaHoSo"] and after[-1]["TinhTrang"] == "DA_RUT"


def test_jsonl_with_visibility_and_unparseable_records(tmp_path: Path) -> None:
    path = tmp_path / "hoso.jsonl"
    rows = [
        hoso("A", NOW - dt.timedelta(hours=2)),
        {
            **hoso("A", NOW - dt.timedelta(hours=1), "4"),
            "_visible_from": (NOW + dt.timedelta(hours=1)).isoformat(),
        },
        {"MaTTHC": "1.001193", "TrangThaiHoSo": "2", "NgayCapNhat": "khong-ro", "_updated": NOW.isoformat()},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    clock = SimClock(NOW)
    with SimServer("one_stop", clock=clock) as server:
        assert server.load_jsonl(path) == 3
        items = c.os_all(server.url)
        assert [(i.get("MaHoSo"), i["TrangThaiHoSo"]) for i in items] == [("A", "2"), (None, "2")]
        assert "_updated" not in items[1] and "_visible_from" not in items[0]
        clock.advance(dt.timedelta(hours=1))
        assert c.os_all(server.url)[0]["TrangThaiHoSo"] == "4"


def test_a_lone_surrogate_in_a_jsonl_file_is_served_as_the_escape_it_was_written_as(tmp_path: Path) -> None:
    path = tmp_path / "hoso.jsonl"
    path.write_text(json.dumps(hoso("A", NOW - dt.timedelta(hours=1), ChuHoSo="Nguyễn \ud83d")) + "\n",
                    encoding="utf-8")
    with SimServer("one_stop", clock=SimClock(NOW)) as server:
        server.load_jsonl(path)
        body = c.os_call(server.url, c.os_login(server.url)["session"]).content
    assert b'"ChuHoSo":"Nguy\xe1\xbb\x85n \\ud83d"' in body
    assert json.loads(body)["data"][0]["ChuHoSo"] == "Nguyễn \ud83d"


def test_index_matches_a_brute_force_model() -> None:
    """Random pushes and clock moves, with the incremental index checked against a plain model."""
    rng = random.Random(5)
    store = RecordStore()
    model: dict[str, list[tuple[int, int]]] = {}
    base = 1_000_000
    at = base
    for step in range(400):
        op = rng.random()
        if op < 0.6:
            rid = f"R{rng.randrange(60):03d}"
            updated = base + rng.randrange(0, 3000)
            visible = updated + (rng.randrange(0, 600) if rng.random() < 0.3 else 0)
            store.add(rid, updated, visible, {"id": rid, "u": updated})
            model.setdefault(rid, []).append((updated, visible))
        elif op < 0.9:
            at += rng.randrange(0, 200)
        else:
            at = base + rng.randrange(0, 3000)  # back and forth
        if step % 3 == 0:
            expected = sorted(
                (vs[max(j for j, (_, v) in enumerate(vs) if v <= at)][0], rid)
                for rid, vs in model.items()
                if any(v <= at for _, v in vs)
            )
            lo = base + rng.randrange(0, 3000)
            window = [k for k in expected if k[0] >= lo]
            got = store.select(at, (lo, ""), None, limit=10**6)
            assert [e.key for e in got.entries] == window
            assert got.total == len(window)
            skip = rng.randrange(0, 5)
            page = store.select(at, (lo, ""), None, skip=skip, limit=3)
            assert [e.key for e in page.entries] == window[skip : skip + 3]
            assert page.more == (skip + 3 < len(window))
