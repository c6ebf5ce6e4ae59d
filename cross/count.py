#!/usr/bin/env python3
"""Instructions per packet of examples/perpacket_count.rs, counted under qemu-user with the
cross/insncount.c plugin, on one or more builds (cross/count.sh runs it; see there).

Per build, repeat and workload: a run with N=0 (the baseline: start-up, key set-up, the
handshake) and one per N in --n, alternating in that order; instructions per packet is
(count(N) - count(0)) / N of the same repeat. The table gives min / median / max over the
repeats for each N (equal figures across N: the cost is linear in packets) and over all.

The MT7621 projection uses the formula and IPC range of `braid lab cpu` (src/lab/cpu.rs): one
880 MHz MIPS 1004Kc core retiring 0.5-0.8 instructions per cycle, Mbit/s = Hz * IPC /
(instructions per byte) * 8 / 1e6, the bytes being the 1,400-byte inner packets. The clock and
the IPC range are read from src/lab/cpu.rs's MT7621_HZ and MT7621_IPC: one source for both.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

LAB_CPU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "lab", "cpu.rs")


def lab_constants(path=LAB_CPU):
    """(Hz, (IPC low, IPC high)) of the MT7621 projection, from `braid lab cpu`'s source."""
    with open(path) as f:
        text = f.read()
    hz = re.search(r"^pub\(crate\) const MT7621_HZ: f64 = ([0-9.e]+);$", text, re.M)
    ipc = re.search(
        r"^pub\(crate\) const MT7621_IPC: \(f64, f64\) = \(([0-9.]+), ([0-9.]+)\);$", text, re.M
    )
    if not hz or not ipc:
        raise ValueError(f"{path}: no MT7621_HZ / MT7621_IPC constants")
    return float(hz.group(1)), (float(ipc.group(1)), float(ipc.group(2)))


MT7621_HZ, IPC = lab_constants()
DATA = 1400
SMALL = 64
# (name, example arguments but N): what each run does.
WORKLOADS = [
    ("seal", ["seal", str(DATA)]),
    ("sealopen", ["sealopen", str(DATA)]),
    ("seal64", ["seal", str(SMALL)]),
    ("sealopen64", ["sealopen", str(SMALL)]),
    ("pair", ["pair", str(DATA)]),
]


def parse_insns(text):
    """The count from the plugin's output ("insns N"); ValueError if there is none."""
    m = re.search(r"^insns (\d+)$", text, re.M)
    if not m:
        raise ValueError(f"no 'insns N' line in {text!r}")
    return int(m.group(1))


def parse_acks(text):
    """Datagrams core->edge per packet from the example's `pair` line, or None."""
    m = re.search(r"^pair: (\d+) packets .*core->edge (\d+)", text, re.M)
    if not m or int(m.group(1)) == 0:
        return None
    return int(m.group(2)) / int(m.group(1))


def per_packet(counts, n):
    """(count with N packets - count with none) / N, from {N: count} of one repeat."""
    return (counts[n] - counts[0]) / n


def spread(values):
    """(min, median, max)."""
    v = sorted(values)
    return (v[0], statistics.median(v), v[-1])


def fmt(s):
    return " / ".join(f"{x:,.0f}" for x in s)


def mbps(instr_per_packet, ipc, hz=MT7621_HZ, size=DATA):
    """Mbit/s of `size`-byte packets a core of `hz` at `ipc` holds at this cost per packet
    (lab cpu's projected_mbps: hz * ipc / instructions per byte * 8 / 1e6)."""
    if instr_per_packet <= 0:
        return float("inf")
    return hz * ipc / (instr_per_packet / size) * 8 / 1e6


def core_share(instr_per_packet, rate_mbps, ipc, hz=MT7621_HZ, size=DATA):
    """The part of one core that `rate_mbps` of `size`-byte packets takes at this cost."""
    pps = rate_mbps * 1e6 / 8 / size
    return pps * instr_per_packet / (hz * ipc)


def derived(per):
    """Per-packet figures by workload and repeat, with open = sealopen - seal (same repeat, same
    N), from per[workload][(repeat, n)]."""
    out = dict(per)
    for both, seal, name in (("sealopen", "seal", "open"), ("sealopen64", "seal64", "open64")):
        if both in per and seal in per:
            out[name] = {k: per[both][k] - per[seal][k] for k in per[both] if k in per[seal]}
    return out


def table(results, ns):
    """Markdown rows: build, workload, baseline, per packet per N and over all."""
    head = ["build", "workload", "runs", "baseline N=0 (instructions)"]
    head += [f"per packet, N={n}" for n in ns] + ["per packet, all"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for build, r in results.items():
        per = derived(r["per"])
        for w in ["seal", "open", "sealopen", "seal64", "open64", "pair"]:
            if w not in per:
                continue
            base = r["base"].get(w, [])
            cells = [build, w, str(len(per[w]) // max(1, len(ns)))]
            cells.append(fmt(spread(base)) if base else f"(sealopen{w[4:]} - seal{w[4:]})")
            for n in ns:
                cells.append(fmt(spread([v for (_, m), v in per[w].items() if m == n])))
            cells.append(fmt(spread(per[w].values())))
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def median_of(per, w):
    return statistics.median(per[w].values())


def projection(build, r):
    """The MT7621 text for one build's medians."""
    per = derived(r["per"])
    need = ("seal", "open", "seal64", "open64", "pair")
    if any(w not in per for w in need):
        return ""
    seal, open_, seal64, open64, pair = (median_of(per, w) for w in need)
    acks = statistics.median(r["acks"]) if r["acks"] else 0.0
    aead_pair = seal + open_ + acks * (seal64 + open64)
    rest = pair - aead_pair
    # The edge on a download: opens the data, seals the acknowledgements, and (an assumption)
    # half the pair's non-AEAD work; on an upload: seals the data and opens the acks.
    down = open_ + acks * seal64 + rest / 2
    up = seal + acks * open64 + rest / 2
    lo, hi = IPC
    lines = [
        f"{build}: medians per {DATA}-byte packet: seal {seal:,.0f}, open {open_:,.0f}; "
        f"{SMALL}-byte seal {seal64:,.0f}, open {open64:,.0f}; the pair (edge + core, one way) "
        f"{pair:,.0f}, with {acks:.2f} acknowledgement datagrams per packet: AEAD "
        f"{aead_pair:,.0f} ({100 * aead_pair / pair:.0f} %), the rest {rest:,.0f}.",
        f"  Edge, user space, per packet: download ~{down:,.0f}, upload ~{up:,.0f} (the AEAD of "
        f"its side, plus half the rest).",
    ]
    for name, cost in (("AEAD alone, open", open_), ("edge download", down), ("edge upload", up)):
        lines.append(
            f"  MT7621 (880 MHz, IPC {lo}-{hi}), {name}: {mbps(cost, lo):,.0f}-{mbps(cost, hi):,.0f}"
            f" Mbit/s of {DATA}-byte packets on one core, user space only (the kernel's work "
            f"comes on top); 100 Mbit/s takes {100 * core_share(cost, 100, hi):,.0f}-"
            f"{100 * core_share(cost, 100, lo):,.0f} % of one core."
        )
    return "\n".join(lines)


def run_one(cmd, plugin, args, n):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "count")
        p = subprocess.run(
            cmd[:1] + ["-plugin", f"{plugin},outfile={out}"] + cmd[1:] + args + [str(n)],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd + args + [str(n)])}: exit {p.returncode}: {p.stderr}")
        with open(out) as f:
            return parse_insns(f.read()), p.stdout


def measure(builds, plugin, repeat, ns):
    results = {b: {"per": {}, "base": {}, "acks": []} for b, _ in builds}
    for rep in range(repeat):
        for w, args in WORKLOADS:
            # The builds alternate, run by run.
            for build, cmd in builds:
                counts = {}
                for n in [0] + ns:
                    counts[n], stdout = run_one(cmd, plugin, args, n)
                    if n and w == "pair":
                        a = parse_acks(stdout)
                        if a is not None:
                            results[build]["acks"].append(a)
                r = results[build]
                r["base"].setdefault(w, []).append(counts[0])
                for n in ns:
                    r["per"].setdefault(w, {})[(rep, n)] = per_packet(counts, n)
            print(f"count: repeat {rep + 1}/{repeat}, {w} done", file=sys.stderr)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plugin", required=True, help="insncount.so")
    ap.add_argument(
        "--build",
        action="append",
        required=True,
        metavar="NAME=QEMU:EXAMPLE",
        help="a build to count: its name, the qemu-user binary and the example",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n", default="1000,3000", help="packet counts, comma-separated")
    ap.add_argument("--project", default="", help="the build to project the MT7621 rate from")
    a = ap.parse_args(argv)
    builds = []
    for b in a.build:
        name, _, rest = b.partition("=")
        qemu, _, exe = rest.partition(":")
        if not (name and qemu and exe):
            ap.error(f"--build {b}: want NAME=QEMU:EXAMPLE")
        builds.append((name, [qemu, exe]))
    ns = [int(x) for x in a.n.split(",") if x]
    if not ns or min(ns) <= 0:
        ap.error("--n: positive packet counts")
    results = measure(builds, a.plugin, a.repeat, ns)
    print(table(results, ns))
    for build in [a.project] if a.project else []:
        print()
        print(projection(build, results[build]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
