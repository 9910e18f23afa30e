"""A ward's February 2026 whose consolidated figures are exactly those of the seed report.

Seed, section I.1.c: received 4,899 = 4,849 online + 0 direct or postal + 50 carried over;
resolved 4,874 = 4,871 early + 0 on time + 1 overdue + 1 rejected + 1 withdrawn; 25 in progress,
all within due. The dossiers are spread over the four source systems: shared (one_stop + a
ministry, linked by the reception code), inferred (the ministry record cites no code), bypassed
(only in a ministry system) and one_stop only. Around them sit dossiers that must NOT count
(ended before the period, received after it, never received), and the rule cases: boundary
instants, an end before reception, an end after the period, a supplement past its due date.

``cases_rows`` writes the cases directly (counting tests); ``records`` gives the source records
the same dossiers produce (the end-to-end test through reconciliation).

Data reuse: the seed prints 99,62 %, which no whole number of the 4,849 dossiers received in the
period can give (4,830 -> 99,61 %, 4,831 -> 99,63 %); the nearest, 4,831, is used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sync_agent.model import Channel, DossierRecord, Status

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
S = dt.date(2026, 1, 15)
E = dt.date(2026, 2, 14)
ID_NUMBER = "001203004567"  # a made-up 12-digit personal ID that must never appear in output

FIELDS = {
    "HOTICH": ("Hộ tịch", "1.001193", "Đăng ký khai sinh", "civil_status"),
    "CUTRU": ("Cư trú", "1.004194", "Đăng ký thường trú", "residence"),
    "DKKD": ("Đăng ký kinh doanh", "2.000720", "Đăng ký thành lập hộ kinh doanh", "household_business"),
    "CHUNGTHUC": ("Chứng thực", "2.000815", "Chứng thực bản sao từ bản chính", None),
    "DATDAI": ("Đất đai", "1.004227", "Đăng ký biến động đất đai", None),
}
_FIELD_BY_DIGIT = ["HOTICH"] * 4 + ["CUTRU"] * 2 + ["DKKD"] + ["CHUNGTHUC"] * 2 + ["DATDAI"]
_PREFIX = {"civil_status": "HT", "residence": "CT", "household_business": "HKD"}
NAMES = (
    "Nguyễn Văn An",
    "Trần Thị Bình",
    "Lê Văn Cường",
    "Phạm Thị Dung",
    "Hoàng Văn Em",
    "Vũ Thị Giang",
    "Đặng Văn Hùng",
    "Bùi Thị Lan",
)

RECEIVED = 4899
CARRIED = 50
SPECIAL = {
    "overdue": 50,
    "rejected": 51,
    "withdrawn": 52,
    "supplement_past_due": 53,
    "ended_after": 54,
    "no_due": 55,
    "due_on_e": 56,
    "last_instant": 57,
    "first_instant": 68,
    "end_before_reception": 69,
}
IN_PROGRESS_NEW = range(53, 68)  # 15 received in the period, still open at E
NOT_REUSED = frozenset(range(100, 280, 10))  # 18 of the period's dossiers did not reuse data


def at(y: int, m: int, d: int, hh: int = 8, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=ICT)


@dataclass(frozen=True)
class Spec:
    """One dossier as it really happened (the ground truth both writers render)."""

    n: int
    field_code: str
    source: str  # the source of the reception facts: one_stop, or the ministry when bypassed
    ministry: str | None  # the ministry system that also holds a one_stop dossier
    inferred: bool
    status: str
    received_at: dt.datetime | None
    due_at: dt.datetime | None
    ended_at: dt.datetime | None
    channel: str = "online"
    submitted_at: dt.datetime | None = None
    digitised: bool = True
    data_reused: bool = True
    fee_required: bool = False
    paid_online: bool = False
    applicant_name: str = "Nguyễn Văn An"

    @property
    def code(self) -> str | None:
        """The Centre's reception code (one_stop dossiers only)."""
        if self.source != "one_stop":
            return None
        day = (self.received_at or at(2026, 1, 1)).strftime("%y%m%d")
        return f"000.00.11.H01-{day}-{self.n:04d}"

    @property
    def ministry_id(self) -> str:
        system = self.ministry or self.source
        return f"{_PREFIX[system]}-2026-{self.n:05d}"

    @property
    def case_key(self) -> str:
        if self.code:
            return f"rc:{self.code}"
        return f"src:{self.source}:{self.ministry_id}"

    @property
    def applicant_key(self) -> str:
        return f"{self.n:032x}"


def _placement(n: int) -> tuple[str, str | None, bool]:
    """(reception source, ministry sharing a one_stop dossier, inferred link) for dossier n."""
    code = _FIELD_BY_DIGIT[n % 10]
    ministry = FIELDS[code][3]
    if ministry is None:
        return "one_stop", None, False
    bypassed = (
        (code == "HOTICH" and n % 400 == 0)
        or (code == "CUTRU" and n % 300 == 4)
        or (code == "DKKD" and n % 20 == 16)
    )
    if bypassed:
        return ministry, None, False
    return "one_stop", ministry, n % 97 == 1


def counted_specs() -> list[Spec]:
    """The 4,899 dossiers counted in 2026-02."""
    out = []
    for n in range(RECEIVED):
        source, ministry, inferred = _placement(n)
        base: dict[str, Any] = dict(
            n=n,
            field_code=_FIELD_BY_DIGIT[n % 10],
            source=source,
            ministry=ministry,
            inferred=inferred,
            applicant_name=NAMES[n % len(NAMES)],
            fee_required=n % 4 == 0,
            paid_online=n % 4 == 0,
            data_reused=n not in NOT_REUSED,
        )
        if n < CARRIED:  # received 5-14 January, not ended before the 15th
            received = at(2026, 1, 5 + n % 10, 9)
            if n < 40:  # resolved early in the period
                ended = at(2026, 1, 16 + n % 10, 10)
                spec = Spec(
                    **base,
                    status="delivered",
                    received_at=received,
                    due_at=ended + dt.timedelta(days=3),
                    ended_at=ended,
                )
            else:  # still in progress at E, due after it
                spec = Spec(
                    **base,
                    status="in_progress",
                    received_at=received,
                    due_at=at(2026, 2, 20, 17),
                    ended_at=None,
                    digitised=False,
                )
            out.append(spec)
            continue
        received = dt.datetime.combine(S + dt.timedelta(days=(n * 7) % 31), dt.time(8 + n % 8), ICT)
        ended = received + dt.timedelta(days=1)
        if ended.date() > E:
            ended = received + dt.timedelta(hours=1)
        spec = Spec(
            **base,
            status="resolved" if n % 2 else "delivered",
            received_at=received,
            due_at=ended + dt.timedelta(days=2),
            ended_at=ended,
        )
        if n == SPECIAL["overdue"]:
            spec = replace(
                spec, received_at=at(2026, 1, 20), due_at=at(2026, 2, 5, 17), ended_at=at(2026, 2, 10)
            )
        elif n == SPECIAL["rejected"]:
            spec = replace(spec, status="rejected")
        elif n == SPECIAL["withdrawn"]:
            spec = replace(spec, status="withdrawn")
        elif n == SPECIAL["supplement_past_due"]:  # past due, but waiting for the citizen: within due
            spec = replace(
                spec,
                status="awaiting_supplement",
                received_at=at(2026, 2, 2),
                due_at=at(2026, 2, 10, 17),
                ended_at=None,
                digitised=False,
            )
        elif n == SPECIAL["ended_after"]:  # resolved on the 16th: still in progress at E
            spec = replace(
                spec,
                status="resolved",
                received_at=at(2026, 2, 9),
                due_at=at(2026, 2, 20, 17),
                ended_at=at(2026, 2, 16, 10),
            )
        elif n == SPECIAL["no_due"]:
            spec = replace(spec, status="in_progress", due_at=None, ended_at=None, digitised=False)
        elif n == SPECIAL["due_on_e"]:
            spec = replace(
                spec,
                status="in_progress",
                received_at=at(2026, 2, 9),
                due_at=at(2026, 2, 14, 17),
                ended_at=None,
            )
        elif n == SPECIAL["last_instant"]:  # 23:59:59 on the 14th: received in the period
            spec = replace(
                spec,
                status="received",
                received_at=at(2026, 2, 14, 23, 59, 59),
                due_at=at(2026, 2, 24, 17),
                ended_at=None,
            )
        elif n in IN_PROGRESS_NEW:
            spec = replace(
                spec,
                status="in_progress",
                received_at=at(2026, 2, 10),
                due_at=at(2026, 2, 25, 17),
                ended_at=None,
            )
        elif n == SPECIAL["first_instant"]:  # 00:00:00 on the 15th: received in the period
            spec = replace(
                spec,
                received_at=at(2026, 1, 15, 0, 0, 0),
                due_at=at(2026, 1, 20, 17),
                ended_at=at(2026, 1, 16, 9),
            )
        elif n == SPECIAL["end_before_reception"]:  # counts as ended on its reception date: early
            spec = replace(
                spec, received_at=at(2026, 1, 25), due_at=at(2026, 1, 30, 17), ended_at=at(2026, 1, 20, 9)
            )
        out.append(spec)
    # a bypassed household-business dossier whose applicant typed an ID number into the name
    i = next(k for k, s in enumerate(out) if s.source == "household_business" and s.n >= CARRIED)
    out[i] = replace(out[i], applicant_name=f"Đỗ Minh Khang {ID_NUMBER}")
    return out


def noise_specs() -> list[Spec]:
    """Dossiers of the store that 2026-02 must not count."""
    base: dict[str, Any] = dict(field_code="CHUNGTHUC", source="one_stop", ministry=None, inferred=False)
    return [
        # ended before the period
        Spec(
            n=9001,
            **base,
            status="delivered",
            received_at=at(2026, 1, 10),
            due_at=at(2026, 1, 13, 17),
            ended_at=at(2026, 1, 12),
        ),
        # withdrawn at 23:59:59 on 14 January: before the period
        Spec(
            n=9002,
            **base,
            status="withdrawn",
            received_at=at(2025, 12, 1),
            due_at=at(2025, 12, 5, 17),
            ended_at=at(2026, 1, 14, 23, 59, 59),
        ),
        # an end before its reception, both before the period
        Spec(
            n=9003,
            **base,
            status="resolved",
            received_at=at(2026, 1, 10),
            due_at=at(2026, 1, 12, 17),
            ended_at=at(2026, 1, 5),
        ),
        # received at 00:00:00 on 15 February: the next period
        Spec(
            n=9004,
            **base,
            status="received",
            received_at=at(2026, 2, 15, 0, 0, 0),
            due_at=at(2026, 2, 20, 17),
            ended_at=None,
        ),
        # filed, never received; refused at reception
        Spec(
            n=9005,
            **base,
            status="submitted",
            received_at=None,
            due_at=None,
            ended_at=None,
            submitted_at=at(2026, 2, 1),
        ),
        Spec(n=9006, **base, status="not_accepted", received_at=at(2026, 2, 1), due_at=None, ended_at=None),
    ]


def _date(value: dt.datetime | None) -> dt.date | None:
    return None if value is None else value.astimezone(ICT).date()


REBUILT_AT = at(2026, 2, 15, 7)


def case_row(spec: Spec, now: dt.datetime = REBUILT_AT) -> dict[str, Any]:
    """The ``cases`` row reconciliation would write for ``spec``."""
    name, proc, proc_name, _ = FIELDS[spec.field_code]
    return dict(
        case_key=spec.case_key,
        reception_code=spec.code,
        has_one_stop=spec.source == "one_stop",
        reception_source=spec.source,
        state_source=spec.ministry or spec.source,
        procedure_code=proc,
        procedure_name=proc_name,
        field_code=spec.field_code,
        field_name=name,
        applicant_name=spec.applicant_name,
        applicant_key=spec.applicant_key,
        channel=spec.channel,
        status=spec.status,
        submitted_at=spec.submitted_at or spec.received_at,
        received_at=spec.received_at,
        due_at=spec.due_at,
        ended_at=spec.ended_at,
        received_on=_date(spec.received_at),
        due_on=_date(spec.due_at),
        ended_on=_date(spec.ended_at),
        digitised=spec.digitised,
        data_reused=spec.data_reused,
        fee_required=spec.fee_required,
        paid_online=spec.paid_online,
        record_count=2 if spec.ministry else 1,
        inferred=spec.inferred,
        first_seen_at=now,
        updated_at=now,
    )


def cases_rows() -> list[dict[str, Any]]:
    return [case_row(s) for s in (*counted_specs(), *noise_specs())]


def _record(
    spec: Spec, source: str, source_id: str, code: str | None, updated: dt.datetime, **over: Any
) -> DossierRecord:
    name, proc, proc_name, _ = FIELDS[spec.field_code]
    status = Status(spec.status)
    ended = spec.ended_at
    fields: dict[str, Any] = dict(
        source=source,
        source_id=source_id,
        reception_code=code,
        procedure_code=proc,
        procedure_name=proc_name,
        field_code=spec.field_code,
        field_name=name,
        applicant_name=spec.applicant_name,
        applicant_key=spec.applicant_key,
        channel=Channel(spec.channel),
        status=status,
        submitted_at=spec.submitted_at or spec.received_at,
        received_at=spec.received_at,
        due_at=spec.due_at,
        source_updated_at=updated,
        completed_at=ended if status in (Status.RESOLVED, Status.DELIVERED) else None,
        rejected_at=ended if status is Status.REJECTED else None,
        withdrawn_at=ended if status is Status.WITHDRAWN else None,
        digitised=spec.digitised,
        data_reused=spec.data_reused,
        fee_required=spec.fee_required,
        paid_online=spec.paid_online,
    )
    fields.update(over)
    return DossierRecord(**fields)


def records() -> list[DossierRecord]:
    """The source records of every dossier: one_stop and/or ministry, as the connectors give them.

    A shared dossier's ministry record is the more recently updated (so it decides status and
    dates) and carries the reuse flag on its own for some dossiers (a case is ``data_reused``
    when any record says so); its channel is unknown (reception facts come from one_stop).
    """
    out: list[DossierRecord] = []
    for spec in (*counted_specs(), *noise_specs()):
        base_time = spec.ended_at or spec.received_at or spec.submitted_at or at(2026, 1, 1)
        updated = base_time + dt.timedelta(minutes=5)
        if spec.source == "one_stop":
            shared = spec.ministry is not None
            out.append(
                _record(
                    spec,
                    "one_stop",
                    f"OS-{spec.n:05d}",
                    spec.code,
                    updated,
                    data_reused=spec.data_reused and not (shared and spec.n % 3 == 0),
                )
            )
            if shared:
                assert spec.ministry is not None
                received = spec.received_at + dt.timedelta(hours=3) if spec.received_at else None
                out.append(
                    _record(
                        spec,
                        spec.ministry,
                        spec.ministry_id,
                        None if spec.inferred else spec.code,
                        updated + dt.timedelta(minutes=10),
                        channel=Channel.UNKNOWN,
                        received_at=received,
                    )
                )
        else:
            out.append(_record(spec, spec.source, spec.ministry_id, None, updated))
    return out


EXPECTED_JSON_FIGURES = {
    "received": {"total": 4899, "online": 4849, "direct_or_postal": 0, "carried_over": 50},
    "resolved": {"total": 4874, "early": 4871, "on_time": 0, "overdue": 1, "rejected": 1, "withdrawn": 1},
    "in_progress": {"total": 25, "within_due": 25, "overdue": 0},
    "rates": {
        "online_submission": 100.0,
        "resolved_on_time": 99.98,
        "digitised": 100.0,
        "data_reuse": 99.63,
        "online_payment": 100.0,
    },
}

PARAGRAPH = (
    "Trong kỳ báo cáo theo ghi nhận tại Hệ thống giải quyết TTHC của thành phố Hải Phòng và các hệ thống tập "
    "trung của các Bộ tính từ ngày 15/01/2026 đến hết ngày 14/02/2026. "
    "UBND phường đã tiếp nhận 4.899 hồ sơ, trong đó: Tiếp nhận trong kỳ trực tuyến 4.849 hồ sơ, hồ sơ "
    "trực tiếp và qua dịch vụ bưu chính: 0 hồ sơ, từ kỳ trước chuyển qua: 50 hồ sơ. Số lượng hồ sơ đã giải "
    "quyết: 4.874 hồ sơ. Trong đó, giải quyết trước hạn 4.871, đúng hạn 0, quá hạn 01 hồ sơ, từ chối: 01 hồ "
    "sơ, 01 hồ sơ rút. Đang giải quyết trong hạn 25 hồ sơ, quá hạn 0 hồ sơ.\n"
    "- Tỷ lệ nộp hồ sơ trực tuyến: 100 %\n"
    "- Tỷ lệ hồ sơ đã giải quyết trước hạn, đúng hạn đạt 99,98 %\n"
    "- Tỷ lệ số hóa hồ sơ, kết quả giải quyết thủ tục hành chính đạt 100 %\n"
    "- Tỷ lệ khai thác, sử dụng lại thông tin, dữ liệu số hóa đạt 99,63 %\n"
    "- Kết quả triển khai thanh toán trực tuyến phí, lệ phí đạt 100 %"
)
