"""The read-ahead under the sync loop: same items in the same order, read in another thread,
bounded, errors in order, stop and early exit honoured, the source closed where it ran."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from sync_agent.prefetch import Prefetch, cpu_turn


class Source:
    """A generator that records where and how far it ran."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.pulled = 0
        self.threads: set[int] = set()
        self.closed_in: int | None = None
        self.made_in: int | None = None

    def make(self) -> Iterator[int]:
        self.made_in = threading.get_ident()
        return self._run()

    def _run(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                self.threads.add(threading.get_ident())
                if i == self.fail_at:
                    raise ValueError(f"broken at {i}")
                self.pulled += 1
                yield i
        finally:
            self.closed_in = threading.get_ident()


def test_items_come_in_order_and_the_source_runs_in_another_thread() -> None:
    src = Source(50)
    with Prefetch(src.make) as items:
        assert list(items) == list(range(50))
        assert items.complete
    main = threading.get_ident()
    assert src.made_in != main and src.threads == {src.made_in} and src.closed_in == src.made_in


def test_the_read_ahead_is_bounded() -> None:
    src = Source(100)
    seen = []
    with Prefetch(src.make, depth=2) as items:
        for i in items:
            time.sleep(0.002)  # a slow consumer
            seen.append(i)
            # queued (≤ depth) + the one being produced may be ahead of what was consumed
            assert src.pulled <= len(seen) + 2 + 1
    assert seen == list(range(100))


def test_an_error_arrives_after_the_items_read_before_it() -> None:
    src = Source(10, fail_at=4)
    got = []
    with pytest.raises(ValueError, match="broken at 4"), Prefetch(src.make) as items:
        for i in items:
            got.append(i)
    assert got == [0, 1, 2, 3]
    assert src.closed_in == src.made_in


def test_an_error_making_the_iterator_is_raised_too() -> None:
    def make() -> Iterator[int]:
        raise RuntimeError("cannot start")

    with pytest.raises(RuntimeError, match="cannot start"), Prefetch(make) as items:
        list(items)


def test_leaving_early_cancels_and_closes_the_source_in_its_thread() -> None:
    src = Source(1000)
    cancelled = threading.Event()
    with Prefetch(src.make, cancel=cancelled.set) as items:
        for i in items:
            if i == 3:
                break
    assert not items.complete and cancelled.is_set()
    assert src.closed_in == src.made_in and src.closed_in != threading.get_ident()
    assert src.pulled <= 3 + 1 + 1 + 1


def test_a_source_read_to_its_end_is_not_cancelled() -> None:
    cancelled = threading.Event()
    with Prefetch(Source(3).make, cancel=cancelled.set) as items:
        assert list(items) == [0, 1, 2]
    assert not cancelled.is_set()


def test_a_set_stop_ends_the_read_before_the_next_item() -> None:
    stop = threading.Event()
    src = Source(1000)
    got = []
    with Prefetch(src.make, stop=stop) as items:
        for i in items:
            got.append(i)
            if i == 5:
                stop.set()
    assert not items.complete
    assert 6 <= len(got) <= 8 and got == list(range(len(got)))
    assert src.closed_in == src.made_in


def test_stop_set_before_the_start_reads_nothing() -> None:
    stop = threading.Event()
    stop.set()
    src = Source(10)
    with Prefetch(src.make, stop=stop) as items:
        assert list(items) == []
    assert not items.complete and src.pulled == 0


def test_the_reader_sees_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("run 7")

    def make() -> Iterator[str]:
        yield var.get()

    with Prefetch(make) as items:
        assert list(items) == ["run 7"]


def test_cpu_turns_exclude_each_other_and_are_free_outside_a_read_ahead() -> None:
    with cpu_turn():  # no read-ahead here: nothing to wait for
        pass
    inside = threading.Event()
    overlaps = []

    def make() -> Iterator[int]:
        for i in range(20):
            with cpu_turn():
                inside.set()
                time.sleep(0.001)
                inside.clear()
            yield i

    with Prefetch(make) as items:
        for _ in items:
            with items.turn:
                overlaps.append(inside.is_set())
                time.sleep(0.001)
                overlaps.append(inside.is_set())
    assert overlaps and not any(overlaps)


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Prefetch(lambda: iter(()), depth=0)


def test_fewer_collections_raises_the_threshold_and_the_last_user_restores_it() -> None:
    import gc

    from sync_agent.prefetch import SYNC_GC_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(before[0], SYNC_GC_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        with fewer_collections():
            assert gc.get_threshold()[0] == max(before[0], SYNC_GC_THRESHOLD)
        assert gc.get_threshold()[0] == max(before[0], SYNC_GC_THRESHOLD)
    assert gc.get_threshold() == before


def test_fewer_collections_leaves_a_disabled_threshold_alone() -> None:
    import gc

    from sync_agent.prefetch import fewer_collections

    before = gc.get_threshold()
    gc.set_threshold(0, *before[1:])
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
