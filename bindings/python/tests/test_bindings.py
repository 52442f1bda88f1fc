"""The ctypes declarations against the header, the version, and where the package came from."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import openbits
from openbits import _bindings, _ffi

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent
REPO = SOURCE.parent.parent
HEADER = REPO / "include" / "openbits.h"


@pytest.mark.skipif(not HEADER.exists(), reason="no include/openbits.h beside the tests")
def test_generated_declarations_match_the_header() -> None:
    # The committed openbits/_bindings.py is what gen_bindings.py makes of the header now.
    proc = subprocess.run(
        [sys.executable, str(SOURCE / "gen_bindings.py"), "--check"],
        stderr=subprocess.PIPE,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    # ... and the installed package carries that same file.
    installed = Path(_bindings.__file__).read_text(encoding="utf-8")
    assert installed == (SOURCE / "openbits" / "_bindings.py").read_text(encoding="utf-8")


@pytest.mark.skipif(not HEADER.exists(), reason="no include/openbits.h beside the tests")
def test_every_header_function_is_declared() -> None:
    text = HEADER.read_text(encoding="utf-8")
    # Callback typedefs (`typedef bits_hresult (*name)(...)`) declare no function.
    code = re.sub(r"typedef[^;]*;", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    names = set(re.findall(r"\b(bits_\w+)\s*\(", code))
    assert names == set(_bindings.FUNCTIONS)
    codes = dict(re.findall(r"#define BITS_(\w+) \(\(bits_hresult\)(0x[0-9A-Fa-f]+)u\)", text))
    assert {k: int(v, 16) for k, v in codes.items()} == {m.name: m.value for m in openbits.HResult}


def test_every_function_has_argtypes_and_restype() -> None:
    for name, (restype, argtypes) in _bindings.FUNCTIONS.items():
        fn = getattr(_ffi.lib, name)
        assert list(fn.argtypes) == list(argtypes), name
        assert fn.restype is restype, name
        assert fn.argtypes is not None, name
    # ctypes checks arguments: a job where a manager is expected is refused before C sees it.
    job_ptr = ctypes.POINTER(_bindings.bits_job)()
    with pytest.raises(ctypes.ArgumentError):
        _ffi.lib.bits_enum_jobs(job_ptr, 0, None, None)


def _structs():
    return [
        v
        for v in vars(_bindings).values()
        if isinstance(v, type) and issubclass(v, ctypes.Structure) and hasattr(v, "_fields_")
    ]


@pytest.mark.skipif(not HEADER.exists() or not shutil.which("cc"), reason="needs the header and cc")
def test_struct_layouts_match_the_c_compiler(tmp_path: Path) -> None:
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "openbits.h"']
    lines.append("int main(void) {")
    expected = []
    for st in _structs():
        lines.append(f'printf("%zu\\n", sizeof(struct {st.__name__}));')
        expected.append(ctypes.sizeof(st))
        for name, *_ in st._fields_:
            lines.append(f'printf("%zu\\n", offsetof(struct {st.__name__}, {name}));')
            expected.append(getattr(st, name).offset)
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-I", str(HEADER.parent), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], stdout=subprocess.PIPE, check=True).stdout
    got = [int(x) for x in out.split()]
    assert got == expected


def test_struct_sizes() -> None:
    assert ctypes.sizeof(_bindings.bits_guid) == 16
    assert ctypes.sizeof(_bindings.bits_job_progress) == 24
    assert ctypes.sizeof(_bindings.bits_event) == 32


def test_version_checked_against_the_library() -> None:
    lib_major_minor = openbits.library_version.split(".")[:2]
    assert openbits.__version__.split(".")[:2] == lib_major_minor
    cargo = REPO / "Cargo.toml"
    if cargo.exists():
        pattern = r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"'
        m = re.search(pattern, cargo.read_text(), re.M | re.S)
        assert m and openbits.__version__ == m.group(1)
    assert _bindings.BITS_VERSION_STRING.split(".")[:2] == lib_major_minor


def test_guid_conversion_matches_the_library() -> None:
    for _ in range(20):
        u = uuid.uuid4()
        assert _ffi.guid_string(u) == "{" + str(u).upper() + "}"
        assert _ffi.parse_guid(str(u)) == u
        assert _ffi.guid_to_uuid(_ffi.uuid_to_guid(u)) == u


@pytest.mark.skipif(os.environ.get("OPENBITS_EXPECT_INSTALLED") != "1", reason="test.sh sets it")
def test_the_installed_package_is_under_test() -> None:
    package = Path(openbits.__file__).resolve().parent
    assert SOURCE not in package.parents, f"testing the source tree ({package}), not the install"
    assert "OPENBITS_LIBRARY" not in os.environ
    library = Path(openbits.library_path).resolve()
    assert library.parent == package and library.name.startswith("libopenbits")
    assert (package / "py.typed").exists()
