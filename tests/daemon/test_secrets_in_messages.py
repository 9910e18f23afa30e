"""A server may quote what it was sent: a password it refused, the token it will not take. No
message a person reads keeps it: the run's error (``runs``, ``status``, the report's email), the
command's ``failed:`` line, ``check-config``'s lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sync_agent.cli import main
from sync_agent.config import load_settings
from sync_agent.redaction import forget_runtime_secrets, set_configured_secrets
from sync_agent.store.engine import create_store_engine, migrate
from sync_agent.sync import sync_source
from tests.connectors.fakehttp import FakeServer, Reply, Request
from tests.daemon.conftest import CREDENTIALS

PASSWORD = "S3CRET-one-stop-pw"
TOKEN = "TOKEN-civil-4f9a2c71e0"


@pytest.fixture(autouse=True)
def nothing_kept_after() -> Iterator[None]:
    yield
    set_configured_secrets([])
    forget_runtime_secrets()


@pytest.fixture(autouse=True)
def quick_webhook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent import notifiers

    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def quoting_what_it_was_sent(request: Request) -> Reply:
    """A one_stop server that refuses the login and quotes the password it was sent, bare: no
    key name around it announces a secret."""
    sent = request.json() if request.body.startswith(b"{") else request.form()
    return Reply(body={"error_code": "1", "message": f"Sai mật khẩu {sent['password']} cho tài khoản tiepnhan"})


def test_a_password_the_source_quotes_back_is_in_no_message(write_config: Callable[..., Path]) -> None:
    server = FakeServer(quoting_what_it_was_sent).start()
    try:
        config = write_config(base_urls={"one_stop": server.url},
                              credentials={"one_stop": f'username = "tiepnhan"\npassword = "{PASSWORD}"'})
        code, out, err = run(config, "sync", "one_stop")
        assert code == 1 and "login refused" in out and "[redacted]" in out
        checked = run(config, "check-config")
        runs = run(config, "runs", "--format", "json")
        status = run(config, "status", "--format", "json")
    finally:
        server.stop()
    assert PASSWORD in server.requests[0].body.decode()  # it was sent, and quoted back
    assert "[redacted]" in json.loads(runs[1])[0]["error"]
    for text in (out, err, *checked[1:], *runs[1:], *status[1:]):
        assert PASSWORD not in text, text


def test_a_token_the_source_quotes_back_is_not_in_the_runs_error(tmp_path: Path,
                                                                 write_config: Callable[..., Path]) -> None:
    def civil_status(request: Request) -> Reply:
        if request.path == "/api/token":
            return Reply(body={"access_token": TOKEN, "expires_in": 3600})
        return Reply(body={"status": "0", "message": f"Mã truy cập {request.headers['Authorization']} hết hạn"})

    server = FakeServer(civil_status).start()
    try:
        settings = load_settings(write_config(base_urls={"civil_status": server.url}, credentials=CREDENTIALS))
        engine = create_store_engine(settings.agent.database_url)
        migrate(engine)
        result = sync_source(engine, settings, "civil_status")
        engine.dispose()
    finally:
        server.stop()
    assert result.failed and result.error is not None
    assert "Mã truy cập Bearer [redacted] hết hạn" in result.error and TOKEN not in result.error


def test_a_password_in_a_urls_user_info_is_masked() -> None:
    from sync_agent.redaction import redact_message

    assert (redact_message("cannot open http://tiepnhan:S3CRET@127.0.0.1:8101/x")
            == "cannot open http://tiepnhan:[redacted]@127.0.0.1:8101/x")
    assert redact_message("mailto:a@b.vn and http://127.0.0.1:8101/x") == "mailto:a@b.vn and http://127.0.0.1:8101/x"
    hint = 'missing: username is set (password = "${SMTP_PASSWORD}")'  # where a secret comes from: not one
    assert redact_message(hint) == hint


def env_run(config: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_secret_read_from_the_environment_is_not_quoted_by_a_configuration_error(
        write_config: Callable[..., Path]) -> None:
    token = "S3CRET-path-token-81"
    config = write_config(base_urls={"one_stop": "http://127.0.0.1:99999/feed/${FEED_TOKEN}"})  # a bad port
    code, _, err = env_run(config, {"FEED_TOKEN": token}, "check-config", "--offline")
    assert code == 2 and "connectors.one_stop.base_url: bad port" in err and token not in err


def test_a_token_in_a_webhooks_path_is_in_no_message(write_config: Callable[..., Path], tmp_path: Path) -> None:
    from tests.daemon.conftest import free_port

    token = "T0KEN-hook-9c1e5d"
    hook = f'\n[alerts]\n[[alerts.webhooks]]\nurl = "http://127.0.0.1:{free_port()}/hooks/${{HOOK_TOKEN}}"\n'
    config = write_config(extra=hook)  # nothing listens there: the digest fails on it
    code, _, err = env_run(config, {"HOOK_TOKEN": token}, "alerts", "--send")
    assert code == 1 and "webhook:" in err
    status = env_run(config, {"HOOK_TOKEN": token}, "status")
    log = (tmp_path / "logs" / "agent.jsonl").read_text(encoding="utf-8")
    assert "webhook_" in log or "digest_send_failed" in log
    for text in (err, *status[1:], log):
        assert token not in text, text
    shown = next(w for w in err.split() if w.startswith("webhook:")).rstrip(":")  # as status names it, masked
    code, _, err = env_run(config, {"HOOK_TOKEN": token}, "alerts", "--send", "--force", "--channel", shown)
    assert code == 1 and "no channel" not in err  # the masked name still picks the channel


@pytest.mark.parametrize("token", ["S3CRET-with-newline\n", "S3CRET\\with-backslash"], ids=["newline", "backslash"])
def test_a_secret_the_error_quotes_in_its_escaped_form_is_masked_too(write_config: Callable[..., Path],
                                                                     token: str) -> None:
    """A secret file often ends in a newline; the error quotes the value as ``repr`` writes it."""
    config = write_config(base_urls={"one_stop": "http://127.0.0.1:99999/feed/${FEED_TOKEN}"})  # a bad port
    code, _, err = env_run(config, {"FEED_TOKEN": token}, "check-config", "--offline")
    assert code == 2 and "connectors.one_stop.base_url" in err
    assert "S3CRET" not in err and "[redacted]" in err


def test_a_password_written_in_a_urls_user_part_is_masked_in_the_configuration_error(
        write_config: Callable[..., Path]) -> None:
    config = write_config(base_urls={"one_stop": "http://tiepnhan:LiteralPw99@127.0.0.1:99999"})
    code, _, err = run(config, "check-config", "--offline")
    assert code == 2 and "connectors.one_stop.base_url: bad port in URL" in err
    assert "LiteralPw99" not in err and "tiepnhan:[redacted]@" in err


def test_two_webhooks_masked_alike_are_not_both_picked_by_the_masked_name(
        write_config: Callable[..., Path]) -> None:
    """``--force`` on one would send the other again: the outbox exists to prevent that."""
    from tests.daemon.conftest import free_port

    port = free_port()
    hooks = "".join(f'[[alerts.webhooks]]\nurl = "http://127.0.0.1:{port}/hooks/${{{name}}}"\n'
                    for name in ("HOOK_A", "HOOK_B"))
    config = write_config(extra=f"\n[alerts]\n{hooks}")
    env = {"HOOK_A": "T0KEN-hook-aaaaaa", "HOOK_B": "T0KEN-hook-bbbbbb"}
    masked = f"webhook:http://127.0.0.1:{port}/hooks/[redacted]"
    code, _, err = env_run(config, env, "alerts", "--send", "--force", "--channel", masked)
    assert code == 2 and "2 channels are shown as" in err and "T0KEN" not in err


def test_a_delivery_note_in_status_json_names_its_channels_masked() -> None:
    from sync_agent.status import _shown_note

    set_configured_secrets(["T0KEN-hook-9c1e5d"])
    note = {"job": "alerts:digest", "in_doubt": True, "channels": ["webhook:http://127.0.0.1:9/hooks/T0KEN-hook-9c1e5d"],
            "other_channels": ["email"]}
    assert _shown_note(note) == {**note, "channels": ["webhook:http://127.0.0.1:9/hooks/[redacted]"]}
