#!/usr/bin/env python3
"""Per-function table of a callgrind dump: self and inclusive instructions (Ir), per packet.

callgrind_annotate groups by source file and function, so a function whose code was inlined
from many files (LTO) shows up as many rows; this sums by function name only.
Usage: cgfuncs.py DUMP [PACKETS] [N]   (N rows, by inclusive cost; self-sorted table too)
       cgfuncs.py DUMP PACKETS callers SUBSTRING   (who calls the functions matching it, and
                                                    what the calls cost them, per packet)
"""
import re
import sys
from collections import defaultdict


def parse(path):
    names = {}
    self_ir = defaultdict(int)
    incl_calls = defaultdict(int)  # cost of calls made from fn (inclusive of the callee)
    total = None
    fn = None
    pending_call = False
    cfn = None
    rx = re.compile(r"\((\d+)\)(?: (.*))?")

    def name(s):
        m = rx.match(s.strip())
        if not m:
            return s.strip()
        i, n = m.group(1), m.group(2)
        if n is not None:
            names[i] = n
        return names.get(i, "(%s)" % i)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call:
                    incl_calls[(fn, cfn)] += cost
                    pending_call = False
                else:
                    self_ir[fn] += cost
            elif line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn=") or line.startswith("cfi=") or line.startswith("cob="):
                if line.startswith("cfn="):
                    cfn = name(line[4:])
            elif line.startswith("calls="):
                pending_call = True
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
            elif line.startswith(("fl=", "fi=", "fe=", "ob=")):
                # define compressed file/object names too (ids are per kind, not needed here)
                pass
    incl = defaultdict(int)
    for f_, s in self_ir.items():
        incl[f_] += s
    for (caller, callee), s in incl_calls.items():
        if caller != callee:  # recursion would count twice
            incl[caller] += s
    parse.calls = incl_calls
    return self_ir, incl, total


def short(n, w=110):
    n = re.sub(r"<([^<>]*) as ([^<>]*)>", r"<\1 as \2>", n)
    return n if len(n) <= w else n[: w - 1] + "…"


def main():
    path = sys.argv[1]
    packets = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if len(sys.argv) > 4 and sys.argv[3] == "callers":
        parse(path)
        for (a, b), v in sorted(parse.calls.items(), key=lambda x: -x[1]):
            if sys.argv[4] in b and v >= packets * 10:
                print("%8.0f  %s  <-  %s" % (v / packets, short(b, 60), short(a, 90)))
        return
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    self_ir, incl, total = parse(path)
    total = total or sum(self_ir.values())
    pp = (lambda x: "%.0f" % (x / packets)) if packets else (lambda x: "")
    print("total Ir %d%s" % (total, ", %d packets, %.0f per packet" % (packets, total / packets) if packets else ""))
    print("\n## by self cost\n")
    print("| self Ir | % | per packet | function |\n|---:|---:|---:|---|")
    for f_, s in sorted(self_ir.items(), key=lambda x: -x[1])[:rows]:
        print("| %d | %.1f | %s | `%s` |" % (s, 100 * s / total, pp(s), short(f_)))
    print("\n## by inclusive cost\n")
    print("| inclusive Ir | % | per packet | function |\n|---:|---:|---:|---|")
    for f_, s in sorted(incl.items(), key=lambda x: -x[1])[:rows]:
        print("| %d | %.1f | %s | `%s` |" % (s, 100 * s / total, pp(s), short(f_)))


if __name__ == "__main__":
    main()
