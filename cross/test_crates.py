#!/usr/bin/env python3
"""Tests of cross/crates.py (run by tests/pkg/run.sh): demangling to crates, and the ELF reader on
synthetic 32-bit big-endian and 64-bit little-endian files (the MIPS and x86_64 layouts)."""
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crates  # noqa: E402


def elf(is64, big, symbols, text_size=4096):
    """A minimal ELF with .text (loaded), .bss (loaded, no bytes), .symtab and .strtab."""
    e = ">" if big else "<"
    strtab = b"\0"
    names = []
    for name, _, _, _ in symbols:
        names.append(len(strtab))
        strtab += name.encode() + b"\0"
    syms = b""
    for (name, value, size, kind), off in zip(symbols, names):
        if is64:
            syms += struct.pack(e + "IBBHQQ", off, kind, 0, 1, value, size)
        else:
            syms += struct.pack(e + "IIIBBH", off, value, size, kind, 0, 1)
    sym_entsize = 24 if is64 else 16
    syms = b"\0" * sym_entsize + syms
    ehsize = 64 if is64 else 52
    text_off = ehsize
    sym_off = text_off + text_size
    str_off = sym_off + len(syms)
    sh_off = str_off + len(strtab)
    # name, type, flags, addr, offset, size, link, info, align, entsize
    shdrs = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (0, 1, 6, 0x1000, text_off, text_size, 0, 0, 4, 0),  # .text: ALLOC|EXEC
        (0, 8, 3, 0x9000, sh_off, 1 << 20, 0, 0, 4, 0),  # .bss: NOBITS, not counted
        (0, 2, 0, 0, sym_off, len(syms), 4, 1, 4, sym_entsize),  # .symtab -> .strtab
        (0, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0),  # .strtab
    ]
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1]) + b"\0" * 9
    if is64:
        head = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, 62, 1, 0, 0, sh_off, 0, ehsize, 0, 0,
                                   64, len(shdrs), 0)
        sh = b"".join(struct.pack(e + "IIQQQQIIQQ", *s) for s in shdrs)
    else:
        head = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, 8, 1, 0, 0, sh_off, 0, ehsize, 0, 0,
                                   40, len(shdrs), 0)
        sh = b"".join(struct.pack(e + "IIIIIIIIII", *s) for s in shdrs)
    return head + b"\0" * text_size + syms + strtab + sh


SYMBOLS = [
    ("_ZN5braid5proto4seal4Seal4open17h0123456789abcdefE", 0x1000, 1000, 2),
    ("_ZN60_$LT$braid..proto..Wire$u20$as$u20$core..fmt..Debug$GT$3fmt17h0123456789abcdefE",
     0x1400, 200, 2),
    ("_ZN4core3fmt5write17h0123456789abcdefE", 0x1500, 300, 2),
    ("_ZN4core3fmt5write17h0000000000000000E", 0x1500, 300, 2),  # an alias: counted once
    ("memcpy", 0x1700, 100, 2),
    ("_RNvCs1a2b_5tokio4main", 0x1800, 50, 2),
    ("_ZN5braid6TABLES17h0123456789abcdefE", 0x1900, 20, 1),  # data
    ("a_section", 0x1000, 0, 3),  # STT_SECTION, no size: left out
]


class Demangle(unittest.TestCase):
    def test_crates(self):
        cases = {
            "_ZN5braid4main17h0123456789abcdefE": "braid",
            "_ZN4core3ptr13drop_in_place17h0123456789abcdefE": "core",
            "_ZN60_$LT$braid..proto..Wire$u20$as$u20$core..fmt..Debug$GT$3fmt17h01E": "braid",
            # a primitive or a generic's parameter: the trait's crate
            "_ZN42_$LT$$RF$T$u20$as$u20$core..fmt..Debug$GT$3fmt17h01E": "core",
            "_ZN44_$LT$u32$u20$as$u20$serde..Serialize$GT$9serialize17h01E": "serde",
            "_RNvCs1a2b_5tokio4main": "tokio",
            "_RNvNtC9hashbrown3raw4grow": "hashbrown",
            "memcpy": "[C]",
            "__udivdi3": "[C]",
        }
        for sym, want in cases.items():
            self.assertEqual(crates.crate_of(sym), want, sym)


class Elf(unittest.TestCase):
    def run_on(self, is64, big):
        with tempfile.NamedTemporaryFile(suffix=".elf") as f:
            f.write(elf(is64, big, SYMBOLS))
            f.flush()
            syms, loaded = crates.read_symbols(f.name)
            self.assertEqual(loaded, 4096)  # .text only: .bss has no bytes, symtab not loaded
            self.assertEqual(len(syms), 7)
            out = subprocess.run([sys.executable, crates.__file__, f.name], check=True,
                                 capture_output=True, text=True).stdout
        rows = {}
        for line in out.splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = int(cells[1])
        self.assertEqual(rows["braid"], 1220)
        self.assertEqual(rows["core"], 300)
        self.assertEqual(rows["[C]"], 100)
        self.assertEqual(rows["tokio"], 50)
        self.assertEqual(rows["[no symbol]"], 4096 - 1670)
        self.assertEqual(rows["loaded sections"], 4096)

    def test_mips_layout(self):
        self.run_on(is64=False, big=True)

    def test_x86_64_layout(self):
        self.run_on(is64=True, big=False)

    def test_stripped_binary_is_an_error(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"not an elf")
            f.flush()
            r = subprocess.run([sys.executable, crates.__file__, f.name], capture_output=True,
                               text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not an ELF", r.stderr)


if __name__ == "__main__":
    unittest.main()
