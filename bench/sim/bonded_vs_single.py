#!/usr/bin/env python3
# bonded_vs_single.py BIN OUT.json [SCENARIO...]   (run from the repository root)
# `braid sim` bonded (--tunnel session) vs each single link alone (--tunnel direct:LINK) on the
# same seeds (SEEDS, default 1-8) and workloads (WL, default "tcp8-down tcp8-up tcp1-down").
# Prints min / median / max of bonded goodput, of the best single link (per seed: the better of
# the links alone), of their ratio and of the bonded share of capacity; OUT.json has every seed.
# Issue 17 section 1's yardstick: the ratio never below 1.0, the 8-flow share >= 90 %.
import json, subprocess, sys, re, statistics, os
BIN, OUT = sys.argv[1], sys.argv[2]
SC = sys.argv[3:] or ["lte", "lte-pair", "umts-pair", "hsr-pair", "driving-pair", "rough", "hetero"]
WL = os.environ.get("WL", "tcp8-down tcp8-up tcp1-down").split()
SEEDS = os.environ.get("SEEDS", "1-8")
LINKS = {"lte": ["good", "driving"], "lte-pair": ["good", "driving"], "umts-pair": ["m0", "m1"],
         "hsr-pair": ["m0", "m1"], "driving-pair": ["m0", "m1"], "rough": ["lte", "dsl"],
         "hetero": ["fast", "lossy"], "lte-single": ["lte"]}
def run(s, w, tunnel):
    out = subprocess.run([BIN, "sim", s, "--seeds", SEEDS, "--workload", w, "--tunnel", tunnel],
                         capture_output=True, text=True, cwd=os.environ.get("CWD", ".")).stdout
    r = {}
    for line in out.splitlines():
        m = re.match(r"^(\d+)\s+(up|down)\s+([\d.]+)\s+([\d.]+)", line)
        if m: r[int(m.group(1))] = (float(m.group(3)), float(m.group(4)))
    return r
res = {}
for s in SC:
    for w in WL:
        b = run(s, w, "session")
        d = {l: run(s, w, "direct:" + l) for l in LINKS[s]}
        rows = []
        for seed in sorted(b):
            best = max(d[l][seed][0] for l in d)
            rows.append({"seed": seed, "bond": b[seed][0], "share": b[seed][1], "best": best,
                         "ratio": b[seed][0] / best if best else 0})
        res[f"{s}/{w}"] = rows
        def mmm(k): v = [r[k] for r in rows]; return f"{min(v):6.2f} {statistics.median(v):6.2f} {max(v):6.2f}"
        print(f"{s:13s} {w:9s} bond {mmm('bond')} | best1 {mmm('best')} | ratio {mmm('ratio')} | share% {mmm('share')}", flush=True)
json.dump(res, open(OUT, "w"), indent=1)
