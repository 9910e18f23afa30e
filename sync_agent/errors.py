"""Errors sorted by what the caller must do, not by where they happened.

- ``ConfigError``: stop at start, tell the operator which key is wrong (exit status 2).
- ``TransientSourceError``: try again later (the HTTP layer retries these with backoff).
- ``SessionExpired``: log in again and repeat the call once.
- ``FatalSourceError``: this connector's run fails; other sources go on; the next scheduled run
  tries again.
- ``RecordError``: this one record is quarantined with the reason; the page goes on.
- ``WorkFailed``: the command ran but its work failed (exit status 1).

And failures of the machine rather than of the agent (``machine_failure``: a full disk, a disk
error, a database server gone) are said in one line, like ``WorkFailed``, not as a traceback.
"""

from __future__ import annotations

import errno


class SyncAgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(SyncAgentError):
    """A configuration value is wrong; ``key`` is its dotted path in the TOML file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class UsageError(SyncAgentError):
    """The command line asks for something that cannot be done (exit status 2)."""


class WorkFailed(SyncAgentError):
    """The command's work failed: a source down, SMTP refused (exit status 1)."""


class SourceError(SyncAgentError):
    """Something went wrong talking to a source system."""


class TransientSourceError(SourceError):
    """Worth retrying: connection errors, timeouts, 429 and 5xx, a truncated body."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SessionExpired(SourceError):
    """The session or token is no longer valid: log in again and repeat the call once."""


class FatalSourceError(SourceError):
    """Not worth retrying now: bad credentials, other 4xx, a contract the source broke."""


class RecordError(SyncAgentError):
    """One record cannot be normalised; it is quarantined with this reason."""


class AlreadyRunning(SyncAgentError):
    """Another agent process already holds the store's single-instance lock."""


def first_line(exc: BaseException) -> str:
    """A failure's message on one line, for ``status``, the log and a one-line error: the
    driver's own message for a database error (SQLAlchemy's adds the statement, its parameters
    and a link on further lines)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else ""


def one_line(exc: BaseException) -> str:
    """``first_line`` after the failure's type."""
    return f"{type(exc).__name__}: {first_line(exc)}"


#: what the operating system says when the disk is full, failing or read-only
_MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})
#: how SQLite and PostgreSQL say a write found no room: waiting (for space freed) may mend it
DISK_FULL_WORDS = ("database or disk is full", "no space left on device", "could not extend file",
                   "disk quota exceeded")
#: how they say the disk or the server failed the agent
_MACHINE_WORDS = (*DISK_FULL_WORDS, "disk i/o error", "readonly database", "read-only file system",
                  "read-only transaction",  # a PostgreSQL standby, or one set read-only
                  "could not connect", "connection refused", "server closed", "terminating connection",
                  "the connection is lost", "the connection is closed", "the database system is",
                  # refused at login, where psycopg gives no SQLSTATE
                  "too many connections", "too many clients", "remaining connection slots are reserved")
#: PostgreSQL's classes of errors the server's state causes: a connection lost or refused (08),
#: the server shut down, restarting or not yet up (57P), out of disk or memory (53)
SERVER_STATES = ("08", "57P", "53")


def server_state(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL's word that its state, not the statement, failed it."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # but a protocol violation (a driver's bug) and a configured limit the statement exceeded
    return isinstance(code, str) and code.startswith(SERVER_STATES) and code not in ("08P01", "53400")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write found no room on the disk (the store's or a file's)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return _driver_says(exc, DISK_FULL_WORDS)


def machine_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine's failure, not the agent's: a full or failing disk, a
    read-only file system, the database server unreachable. Said in one line (no traceback: it
    would hide the one thing the operator must do, free space or mend the disk)."""
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return True
    return server_state(exc) or _driver_says(exc, _MACHINE_WORDS)


def _driver_says(exc: BaseException, words: tuple[str, ...]) -> bool:
    """Whether a database error's driver message says one of ``words``: its first line only,
    since PostgreSQL's further lines quote the failing row (a source's data)."""
    return getattr(exc, "orig", None) is not None and any(w in first_line(exc).lower() for w in words)
