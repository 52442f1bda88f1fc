"""Push callbacks (bits_job_set_notify_callback).

One module-level trampoline (a CFUNCTYPE object that lives as long as the module, so it can never
be collected while the library may call it) serves every registration; the Python callable lives
in a registry, and only its integer key crosses to C as `user_data`. The library calls the
module-level `_free_user_data` exactly once per registration, after the last call, and that
removes the entry: a registered callable cannot be collected while registered, and is released
when the registration ends (replaced, removed, last job reference released, manager closed).

Callbacks run on the manager's notification thread (ctypes gives that foreign thread a Python
thread state for each call). An exception a callback raises is reported through
sys.unraisablehook (by default printed to stderr), never propagated into the library.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import TYPE_CHECKING, Any, Callable, Dict, Tuple

from . import _bindings as b

if TYPE_CHECKING:
    from ._job import Job
    from ._manager import Manager
    from ._types import Event

NotifyCallback = Callable[["Job", "Event"], Any]

# key -> (callback, manager). Plain dict operations are atomic under the GIL; no lock is taken,
# so the finalizer can run from any thread, including from inside a garbage collection.
_registry: Dict[int, Tuple[NotifyCallback, "Manager"]] = {}
_keys = itertools.count(1)


def register(callback: NotifyCallback, manager: "Manager") -> int:
    key = next(_keys)
    _registry[key] = (callback, manager)
    return key


def registered_count() -> int:
    return len(_registry)


def _trampoline(user_data: Any, job_ptr: Any, event_ptr: Any) -> None:
    entry = _registry.get(user_data or 0)
    if entry is None:
        return
    callback, manager = entry
    from ._ffi import check, lib
    from ._job import Job
    from ._manager import Manager

    event = Manager._event(event_ptr.contents)
    # The job pointer is borrowed for the call: the callback gets its own reference.
    ref = ctypes.POINTER(b.bits_job)()
    check(lib.bits_job_add_ref(job_ptr, ctypes.byref(ref)))
    job = Job(manager, ref, event.job_id)
    # An exception raised here goes to sys.unraisablehook ("Exception ignored on calling ctypes
    # callback function"): reported, never propagated into the library.
    callback(job, event)


def _free_user_data(user_data: Any) -> None:
    _registry.pop(user_data or 0, None)


# Module globals: these C function pointers live as long as the module (never collected).
TRAMPOLINE = b.bits_notify_callback(_trampoline)
FREE_USER_DATA = b.bits_free_user_data(_free_user_data)
NULL_CALLBACK = b.bits_notify_callback()  # a NULL function pointer
NULL_FREE = b.bits_free_user_data()
