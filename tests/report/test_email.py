"""The emailed report through a real SMTP server (aiosmtpd), read back with the ``email`` package."""

from __future__ import annotations

import csv
import dataclasses
import email
import io
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine

from sync_agent import mailer
from sync_agent.config import Settings, SmtpSettings
from sync_agent.errors import UsageError
from sync_agent.mailer import (
    DeliveryInDoubt,
    MailInDoubt,
    MailPermanentError,
    MailTransientError,
    RecipientsRefused,
    deliver_once,
    outbox_row,
    send_email,
)
from sync_agent.report import Period, build_report, send_period_report
from sync_agent.report.message import build_message
from tests.report import seed
from tests.report.conftest import NOW, make_settings
from tests.report.smtp import Inbox, Server, free_port, make_ca, server_context

FEB = Period.parse("2026-02")
ID_SHAPED = re.compile(r"(?<![\d])(\d{12}|\d{9})(?![\d])")
TO = ("ttpvhcc@example.gov.vn", "lanhdao@example.gov.vn")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailer, "BACKOFF_INITIAL", 0.01)


def smtp_for(server: Server | int, **over: object) -> SmtpSettings:
    port = server if isinstance(server, int) else server.port
    base = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        sender="sync-agent@thachkhoi.example.gov.vn",
        timeout=5,
        max_attempts=2,
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def settings_for(server: Server | int, **over: object) -> Settings:
    return make_settings(smtp=smtp_for(server, **over), recipients=TO)


def parse(envelope: object) -> EmailMessage:
    raw = envelope.original_content or envelope.content  # type: ignore[attr-defined]
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# --- the report, end to end ---------------------------------------------------------------------


def test_report_email_parts_attachments_and_privacy(seeded: Engine) -> None:
    with Server() as server:
        settings = settings_for(server)
        result = send_period_report(seeded, settings, FEB, now=NOW)
    assert result.status == "sent" and not result.already_sent
    assert result.message_id == "<sync-agent.11311.report-2026-02@thachkhoi.example.gov.vn>"
    assert len(server.inbox.messages) == 1
    envelope = server.inbox.messages[0]
    assert sorted(envelope.rcpt_tos) == sorted(TO)
    assert envelope.mail_from == "sync-agent@thachkhoi.example.gov.vn"
    msg = parse(envelope)
    assert msg["Message-ID"] == result.message_id
    assert msg["Subject"] == (
        "Phường Thạch Khôi: báo cáo kết quả giải quyết TTHC tháng 02/2026 (15/01/2026 - 14/02/2026)"
    )
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "multipart/alternative",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/csv",
    ]
    alternative = list(parts[0].iter_parts())
    assert [p.get_content_type() for p in alternative] == ["text/plain", "text/html"]
    text = alternative[0].get_content().replace("\r\n", "\n")
    html = alternative[1].get_content()
    assert seed.PARAGRAPH in text
    assert "4.899" in html and "99,98 %" in html and "<script" not in html.lower()
    assert "Một cửa (HTTT giải quyết TTHC thành phố)" in html  # per-source table
    assert "Đăng ký kinh doanh" in html  # per-field table
    assert "Chưa cập nhật quá 24 giờ" in html  # the residence source is stale

    xlsx_part, csv_part = parts[1], parts[2]
    assert xlsx_part.get_filename() == "bieu-06a-2026-02.xlsx"
    wb = openpyxl.load_workbook(io.BytesIO(xlsx_part.get_content()))
    ws = wb["Biểu 06a"]
    assert ws["A1"].value == "Biểu số 06a/VPCP/KSTT"
    merged = {str(r) for r in ws.merged_cells.ranges}
    assert {"A6:A8", "B6:B8", "C6:F6", "G6:O6", "C7:C8", "D7:F7", "G7:L7", "M7:O7"} <= merged
    assert [ws.cell(8, c).value for c in (4, 5, 6, 8, 9, 10, 14, 15)] == [
        "Số kỳ trước chuyển qua",
        "Số mới tiếp nhận trực tuyến",
        "Số mới tiếp nhận trực tiếp hoặc qua dịch vụ bưu chính",
        "Trả trước hạn",
        "Trả đúng thời hạn",
        "Trả quá hạn",
        "Chưa đến hạn (trong hạn)",
        "Quá hạn",
    ]
    rows = {ws.cell(r, 2).value: [ws.cell(r, c).value for c in range(3, 17)] for r in range(10, 16)}
    assert rows["Tổng cộng"] == [4899, 50, 4849, 0, 4874, 4871, 0, 1, 1, 1, 25, 25, 0, "Đúng"]
    assert set(rows) == {"Chứng thực", "Cư trú", "Đất đai", "Đăng ký kinh doanh", "Hộ tịch", "Tổng cộng"}
    assert sum(v[0] for k, v in rows.items() if k != "Tổng cộng") == 4899
    assert wb["Theo hệ thống"].cell(14, 2).value == "Tổng cộng"

    assert csv_part.get_filename() == "ho-so-can-kiem-tra-2026-02.csv"
    assert csv_part.get_content_charset() == "utf-8"
    raw_csv = csv_part.get_payload(decode=True)
    assert isinstance(raw_csv, bytes) and raw_csv.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    bypassed = sum(1 for s in seed.counted_specs() if s.source != "one_stop")
    assert table[0][:3] == ["Loại cảnh báo", "Mã hồ sơ", "Thủ tục"]
    assert len(table) - 1 == bypassed + 3
    assert {r[0] for r in table[1:]} == {
        "Hồ sơ không qua bộ phận tiếp nhận",
        "Dữ liệu chưa hợp lệ",
        "Trạng thái không khớp giữa các hệ thống",
        "Mã hồ sơ tiếp nhận không có trên hệ thống một cửa",
    }

    # privacy: no ID number and no full name anywhere, in the raw message or any decoded part
    raw_bytes = envelope.original_content or envelope.content
    assert isinstance(raw_bytes, bytes)
    raw = raw_bytes.decode("ascii")  # 7-bit clean: every part is quoted-printable or base64
    cells = " ".join(
        str(c.value) for sheet in wb for row in sheet.iter_rows() for c in row if c.value is not None
    )
    decoded = "\n".join([text, html, raw_csv.decode("utf-8-sig"), cells])
    assert seed.ID_NUMBER not in raw and seed.ID_NUMBER not in decoded
    assert not ID_SHAPED.search(decoded), ID_SHAPED.search(decoded)
    assert not ID_SHAPED.search(raw.split("\r\n\r\n", 1)[0])  # headers
    for full in (*seed.NAMES, "Đỗ Minh Khang"):
        assert full not in decoded
    assert "Đ. M. Khang [id-redacted]" in decoded or "Đ. M. K. [id-redacted]" in decoded


def test_the_text_part_names_what_is_attached_as_the_html_part_does(seeded: Engine) -> None:
    report = build_report(seeded, make_settings(), FEB, now=NOW)
    msg = build_message(report, make_settings(), "<m@x>")
    text, html = (p.get_content() for p in next(msg.iter_parts()).iter_parts())
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == ["bieu-06a-2026-02.xlsx", "ho-so-can-kiem-tra-2026-02.csv"]
    assert "Đính kèm: " in html
    line = next(line for line in text.splitlines() if line.startswith("Đính kèm: "))
    assert all(name in line for name in names) and "Biểu số 06a/VPCP/KSTT" in line


def test_second_send_is_refused_and_force_resends(engine: Engine) -> None:
    with Server() as server:
        settings = settings_for(server)
        first = send_period_report(engine, settings, FEB, now=NOW)
        second = send_period_report(engine, settings, FEB, now=NOW)
        assert second.already_sent and second.message_id == first.message_id
        assert len(server.inbox.messages) == 1
        forced = send_period_report(engine, settings, FEB, force=True, now=NOW)
        again = send_period_report(engine, settings, FEB, now=NOW)
    assert forced.status == "sent" and again.already_sent
    assert forced.message_id == "<sync-agent.11311.report-2026-02.r2@thachkhoi.example.gov.vn>"
    assert [parse(e)["Message-ID"] for e in server.inbox.messages] == [first.message_id, forced.message_id]
    row = outbox_row(engine, "report:2026-02")
    assert row is not None and (row.status, row.attempts) == ("sent", 2)
    assert row.subject is not None and "02/2026" in row.subject and row.recipients == ", ".join(TO)


def test_smtp_down_then_up_sends_exactly_once(engine: Engine) -> None:
    port = free_port()
    settings = settings_for(port)
    with pytest.raises(MailTransientError, match="cannot connect"):
        send_period_report(engine, settings, FEB, now=NOW)
    row = outbox_row(engine, "report:2026-02")
    assert row is not None and row.status == "failed" and row.error and "ConnectionRefused" in row.error
    with Server(port=port) as server:
        assert send_period_report(engine, settings, FEB, now=NOW).status == "sent"
        assert send_period_report(engine, settings, FEB, now=NOW).already_sent
    assert len(server.inbox.messages) == 1


def test_retry_reaches_a_server_that_comes_up_during_the_backoff() -> None:
    port = free_port()
    servers: list[Server] = []

    def sleep(_seconds: float) -> None:
        if not servers:
            servers.append(Server(port=port).__enter__())

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.gov.vn", "b@example.gov.vn", "thử"
    msg.set_content("xin chào")
    try:
        send_email(smtp_for(port, max_attempts=3), msg, sleep=sleep)
        assert len(servers[0].inbox.messages) == 1
    finally:
        for s in servers:
            s.__exit__()


def test_a_crash_after_claiming_is_not_resent_without_force(engine: Engine) -> None:
    with Server() as server:
        settings = settings_for(server)
        report = build_report(engine, settings, FEB, now=NOW)

        def die(_msg: object) -> None:
            raise SystemExit("killed while talking to the SMTP server")

        with pytest.raises(SystemExit):
            deliver_once(
                engine,
                "report:2026-02",
                "email",
                lambda mid: build_message(report, settings, mid),
                die,
                now=NOW,
                ward_code="11311",
                domain="thachkhoi.example.gov.vn",
            )
        row = outbox_row(engine, "report:2026-02")
        assert row is not None and row.status == "sending"
        with pytest.raises(DeliveryInDoubt, match=r"may have been sent.*--force"):
            send_period_report(engine, settings, FEB, now=NOW)
        assert server.inbox.messages == []
        forced = send_period_report(engine, settings, FEB, force=True, now=NOW)
    assert forced.status == "sent"
    assert forced.message_id == "<sync-agent.11311.report-2026-02@thachkhoi.example.gov.vn>"  # same identity
    assert len(server.inbox.messages) == 1


def test_connection_lost_after_data_is_in_doubt(engine: Engine) -> None:
    with Server(inbox=Inbox(drop_after_data=True)) as server:
        settings = settings_for(server)
        with pytest.raises(MailInDoubt):
            send_period_report(engine, settings, FEB, now=NOW)
        row = outbox_row(engine, "report:2026-02")
        assert row is not None and row.status == "sending" and row.attempts == 1  # not retried
        with pytest.raises(DeliveryInDoubt):
            send_period_report(engine, settings, FEB, now=NOW)


def test_refused_recipient_sends_nothing_and_says_who(engine: Engine) -> None:
    inbox = Inbox(refuse={"lanhdao@example.gov.vn": "550 5.1.1 no such mailbox"})
    with Server(inbox=inbox) as server:
        settings = settings_for(server)
        with pytest.raises(RecipientsRefused, match=r"lanhdao@example\.gov\.vn") as info:
            send_period_report(engine, settings, FEB, now=NOW)
    assert not info.value.transient and server.inbox.messages == []
    row = outbox_row(engine, "report:2026-02")
    assert row is not None and row.status == "failed" and row.attempts == 1


def test_busy_mailbox_is_retried_then_given_up() -> None:
    inbox = Inbox(refuse={"b@example.gov.vn": "450 4.2.1 mailbox busy"})
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.gov.vn", "b@example.gov.vn", "thử"
    msg.set_content("xin chào")
    sleeps: list[float] = []
    with Server(inbox=inbox) as server, pytest.raises(RecipientsRefused) as info:
        send_email(smtp_for(server, max_attempts=3), msg, sleep=sleeps.append)
    assert info.value.transient and len(sleeps) == 2


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_ca(tmp_path_factory.mktemp("ca"))
    if made is None:
        pytest.skip("openssl is not installed")
    return made


def _msg() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sync-agent@example.gov.vn", "b@example.gov.vn", "Báo cáo"
    msg.set_content("Nội dung")
    return msg


def test_starttls_verified_against_ca_file_with_login(ca: tuple[Path, Path]) -> None:
    cert, key = ca
    inbox = Inbox()
    with Server(
        inbox=inbox,
        tls_context=server_context(cert, key),
        require_starttls=True,
        authenticator=inbox.authenticate,
    ) as server:
        send_email(
            smtp_for(server, security="starttls", ca_file=cert, username="phuong", password="mat-khau-smtp"),
            _msg(),
        )
    assert len(inbox.messages) == 1 and inbox.logins == [(b"phuong", b"mat-khau-smtp")]


def test_starttls_refuses_an_untrusted_certificate(ca: tuple[Path, Path]) -> None:
    cert, key = ca
    with (
        Server(tls_context=server_context(cert, key), require_starttls=True) as server,
        pytest.raises(MailPermanentError, match="certificate not trusted"),
    ):
        send_email(smtp_for(server, security="starttls", max_attempts=3), _msg())
    assert server.inbox.messages == []


def test_starttls_never_falls_back_to_clear_text() -> None:
    with Server() as server, pytest.raises(MailPermanentError, match="does not offer STARTTLS"):
        send_email(smtp_for(server, security="starttls"), _msg())
    assert server.inbox.messages == []


def test_implicit_tls(ca: tuple[Path, Path]) -> None:
    cert, key = ca
    with Server(ssl_context=server_context(cert, key)) as server:
        send_email(smtp_for(server, security="ssl", ca_file=cert), _msg())
    assert len(server.inbox.messages) == 1


def test_a_tls_handshake_cut_off_by_the_server_is_transient() -> None:
    """A server restarting, or an overloaded relay, closes the connection during the handshake:
    worth another try (it was taken for a bad TLS setup and never tried again)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def cut_off() -> None:
        while len(accepted) < 2:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(4096)  # the ClientHello
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=cut_off, daemon=True)
    thread.start()
    try:
        with pytest.raises(MailTransientError, match="TLS handshake cut off"):
            send_email(smtp_for(port, security="ssl", max_attempts=2), _msg())
    finally:
        listener.close()
    assert len(accepted) == 2  # tried again


def test_wrong_password_is_permanent(ca: tuple[Path, Path]) -> None:
    cert, key = ca
    inbox = Inbox()
    with (
        Server(
            inbox=inbox, tls_context=server_context(cert, key), authenticator=inbox.authenticate
        ) as server,
        pytest.raises(MailPermanentError, match="login refused"),
    ):
        send_email(
            smtp_for(
                server, security="starttls", ca_file=cert, username="phuong", password="sai", max_attempts=3
            ),
            _msg(),
        )
    # smtplib tries PLAIN then LOGIN within one attempt; a retry would double that
    assert inbox.messages == [] and len(inbox.logins) == 2


def test_an_unfinished_period_is_never_sent(engine: Engine) -> None:
    with Server() as server, pytest.raises(UsageError, match="can be sent from 2026-02-15"):
        send_period_report(engine, settings_for(server), FEB, now=seed.at(2026, 2, 14, 23, 59))
    assert outbox_row(engine, "report:2026-02") is None and server.inbox.messages == []


def test_a_ca_file_gone_since_the_start_fails_the_mail_for_a_person_naming_the_key(
        ca: tuple[Path, Path], tmp_path: Path) -> None:
    """Not "cannot connect", retried for days: no wait brings the file back."""
    cert, _key = ca
    gone = tmp_path / "ca.pem"
    gone.write_bytes(cert.read_bytes())
    smtp = smtp_for(0, security="ssl", ca_file=gone, max_attempts=3)
    gone.unlink()
    with pytest.raises(MailPermanentError, match=r"smtp\.ca_file: cannot load .*ca\.pem"):
        send_email(smtp, _msg())
