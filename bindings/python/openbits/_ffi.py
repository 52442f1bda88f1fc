"""Loads libopenbits, declares every function from the generated table, and checks the version.

ctypes releases the GIL for the duration of every foreign call made through a CDLL, so a thread
blocked in bits_job_wait or bits_manager_next_event does not stop other Python threads.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Optional, Tuple, Union

from . import _bindings as b
from ._errors import BitsError, InvalidArgument, error_for

_PACKAGE_DIR = Path(__file__).resolve().parent

if sys.platform == "darwin":
    _DEFAULT_NAME = "libopenbits.dylib"
elif sys.platform == "win32":
    _DEFAULT_NAME = "openbits.dll"
else:
    _DEFAULT_NAME = "libopenbits.so"


def _package_version() -> Optional[str]:
    """The version the package was built as (from the workspace Cargo.toml at build time); in a
    source checkout without a build, the workspace's version read now; None if neither exists."""
    try:
        from ._version import __version__  # type: ignore[import-not-found,unused-ignore]  # setup.py writes it

        return str(__version__)
    except ImportError:
        pass
    manifest = _PACKAGE_DIR.parent.parent.parent / "Cargo.toml"
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    return m.group(1) if m else None


def _major_minor(version: str) -> Tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise ImportError(f"openbits: cannot read version {version!r}")
    return int(m.group(1)), int(m.group(2))


def _library_path() -> str:
    override = os.environ.get("OPENBITS_LIBRARY")
    if override:
        return override
    path = _PACKAGE_DIR / _DEFAULT_NAME
    if not path.exists():
        raise ImportError(
            f"openbits: {path} is missing; install the package with pip (it builds the library) "
            "or point OPENBITS_LIBRARY at a libopenbits"
        )
    return str(path)


def _load() -> ctypes.CDLL:
    path = _library_path()
    try:
        lib = ctypes.CDLL(path)  # CDLL (not PyDLL): the GIL is released during each call
    except OSError as e:
        raise ImportError(f"openbits: cannot load {path}: {e}") from e
    missing = []
    for name, (restype, argtypes) in b.FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError(
            f"openbits: {path} lacks {', '.join(missing)}: it is older than this package"
        )
    return lib


lib = _load()
library_path: str = lib._name
library_version: str = lib.bits_version_string().decode("ascii", "replace")


def _library_version_info() -> Tuple[int, int, int]:
    major, minor, patch = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
    lib.bits_get_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    return (major.value, minor.value, patch.value)


library_version_info: Tuple[int, int, int] = _library_version_info()
package_version: Optional[str] = _package_version()


def _check_version() -> None:
    # Before 1.0 the ABI may change with any minor version: major.minor must match.
    if package_version is None:
        return
    if library_version_info[:2] != _major_minor(package_version):
        raise ImportError(
            f"openbits: {library_path} is version {library_version}, but this package is "
            f"{package_version} (major.minor must match)"
        )


_check_version()

# Failure codes the binding tests for, as the signed numbers calls return.
E_TIMEOUT_SIGNED = ctypes.c_int32(b.HResult.E_TIMEOUT).value
E_ERROR_INFORMATION_UNAVAILABLE_SIGNED = ctypes.c_int32(
    b.HResult.E_ERROR_INFORMATION_UNAVAILABLE
).value


def check(hresult: int) -> int:
    """Returns a success code unchanged (as an unsigned number); raises the BitsError of a failure
    with this thread's bits_last_error_message, read at once (the next failing call replaces it)."""
    if hresult >= 0:
        return hresult
    message = lib.bits_last_error_message()
    raise error_for(hresult, message.decode("utf-8", "replace") if message else "")


# -- conversions --------------------------------------------------------------------------------


def text_arg(value: str, what: str) -> bytes:
    """A str argument as the NUL-terminated UTF-8 the library takes."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(f"{what} is not valid Unicode: {e}") from e
    if b"\0" in data:
        raise InvalidArgument(f"{what} contains a NUL character")
    return data


PathArg = Union[str, "os.PathLike[str]", "os.PathLike[bytes]", bytes]


def path_arg(value: PathArg, what: str) -> bytes:
    """A path (str, bytes or os.PathLike), made absolute against the current folder as open()
    would resolve it, encoded as the file system does (UTF-8 on Linux; a name that is not valid
    UTF-8 reaches the library as is, which rejects it with E_INVALIDARG)."""
    try:
        raw = os.fspath(value)
    except TypeError:
        raise TypeError(
            f"{what} must be a str, bytes or os.PathLike, not {type(value).__name__}"
        ) from None
    data = os.fsencode(os.path.abspath(raw))
    if b"\0" in data:
        raise InvalidArgument(f"{what} contains a NUL character")
    return data


def uuid_to_guid(value: uuid.UUID) -> b.bits_guid:
    g = b.bits_guid()
    raw = value.bytes  # big-endian fields: data1, data2, data3, then data4 as is
    g.data1 = int.from_bytes(raw[0:4], "big")
    g.data2 = int.from_bytes(raw[4:6], "big")
    g.data3 = int.from_bytes(raw[6:8], "big")
    for i in range(8):
        g.data4[i] = raw[8 + i]
    return g


def guid_to_uuid(g: b.bits_guid) -> uuid.UUID:
    raw = (
        int(g.data1).to_bytes(4, "big")
        + int(g.data2).to_bytes(2, "big")
        + int(g.data3).to_bytes(2, "big")
        + bytes(g.data4)
    )
    return uuid.UUID(bytes=raw)


def guid_string(value: uuid.UUID) -> str:
    """The library's own text form of an id, ``{XXXXXXXX-XXXX-...}`` (bits_guid_to_string)."""
    buffer = ctypes.create_string_buffer(b.BITS_GUID_STRING_LEN)
    check(lib.bits_guid_to_string(ctypes.byref(uuid_to_guid(value)), buffer, len(buffer)))
    return buffer.value.decode("ascii")


def parse_guid(text: str) -> uuid.UUID:
    """Parses an id as the library does (bits_guid_from_string: with or without braces)."""
    g = b.bits_guid()
    check(lib.bits_guid_from_string(text_arg(text, "id"), ctypes.byref(g)))
    return guid_to_uuid(g)


def error_description(hresult: int) -> str:
    """The library's sentence for any code it returns (bits_get_error_description)."""
    text = ctypes.POINTER(ctypes.c_char)()
    check(
        lib.bits_get_error_description(
            ctypes.c_int32(hresult & 0xFFFFFFFF).value, ctypes.byref(text)
        )
    )
    return take_string(text)


def take_string(pointer: "ctypes._Pointer[ctypes.c_char]") -> str:
    """Copies a string the library allocated and frees it with bits_free_string."""
    if not pointer:
        return ""
    try:
        return ctypes.string_at(pointer).decode("utf-8", "replace")
    finally:
        lib.bits_free_string(pointer)


__all__ = ["BitsError", "lib", "check", "library_path", "library_version", "package_version"]
