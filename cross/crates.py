#!/usr/bin/env python3
"""What each crate costs in a router binary: the sizes of its functions and data, by crate.

    cross/crates.py BINARY [--top N]

BINARY is an unstripped ELF (cross/build.sh crates builds one). Every function and data symbol
of the symbol table is demangled (Rust's legacy and v0 schemes) down to the crate it comes from
and summed; C symbols (musl, the compiler's runtime) count as `[C]`. The rest of the file
(string literals, tables without symbols, headers, relocations) is `[no symbol]`. Percentages are of the sections a router loads (about the stripped file).

With LTO, code inlined from one crate into another counts where it ended up, and a generic's
instance counts for the crate that defined it: the table says where the bytes are, which is what
a size decision needs ("without crate X, about this much goes"), not a line-exact ledger.
"""
import struct
import sys
from collections import defaultdict

SHT_SYMTAB, SHT_NOBITS = 2, 8
STT_OBJECT, STT_FUNC = 1, 2

# Legacy mangling escapes ($LT$ ...), for reading the path inside `<T as Trait>`.
ESCAPES = {
    "$SP$": "@", "$BP$": "*", "$RF$": "&", "$LT$": "<", "$GT$": ">", "$LP$": "(",
    "$RP$": ")", "$C$": ",", "$u20$": " ", "$u27$": "'", "$u5b$": "[", "$u5d$": "]",
    "$u7b$": "{", "$u7d$": "}", "$u3b$": ";", "$u2b$": "+", "$u22$": '"', "$u7e$": "~",
}
PRIMITIVES = {
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
    "f32", "f64", "bool", "char", "str", "dyn", "mut", "const", "impl", "fn", "unsafe",
}


def read_symbols(path):
    """(name, address, size) of every function and data symbol with a size."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        sys.exit(f"crates: {path} is not an ELF file")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
    sections = []
    for i in range(shnum):
        o = shoff + i * shentsize
        if is64:
            _, typ, flags, _, off, size, link, _, _, entsize = struct.unpack_from(
                end + "IIQQQQIIQQ", data, o)
        else:
            _, typ, flags, _, off, size, link, _, _, entsize = struct.unpack_from(
                end + "IIIIIIIIII", data, o)
        sections.append((typ, off, size, link, entsize, flags))
    symtabs = [s for s in sections if s[0] == SHT_SYMTAB]
    if not symtabs:
        sys.exit(f"crates: {path} has no symbol table (stripped?): build it with "
                 "cross/build.sh crates")
    _, off, size, link, entsize, _ = symtabs[0]
    str_off = sections[link][1]
    out = []
    for o in range(off, off + size, entsize):
        if is64:
            name, info, _, _, value, sz = struct.unpack_from(end + "IBBHQQ", data, o)
        else:
            name, value, sz, info, _, _ = struct.unpack_from(end + "IIIBBH", data, o)
        if sz == 0 or (info & 0xF) not in (STT_OBJECT, STT_FUNC):
            continue
        e = data.index(b"\0", str_off + name)
        out.append((data[str_off + name:e].decode("utf-8", "replace"), value, sz))
    # What the router stores: the sections loaded at run time that have bytes in the file
    # (SHF_ALLOC, not SHT_NOBITS such as .bss); the symbol table itself is stripped.
    loaded = sum(s[2] for s in sections if s[5] & 2 and s[0] != SHT_NOBITS)
    return out, loaded


def legacy_parts(sym):
    """The path segments of a legacy-mangled name (_ZN...E), or None."""
    s = sym[3:] if sym.startswith("__ZN") else sym[2:]
    if not s.startswith("N"):
        return None
    i, parts = 1, []
    while i < len(s) and s[i].isdigit():
        j = i
        while s[j].isdigit():
            j += 1
        n = int(s[i:j])
        parts.append(s[j:j + n])
        i = j + n
    return parts or None


def unescape(seg):
    for k, v in ESCAPES.items():
        seg = seg.replace(k, v)
    return seg.replace("..", "::")


def crate_of_path(text):
    """The crate of the first path in `text` that names one (skipping &, *, [, primitives)."""
    word = ""
    for ch in text:
        if ch.isalnum() or ch == "_":
            word += ch
            continue
        if ch == ":" and word and word not in PRIMITIVES:
            return word
        word = ""
    return None


def v0_crate(sym):
    """The crate of a v0-mangled name (_R...): the first `C<len><name>` in it."""
    s = sym[2:]
    i = 0
    while i < len(s):
        if s[i] == "C":
            j = i + 1
            if j < len(s) and s[j] == "s":  # disambiguator s<base62>_
                k = s.find("_", j)
                j = k + 1 if k > 0 else j
            k = j
            while k < len(s) and s[k].isdigit():
                k += 1
            if k > j:
                n = int(s[j:k])
                if s[k:k + 1] == "_":
                    k += 1
                return s[k:k + n]
        i += 1
    return None


def crate_of(sym):
    if sym.startswith(("_ZN", "__ZN")):
        parts = legacy_parts(sym)
        if not parts:
            return "[C]"
        first = unescape(parts[0])
        if first.startswith("_<") or first.startswith("<"):
            # <T as Trait>::f: the impl's crate is the type's, unless the type is a primitive
            # or a std container of ours, then the trait's.
            inner = first.lstrip("_<")
            c = crate_of_path(inner + ":")
            return c or "[unknown]"
        return first
    if sym.startswith("_R"):
        return v0_crate(sym) or "[unknown]"
    return "[C]"


def main():
    args = sys.argv[1:]
    top = 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    syms, loaded = read_symbols(args[0])
    by_crate = defaultdict(int)
    seen = set()
    for name, addr, size in syms:
        if addr in seen:  # aliases (one body, several names) count once
            continue
        seen.add(addr)
        by_crate[crate_of(name)] += size
    total = sum(by_crate.values())
    rows = sorted(by_crate.items(), key=lambda kv: -kv[1])
    print(f"| {'crate':<24} | {'bytes':>9} | {'KiB':>7} | {'%':>9} |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 9}|{'-' * 11}|")
    shown = rows[:top]
    for crate, size in shown:
        print(f"| {crate:<24} | {size:>9} | {size / 1024:>7.1f} | {100 * size / loaded:>8.1f}% |")
    rest = sum(s for _, s in rows[top:])
    if rest:
        label = f"({len(rows) - top} more crates)"
        print(f"| {label:<24} | {rest:>9} | {rest / 1024:>7.1f} | {100 * rest / loaded:>8.1f}% |")
    other = loaded - total
    print(f"| {'[no symbol]':<24} | {other:>9} | {other / 1024:>7.1f} | {100 * other / loaded:>8.1f}% |")
    print(f"| {'loaded sections':<24} | {loaded:>9} | {loaded / 1024:>7.1f} | {100.0:>8.1f}% |")


if __name__ == "__main__":
    main()
