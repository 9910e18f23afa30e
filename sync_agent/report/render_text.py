"""The plain-text report, led by the paragraph the Centre pastes into section I.1.c.

The paragraph keeps the seed's wording and order and always names every part (on time and the
overdue in-progress count included, even at zero), so the pasted text can be checked against
the table beneath it; the reader deletes a zero part if the document does not want it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sync_agent.report import vn
from sync_agent.report.build import FlaggedDossier, PeriodReport
from sync_agent.report.counting import Figures, Group, Rates

#: (label, joiner) of the five rate lines, in the seed's order and wording
RATE_LINES: tuple[tuple[str, str, str], ...] = (
    ("online_submission", "Tỷ lệ nộp hồ sơ trực tuyến", ": "),
    ("resolved_on_time", "Tỷ lệ hồ sơ đã giải quyết trước hạn, đúng hạn", " đạt "),
    ("digitised", "Tỷ lệ số hóa hồ sơ, kết quả giải quyết thủ tục hành chính", " đạt "),
    ("data_reuse", "Tỷ lệ khai thác, sử dụng lại thông tin, dữ liệu số hóa", " đạt "),
    ("online_payment", "Kết quả triển khai thanh toán trực tuyến phí, lệ phí", " đạt "),
)
NO_RATE = "chưa có hồ sơ để tính"


def figures_sentence(f: Figures) -> str:
    """The counts sentence of I.1.c, in the seed's words."""
    n = vn.count
    return (
        f"UBND phường đã tiếp nhận {n(f.received_total)} hồ sơ, trong đó: Tiếp nhận trong kỳ trực tuyến "
        f"{n(f.received_online)} hồ sơ, hồ sơ trực tiếp và qua dịch vụ bưu chính: "
        f"{n(f.received_direct_or_postal)} hồ sơ, từ kỳ trước chuyển qua: {n(f.carried_over)} hồ sơ. "
        f"Số lượng hồ sơ đã giải quyết: {n(f.resolved_total)} hồ sơ. Trong đó, giải quyết trước hạn "
        f"{n(f.resolved_early)}, đúng hạn {n(f.resolved_on_time)}, quá hạn {n(f.resolved_overdue)} hồ sơ, "
        f"từ chối: {n(f.rejected)} hồ sơ, {n(f.withdrawn)} hồ sơ rút. Đang giải quyết trong hạn "
        f"{n(f.in_progress_within_due)} hồ sơ, quá hạn {n(f.in_progress_overdue)} hồ sơ."
    )


def rate_lines(rates: Rates) -> list[str]:
    """The five ``- Tỷ lệ ... đạt 99,98 %`` lines."""
    out = []
    for attr, label, joiner in RATE_LINES:
        value = getattr(rates, attr)
        out.append(f"- {label}: {NO_RATE}" if value is None else f"- {label}{joiner}{vn.percent(value)}")
    return out


def paragraph(report: PeriodReport) -> str:
    """The paste-ready text of section I.1.c: the period and counts sentences, then the five rate
    lines."""
    return "\n".join([f"{opening_sentence(report)} {figures_sentence(report.total)}", *rate_lines(report.rates)])


def opening_sentence(report: PeriodReport) -> str:
    """The period as section I.1.c of the ward's report opens with it."""
    p = report.period
    system = f"của {report.province_name}" if report.province_name else "cấp tỉnh"
    return (f"Trong kỳ báo cáo theo ghi nhận tại Hệ thống giải quyết TTHC {system} và các hệ thống tập "
            f"trung của các Bộ tính từ ngày {vn.date(p.start)} đến hết ngày {vn.date(p.end)}.")


def period_sentence(report: PeriodReport) -> str:
    p = report.period
    sentence = (f"Kỳ báo cáo tháng {p.month:02d}/{p.year}: tính từ ngày {vn.date(p.start)} "
                f"đến hết ngày {vn.date(p.end)}.")
    note = unfinished_note(report)
    return f"{sentence} {note}" if note else sentence


def unfinished_note(report: PeriodReport) -> str | None:
    """Said wherever the figures are read when the period has not ended: whoever pastes them must
    see that they are not the period's final ones."""
    if report.over:
        return None
    return (f"Kỳ báo cáo chưa kết thúc: số liệu tính đến {vn.moment(report.generated_at)} "
            "và sẽ còn thay đổi.")


def subject(report: PeriodReport) -> str:
    """Email subject: ward and period, with a warning prefix when the figures need a look."""
    p = report.period
    warn = "" if report.identity_holds else "[CẦN KIỂM TRA] "
    warn += "" if report.over else "[SỐ LIỆU TẠM TÍNH] "  # a period not over: written by --out, never sent
    return (f"{warn}{report.ward_name}: báo cáo kết quả giải quyết TTHC tháng {p.month:02d}/{p.year} "
            f"({vn.date(p.start)} - {vn.date(p.end)})")


def identity_sentence(report: PeriodReport) -> str:
    if report.identity_holds:
        return ("Kiểm tra: số tiếp nhận = số đã giải quyết + số đang giải quyết, đúng cho tổng số, "
                "từng hệ thống và từng lĩnh vực.")
    return ("CẢNH BÁO: số tiếp nhận khác số đã giải quyết + số đang giải quyết tại: "
            + "; ".join(report.identity_failures) + ". Không dùng số liệu này trước khi kiểm tra.")


# --- tables ---------------------------------------------------------------------------------

COLUMNS: tuple[tuple[str, str], ...] = (
    ("TN", "tiếp nhận (tổng)"), ("KT", "kỳ trước chuyển qua"), ("TTuyến", "trực tuyến"),
    ("TTBC", "trực tiếp, bưu chính"), ("GQ", "đã giải quyết (tổng)"), ("TH", "trước hạn"),
    ("ĐH", "đúng hạn"), ("QH", "quá hạn"), ("TC", "từ chối"), ("R", "rút"),
    ("ĐG", "đang giải quyết (tổng)"), ("TrH", "trong hạn"), ("ĐQH", "đang quá hạn"),
)


def figure_row(f: Figures) -> list[int]:
    """The 13 numbers of a table row, in ``COLUMNS`` order."""
    return [f.received_total, f.carried_over, f.received_online, f.received_direct_or_postal,
            f.resolved_total, f.resolved_early, f.resolved_on_time, f.resolved_overdue, f.rejected,
            f.withdrawn, f.in_progress_total, f.in_progress_within_due, f.in_progress_overdue]


def _table(title: str, groups: Sequence[Group], total: Figures) -> list[str]:
    width = max([len("Tổng cộng"), *(len(g.label) for g in groups)])
    width = min(width, 42)
    head = f"{'':<{width}} " + " ".join(f"{c:>6}" for c, _ in COLUMNS) + "  khớp"
    lines = [title, head]

    def row(label: str, f: Figures) -> str:
        ok = "đúng" if f.identity_holds else "SAI"
        if len(label) > width:  # the HTML part and the spreadsheet show it whole
            label = label[:width - 1].rstrip() + "…"
        return (f"{label:<{width}} " + " ".join(f"{vn.number(v):>6}" for v in figure_row(f))
                + f"  {ok}")

    lines += [row(g.label, g.figures) for g in groups]
    lines.append(row("Tổng cộng", total))
    return lines


def _flag_line(item: FlaggedDossier) -> str:
    parts = [item.code or "?", item.procedure]
    if item.applicant:
        parts.append(item.applicant)
    parts.append(f"nộp {vn.date(item.filed_on, '?')}")
    parts.append(vn.source_label(item.source))
    if item.details:
        parts.append(item.details)
    return " | ".join(parts)


def render_text(report: PeriodReport, limit: int | None = None, attached: tuple[str, str] | None = None) -> str:
    """The whole report as text: what ``report --format text`` prints and the email's text part.

    ``attached``: the email's spreadsheet and CSV file names, which its text then names, as the
    HTML part does (a reader whose client shows only the text would not know what they hold)."""
    f = report.total
    lines = [
        f"BÁO CÁO KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH - {report.ward_name} (mã {report.ward_code})",
        period_sentence(report),
        "",
        "Đoạn văn để dán vào báo cáo (mục I.1.c):",
        "",
        paragraph(report),
        "",
        identity_sentence(report),
        "",
        "Số liệu tổng hợp",
        f"  Tiếp nhận: {vn.number(f.received_total)} (kỳ trước chuyển qua {vn.number(f.carried_over)}, "
        f"trực tuyến {vn.number(f.received_online)}, trực tiếp, bưu chính "
        f"{vn.number(f.received_direct_or_postal)})",
        f"  Đã giải quyết: {vn.number(f.resolved_total)} (trước hạn {vn.number(f.resolved_early)}, đúng hạn "
        f"{vn.number(f.resolved_on_time)}, quá hạn {vn.number(f.resolved_overdue)}, từ chối "
        f"{vn.number(f.rejected)}, rút {vn.number(f.withdrawn)})",
        f"  Đang giải quyết: {vn.number(f.in_progress_total)} (trong hạn "
        f"{vn.number(f.in_progress_within_due)}, quá hạn {vn.number(f.in_progress_overdue)})",
        "",
        "Chú thích cột: " + ", ".join(f"{c} = {d}" for c, d in COLUMNS),
        "",
        *_table("Theo hệ thống tiếp nhận", report.by_source, f),
        "",
        *_table("Theo lĩnh vực", report.by_field, f),
        "",
        f"Hồ sơ không qua bộ phận tiếp nhận của Trung tâm trong kỳ: {vn.number(len(report.bypassed))}",
    ]
    shown = report.bypassed if limit is None else report.bypassed[:limit]
    lines += [f"  - {_flag_line(i)}" for i in shown]
    if len(shown) < len(report.bypassed):
        lines.append(f"  ... và {vn.number(len(report.bypassed) - len(shown))} hồ sơ khác "
                     "(xem trang tính “Hồ sơ cần kiểm tra” trong tệp Excel đính kèm)")
    lines += ["", f"Cảnh báo khác đang mở, mọi kỳ: {vn.number(len(report.other_flags))}"]
    shown = report.other_flags if limit is None else report.other_flags[:limit]
    lines += [f"  - {vn.FLAG_LABELS.get(i.kind, i.kind)}: {_flag_line(i)}" for i in shown]
    if len(shown) < len(report.other_flags):
        lines.append(f"  ... và {vn.number(len(report.other_flags) - len(shown))} cảnh báo khác "
                     "(xem trang tính “Hồ sơ cần kiểm tra” trong tệp Excel đính kèm)")
    lines += ["", "Tình trạng đồng bộ dữ liệu"]
    for s in report.sources:
        state = s.state(report.stale_after_hours)
        state = state.upper() if s.stale else state[0].lower() + state[1:]
        extra = f", {vn.failures_text(s.failures_in_a_row)}" if s.failures_in_a_row else ""
        if s.quarantined:
            extra += f"; {vn.quarantined_text(s.quarantined)}"
        if s.quarantined_acknowledged:
            extra += f"; {vn.quarantined_acknowledged_text(s.quarantined_acknowledged)}"
        lines.append(f"  - {vn.source_label(s.source)}: lần đồng bộ thành công gần nhất "
                     f"{vn.moment(s.last_success)}; {vn.number(s.records)} bản ghi; {state}{extra}")
    if attached is not None:
        lines += ["", f"Đính kèm: {attached[0]} (tệp Excel gồm Biểu số 06a/VPCP/KSTT theo lĩnh vực, trang tính "
                      f"“Theo hệ thống” và trang tính “Hồ sơ cần kiểm tra”); {attached[1]} (danh sách hồ sơ "
                      "cần kiểm tra, cùng nội dung trang tính đó, dùng khi cần nhập vào phần mềm khác)."]
    lines += ["", f"Báo cáo do phần mềm đồng bộ dữ liệu lập tự động lúc {vn.moment(report.generated_at)}. "
                  "Tên người nộp đã được che một phần."]
    return "\n".join(lines) + "\n"

