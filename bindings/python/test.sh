#!/usr/bin/env bash
# bindings/python/test.sh: tests the openbits Python package as a user gets it.
#
#   bindings/python/test.sh [--sdist] [PYTEST ARGS...]
#
# 1. creates a virtual environment in a temporary folder;
# 2. `pip install ./bindings/python` into it (the build runs `cargo build --release -p openbits-ffi`
#    and puts libopenbits.so inside the package), with pytest;
# 3. runs bindings/python/tests with pytest from outside the source tree, so that they import
#    the INSTALLED package (a test checks it), against the project's test server;
# 4. builds a wheel with `python -m build --wheel`, checks it is platform-tagged and carries
#    libopenbits.so, installs it into a second environment and imports it;
# 5. builds the sdist and checks it carries the Rust sources; with --sdist, also builds a wheel
#    from that sdist (as plain `python -m build` does: a full release build of the library in a
#    temporary folder, minutes on a small machine).
#
# Works from any folder; exits non-zero on any failure. Needs python3 and Rust (cargo); installs
# python3-venv with apt-get when `python3 -m venv` is unavailable and this runs as root.
# PyPI is used for pytest, build, setuptools and wheel.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
full_sdist=0
if [[ "${1:-}" == "--sdist" ]]; then
    full_sdist=1
    shift
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/openbits-python.XXXXXX")"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

say() { printf '== %s\n' "$*"; }
fail() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v "$python" >/dev/null || fail "$python not found"
command -v cargo >/dev/null || fail "cargo not found: install Rust (https://rustup.rs)"

make_venv() {
    if ! "$python" -m venv "$1" >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
            say "installing python3-venv"
            rm -rf "$1"
            apt-get update -qq
            version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
                || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv"
            "$python" -m venv "$1"
        else
            fail "\`$python -m venv\` failed: install python3-venv"
        fi
    fi
}

say "virtual environment in $work/venv"
make_venv "$work/venv"
venv_py="$work/venv/bin/python"
"$venv_py" -m pip install -q --disable-pip-version-check pytest build

say "building the test server (debug)"
(cd "$repo" && cargo build -q -p openbits-testserver)

say "pip install ./bindings/python"
(cd "$repo" && "$venv_py" -m pip install --disable-pip-version-check ./bindings/python)

say "pytest against the installed package"
(
    cd "$work"
    unset OPENBITS_LIBRARY
    OPENBITS_EXPECT_INSTALLED=1 OPENBITS_TESTSERVER="$repo/target/debug/openbits-testserver" \
        "$venv_py" -m pytest -p no:cacheprovider -q -rs "$here/tests" "$@"
)

say "python -m build --wheel"
(cd "$here" && "$venv_py" -m build --wheel --outdir "$work/dist" >"$work/build-wheel.log" 2>&1) \
    || { tail -n 40 "$work/build-wheel.log" >&2; fail "python -m build --wheel failed"; }

check_wheel() {
    local wheel="$1"
    "$venv_py" - "$wheel" <<'EOF'
import re, sys, zipfile
wheel = sys.argv[1]
name = wheel.rsplit("/", 1)[-1]
m = re.fullmatch(r"openbits-([^-]+)-py3-none-([^-]+)\.whl", name)
assert m, f"unexpected wheel name {name}"
assert m.group(2) != "any", f"{name} is not platform-tagged"
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for needed in ("openbits/libopenbits.so", "openbits/py.typed", "openbits/_version.py",
                   "openbits/__init__.py", "openbits/_bindings.py"):
        assert needed in names, f"{name} lacks {needed}"
    meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
    assert "Root-Is-Purelib: false" in z.read(meta).decode(), "the wheel claims to be pure"
    lib = z.getinfo("openbits/libopenbits.so")
    assert lib.file_size > 100_000, "libopenbits.so is suspiciously small"
    # What ships is stripped (Cargo.toml's release profile): no symbol table, no debug sections.
    # Read from the ELF section headers rather than guessed from the size: stripped, the library
    # grew to within 5 KB of what it once weighed with its symbol table (8.0 MB); with debug
    # information it was 44 MB.
    elf = z.read("openbits/libopenbits.so")
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit little-endian ELF"
    shoff = int.from_bytes(elf[0x28:0x30], "little")
    shentsize, shnum, shstrndx = (int.from_bytes(elf[o:o + 2], "little") for o in (0x3A, 0x3C, 0x3E))
    headers = [elf[shoff + i * shentsize:shoff + (i + 1) * shentsize] for i in range(shnum)]
    strtab = headers[shstrndx]
    str_off, str_size = (int.from_bytes(strtab[o:o + 8], "little") for o in (0x18, 0x20))
    names_blob = elf[str_off:str_off + str_size]
    sections = [names_blob[int.from_bytes(h[:4], "little"):].split(b"\0", 1)[0].decode() for h in headers]
    assert ".dynsym" in sections, f"no dynamic symbols: {sections}"
    unstripped = [s for s in sections if s == ".symtab" or s.startswith(".debug")]
    assert not unstripped, f"libopenbits.so is not stripped: {unstripped}"
    assert lib.file_size < 16_000_000, f"libopenbits.so is {lib.file_size} bytes (bar: under 16,000,000)"
print(f"   {name}: platform {m.group(2)}, libopenbits.so {lib.file_size} bytes")
EOF
}

shopt -s nullglob
wheels=("$work"/dist/openbits-*.whl)
[[ ${#wheels[@]} == 1 ]] || fail "expected one wheel, found: ${wheels[*]:-none}"
check_wheel "${wheels[0]}"

say "installing the wheel into a fresh environment"
make_venv "$work/venv2"
"$work/venv2/bin/python" -m pip install -q --disable-pip-version-check "${wheels[0]}"
(cd "$work" && "$work/venv2/bin/python" -c '
import openbits, pathlib, tempfile
assert pathlib.Path(openbits.library_path).parent == pathlib.Path(openbits.__file__).parent
with openbits.Manager(tempfile.mkdtemp()) as m:
    job = m.create_job("from the wheel")
    assert job.state == openbits.JobState.SUSPENDED
print("   openbits", openbits.__version__, "library", openbits.library_version, "OK")
')

say "python -m build --sdist"
(cd "$here" && "$venv_py" -m build --sdist --outdir "$work/sdist" >"$work/build-sdist.log" 2>&1) \
    || { tail -n 40 "$work/build-sdist.log" >&2; fail "python -m build --sdist failed"; }
sdists=("$work"/sdist/openbits-*.tar.gz)
[[ ${#sdists[@]} == 1 ]] || fail "expected one sdist"
"$venv_py" - "${sdists[0]}" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
for needed in ("setup.py", "pyproject.toml", "openbits/__init__.py", "openbits/py.typed",
               "rust/Cargo.toml", "rust/Cargo.lock", "rust/ffi/Cargo.toml", "rust/core/src/lib.rs",
               "tests/test_download.py", "examples/download.py"):
    assert needed in names, f"the sdist lacks {needed}"
assert not any(n.startswith("rust/target") for n in names), "the sdist carries build output"
print(f"   {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, Rust sources included")
EOF

if [[ "$full_sdist" == 1 ]]; then
    say "wheel from the sdist (full release build of the library)"
    mkdir "$work/from-sdist"
    tar -xzf "${sdists[0]}" -C "$work/from-sdist"
    (cd "$work/from-sdist"/openbits-* && "$venv_py" -m build --wheel --outdir "$work/dist-sdist") \
        || fail "building a wheel from the sdist failed"
    from_sdist=("$work"/dist-sdist/openbits-*.whl)
    check_wheel "${from_sdist[0]}"
fi

say "Python binding: all checks passed"
