#!/usr/bin/env python3
"""Generates openbits/_bindings.py (the ctypes declarations) from include/openbits.h.

    python3 bindings/python/gen_bindings.py            # rewrite openbits/_bindings.py
    python3 bindings/python/gen_bindings.py --check    # exit 1 if it is stale

Every function of the header gets its argtypes and restype from here, so the binding cannot drift
from the header silently: tests/test_bindings.py fails when the committed file is stale. The header
is cbindgen output, regular enough for a small parser; an unknown C type is an error, never a guess.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_HEADER = HERE.parent.parent / "include" / "openbits.h"
DEFAULT_OUTPUT = HERE / "openbits" / "_bindings.py"

# C scalar types and their ctypes names.
SCALARS = {
    "int8_t": "c_int8",
    "uint8_t": "c_uint8",
    "int16_t": "c_int16",
    "uint16_t": "c_uint16",
    "int32_t": "c_int32",
    "uint32_t": "c_uint32",
    "int64_t": "c_int64",
    "uint64_t": "c_uint64",
    "size_t": "c_size_t",
    "int": "c_int",
    "unsigned int": "c_uint",
    "bool": "c_bool",
    "_Bool": "c_bool",
}


class HeaderError(Exception):
    pass


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def parse_int(value: str) -> int | None:
    v = value.strip()
    m = re.fullmatch(r"\(\(\w+\)\s*(.+)\)", v)  # ((bits_hresult)0x80004001u)
    if m:
        v = m.group(1).strip()
    if v == "UINT64_MAX":
        return 2**64 - 1
    if v == "UINT32_MAX":
        return 2**32 - 1
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]+|\d+)[uUlL]*", v)
    if not m:
        return None
    return int(m.group(1), 0)


class Header:
    def __init__(self, text: str) -> None:
        self.text = text
        self.ints: list[tuple[str, int, str]] = []  # (name, value, comment)
        self.hresults: list[tuple[str, int, str]] = []
        self.strings: list[tuple[str, str]] = []
        self.aliases: dict[str, str] = {}  # typedef'd scalars: bits_hresult -> c_int32
        self.opaque: list[str] = []
        self.structs: list[tuple[str, list[tuple[str, str]]]] = []  # (name, [(field, ctype)])
        self.callbacks: list[tuple[str, str, list[str]]] = []  # (name, restype, argtypes)
        self.functions: list[tuple[str, str, list[str]]] = []  # (name, restype, argtypes)
        self._parse()

    # -- #defines (read before comments are stripped: an HRESULT's comment is its description)
    def _parse_defines(self) -> None:
        for line in self.text.splitlines():
            m = re.match(r"#define\s+(\w+)\s+(.*)$", line)
            if not m or "(" in m.group(1):
                continue
            name, rest = m.group(1), m.group(2).strip()
            comment = ""
            cm = re.search(r"/\*\s*(.*?)\s*\*/\s*$", rest)
            if cm:
                comment = cm.group(1)
                rest = rest[: cm.start()].strip()
            if re.match(r"\w+\(", line[len("#define ") :].strip()):
                continue  # function-like macro
            sm = re.fullmatch(r'"([^"]*)"', rest)
            if sm:
                self.strings.append((name, sm.group(1)))
                continue
            value = parse_int(rest)
            if value is None:
                continue
            if rest.startswith("((bits_hresult)"):
                self.hresults.append((name, value, comment))
            else:
                hexa = rest.lower().startswith("0x") and value > 9
                self.ints.append((name, value, "hex" if hexa else ""))

    def ctype(self, decl: str, where: str) -> str:
        """The ctypes expression for a C type such as `const struct bits_guid *`."""
        t = re.sub(r"\s+", " ", decl.replace("*", " * ")).strip()
        t = re.sub(r"\bconst\b", "", t)
        t = re.sub(r"\bstruct\b", "", t)
        stars = t.count("*")
        base = re.sub(r"\s+", " ", t.replace("*", "")).strip()
        const_char = re.match(r"\s*const\s+char\s*\*\s*$", decl) is not None
        if base == "void":
            if stars == 0:
                return "None"
            inner = "c_void_p"
            stars -= 1
        elif base == "char":
            if stars == 0:
                return "c_char"
            # `const char *` is a borrowed string: c_char_p converts it from/to bytes.
            # A `char *` the library allocates must keep its address to be freed: POINTER(c_char).
            inner = "c_char_p" if const_char else "POINTER(c_char)"
            stars -= 1
        elif base in SCALARS:
            inner = SCALARS[base]
        elif base in self.aliases:
            inner = base
        elif base in self.opaque or base in {s for s, _ in self.structs}:
            inner = base
        elif base in {c for c, _, _ in self.callbacks}:
            inner = base
        else:
            raise HeaderError(f"{where}: unknown C type {decl!r}")
        for _ in range(stars):
            inner = f"POINTER({inner})"
        return inner

    def _parse(self) -> None:
        self._parse_defines()
        code = strip_comments(self.text)
        code = "\n".join(x for x in code.splitlines() if not x.lstrip().startswith("#"))
        code = code.replace('extern "C" {', "").replace("}  ", "}")
        pos = 0
        token = re.compile(
            r"typedef\s+struct\s+(\w+)\s+(\w+)\s*;"  # 1,2 opaque
            r"|typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;"  # 3,4,5 struct
            r"|typedef\s+([\w\s\*]+?)\s*\(\s*\*\s*(\w+)\s*\)\s*\(([^)]*)\)\s*;"  # 6,7,8 fn ptr
            r"|typedef\s+([\w\s]+?)\s+(\w+)\s*;"  # 9,10 scalar alias
            r"|([\w][\w\s\*]*?)\s*\b(bits_\w+)\s*\(([^)]*)\)\s*;",  # 11,12,13 function
            re.S,
        )
        for m in token.finditer(code, pos):
            if m.group(1):
                self.opaque.append(m.group(2))
            elif m.group(3):
                name = m.group(5)
                fields = []
                for f in m.group(4).split(";"):
                    f = " ".join(f.split())
                    if not f:
                        continue
                    fm = re.fullmatch(r"(.+?)\s*\b(\w+)\s*(?:\[(\d+)\])?", f)
                    if not fm:
                        raise HeaderError(f"struct {name}: cannot parse field {f!r}")
                    ct = self.ctype(fm.group(1), f"{name}.{fm.group(2)}")
                    if fm.group(3):
                        ct = f"{ct} * {int(fm.group(3))}"
                    fields.append((fm.group(2), ct))
                self.structs.append((name, fields))
            elif m.group(7):
                name = m.group(7)
                self.callbacks.append(
                    (name, self.ctype(m.group(6), name), self._params(m.group(8), name))
                )
            elif m.group(10):
                base = " ".join(m.group(9).split())
                if base not in SCALARS:
                    raise HeaderError(f"typedef {m.group(10)}: unknown C type {base!r}")
                self.aliases[m.group(10)] = SCALARS[base]
            elif m.group(12):
                name = m.group(12)
                self.functions.append(
                    (name, self.ctype(m.group(11), name), self._params(m.group(13), name))
                )
        if not self.functions:
            raise HeaderError("no function found")

    def _params(self, params: str, where: str) -> list[str]:
        params = " ".join(params.split())
        if params in ("", "void"):
            return []
        out = []
        for p in params.split(","):
            pm = re.fullmatch(r"(.+?)\s*\b(\w+)", p.strip())
            if not pm:
                raise HeaderError(f"{where}: cannot parse parameter {p!r}")
            out.append(self.ctype(pm.group(1), f"{where}({pm.group(2)})"))
        return out


def generate(header_path: Path) -> str:
    h = Header(header_path.read_text(encoding="utf-8"))
    o: list[str] = []
    w = o.append
    w('"""ctypes declarations for include/openbits.h.')
    w("")
    w("GENERATED by bindings/python/gen_bindings.py from include/openbits.h. Do not edit: run")
    w("`python3 bindings/python/gen_bindings.py` after the header changes.")
    w('"""')
    w("")
    w("# fmt: off")
    w("from ctypes import (")
    w(
        "    CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_int, c_int8, c_int16, "
        "c_int32,"
    )
    w("    c_int64, c_size_t, c_uint, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p,")
    w(")")
    w("from enum import IntEnum")
    w("from typing import Any, Dict, List, Tuple")
    w("")
    w("__all__: List[str] = []  # private module")
    w("")
    for name, value in h.strings:
        w(f"{name} = {value!r}")
    for name, value, form in h.ints:
        w(f"{name} = {value:#x}" if form == "hex" or value >= 2**32 - 1 else f"{name} = {value}")
    w("")
    w("# HRESULTs as unsigned 32-bit numbers: (name, value, description).")
    w("HRESULTS: List[Tuple[str, int, str]] = [")
    for name, value, comment in h.hresults:
        w(f"    ({name!r}, 0x{value:08X}, {comment!r}),")
    w("]")
    w("")
    w("")
    w("class HResult(IntEnum):")
    w(
        '    """The HRESULTs of openbits.h, as unsigned 32-bit numbers (the header\'s names '
        'without BITS_)."""'
    )
    w("")
    for name, value, _comment in h.hresults:
        if not name.startswith("BITS_"):
            raise HeaderError(f"HRESULT {name} lacks the BITS_ prefix")
        w(f"    {name[5:]} = 0x{value:08X}")
    w("")
    w("")
    for name, base in h.aliases.items():
        w(f"{name} = {base}")
    w("")
    for name in h.opaque:
        w("")
        w(f"class {name}(Structure):")
        w('    """Opaque handle."""')
        w("")
    for name, fields in h.structs:
        w("")
        w(f"class {name}(Structure):")
        w("    _fields_ = [")
        for fname, ct in fields:
            w(f"        ({fname!r}, {ct}),")
        w("    ]")
        w("")
    for name, res, args in h.callbacks:
        w(f"{name} = CFUNCTYPE({', '.join([res] + args)})")
    w("")
    w("# Every function of the header: name -> (restype, argtypes).")
    w("FUNCTIONS: Dict[str, Tuple[Any, List[Any]]] = {")
    for name, res, args in h.functions:
        w(f"    {name!r}: ({res}, [{', '.join(args)}]),")
    w("}")
    w("# fmt: on")
    return "\n".join(o) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    header = Path(args[0]) if args else DEFAULT_HEADER
    output = Path(args[1]) if len(args) > 1 else DEFAULT_OUTPUT
    text = generate(header)
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
