#!/usr/bin/env bash
# bindings/cpp/test.sh: the C and C++ consumer story, end to end.
#
#   1. builds libopenbits and the test server (cargo, debug) and installs them with
#      scripts/install.sh into a temporary prefix; checks the layout (SONAME, pkg-config, CMake files);
#   2. openbits.hpp compiles alone (strict warnings, installed include folder only) and
#      twice-included, in two TUs linked into one program that runs;
#   3. the C++ tests (tests/test_openbits.cpp, -std=c++17 -Wall -Wextra -Wpedantic -Werror) against
#      the local test server: downloads byte for byte, errors, moved-from objects, events, …; then
#      again under valgrind (memory errors and leaks fail);
#   4. a CMake project outside the tree (a copy of examples/cpp) finds the installed package with
#      find_package(openbits), links openbits::openbits (and openbits::openbits_static), builds and
#      runs the example against the test server; the package's version file accepts and refuses
#      the right versions;
#   5. the same example built with `pkg-config --cflags --libs openbits` and run; then static links
#      (libopenbits.a and Libs.private) of examples/demo.c (C) and of the C++ example, run.
#
# Prints PASS/FAIL per step and exits non-zero if any failed. Works from any directory. Installs
# cmake, pkg-config, make, g++, patchelf and valgrind with apt-get when missing and running as root.
#
# Environment: CXX, CC (default c++, cc); KEEP=1 keeps the scratch folder (also kept on failure);
# STEP_TIMEOUT=600 seconds before a program is killed; SKIP_BUILD=1 uses target/debug as it is;
# VALGRIND=0 skips the valgrind run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CXX=${CXX:-c++}
CC=${CC:-cc}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}

# ---- Tools ------------------------------------------------------------------------------------------
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v "$CXX" >/dev/null 2>&1 || missing+=(g++)
command -v "$CC" >/dev/null 2>&1 || missing+=(gcc)
command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)
[[ "${VALGRIND:-1}" == 0 ]] || command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
    fi
fi
for tool in cmake pkg-config make "$CXX" "$CC"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is missing (install it, or run as root)" >&2; exit 1; }
done
have_patchelf=0
command -v patchelf >/dev/null 2>&1 && have_patchelf=1

if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    echo "== SKIP_BUILD=1: using target/debug as it is"
else
    echo "== cargo build -p openbits-ffi -p openbits-testserver -p openbits-cli -p openbits-server (debug)"
    (cd "$ROOT" && cargo build --quiet -p openbits-ffi -p openbits-testserver -p openbits-cli -p openbits-server)
fi

# ---- Scratch folder, server ----------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/openbits-cpptest.XXXXXX")"
SERVER_PID=""
failed=0
results=()

cleanup() {
    local rc=$?
    exec 3>&- 2>/dev/null || true # closing the server's stdin stops it
    if [[ -n "${REPLY_SERVER_PID:-}" ]]; then
        kill "$REPLY_SERVER_PID" 2>/dev/null || true
        wait "$REPLY_SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "${TLS_SERVER_PID:-}" ]]; then kill "$TLS_SERVER_PID" 2>/dev/null || true; fi
    if [[ -n "$SERVER_PID" ]]; then
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 || $failed -ne 0 || "${KEEP:-0}" == 1 ]]; then
        echo "scratch folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PREFIX="$WORK/prefix"
SRC="$WORK/src"
mkdir -p "$SRC" "$WORK/scratch" "$WORK/home"
head -c 100003 /dev/urandom >"$SRC/small.bin"
head -c 300007 /dev/urandom >"$SRC/mid.bin"
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$SRC/big.bin"
head -c $((1024 * 1024)) /dev/urandom >"$SRC/slow.bin" # served with ?rate= for mid-transfer tests
server_args=()
for f in small mid big slow; do server_args+=(--file "/$f.bin=$SRC/$f.bin"); done

source "$ROOT/tests/server/start.sh"
start_test_server "$ROOT/target/debug/openbits-testserver" "$WORK" "${server_args[@]}"
SERVER_PID=$TEST_SERVER_PID port=$TEST_SERVER_PORT
BASE="http://127.0.0.1:$port"
echo "== test server pid $SERVER_PID on $BASE"
start_reply_server "$ROOT/target/debug/openbits-server" "$WORK" "$BASE/_reverse"
echo "== openbits-server pid $REPLY_SERVER_PID at $REPLY_SERVER_URL (upload-reply)"
export OPENBITS_TEST_URL="$BASE" OPENBITS_TEST_SRC="$SRC" OPENBITS_TEST_WORK="$WORK/scratch"
export OPENBITS_REPLY_URL="$REPLY_SERVER_URL"
export OPENBITS_HOME="$WORK/home" # the library's default state folder: never the user's own
source "$ROOT/tests/server/start_tls.sh"
start_tls_server "$WORK" "$SRC"
echo "== TLS test server pid $TLS_SERVER_PID on $TLS_SERVER_URL"
export OPENBITS_TEST_TLS_URL="$TLS_SERVER_URL" OPENBITS_TEST_TLS_DIR="$TLS_DIR"

# ---- Steps ------------------------------------------------------------------------------------------------
# step NAME FUNCTION: runs FUNCTION in a subshell with errexit (the first failing command fails the
# step), output indented, and records PASS/FAIL; the next steps run either way.
step() {
    local name=$1 rc=0 start=$SECONDS
    shift
    echo "== $name"
    set +e
    (
        set -euo pipefail
        "$@"
    ) 2>&1 | sed -u 's/^/   /'
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc == 0 ]]; then
        results+=("PASS $name")
    else
        results+=("FAIL $name (exit $rc)")
        failed=$((failed + 1))
    fi
    echo "   ${results[-1]%% (*} ($((SECONDS - start)) s)"
}

# Runs a program with the step timeout.
run() { timeout -k 10 "$STEP_TIMEOUT" "$@"; }

# Downloads NAMES with an example binary into a fresh folder and compares every byte.
run_example() { # label binary names...
    local label=$1 bin=$2
    shift 2
    local dest="$WORK/out-$label"
    rm -rf "$dest"
    mkdir -p "$dest"
    run "$bin" "$BASE" "$dest" "$@"
    for n in "$@"; do
        n="${n%%\?*}"
        cmp "$SRC/$n" "$dest/$n"
    done
    local left=("$dest"/BIT*.tmp)
    [[ ! -e "${left[0]}" ]] || { echo "temporary files left: ${left[*]}"; return 1; }
    echo "$label: $# files identical"
}

# The binary must not need libopenbits.so (a static link).
not_dynamic() {
    if readelf -d "$1" | grep -q 'NEEDED.*libopenbits'; then
        echo "$1 needs libopenbits.so:"
        readelf -d "$1" | grep NEEDED
        return 1
    fi
    echo "$(basename "$1"): no libopenbits.so among its NEEDED libraries"
}

VERSION="$(sed -n 's/^#define BITS_VERSION_STRING "\(.*\)"$/\1/p' "$ROOT/include/openbits.h")"
WARN=(-Wall -Wextra -Wpedantic -Werror)

install_step() {
    "$ROOT/scripts/install.sh" --prefix "$PREFIX" --debug --no-build
    for f in include/openbits.h include/openbits.hpp lib/libopenbits.a lib/libopenbits.so \
        lib/pkgconfig/openbits.pc lib/cmake/openbits/openbitsConfig.cmake \
        lib/cmake/openbits/openbitsConfigVersion.cmake bin/openbits share/man/man1/openbits.1 \
        share/bash-completion/completions/openbits share/zsh/site-functions/_openbits \
        share/fish/vendor_completions.d/openbits.fish; do
        [[ -e "$PREFIX/$f" ]] || { echo "missing: $PREFIX/$f"; return 1; }
    done
    "$PREFIX/bin/openbits" --version | grep -Fx "openbits $VERSION"
    grep -q '^\.TH openbits 1' "$PREFIX/share/man/man1/openbits.1"
    # A page per verb, as `man openbits-transfer` looks for it.
    grep -q '^\.TH openbits-transfer 1' "$PREFIX/share/man/man1/openbits-transfer.1"
    cmp "$ROOT/bindings/cpp/openbits.hpp" "$PREFIX/include/openbits.hpp"
    cmp "$ROOT/include/openbits.h" "$PREFIX/include/openbits.h"
    if [[ $have_patchelf == 1 ]]; then
        [[ "$(readlink "$PREFIX/lib/libopenbits.so")" == "libopenbits.so.$VERSION" ]]
        readelf -d "$PREFIX/lib/libopenbits.so.$VERSION" | grep -F "Library soname: [libopenbits.so.$VERSION]"
    else
        echo "(patchelf missing: no versioned SONAME to check)"
    fi
    # Installing again over the same prefix works (and leaves the same files).
    "$ROOT/scripts/install.sh" --prefix "$PREFIX" --debug --no-build >/dev/null
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
    [[ "$(pkg-config --modversion openbits)" == "$VERSION" ]]
    echo "pkg-config --cflags --libs openbits: $(pkg-config --cflags --libs openbits)"
    echo "pkg-config --static --libs openbits: $(pkg-config --static --libs openbits)"
}

header_step() {
    # Alone, against the installed include folder only, with extra warnings a user may have on.
    "$CXX" -std=c++17 "${WARN[@]}" -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor \
        -I "$PREFIX/include" -c "$HERE/tests/header_alone.cpp" -o "$WORK/header_alone.o"
    for std in c++17 c++20; do
        "$CXX" -std=$std "${WARN[@]}" -I "$PREFIX/include" -fsyntax-only "$HERE/tests/header_alone.cpp"
    done
    echo "openbits.hpp compiles alone (C++17, C++20)"
    # C++14 is refused with a clear message.
    if "$CXX" -std=c++14 -I "$PREFIX/include" -fsyntax-only "$HERE/tests/header_alone.cpp" 2>"$WORK/cxx14.err"; then
        echo "openbits.hpp compiled as C++14"
        return 1
    fi
    grep -q "needs C++17" "$WORK/cxx14.err"
    echo "C++14 refused: $(grep -o 'openbits.hpp needs C++17[^"]*' "$WORK/cxx14.err" | head -n 1)"
    # Twice in one TU, and in two TUs of one program.
    "$CXX" -std=c++17 "${WARN[@]}" -I "$PREFIX/include" "$HERE/tests/double_include_a.cpp" \
        "$HERE/tests/double_include_b.cpp" -o "$WORK/double_include" \
        -L "$PREFIX/lib" -Wl,-rpath,"$PREFIX/lib" -lopenbits
    run "$WORK/double_include"
}

cpp_tests_step() {
    # shellcheck disable=SC2046
    "$CXX" -std=c++17 "${WARN[@]}" -g -pthread -o "$WORK/test_openbits" "$HERE/tests/test_openbits.cpp" \
        $(pkg-config --cflags openbits) -Wl,-rpath,"$PREFIX/lib" $(pkg-config --libs openbits)
    run "$WORK/test_openbits"
}

valgrind_step() {
    # The same tests under memcheck: a memory error or a definite/indirect leak (say, a string of
    # the library the wrapper forgot to free) fails.
    [[ -x "$WORK/test_openbits" ]] || { echo "test_openbits was not built"; return 1; }
    local rc=0
    # The tls test's handshakes need tests/valgrind/ring-gcm.supp (memcheck cannot follow ring's
    # AES-GCM assembly); deep stacks so its entries see the rustls frames.
    run valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --num-callers=40 --suppressions="$ROOT/tests/valgrind/ring-gcm.supp" \
        --log-file="$WORK/valgrind.log" "$WORK/test_openbits" || rc=$?
    grep -E "ERROR SUMMARY|definitely lost:|indirectly lost:" "$WORK/valgrind.log" | sed 's/^==[0-9]*== *//' || true
    [[ $rc == 0 ]] || echo "exit $rc; full log: $WORK/valgrind.log"
    return "$rc"
}

# A file's bytes in reverse order (what the test server's /_reverse application answers).
rev_bytes() { python3 -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read()[::-1])' "$1"; }

cmake_step() {
    local project="$WORK/cmake-consumer" # outside the repository
    rm -rf "$project"
    cp -r "$ROOT/examples/cpp" "$project"
    for kind in shared static; do
        local build="$project/build-$kind" static=OFF
        [[ $kind == static ]] && static=ON
        cmake -S "$project" -B "$build" -DCMAKE_PREFIX_PATH="$PREFIX" -DOPENBITS_STATIC=$static \
            -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS="${WARN[*]}" >"$WORK/cmake-$kind.log" ||
            { cat "$WORK/cmake-$kind.log"; return 1; }
        grep -F "openbits_DIR:PATH=$PREFIX/lib/cmake/openbits" "$build/CMakeCache.txt"
        cmake --build "$build" -j 2 >"$WORK/cmake-build-$kind.log" ||
            { cat "$WORK/cmake-build-$kind.log"; return 1; }
        if [[ $kind == static ]]; then
            not_dynamic "$build/download"
            run_example cmake-static "$build/download" small.bin mid.bin
        else
            readelf -d "$build/download" | grep -E 'NEEDED.*libopenbits' # the shared library…
            # …found through the build tree's RPATH, without LD_LIBRARY_PATH.
            run_example cmake-shared "$build/download" small.bin mid.bin "big.bin?rate=2000000"
            # The upload example, an upload-reply job: the reply is the file reversed.
            local up="$WORK/upload-example"
            mkdir -p "$up"
            cp "$SRC/mid.bin" "$up/report.bin"
            "$build/upload" --reply "$up/report.bin" "$REPLY_SERVER_URL/cpp-example/report.bin" | tee "$up/out"
            local answer
            answer=$(sed -n 's/^reply file: //p' "$up/out")
            cmp <(rev_bytes "$up/report.bin") "$answer"
        fi
    done
    # The version file: 0.x releases accept only their own 0.x.
    local major=${VERSION%%.*} rest=${VERSION#*.}
    local minor=${rest%%.*}
    local check=("" ON "$major.$minor" ON "$VERSION" ON "$major.$((minor + 1))" OFF "$((major + 1)).0" OFF)
    for ((i = 0; i < ${#check[@]}; i += 2)); do
        cmake -S "$HERE/tests/cmake-version" -B "$WORK/cmake-version-$i" -DCMAKE_PREFIX_PATH="$PREFIX" \
            -DREQUEST="${check[i]}" -DEXPECT_FOUND="${check[i + 1]}" | grep "find_package"
    done
}

pkgconfig_step() {
    local cflags libs static_libs
    cflags="$(pkg-config --cflags openbits)"
    libs="$(pkg-config --libs openbits)"
    static_libs="$(pkg-config --static --libs openbits)"
    static_libs="${static_libs/-lopenbits/-l:libopenbits.a}" # the archive, though the .so is beside it
    # shellcheck disable=SC2086
    {
        # Shared.
        "$CXX" -std=c++17 "${WARN[@]}" $cflags "$ROOT/examples/cpp/download.cpp" -o "$WORK/download-pc" \
            -Wl,-rpath,"$(pkg-config --variable=libdir openbits)" $libs
        run_example pkgconfig-shared "$WORK/download-pc" small.bin mid.bin big.bin
        # Static, C: the C driver adds nothing of its own, so Libs.private must be complete.
        "$CC" -std=c11 -Wall -Wextra -Werror $cflags "$ROOT/examples/demo.c" -o "$WORK/demo-static" $static_libs
        not_dynamic "$WORK/demo-static"
        run_example pkgconfig-static-c "$WORK/demo-static" small.bin big.bin
        # Static, C++.
        "$CXX" -std=c++17 "${WARN[@]}" $cflags "$ROOT/examples/cpp/download.cpp" -o "$WORK/download-static" $static_libs
        not_dynamic "$WORK/download-static"
        run_example pkgconfig-static-cpp "$WORK/download-static" mid.bin
    }
}

step "install to a temporary prefix" install_step
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
step "openbits.hpp alone and twice-included" header_step
step "C++ tests against the test server" cpp_tests_step
if [[ "${VALGRIND:-1}" == 0 ]]; then
    echo "== VALGRIND=0: C++ tests under valgrind skipped"
elif command -v valgrind >/dev/null 2>&1; then
    step "C++ tests under valgrind" valgrind_step
else
    step "C++ tests under valgrind (valgrind is not installed and cannot be installed)" false
fi
step "CMake consumer outside the tree (find_package)" cmake_step
step "pkg-config consumer, shared and static" pkgconfig_step

echo
echo "== summary"
for r in "${results[@]}"; do echo "$r"; done
echo "$(( ${#results[@]} - failed )) passed, $failed failed"
[[ $failed == 0 ]]
