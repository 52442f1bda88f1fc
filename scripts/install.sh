#!/usr/bin/env bash
# scripts/install.sh: builds libopenbits and installs it for C and C++ consumers under a prefix,
# with the `openbits` command (and `openbits-server` where the workspace has it).
#
#   scripts/install.sh --prefix DIR [--debug] [--no-build]
#
# Installs:
#   DIR/lib/libopenbits.so.VERSION       the shared library, SONAME libopenbits.so.VERSION (set with
#   DIR/lib/libopenbits.so -> …          patchelf; without patchelf: a plain lib/libopenbits.so)
#   DIR/lib/libopenbits.a                the static library
#   DIR/include/openbits.h               the C header
#   DIR/include/openbits.hpp             the C++17 header-only wrapper
#   DIR/lib/pkgconfig/openbits.pc        pkg-config: `pkg-config --cflags --libs openbits`
#   DIR/lib/cmake/openbits/              CMake: `find_package(openbits)`, targets openbits::openbits
#                                        (shared) and openbits::openbits_static
#   DIR/bin/openbits                     the command-line tool, with its manual pages
#   DIR/share/man/man1/openbits.1        (share/man: openbits.1 and openbits-VERB.1 for each verb)
#                                        and completions for bash, zsh and fish
#   DIR/bin/openbits-server              the upload server, when the workspace has one
#
# Before 1.0 the ABI may change in any release, so the SONAME is the full version.
#
# Options:
#   --prefix DIR   where to install (required; e.g. /usr/local, $HOME/.local)
#   --debug        install the debug build (target/debug) instead of the release build
#   --no-build     do not run cargo; install what target/<profile> already holds
# Environment:
#   DESTDIR        staging root for packagers: files go to $DESTDIR/DIR, but the pkg-config
#                  file names DIR
#   CARGO_TARGET_DIR  cargo's target folder, if not <repo>/target
set -euo pipefail

usage() { sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

prefix=""
profile=release
build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --prefix) [[ $# -ge 2 ]] || usage; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --debug) profile=debug; shift ;;
    --release) profile=release; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$prefix" ]] || { echo "install.sh: --prefix DIR is required" >&2; usage; }
[[ "$prefix" != *[[:space:]]* ]] || { echo "install.sh: pkg-config cannot express a prefix with spaces: $prefix" >&2; exit 2; }
# An absolute, normalised prefix (it is written into openbits.pc).
prefix="$(realpath -m -- "$prefix")"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
[[ "$target" == /* ]] || target="$repo/$target"
built="$target/$profile"

# The version: the header's, which must be the crate's.
version="$(sed -n 's/^#define BITS_VERSION_STRING "\(.*\)"$/\1/p' "$repo/include/openbits.h")"
crate_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"$/\1/p' "$repo/Cargo.toml")"
[[ -n "$version" ]] || { echo "install.sh: no BITS_VERSION_STRING in include/openbits.h" >&2; exit 1; }
if [[ "$version" != "$crate_version" ]]; then
    echo "install.sh: include/openbits.h says $version but Cargo.toml says $crate_version (run cargo xtask header)" >&2
    exit 1
fi
major="${version%%.*}"
minor="${version#*.}"; minor="${minor%%.*}"

# System libraries the static library needs: what `rustc --print native-static-libs` lists for a
# staticlib on Linux/glibc (the bundled SQLite needs only -lm -lpthread -ldl, which are in it), less
# -lc, which every link has.
static_deps="-lgcc_s -lutil -lrt -lpthread -lm -ldl"

# The upload server is another issue's crate: installed once the workspace has it.
has_server=0
[[ -f "$repo/server/Cargo.toml" ]] && has_server=1

if [[ $build == 1 ]]; then
    echo "== cargo build -p openbits-ffi -p openbits-cli ($profile)"
    cargo_args=(build -p openbits-ffi -p openbits-cli)
    [[ $has_server == 1 ]] && cargo_args+=(-p openbits-server)
    [[ $profile == release ]] && cargo_args+=(--release)
    (cd "$repo" && cargo "${cargo_args[@]}")
fi
for f in libopenbits.so libopenbits.a; do
    [[ -f "$built/$f" ]] || { echo "install.sh: $built/$f is missing (build first, or drop --no-build)" >&2; exit 1; }
done

dest="${DESTDIR:-}$prefix"
libdir="$dest/lib"
incdir="$dest/include"
pcdir="$libdir/pkgconfig"
cmakedir="$libdir/cmake/openbits"
echo "== installing openbits $version ($profile) to ${DESTDIR:+$DESTDIR}$prefix"
install -d "$libdir" "$incdir" "$pcdir" "$cmakedir"

# Each file is written under a temporary name and renamed into place, so a program running with
# the old library is not disturbed.
put() { # mode source destination
    install -m "$1" "$2" "$3.tmp.$$"
    mv -f "$3.tmp.$$" "$3"
}

put 0644 "$repo/include/openbits.h" "$incdir/openbits.h"
put 0644 "$repo/bindings/cpp/openbits.hpp" "$incdir/openbits.hpp"
put 0644 "$built/libopenbits.a" "$libdir/libopenbits.a"

soname="libopenbits.so.$version"
if command -v patchelf >/dev/null 2>&1; then
    install -m 0755 "$built/libopenbits.so" "$libdir/$soname.tmp.$$"
    patchelf --set-soname "$soname" "$libdir/$soname.tmp.$$"
    [[ "$(patchelf --print-soname "$libdir/$soname.tmp.$$")" == "$soname" ]]
    mv -f "$libdir/$soname.tmp.$$" "$libdir/$soname"
    ln -sfn "$soname" "$libdir/libopenbits.so.tmp.$$"
    mv -fT "$libdir/libopenbits.so.tmp.$$" "$libdir/libopenbits.so"
    shared_file="$soname"
    shared_soname="$soname"
else
    echo "install.sh: patchelf not found: installing lib/libopenbits.so without a versioned SONAME" >&2
    echo "            (apt-get install patchelf, then run this again, to get $soname)" >&2
    rm -f "$libdir/libopenbits.so.tmp.$$"
    put 0755 "$built/libopenbits.so" "$libdir/libopenbits.so"
    shared_file="libopenbits.so"
    shared_soname=""
fi

# ---- pkg-config ---------------------------------------------------------------------------------
cat >"$pcdir/openbits.pc.tmp.$$" <<EOF
# openbits.pc: generated by scripts/install.sh
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: openbits
Description: Windows BITS (Background Intelligent Transfer Service) job semantics as an embeddable library
Version: $version
Libs: -L\${libdir} -lopenbits
Libs.private: $static_deps
Cflags: -I\${includedir}
EOF
mv -f "$pcdir/openbits.pc.tmp.$$" "$pcdir/openbits.pc"

# ---- CMake package ------------------------------------------------------------------------------
cmake_static_deps="$(sed 's/-l//g; s/ /;/g' <<<"$static_deps")"
cat >"$cmakedir/openbitsConfig.cmake.tmp.$$" <<EOF
# openbitsConfig.cmake: generated by scripts/install.sh for openbits $version.
#
#   find_package(openbits REQUIRED)
#   target_link_libraries(app PRIVATE openbits::openbits)          # libopenbits.so
#   target_link_libraries(app PRIVATE openbits::openbits_static)   # libopenbits.a
#
# Both targets carry the include folder, with openbits.h (C) and openbits.hpp (C++17).
# The prefix is found from this file's own location, so the installed tree may be moved.

get_filename_component(_openbits_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

set(openbits_VERSION "$version")
set(openbits_INCLUDE_DIRS "\${_openbits_prefix}/include")
set(openbits_LIBRARIES openbits::openbits)

foreach(_openbits_file "include/openbits.h" "include/openbits.hpp" "lib/$shared_file" "lib/libopenbits.a")
  if(NOT EXISTS "\${_openbits_prefix}/\${_openbits_file}")
    set(openbits_FOUND FALSE)
    set(openbits_NOT_FOUND_MESSAGE "openbits: \${_openbits_prefix}/\${_openbits_file} is missing")
    unset(_openbits_prefix)
    unset(_openbits_file)
    return()
  endif()
endforeach()

if(NOT TARGET openbits::openbits)
  add_library(openbits::openbits SHARED IMPORTED)
  set_target_properties(openbits::openbits PROPERTIES
    IMPORTED_LOCATION "\${_openbits_prefix}/lib/$shared_file"
    IMPORTED_SONAME "${shared_soname:-$shared_file}"
    INTERFACE_INCLUDE_DIRECTORIES "\${_openbits_prefix}/include")
endif()

if(NOT TARGET openbits::openbits_static)
  add_library(openbits::openbits_static STATIC IMPORTED)
  set_target_properties(openbits::openbits_static PROPERTIES
    IMPORTED_LOCATION "\${_openbits_prefix}/lib/libopenbits.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_openbits_prefix}/include"
    INTERFACE_LINK_LIBRARIES "$cmake_static_deps")
endif()

unset(_openbits_prefix)
unset(_openbits_file)
EOF
mv -f "$cmakedir/openbitsConfig.cmake.tmp.$$" "$cmakedir/openbitsConfig.cmake"

cat >"$cmakedir/openbitsConfigVersion.cmake.tmp.$$" <<EOF
# openbitsConfigVersion.cmake: generated by scripts/install.sh.
# Before 1.0 a release is compatible only with requests for its own major.minor (no ABI promise);
# from 1.0 on, with requests for its own major. A request for a newer version never matches.
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "$major")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif("$major" STREQUAL "0" AND NOT PACKAGE_FIND_VERSION_MINOR STREQUAL "$minor")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
# A 64-bit library: not for a 32-bit build.
if(CMAKE_SIZEOF_VOID_P AND NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (64bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
EOF
mv -f "$cmakedir/openbitsConfigVersion.cmake.tmp.$$" "$cmakedir/openbitsConfigVersion.cmake"

# ---- the command-line tools ----------------------------------------------------------------------
# With --no-build a tool that was not built is skipped (the C consumers' tests install only the
# library); a build always makes them.
bindir="$dest/bin"
tools=()
for tool in openbits openbits-server; do
    [[ $tool == openbits-server && $has_server == 0 ]] && continue
    if [[ -x "$built/$tool" ]]; then
        install -d "$bindir"
        put 0755 "$built/$tool" "$bindir/$tool"
        tools+=("$tool")
    else
        echo "install.sh: $built/$tool is not built: skipped (build it, or drop --no-build)" >&2
    fi
done
if [[ " ${tools[*]} " == *" openbits "* ]]; then
    # Generated by the tool from its own clap definitions, so they match the installed binary.
    mandir="$dest/share/man/man1"
    bashdir="$dest/share/bash-completion/completions"
    zshdir="$dest/share/zsh/site-functions"
    fishdir="$dest/share/fish/vendor_completions.d"
    install -d "$mandir" "$bashdir" "$zshdir" "$fishdir"
    gen() { # destination command...
        "${@:2}" >"$1.tmp.$$"
        mv -f "$1.tmp.$$" "$1"
    }
    # openbits.1 and a page per verb (openbits-transfer.1, …), written aside and then renamed in.
    pages="$(mktemp -d "${TMPDIR:-/tmp}/openbits-man.XXXXXX")"
    "$built/openbits" man --dir "$pages"
    for page in "$pages"/*.1; do
        put 0644 "$page" "$mandir/$(basename "$page")"
    done
    rm -rf "$pages"
    gen "$bashdir/openbits" "$built/openbits" completions bash
    gen "$zshdir/_openbits" "$built/openbits" completions zsh
    gen "$fishdir/openbits.fish" "$built/openbits" completions fish
fi

echo "   $prefix/lib/$shared_file${shared_soname:+ (SONAME $shared_soname)}"
[[ $shared_file == libopenbits.so ]] || echo "   $prefix/lib/libopenbits.so -> $shared_file"
echo "   $prefix/lib/libopenbits.a"
echo "   $prefix/include/openbits.h, openbits.hpp"
echo "   $prefix/lib/pkgconfig/openbits.pc"
echo "   $prefix/lib/cmake/openbits/openbitsConfig.cmake, openbitsConfigVersion.cmake"
for tool in "${tools[@]}"; do echo "   $prefix/bin/$tool"; done
if [[ " ${tools[*]} " == *" openbits "* ]]; then
    echo "   $prefix/share/man/man1/openbits.1, openbits-VERB.1 for each verb"
    echo "   $prefix/share/{bash-completion/completions/openbits, zsh/site-functions/_openbits, fish/vendor_completions.d/openbits.fish}"
fi
case ":${LD_LIBRARY_PATH:-}:" in *":$prefix/lib:"*) ;; *)
    if ! ldconfig -p 2>/dev/null | grep -q " => $prefix/lib/libopenbits\.so"; then
        echo "   note: $prefix/lib is not in the loader's path: link with -Wl,-rpath,$prefix/lib, set"
        echo "   LD_LIBRARY_PATH, or (system prefixes) run ldconfig"
    fi
    ;;
esac
