"""Build step of the openbits Python package: builds libopenbits with cargo, puts it in the package.

The package is pure ctypes at run time; the only native part is libopenbits itself, which this
build compiles from the openbits Rust workspace and copies to `openbits/libopenbits.so`
(`.dylib` on macOS). The workspace is found, in this order:

  1. `$OPENBITS_SOURCE_DIR`;
  2. two levels up from this file (the package lives at `bindings/python` in the repository, and
     pip builds a local folder in place);
  3. `rust/` beside this file (the copy an sdist carries, so a wheel can be built from the sdist).

Environment:
  CARGO                   the cargo to run (default: `cargo` on PATH)
  CARGO_TARGET_DIR        honoured, as cargo always does
  OPENBITS_CARGO_PROFILE  `release` (default) or another cargo profile, e.g. `dev` for a quick
                          debug build while working on the binding

The package version is the workspace's (`[workspace.package] version` in Cargo.toml), written to
`openbits/_version.py` in the build; `import openbits` checks the library against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 carries bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - older setuptools
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
VENDORED = "rust"  # the workspace copy inside an sdist

if sys.platform == "darwin":
    LIBRARY_NAME = "libopenbits.dylib"
elif sys.platform == "win32":
    LIBRARY_NAME = "openbits.dll"
else:
    LIBRARY_NAME = "libopenbits.so"


def is_workspace(path: Path) -> bool:
    manifest = path / "Cargo.toml"
    return (
        manifest.is_file()
        and "[workspace]" in manifest.read_text(encoding="utf-8")
        and (path / "ffi" / "Cargo.toml").is_file()
    )


def workspace_root() -> Path:
    env = os.environ.get("OPENBITS_SOURCE_DIR")
    if env:
        root = Path(env).resolve()
        if not is_workspace(root):
            sys.exit(f"OPENBITS_SOURCE_DIR={env} is not the openbits Rust workspace")
        return root
    for candidate in (HERE.parent.parent, HERE / VENDORED):
        if is_workspace(candidate):
            return candidate
    sys.exit(
        "openbits: cannot find the openbits Rust workspace (looked two levels up from "
        f"{HERE} and in {HERE / VENDORED}); build from a checkout of the repository or set "
        "OPENBITS_SOURCE_DIR"
    )


def workspace_version(root: Path) -> str:
    text = (root / "Cargo.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    m = section and re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not m:
        sys.exit(f"openbits: no [workspace.package] version in {root / 'Cargo.toml'}")
    return m.group(1)


def cargo_build(root: Path) -> Path:
    """Builds openbits-ffi and returns the path of the shared library cargo reports."""
    cargo = os.environ.get("CARGO", "cargo")
    profile = os.environ.get("OPENBITS_CARGO_PROFILE", "release")
    command = [
        cargo,
        "build",
        "--package",
        "openbits-ffi",
        "--lib",
        "--profile",
        profile,
        "--message-format=json-render-diagnostics",
    ]
    print(f"openbits: running {' '.join(command)} in {root}", flush=True)
    try:
        proc = subprocess.run(command, cwd=root, stdout=subprocess.PIPE, check=False)
    except FileNotFoundError:
        sys.exit(
            f"openbits: `{cargo}` not found: building this package needs Rust "
            "(https://rustup.rs) or a prebuilt wheel"
        )
    if proc.returncode != 0:
        sys.exit(f"openbits: cargo build failed (exit {proc.returncode})")
    found = None
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact":
            continue
        target = msg.get("target", {})
        if target.get("name") == "openbits" and "cdylib" in target.get("kind", []):
            for f in msg.get("filenames", []):
                if Path(f).name == LIBRARY_NAME:
                    found = Path(f)
    if found is None or not found.is_file():
        sys.exit(f"openbits: cargo did not report {LIBRARY_NAME}")
    return found


class BuildPy(build_py):
    """build_py, then libopenbits and _version.py into the built package."""

    def run(self) -> None:
        super().run()
        root = workspace_root()
        library = cargo_build(root)
        package_dir = Path(self.build_lib) / "openbits"
        package_dir.mkdir(parents=True, exist_ok=True)
        target = package_dir / LIBRARY_NAME
        shutil.copyfile(library, target)
        os.chmod(target, 0o755)
        version = self.distribution.get_version()
        (package_dir / "_version.py").write_text(
            "# Written by setup.py at build time from the workspace Cargo.toml.\n"
            f"__version__ = {version!r}\n"
            f"LIBRARY_NAME = {LIBRARY_NAME!r}\n",
            encoding="utf-8",
        )
        print(f"openbits: {library} -> {target}", flush=True)

    def get_outputs(self, include_bytecode: bool = True) -> list:  # type: ignore[override]
        outputs = list(super().get_outputs(include_bytecode))
        package_dir = Path(self.build_lib) / "openbits"
        outputs += [str(package_dir / LIBRARY_NAME), str(package_dir / "_version.py")]
        return outputs


class BdistWheel(bdist_wheel):
    """A platform wheel (it carries a native library) that any Python 3 can use: the library is
    loaded with ctypes, so it does not depend on the interpreter's ABI (tag py3-none-<platform>)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple:
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


class Sdist(sdist):
    """An sdist that carries the Rust sources (as `rust/`), so a wheel can be built from it."""

    def make_release_tree(self, base_dir: str, files: list) -> None:
        super().make_release_tree(base_dir, files)
        root = workspace_root()
        if root == HERE / VENDORED:
            src, dest = root, Path(base_dir) / VENDORED
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return
        dest = Path(base_dir) / VENDORED
        ignore = shutil.ignore_patterns("target", "*.o", "__pycache__")
        # The library's crates, and the test server (a dev-dependency path of core: cargo reads
        # every path dependency's manifest).
        for member in ("core", "ffi", "tests/server"):
            shutil.copytree(root / member, dest / member, ignore=ignore)
        shutil.copy2(root / "Cargo.lock", dest / "Cargo.lock")
        manifest = (root / "Cargo.toml").read_text(encoding="utf-8")
        manifest, n = re.subn(
            r"^members\s*=\s*\[[^\]]*\]",
            'members = ["core", "ffi", "tests/server"]',
            manifest,
            count=1,
            flags=re.M,
        )
        if n != 1:
            sys.exit("openbits: cannot rewrite the workspace members for the sdist")
        (dest / "Cargo.toml").write_text(manifest, encoding="utf-8")
        for extra in ("include/openbits.h", "README.md"):
            if (root / extra).is_file():
                (dest / extra).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / extra, dest / extra)


class BinaryDistribution(Distribution):
    """The package carries a native library: never a pure (py3-none-any) distribution."""

    def has_ext_modules(self) -> bool:
        return True


setup(
    version=workspace_version(workspace_root()),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel, "sdist": Sdist},
)
