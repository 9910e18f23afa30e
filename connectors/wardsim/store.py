"""One source's records, every version of them, and what is visible at a given instant.

A source system shows, for each record, its latest version; a version has the update time shown on
the wire and the instant it became visible (later, for an update that lands late). The store keeps
versions in flat ``array``s (a million records with four versions each is ~150 MB) and a list of
record numbers sorted by (update time, id) of the version visible now, so a range query is two
binary searches and a page is a slice. The index is rebuilt only when the visible set changes, and
patched in place when only a few records change.
"""

from __future__ import annotations

import heapq
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: ``Key`` = (update time in epoch seconds, record id): the order every source pages in
Key = tuple[int, str]
#: renders a generated version: (dossier index, version number within the record) → wire item
Provider = Callable[[int, int], dict[str, Any]]

_NONE = -(1 << 62)  # "no version visible"


@dataclass(frozen=True, slots=True)
class Entry:
    """One visible record: its number in the store and the version shown."""

    record: int
    version: int
    key: Key


@dataclass(frozen=True, slots=True)
class Selection:
    """A window of the sorted visible records, as one request sees it."""

    #: records in the whole range (before skipping and limiting)
    total: int
    entries: list[Entry]
    #: the entry just before the window (the previous page's last), if any
    previous: Entry | None
    #: whether the range holds records after the window
    more: bool


class RecordStore:
    """Versions of one source's records, and a sorted index of what is visible at an instant."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self._by_id: dict[str, int] | None = None
        # generated records: versions [start[r], start[r + 1]) of the flat arrays, rendered by provider
        self._refs = array("q")
        self._start = array("q", [0])
        self._updated = array("q")
        self._visible = array("q")
        self._provider: Provider | None = None
        # versions pushed later (JSONL, ``add``): record → [(updated, visible, payload)], after the base
        self._extra: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
        # the index: per record the version shown (``_NONE``: none) and its update time
        self._shown = array("q")
        self._shown_at = array("q")
        self._order = array("q")
        self._built = False
        self._valid_from = 0  # the visible set is the same for every instant in [valid_from, valid_until)
        self._valid_until = 0
        self._pending: list[tuple[int, int]] = []  # heap of (visible, record) not yet visible

    def __len__(self) -> int:
        return len(self.ids)

    # --- loading ----------------------------------------------------------------------------------

    def load_generated(
        self,
        ids: list[str],
        refs: array[int],
        ver_start: array[int],
        ver_updated: array[int],
        ver_visible: array[int],
        provider: Provider,
    ) -> None:
        """Replace the contents with generated records (see ``WardDataset.skeleton``)."""
        with self._lock:
            self._reset()
            self.ids = list(ids)
            self._refs = array("q", refs)
            self._start = array("q", ver_start)
            self._updated = array("q", ver_updated)
            self._visible = array("q", ver_visible)
            self._provider = provider

    def add(self, rid: str | None, updated: int, visible: int, payload: Mapping[str, Any]) -> int:
        """Append a version to record ``rid`` (a new record when unknown or ``None``); returns its number."""
        with self._lock:
            if self._by_id is None:
                self._by_id = {rid_: n for n, rid_ in enumerate(self.ids)}
            record = self._by_id.get(rid) if rid is not None else None
            if record is None:
                record = len(self.ids)
                key_id = rid if rid is not None else f"\uffff{record:09d}"  # no id: sorts last, never merged
                self.ids.append(key_id)
                if rid is not None:
                    self._by_id[rid] = record
                self._refs.append(-1)
                self._start.append(self._start[-1])
                if self._built:
                    self._shown.append(_NONE)
                    self._shown_at.append(0)
            self._extra.setdefault(record, []).append((updated, visible, dict(payload)))
            if self._built:
                if visible < self._valid_until:
                    # already visible at the instant the index stands for: patch it now
                    self._valid_from = max(self._valid_from, visible)
                    self._refresh([record], self._valid_from)
                else:
                    heapq.heappush(self._pending, (visible, record))
                    self._valid_until = min(self._valid_until, visible)
            return record

    # --- reading ----------------------------------------------------------------------------------

    def select(
        self,
        at: int,
        lower: Key | None,
        upper: Key | None,
        *,
        lower_exclusive: bool = False,
        skip: int = 0,
        limit: int,
    ) -> Selection:
        """The visible records with ``lower <= key < upper`` (``lower < key`` if exclusive),
        skipping ``skip`` and returning at most ``limit``."""
        with self._lock:
            self._ensure(at)
            order = self._order
            lo = 0 if lower is None else self._bisect(lower, right=lower_exclusive)
            hi = len(order) if upper is None else self._bisect(upper, right=False)
            hi = max(hi, lo)
            start = min(lo + skip, hi)
            stop = min(start + limit, hi)
            entries = [self._entry(order[p]) for p in range(start, stop)]
            previous = self._entry(order[start - 1]) if start > 0 and (skip > 0 or lower_exclusive) else None
            return Selection(total=hi - lo, entries=entries, previous=previous, more=stop < hi)

    def payload(self, entry: Entry) -> dict[str, Any]:
        """The wire item of an entry's version (a fresh dict: callers may change it)."""
        if entry.version >= 0:
            assert self._provider is not None
            record = entry.record
            return self._provider(self._refs[record], entry.version - self._start[record])
        return dict(self._extra[entry.record][-entry.version - 1][2])

    def visible_count(self, at: int) -> int:
        with self._lock:
            self._ensure(at)
            return len(self._order)

    # --- the index --------------------------------------------------------------------------------

    def _entry(self, record: int) -> Entry:
        return Entry(record, self._shown[record], (self._shown_at[record], self.ids[record]))

    def _key_at(self, position: int) -> Key:
        record = self._order[position]
        return (self._shown_at[record], self.ids[record])

    def _bisect(self, key: Key, *, right: bool) -> int:
        positions = range(len(self._order))
        find = bisect_right if right else bisect_left
        return find(positions, key, key=self._key_at)

    def _latest_visible(self, record: int, at: int) -> tuple[int, int, int]:
        """(version code, its update time, the earliest visible time of a hidden later version)."""
        hidden = _FAR
        for j in range(len(self._extra.get(record, ())) - 1, -1, -1):
            updated, visible, _ = self._extra[record][j]
            if visible <= at:
                return -j - 1, updated, hidden
            hidden = min(hidden, visible)
        for v in range(self._start[record + 1] - 1, self._start[record] - 1, -1):
            if self._visible[v] <= at:
                return v, self._updated[v], hidden
            hidden = min(hidden, self._visible[v])
        return _NONE, 0, hidden

    def _ensure(self, at: int) -> None:
        if self._built and self._valid_from <= at < self._valid_until:
            return
        if not self._built or at < self._valid_from:
            self._rebuild(at)
            return
        # time moved forward past some pending versions
        changed: set[int] = set()
        while self._pending and self._pending[0][0] <= at:
            changed.add(heapq.heappop(self._pending)[1])
        if len(changed) > 64 + len(self.ids) // 1000:
            self._rebuild(at)
            return
        self._refresh(sorted(changed), at)
        self._valid_from = at
        self._valid_until = self._pending[0][0] if self._pending else _FAR

    def _refresh(self, records: list[int], at: int) -> None:
        """Re-place a few records in the sorted order after their shown version changed."""
        for record in records:
            code, updated, hidden = self._latest_visible(record, at)
            if hidden < _FAR:
                heapq.heappush(self._pending, (hidden, record))
                self._valid_until = min(self._valid_until, hidden)
            old = self._shown[record]
            if old == code:
                continue
            if old != _NONE:
                pos = self._bisect((self._shown_at[record], self.ids[record]), right=False)
                del self._order[pos]
            self._shown[record] = code
            self._shown_at[record] = updated
            if code != _NONE:
                pos = self._bisect((updated, self.ids[record]), right=False)
                self._order.insert(pos, record)

    def _rebuild(self, at: int) -> None:
        n = len(self.ids)
        shown = array("q", [_NONE]) * n
        shown_at = array("q", [0]) * n
        pending: list[tuple[int, int]] = []
        valid_from = 0
        start, updated_, visible_ = self._start, self._updated, self._visible
        extra = self._extra
        for record in range(n):
            last = start[record + 1] - 1
            if record not in extra and last >= start[record] and visible_[last] <= at:
                # the common case: the latest version is visible
                shown[record] = last
                shown_at[record] = updated_[last]
                valid_from = max(valid_from, visible_[last])
                continue
            code, when, hidden = self._latest_visible(record, at)
            shown[record] = code
            shown_at[record] = when
            if code != _NONE:
                vis = visible_[code] if code >= 0 else extra[record][-code - 1][1]
                valid_from = max(valid_from, vis)
            if hidden < _FAR:
                pending.append((hidden, record))
        ids = self.ids
        visible_records = [r for r in range(n) if shown[r] != _NONE]
        visible_records.sort(key=lambda r: (shown_at[r], ids[r]))
        self._shown, self._shown_at = shown, shown_at
        self._order = array("q", visible_records)
        heapq.heapify(pending)
        self._pending = pending
        self._valid_from = min(valid_from, at)
        self._valid_until = pending[0][0] if pending else _FAR
        self._built = True


_FAR = 1 << 62
