"""The exception hierarchy: every failed call raises a BitsError carrying the HRESULT and the
library's message for the call."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from ._bindings import HResult


def _unsigned(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def hresult_name(hresult: int) -> Optional[str]:
    """The header's name of an HRESULT without the BITS_ prefix (``"E_NOT_FOUND"``), the
    ``"E_HTTP_ERROR(404)"`` form for HTTP statuses, or None if the code is not a known one."""
    hresult = _unsigned(hresult)
    try:
        return HResult(hresult).name
    except ValueError:
        pass
    if hresult & 0xFFFF0000 == 0x80190000:
        return f"E_HTTP_ERROR({hresult & 0xFFFF})"
    return None


def http_error(status: int) -> int:
    """BITS_E_HTTP_ERROR(status): the HRESULT of an HTTP status, ``0x80190000 | status``."""
    return 0x80190000 | (status & 0xFFFF)


def succeeded(hresult: int) -> bool:
    """True for a success code (S_OK, S_PARTIAL_COMPLETE, ...), as BITS_SUCCEEDED."""
    return _unsigned(hresult) < 0x80000000


class BitsError(Exception):
    """A failed openbits call.

    ``hresult`` is the code as an unsigned 32-bit number (compare it with ``openbits.HResult``
    members or hex literals: ``0x80200001``); ``message`` is the library's detail for the failed
    call (``bits_last_error_message``), e.g. ``bits_add_file: local name must be an absolute path``.
    """

    hresult: int
    message: str

    def __init__(self, message: str, hresult: int = HResult.E_FAIL) -> None:
        super().__init__(message)
        self.message = message
        self.hresult = _unsigned(hresult)

    @property
    def name(self) -> Optional[str]:
        """The HRESULT's name (``"E_NOT_FOUND"``), or None if it is not a known code."""
        return hresult_name(self.hresult)

    def __str__(self) -> str:
        name = self.name
        code = f"0x{self.hresult:08X}" + (f" {name}" if name else "")
        return f"{self.message} ({code})" if self.message else code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, 0x{self.hresult:08X})"

    def __reduce__(self) -> Tuple[Any, Tuple[str, int]]:
        return (type(self), (self.message, self.hresult))


class NotFound(BitsError, LookupError):
    """BITS_E_NOT_FOUND (0x80200001): no such job, or it was completed or cancelled."""


class InvalidState(BitsError):
    """BITS_E_INVALID_STATE (0x80200002): not allowed in the job's state, or the manager (or the
    reference) was closed."""


class InvalidArgument(BitsError, ValueError):
    """BITS_E_INVALIDARG (0x80070057): an argument the library (or the binding) rejects."""


class Timeout(BitsError, TimeoutError):
    """BITS_E_TIMEOUT (0x800705B4): the wait ended before the awaited thing happened."""


class NotSupported(BitsError, NotImplementedError):
    """BITS_E_NOTIMPL (0x80004001): not implemented yet (e.g. upload jobs)."""


class AccessDenied(BitsError, PermissionError):
    """BITS_E_ACCESSDENIED (0x80070005)."""


_CLASSES: Dict[int, Type[BitsError]] = {
    HResult.E_NOT_FOUND: NotFound,
    HResult.E_INVALID_STATE: InvalidState,
    HResult.E_INVALIDARG: InvalidArgument,
    HResult.E_TIMEOUT: Timeout,
    HResult.E_NOTIMPL: NotSupported,
    HResult.E_ACCESSDENIED: AccessDenied,
}


def error_for(hresult: int, message: str) -> BitsError:
    """The exception for a failure code: its subclass if it has one, else BitsError."""
    hresult = _unsigned(hresult)
    return _CLASSES.get(hresult, BitsError)(message, hresult)
