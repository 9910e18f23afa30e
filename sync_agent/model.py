"""The normalised dossier: the one shape every connector maps its source's records into.

Everything downstream (store, reconciliation, report, alerts) speaks only these types, which is
what lets a new ministry be added without touching the core.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: the source whose records are the Centre's reception register (``domain.md``): a case without
#: one of its records bypassed the Centre. A connector of such a register says so
#: (``Connector.reception_register``), and the configuration must give it this name.
RECEPTION_SOURCE = "one_stop"


class Status(StrEnum):
    """Normalised dossier status (``domain.md``, "Normalised status")."""

    SUBMITTED = "submitted"
    NOT_ACCEPTED = "not_accepted"
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    AWAITING_SUPPLEMENT = "awaiting_supplement"
    AWAITING_PAYMENT = "awaiting_payment"
    SUSPENDED = "suspended"
    RESOLVED = "resolved"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def counted(self) -> bool:
        """Whether a dossier in this status counts in a period report."""
        return self not in NOT_COUNTED

    @property
    def ended(self) -> bool:
        return self in ENDED

    @property
    def open(self) -> bool:
        return self in OPEN


NOT_COUNTED: frozenset[Status] = frozenset({Status.SUBMITTED, Status.NOT_ACCEPTED})
OPEN: frozenset[Status] = frozenset(
    {
        Status.RECEIVED,
        Status.IN_PROGRESS,
        Status.AWAITING_SUPPLEMENT,
        Status.AWAITING_PAYMENT,
        Status.SUSPENDED,
    }
)
COMPLETED: frozenset[Status] = frozenset({Status.RESOLVED, Status.DELIVERED})
ENDED: frozenset[Status] = COMPLETED | {Status.REJECTED, Status.WITHDRAWN}


class Channel(StrEnum):
    """How the dossier was submitted."""

    ONLINE = "online"
    DIRECT = "direct"
    POSTAL = "postal"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DossierRecord:
    """One source record, normalised.

    All datetimes are timezone-aware. ``applicant_key`` is the keyed hash of the applicant's ID
    number; the number itself never reaches this type. ``raw`` is the source payload with the ID
    number already replaced, kept so an operator can see what the source really sent.
    """

    source: str
    source_id: str
    procedure_code: str
    status: Status
    source_updated_at: dt.datetime
    reception_code: str | None = None
    procedure_name: str | None = None
    field_code: str | None = None
    field_name: str | None = None
    applicant_name: str | None = None
    applicant_key: str | None = None
    channel: Channel = Channel.UNKNOWN
    submitted_at: dt.datetime | None = None
    received_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    rejected_at: dt.datetime | None = None
    withdrawn_at: dt.datetime | None = None
    digitised: bool = False
    data_reused: bool = False
    fee_required: bool = False
    paid_online: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ended_at(self) -> dt.datetime | None:
        """The instant the dossier ended, by its status; ``None`` while open or not counted."""
        if self.status in COMPLETED:
            return self.completed_at
        if self.status is Status.REJECTED:
            return self.rejected_at
        if self.status is Status.WITHDRAWN:
            return self.withdrawn_at
        return None


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A source record that could not be normalised: kept with its reason, never dropped."""

    source: str
    reason: str
    raw: Mapping[str, Any]
    source_id: str | None = None
    source_updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page as a connector delivers it.

    ``checkpoint`` is the source's last-update time up to which this page (together with all
    earlier pages of the run) has covered the source; the sync commits it with the page's
    records in one transaction, so a resumed run starts from what is really stored.
    """

    records: tuple[DossierRecord, ...]
    quarantined: tuple[QuarantinedRecord, ...] = ()
    checkpoint: dt.datetime | None = None

    @property
    def fetched(self) -> int:
        return len(self.records) + len(self.quarantined)
