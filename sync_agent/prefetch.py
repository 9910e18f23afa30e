"""Read ahead: run an iterator in a background thread, a bounded number of items ahead.

A sync alternates between waiting for the source (a page is rendered and sent by another
process) and working on the page it got (normalise, write, commit, fsync). Reading the next page
while the current one is written overlaps the two. The queue between the threads holds at most
``depth`` items, so memory stays flat however large the source; the iterator runs, starts and is
closed entirely in the reading thread (with the caller's context variables, so its log lines keep
their source and run id); its exceptions reach the caller in order, after the items read before
them; a set ``stop`` event ends the read before the next item is asked for.

Both threads are mostly Python, and CPython runs one at a time: left to the interpreter, they
hand its lock back and forth at every row a driver writes (SQLite releases it per row), which
costs more than the overlap gains. So CPU-bound stretches take turns instead: the consumer holds
``Prefetch.turn`` while it works on an item, and code running in the reading thread wraps its
own CPU-bound stretches (decoding a body, normalising a page) in ``cpu_turn()``; waiting for the
network holds nothing, and that wait is what overlaps the consumer's work. A consumer may let go
of the turn for a long call that releases the interpreter's lock, as a sync does for its commit
(the fsync): the reader works meanwhile.
"""

from __future__ import annotations

import contextvars
import gc
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END, _STOPPED = "item", "error", "end", "stopped"

#: the turn of the read-ahead this thread reads for, if any
_TURN: contextvars.ContextVar[threading.RLock | None] = contextvars.ContextVar("prefetch_turn", default=None)


@contextmanager
def cpu_turn() -> Iterator[None]:
    """Wait for the turn of the read-ahead this code runs in, and hold it; nothing outside one."""
    turn = _TURN.get()
    if turn is None:
        yield
        return
    with turn:
        yield


class Prefetch(Generic[T]):
    """``for x in Prefetch(make_iterable)`` is ``for x in make_iterable()``, read ahead.

    Use it as a context manager: leaving the block early (a ``break``, an exception) closes the
    read, calls ``cancel`` so a request in flight or a wait between retries is cut short, and
    waits for the reading thread to close the iterator. ``complete`` says whether every item of
    the source was delivered (false after ``stop`` or an early exit).
    """

    def __init__(
        self,
        make: Callable[[], Iterable[T]],
        *,
        depth: int = 1,
        stop: threading.Event | None = None,
        cancel: Callable[[], None] | None = None,
        name: str = "prefetch",
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._make = make
        self._depth = depth
        self._stop = stop
        self._cancel = cancel
        self._entries: deque[tuple[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.complete = False
        #: held by whoever does CPU-bound work: the consumer on an item, the reader in ``cpu_turn``
        self.turn = threading.RLock()
        context = contextvars.copy_context()
        context.run(_TURN.set, self.turn)
        self._thread = threading.Thread(target=context.run, args=(self._read,), name=name, daemon=True)
        self._started = False

    def __enter__(self) -> Prefetch[T]:
        self._start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        self._start()
        while True:
            kind, value = self._get()
            if kind == _ITEM:
                yield value
            elif kind == _ERROR:
                raise value
            else:
                self.complete = kind == _END
                return

    def close(self) -> None:
        """Stop reading (cancelling what is in flight unless the source was read to its end)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._entries.clear()
            self._cond.notify_all()
        if not self.complete and self._cancel is not None:
            self._cancel()
        if self._started:
            self._thread.join()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    # --- the reading thread ------------------------------------------------------------------

    def _read(self) -> None:
        iterator: Iterator[T] | None = None
        final: tuple[str, Any] = (_END, None)
        try:
            iterator = iter(self._make())
            while True:
                if self._stop is not None and self._stop.is_set():
                    final = (_STOPPED, None)
                    break
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                if not self._put((_ITEM, item)):
                    return
        except BaseException as exc:  # handed to the caller, who re-raises it in order
            final = (_ERROR, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    if final[0] != _ERROR:
                        final = (_ERROR, exc)
        self._put(final)

    def _put(self, entry: tuple[str, Any]) -> bool:
        """Queue ``entry`` once there is room; ``False`` if the reader was closed meanwhile."""
        with self._cond:
            while len(self._entries) >= self._depth and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._entries.append(entry)
            self._cond.notify_all()
            return True

    def _get(self) -> tuple[str, Any]:
        with self._cond:
            while not self._entries:
                if self._closed:
                    return (_STOPPED, None)
                self._cond.wait()
            entry = self._entries.popleft()
            self._cond.notify_all()
            return entry


#: collections of the youngest generation happen every this many net allocations during a sync
SYNC_GC_THRESHOLD = 50_000
_gc_guard = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Let the cyclic garbage collector run less often while pages stream through.

    A page is tens of thousands of short-lived dicts and lists, freed by reference counting; at
    the default threshold (700) the collector still runs every few records, and each older-
    generation pass walks every object the process has loaded, about a tenth of a sync's CPU.
    Raising the youngest generation's threshold keeps collection (cycles are still found)
    while making it rare. Nested and concurrent uses share one change, undone by the last.
    """
    global _gc_users, _gc_saved
    with _gc_guard:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            first, *older = _gc_saved
            if first:  # 0 means "disabled": leave it so
                gc.set_threshold(max(first, SYNC_GC_THRESHOLD), *older)
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_guard:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None
