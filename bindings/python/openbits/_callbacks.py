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
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from . import _bindings as b

if TYPE_CHECKING:
    from ._job import Job
    from ._manager import Manager
    from ._types import Event

NotifyCallback = Callable[["Job", "Event"], Any]
# (job, host name, DER chain with the server's own certificate first, the library's result) ->
# True or S_OK (0) accepts; anything else refuses (an int failure code is the job's error code).
CertificateCallback = Callable[["Job", str, List[bytes], int], Any]

# key -> (callback, manager). Plain dict operations are atomic under the GIL; no lock is taken,
# so the finalizer can run from any thread, including from inside a garbage collection.
_registry: Dict[int, Tuple[Callable[..., Any], "Manager"]] = {}
_keys = itertools.count(1)


def register(callback: Callable[..., Any], manager: "Manager") -> int:
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


E_FAIL = 0x80004005 - (1 << 32)
E_UNEXPECTED = 0x8000FFFF - (1 << 32)


def _certificate_trampoline(
    user_data: Any, job_ptr: Any, host: bytes, chain: Any, chain_len: int, library_result: int
) -> int:
    """Runs a server certificate callback. Whatever goes wrong here refuses the certificate: an
    exception must never come back to ctypes as 0, which would mean "accept"."""
    try:
        entry = _registry.get(user_data or 0)
        if entry is None:
            return E_UNEXPECTED
        callback, manager = entry
        from ._ffi import check, guid_to_uuid, lib
        from ._job import Job

        ders = [ctypes.string_at(chain[i].der, chain[i].len) for i in range(chain_len)]
        ref = ctypes.POINTER(b.bits_job)()
        check(lib.bits_job_add_ref(job_ptr, ctypes.byref(ref)))
        guid = b.bits_guid()
        check(lib.bits_job_get_id(job_ptr, ctypes.byref(guid)))
        job = Job(manager, ref, guid_to_uuid(guid))
        answer = callback(job, host.decode("utf-8", "replace"), ders, library_result & 0xFFFFFFFF)
        # False == 0 in Python: only True or a real int 0 accepts.
        if answer is True or (type(answer) is int and answer == 0):
            return 0
        if isinstance(answer, int) and not isinstance(answer, bool) and answer & 0x80000000:
            return answer - (1 << 32) if answer > 0x7FFFFFFF else answer
        return E_FAIL
    except BaseException:  # noqa: BLE001 - reported on stderr, and the certificate refused
        import traceback

        traceback.print_exc()
        return E_UNEXPECTED


def _free_user_data(user_data: Any) -> None:
    _registry.pop(user_data or 0, None)


# Module globals: these C function pointers live as long as the module (never collected).
TRAMPOLINE = b.bits_notify_callback(_trampoline)
FREE_USER_DATA = b.bits_free_user_data(_free_user_data)
CERTIFICATE_TRAMPOLINE = b.bits_server_certificate_callback(_certificate_trampoline)
NULL_CALLBACK = b.bits_notify_callback()  # a NULL function pointer
NULL_CERTIFICATE_CALLBACK = b.bits_server_certificate_callback()
NULL_FREE = b.bits_free_user_data()
