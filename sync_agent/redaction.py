"""What no message a person reads may hold: citizens' ID numbers, and secrets.

A message is a log line, a run's error (``runs``, ``status``, the monthly report's email), a
delivery's error, a command's ``failed:`` line. Many carry text a server wrote, and a server may
quote what it was sent: a password it refused, the session or token it will not take. So every
such text goes through ``redact_message``, which masks ID-shaped numbers, inline secrets
(``password=...``), the configuration's secrets, and those the agent got while running (a
session id, an access token: ``keep_secret``).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable

from sync_agent.privacy import ID_PLACEHOLDER, id_spans

# "password=hunter2", "api_key: abc", "Authorization: Bearer abc" inside a free-text message
# (a library's exception, a URL with its query string)
_SECRET_IN_TEXT = re.compile(
    r"(?P<key>\b(?:pass(?:word)?|secret|client_secret|token|access_token|api_?key|authorization)"
    # a ``${NAME}`` is where a secret comes from, not one: a hint says to write it so
    r"[\"']?\s*(?P<sep>[=:])\s*[\"']?)(?P<scheme>(?:Bearer|Basic)\s+)?(?!\$\{)(?P<value>[^\s&\"',;}]+)",
    re.I,
)
#: a URL's user info: "scheme://user:password@host" (the password from ``:`` to ``@``)
_URL_PASSWORD = re.compile(r"//[^/@:\s]*:(?P<value>[^/@\s]+)@")
REDACTED = "[redacted]"
#: shorter values are not masked: they would mask ordinary words and numbers
SECRET_MIN_LENGTH = 6
#: the runtime secrets kept: a token renewed hourly for months would otherwise make every
#: message slower to mask; an expired one is worth nothing, and a server quotes the current one
_RUNTIME_KEPT = 32

_guard = threading.Lock()
_configured: tuple[str, ...] = ()
_runtime: deque[str] = deque(maxlen=_RUNTIME_KEPT)
#: both, longest first (a secret inside a longer one is masked with it)
_values: tuple[str, ...] = ()


def _refresh() -> None:
    global _values
    _values = tuple(sorted({*_configured, *_runtime}, key=len, reverse=True))


def set_configured_secrets(values: Iterable[str]) -> None:
    """Mask these values (the configuration's secrets) in every message: a server or library
    may quote a bare password, which no key name announces, and a third party's secret option
    may have any name."""
    global _configured
    with _guard:
        _configured = tuple(v for v in set(values) if len(v) >= SECRET_MIN_LENGTH)
        _refresh()


def keep_secret(value: str) -> None:
    """Mask ``value`` too from now on: a credential the agent got while running (a session id,
    an access token), which the configuration cannot know. Connectors call it as they get one."""
    if len(value) < SECRET_MIN_LENGTH:
        return
    with _guard:
        if value not in _runtime:
            _runtime.append(value)
            _refresh()


def forget_runtime_secrets() -> None:
    """For tests: the runtime secrets kept so far are masked no more."""
    with _guard:
        _runtime.clear()
        _refresh()


def _is_request_description(m: re.Match[str]) -> bool:
    """A path ending in a secret's name, a colon, then why it failed ("POST /api/token: HTTP
    401"): not a secret; its value would follow ``=``."""
    return m.group("sep") == ":" and not m.group("scheme") and m.string[m.start() - 1:m.start()] == "/"


def redact_message(text: str) -> str:
    """``text`` with its ID numbers, its inline secrets (``password=...``, a URL's password) and
    the known secret values masked, each found in the text as it came: masked one after another,
    one could cut another in two and leave its halves in clear. Overlapping ones are masked as one."""
    spans = [(start, end, ID_PLACEHOLDER) for start, end in id_spans(text)]
    spans += [(m.end("key"), m.end("value"), REDACTED) for m in _SECRET_IN_TEXT.finditer(text)
              if not _is_request_description(m)]
    if "@" in text:
        spans += [(m.start("value"), m.end("value"), REDACTED) for m in _URL_PASSWORD.finditer(text)]
    return _masked(text, spans + _value_spans(text, _values))


def mask_values_in(text: str, values: Iterable[str]) -> str:
    """``text`` with these values masked and nothing else: the configuration's own errors, made
    before its secrets are known to ``redact_message``."""
    kept = {v for v in values if len(v) >= SECRET_MIN_LENGTH}
    return _masked(text, _value_spans(text, kept))


def _value_spans(text: str, values: Iterable[str]) -> list[tuple[int, int, str]]:
    spans = []
    for secret in values:
        at = text.find(secret)
        while at != -1:
            spans.append((at, at + len(secret), REDACTED))
            at = text.find(secret, at + 1)
    return spans


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` with each span replaced by its mask; overlapping spans are one, a secret's mask
    if either is one."""
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0  # text before this is written
    start, end, mask = spans[0]
    for s, e, m in spans[1:]:
        if s < end:
            end, mask = max(end, e), REDACTED if REDACTED in (mask, m) else mask
            continue
        out += [text[done:start], mask]
        done, (start, end, mask) = end, (s, e, m)
    out += [text[done:start], mask, text[end:]]
    return "".join(out)
