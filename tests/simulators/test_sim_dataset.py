"""The generated ward: deterministic, plausible, and holding every reconciliation scenario."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.wardsim import Scenario, SimClock, SimServer, WardDataset, generate
from connectors.wardsim.catalogue import PROVINCE_CODES
from sync_agent.model import Status
from tests.simulators import clients as c
from tests.simulators.conftest import NOW

MINISTRIES = ("civil_status", "residence", "household_business")
CODE_FIELD = {
    "civil_status": "maHoSoMCDT",
    "residence": "one_stop_code",
    "household_business": "SoBienNhanMotCua",
}
ID_FIELD = {"one_stop": "MaHoSo", "civil_status": "maHoSo", "residence": "id", "household_business": "MaHoSo"}


def served(server: SimServer) -> list[dict[str, Any]]:
    return [
        server.store.payload(e)
        for e in server.store.select(server.clock.timestamp(), None, None, limit=10**7).entries
    ]


def test_same_seed_same_bytes_on_the_wire(tmp_path: Path) -> None:
    def export(seed: int, tag: str) -> list[bytes]:
        ds = generate(seed, 300, NOW)
        out = []
        for source in ds.sources:
            path = tmp_path / f"{tag}-{source}.jsonl"
            ds.write_jsonl(source, path)
            out.append(path.read_bytes())
        return out

    first = export(21, "a")
    assert first == export(21, "b")
    assert first != export(22, "c")
    # and over HTTP
    bodies = []
    for _ in range(2):
        with SimServer("one_stop", clock=SimClock(NOW)) as server:
            server.load_dataset(generate(21, 300, NOW))
            session = c.os_login(server.url)["session"]
            bodies.append(c.os_call(server.url, session, 2, 50).content)
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize(
    ("source", "n"), [("one_stop", 2500), ("household_business", 700), ("residence", 333)]
)
def test_only_one_source_gives_exactly_n_records(source: str, n: int) -> None:
    ds = generate(4, n, NOW, only=source)
    assert ds.sources == (source,)
    assert ds.count(source) == n
    if source == "household_business":
        assert {ds.version(source, i).procedure.field_code for i in range(0, n, 50)} == {"DKKD"}


def test_people_and_id_numbers_are_plausible(dataset: WardDataset) -> None:
    provinces = {code for code, _ in PROVINCE_CODES}
    names: Counter[str] = Counter()
    for i in range(0, dataset.size, 7):
        v = dataset.version(dataset.truth.case(i).records[0].source, i)
        number = v.applicant_id
        assert len(number) == 12 and number.isdigit() and number[:3] in provinces
        century = 1900 if number[3] in "01" else 2000
        age = NOW.year - (century + int(number[4:6]))
        assert number[3] in "0123" and 18 <= age <= 95
        family, *_rest = v.applicant_name.split()
        assert len(v.applicant_name.split()) >= 3
        names[family] += 1
    assert names.most_common(1)[0][0] == "Nguyễn"


def test_default_rates_follow_the_seed_report() -> None:
    ds = generate(8, 3000, NOW)
    cases = list(ds.truth.cases())
    received = [x for x in cases if x.received_at is not None]
    online = sum(x.channel == "online" for x in received) / len(received)
    assert 0.97 <= online <= 1.0
    ended = [x for x in received if x.ended_at is not None]
    early = [x for x in ended if x.due_at and x.ended_at and x.ended_at.date() < x.due_at.date()]
    assert len(early) / len(ended) > 0.97
    assert sum(x.data_reused for x in received) / len(received) > 0.98
    assert sum(x.status.ended for x in received) / len(received) > 0.98  # a year, most long finished
    hkd = [x for x in cases if x.field_code == "DKKD"]
    assert sum(Scenario.BYPASSED in x.scenarios for x in hkd) / len(hkd) > 0.6  # the report's problem 1
    fields = Counter(x.field_code for x in cases)
    assert set(fields) == {"HOTICH", "CUTRU", "DKKD", "CHUNGTHUC", "DATDAI", "BTXH"}


def test_records_have_a_history_of_versions(dataset: WardDataset) -> None:
    sk = dataset.skeleton("one_stop")
    seen: set[tuple[str, ...]] = set()
    for k in range(0, len(sk.ids), 5):
        versions = range(sk.ver_start[k], sk.ver_start[k + 1])
        times = [sk.ver_updated[v] for v in versions]
        assert times == sorted(times) and len(set(times)) == len(times)
        statuses = tuple(
            dataset.item("one_stop", sk.refs[k], j)["TrangThaiHoSo"] for j in range(len(versions))
        )
        assert statuses[0] in ("1", "2")
        seen.add(statuses)
    assert (
        "1",
        "2",
        "4",
        "9",
        "10",
    ) in seen  # submitted online → received → processing → resolved → delivered
    assert any("5" in s for s in seen)  # a supplement request on the way


@pytest.fixture(scope="module")
def wire(sims: dict[str, SimServer]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every served record by source and id."""
    return {s: {str(i[ID_FIELD[s]]): i for i in served(server)} for s, server in sims.items()}


def _ministry(case: Any) -> Any:
    return next(r for r in case.records if r.source in MINISTRIES)


def test_every_scenario_is_present(dataset: WardDataset) -> None:
    counts = dataset.truth.scenario_counts()
    assert all(counts[s.value] > 0 for s in Scenario), counts


def test_linked_records_cite_an_existing_reception_code(
    dataset: WardDataset, wire: dict[str, dict[str, dict[str, Any]]]
) -> None:
    for case in dataset.truth.with_scenario(Scenario.LINKED):
        ministry = _ministry(case)
        item = wire[ministry.source][ministry.source_id]
        assert item[CODE_FIELD[ministry.source]] == case.reception_code
        assert case.reception_code in wire["one_stop"]
        assert dataset.truth.case_of("one_stop", case.reception_code) == case


def test_inferred_links_match_by_applicant_procedure_and_two_days(
    dataset: WardDataset, wire: dict[str, dict[str, dict[str, Any]]]
) -> None:
    cases = dataset.truth.with_scenario(Scenario.INFERRED_LINK)
    assert cases
    for case in cases:
        ministry = _ministry(case)
        m_item = wire[ministry.source][ministry.source_id]
        assert m_item[CODE_FIELD[ministry.source]] in ("", None)
        os_item = wire["one_stop"][case.reception_code or ""]
        m_version = dataset.version(ministry.source, case.index)
        assert m_version.applicant_id == os_item["SoGiayToChuHoSo"]
        assert m_version.procedure.code == os_item["MaTTHC"]
        assert m_version.received_at is not None
        os_received = c.local(os_item["NgayTiepNhan"], "%Y%m%d%H%M%S").timestamp()
        assert 0 <= m_version.received_at - os_received < 2 * 86400


def test_unknown_reception_codes_and_bypassed_dossiers(
    dataset: WardDataset, wire: dict[str, dict[str, dict[str, Any]]]
) -> None:
    for case in dataset.truth.with_scenario(Scenario.UNKNOWN_RECEPTION_CODE):
        ministry = _ministry(case)
        cited = wire[ministry.source][ministry.source_id][CODE_FIELD[ministry.source]]
        assert cited and cited not in wire["one_stop"] and case.reception_code is None
    bypassed = dataset.truth.with_scenario(Scenario.BYPASSED)
    assert {_ministry(x).source for x in bypassed} == set(MINISTRIES)
    for case in bypassed:
        assert [r.source for r in case.records] == [_ministry(case).source]
        item = wire[_ministry(case).source][_ministry(case).source_id]
        assert item[CODE_FIELD[_ministry(case).source]] in ("", None)


def test_stale_one_stop_copies(dataset: WardDataset, wire: dict[str, dict[str, dict[str, Any]]]) -> None:
    still = [x for x in dataset.truth.with_scenario(Scenario.STALE_ONE_STOP) if x.stale_until is None]
    caught_up = [x for x in dataset.truth.with_scenario(Scenario.STALE_ONE_STOP) if x.stale_until is not None]
    assert still and caught_up
    for case in still:
        assert case.stale_since is not None and case.stale_since < NOW
        assert wire["one_stop"][case.reception_code or ""]["TrangThaiHoSo"] in ("2", "4", "5", "6")
        assert case.status.ended  # the ministry says so
    for case in caught_up:
        assert case.stale_since is not None and case.stale_until is not None
        assert case.stale_until - case.stale_since > dt.timedelta(days=1)


def test_data_quality_problems(dataset: WardDataset, wire: dict[str, dict[str, dict[str, Any]]]) -> None:
    for case in dataset.truth.with_scenario(Scenario.COMPLETION_BEFORE_RECEPTION):
        assert case.ended_at is not None and case.received_at is not None and case.ended_at < case.received_at
        os_item = wire["one_stop"].get(case.reception_code or "")
        if os_item:
            assert os_item["NgayKetThucXuLy"] < os_item["NgayTiepNhan"]
    for case in dataset.truth.with_scenario(Scenario.MISSING_DUE_DATE):
        assert case.due_at is None and case.status not in (Status.SUBMITTED, Status.NOT_ACCEPTED)
        for ref in case.records:
            item = wire[ref.source][ref.source_id]
            due = {
                "one_stop": "NgayHenTra",
                "civil_status": "ngayHenTra",
                "residence": "due_at",
                "household_business": "NgayHenTra",
            }[ref.source]
            assert item[due] in ("", None)


def test_late_updates_are_visible_later_than_their_update_time(dataset: WardDataset) -> None:
    sk = dataset.skeleton("one_stop")
    late = [v for v in range(len(sk.ver_updated)) if sk.ver_visible[v] > sk.ver_updated[v]]
    assert late and all(sk.ver_visible[v] <= dataset.now_ts for v in late)


def test_jsonl_round_trip_serves_the_same_history(dataset: WardDataset, tmp_path: Path) -> None:
    path = tmp_path / "civil.jsonl"
    lines = dataset.write_jsonl("civil_status", path)
    assert lines > dataset.count("civil_status")  # every version
    for at in (NOW, NOW - dt.timedelta(days=100)):
        clock = SimClock(at)
        generated = SimServer("civil_status", clock=clock)
        generated.load_dataset(dataset)
        loaded = SimServer("civil_status", clock=clock)
        assert loaded.load_jsonl(path) == lines
        assert served(loaded) == served(generated)
