"""Fails when a built wasm module in dist/ imports from `env`.

A dependency that calls C (malloc, free, strcpy: openjp2 is one) still
links for wasm32-unknown-unknown, leaving those as imports nobody provides;
the module then fails to instantiate and the page never starts. Only
wasm-bindgen's own modules may be imported.

    python3 scripts/check-wasm-imports.py dist
"""

import pathlib
import sys


def leb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def imports(data: bytes) -> list[tuple[str, str]]:
    at, found = 8, []
    while at < len(data):
        section = data[at]
        size, at = leb128(data, at + 1)
        if section == 2:
            count, j = leb128(data, at)
            for _ in range(count):
                n, j = leb128(data, j)
                module = data[j : j + n].decode()
                j += n
                n, j = leb128(data, j)
                name = data[j : j + n].decode()
                j += n
                kind = data[j]
                j += 1
                if kind == 0:  # function: type index
                    _, j = leb128(data, j)
                elif kind == 1:  # table: element type, limits
                    flags = data[j + 1]
                    _, j = leb128(data, j + 2)
                    if flags & 1:
                        _, j = leb128(data, j)
                elif kind == 2:  # memory: limits
                    flags = data[j]
                    _, j = leb128(data, j + 1)
                    if flags & 1:
                        _, j = leb128(data, j)
                else:  # global: value type, mutability
                    j += 2
                found.append((module, name))
            return found
        at += size
    return found


def main() -> int:
    bad = 0
    for wasm in sorted(pathlib.Path(sys.argv[1]).glob("*.wasm")):
        foreign = [n for m, n in imports(wasm.read_bytes()) if m == "env"]
        if foreign:
            bad += 1
            print(f"{wasm}: imports {', '.join(foreign)} from env: a dependency calls C", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
