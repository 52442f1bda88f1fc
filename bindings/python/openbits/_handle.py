"""The base of Manager and Job: one native pointer, idempotent close(), context manager, __del__.

Calls run inside `_use()`, which counts them, so closing never frees a pointer another thread is
using: a Job's reference is released by the last call still running when close() was called, and
a Manager's close() waits for the calls on it to return (the header forbids bits_manager_close to
race with them; the binding's own waits return within a fraction of a second).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from ._bindings import HResult
from ._errors import InvalidState

H = TypeVar("H", bound="Handle")


class Handle:
    """A native handle. Close it with close(), a ``with`` block, or let it be collected."""

    _kind = "handle"
    _ptr: Any = None
    _closed = True

    def __init__(self, ptr: Any) -> None:
        self._close_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._ptr = ptr
        self._closed = False

    # -- subclasses ---------------------------------------------------------------------------
    def _free(self, ptr: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    _wait_for_calls = False  # Manager: close() waits; Job: the last call releases

    # -- use ----------------------------------------------------------------------------------
    def _closed_error(self) -> InvalidState:
        return InvalidState(f"the {self._kind} is closed", HResult.E_INVALID_STATE)

    @contextmanager
    def _use(self) -> Iterator[Any]:
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._busy += 1
            ptr = self._ptr
        try:
            yield ptr
        finally:
            free = None
            with self._cond:
                self._busy -= 1
                if self._busy == 0 and self._closed:
                    self._cond.notify_all()
                    if not self._wait_for_calls and self._ptr is not None:
                        free, self._ptr = self._ptr, None
            if free is not None:
                self._free(free)

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def close(self) -> None:
        """Releases the native handle. Idempotent; later calls on the object raise InvalidState."""
        cond = getattr(self, "_cond", None)
        if cond is None:  # __init__ did not run to the end
            return
        with self._close_lock:  # a second close() returns only once the handle is released
            with cond:
                if self._closed and self._ptr is None:
                    return
                self._closed = True
                if self._wait_for_calls:
                    while self._busy:
                        cond.wait()
                elif self._busy:
                    return  # a Job's reference: the last call still running releases it
                ptr, self._ptr = self._ptr, None
            if ptr is not None:
                self._free(ptr)

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._finalize()
        except Exception:  # interpreter shutdown, or a half-built object: never raise here
            pass

    def _finalize(self) -> None:
        self.close()
