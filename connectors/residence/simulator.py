"""Simulator of the Ministry of Public Security residence system (``sources.md`` §3): API key,
``updated_after`` (exclusive) and an opaque cursor holding the (``updated_at``, ``id``) position,
429 with ``Retry-After`` when rate limited."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from connectors.wardsim.dataset import RecordVersion
from connectors.wardsim.server import SimRequest, SimResponse, SourceHandler, register_handler
from connectors.wardsim.store import Key
from connectors.wardsim.wire import epoch, int_param, iso_text, parse_iso
from sync_agent.model import Status

MAX_LIMIT = 200
DEFAULT_LIMIT = 100

STATUSES: Mapping[Status, str] = {
    Status.RECEIVED: "received",
    Status.IN_PROGRESS: "processing",
    Status.AWAITING_PAYMENT: "processing",
    Status.SUSPENDED: "processing",
    Status.AWAITING_SUPPLEMENT: "supplement_requested",
    Status.RESOLVED: "completed",
    Status.DELIVERED: "returned",
    Status.REJECTED: "rejected",
    Status.WITHDRAWN: "withdrawn",
}
CHANNELS: Mapping[str, str] = {"online": "online", "direct": "counter", "postal": "post"}
_ENDED = frozenset({Status.RESOLVED, Status.DELIVERED, Status.REJECTED, Status.WITHDRAWN})


def encode_cursor(key: Key, unit: str) -> str:
    """The opaque cursor: the (updated_at, id) position after which the next page starts."""
    raw = json.dumps({"u": key[0], "i": key[1], "n": unit}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, unit: str) -> Key:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = (int(raw["u"]), str(raw["i"]))
        if raw["n"] != unit:
            raise ValueError("cursor of another unit")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor: {exc}") from exc
    return key


@register_handler
class ResidenceHandler(SourceHandler):
    """``GET /v1/dossiers``. ``utc=True`` writes times as ``...Z`` instead of ``+07:00``."""

    source = "residence"
    id_field = "id"
    status_field = "status"
    unknown_status = "archived"
    date_field = "received_at"
    bad_date = "2026-13-45T25:61:00+07:00"
    data_paths = frozenset({"/v1/dossiers"})

    def __init__(self, utc: bool = False) -> None:
        super().__init__()
        self.utc = utc

    def handle(self, request: SimRequest, kind: str) -> SimResponse:
        if kind != "data":
            return SimResponse.json({"error": "not_found", "message": "no such endpoint"}, 404)
        if request.method != "GET":
            return SimResponse.json({"error": "method_not_allowed", "message": "use GET"}, 405)
        key = request.header("x-api-key")
        if not key or key != self.server.credentials.api_key:
            return SimResponse.json({"error": "forbidden", "message": "invalid API key"}, 403)
        q = request.query
        unit = q.get("unit")
        try:
            if not unit:
                raise ValueError("unit is required")
            limit = int_param(q.get("limit"), default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
            after = parse_iso(q["updated_after"]) if q.get("updated_after") else None
            cursor = decode_cursor(q["cursor"], unit) if q.get("cursor") else None
        except ValueError as exc:
            return SimResponse.json({"error": "invalid_parameter", "message": str(exc)}, 400)
        if unit != self.server.ward_code:
            return SimResponse.json({"items": [], "next_cursor": None})
        if cursor is not None:
            served = self.server.page(cursor, None, lower_exclusive=True, limit=limit)
        else:
            # exclusive: the first whole second after updated_after
            lower = None if after is None else (epoch(after) + 1, "")
            served = self.server.page(lower, None, limit=limit)
        next_cursor = encode_cursor(served.last_key, unit) if served.more and served.last_key else None
        return SimResponse.json({"items": served.items, "next_cursor": next_cursor})

    @staticmethod
    def updated_of(item: Mapping[str, Any]) -> dt.datetime:
        return parse_iso(item.get("updated_at"))

    @staticmethod
    def render(version: RecordVersion) -> dict[str, Any]:
        return render(version, utc=False)

    def render_item(self, version: RecordVersion) -> dict[str, Any]:
        return render(version, utc=self.utc)


def render(version: RecordVersion, *, utc: bool) -> dict[str, Any]:
    v = version

    def t(ts: int | None) -> str | None:
        return iso_text(ts, utc=utc)

    fee: dict[str, Any] | None = None
    if v.fee > 0 or v.fee_listed:
        fee = {"amount": v.fee, "paid_online": v.paid_online}
    return {
        "id": v.record_id,
        "one_stop_code": v.reception_code,
        "procedure": {"code": v.procedure.code, "name": v.procedure.name},
        "channel": CHANNELS[v.channel],
        "submitted_at": t(v.submitted_at),
        "received_at": t(v.received_at),
        "due_at": t(v.due_at),
        "finished_at": t(v.ended_at if v.status in _ENDED else None),
        "status": STATUSES[v.status],
        "applicant": {"full_name": v.applicant_name, "id_number": v.applicant_id},
        "digitised": v.digitised,
        "reused_data": v.data_reused,
        "fee": fee,
        "updated_at": t(v.updated_at),
    }
