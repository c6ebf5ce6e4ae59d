#!/usr/bin/env python3
"""Bonded against the best single link on the simulator, over held-out seeds.

    bench/sim/sweep.py BIN [SEEDS [SCENARIO,.. [WORKLOAD,..]]]     (from the repository root)

BIN is a braid binary (a release build: ~10 min for everything on a busy 2-core machine),
SEEDS e.g. 11-18. For each pair scenario and hetero/lte, each TCP workload (tcp8/tcp1, down/up):
bonded goodput min/median/max over the seeds, the best single link (`--tunnel direct:LINK`, the
better of the two links in each seed), bonded / best single link per seed (min/median/max),
bonded as % of the summed capacity, and the two worst seeds.
"""
import os, subprocess, sys, re, statistics
from concurrent.futures import ThreadPoolExecutor
if len(sys.argv) < 2:
    sys.exit(__doc__)
BIN=sys.argv[1]; SEEDS=sys.argv[2] if len(sys.argv)>2 else "11-18"
SC={"lte-pair":["good","driving"],"driving-pair":["m0","m1"],"umts-pair":["m0","m1"],"hsr-pair":["m0","m1"],"hetero":["fast","lossy"],"lte":["good","driving"]}
only=sys.argv[3].split(",") if len(sys.argv)>3 else list(SC)
WL=sys.argv[4].split(",") if len(sys.argv)>4 else ["tcp8-down","tcp1-down","tcp8-up","tcp1-up"]
def run(sc,wl,tun):
    args=[BIN,"sim",sc,"--workload",wl,"--seeds",SEEDS]
    if tun: args+=["--tunnel","direct:"+tun]
    out=subprocess.run(args,capture_output=True,text=True,cwd=os.getcwd()).stdout
    r={}
    for l in out.splitlines():
        m=re.match(r"^(\d+)\s+(up|down)\s+([\d.]+)\s+([\d.]+)\s+(.*)",l)
        if m: r[int(m.group(1))]=(float(m.group(3)),float(m.group(4)),m.group(5))
    return r
jobs=[]
with ThreadPoolExecutor(2) as ex:
    for sc in only:
        for wl in WL:
            for tun in [None]+SC[sc]:
                jobs.append(((sc,wl,tun),ex.submit(run,sc,wl,tun)))
res={k:f.result() for k,f in jobs}
def mmm(v): return "%5.2f/%5.2f/%5.2f"%(min(v),statistics.median(v),max(v))
print("%-13s %-9s %-17s %-17s %-17s %-14s %s"%("scenario","workload","bonded min/med/max","best direct","ratio","share% med","worst seeds"))
for sc in only:
    for wl in WL:
        b=res[(sc,wl,None)]
        seeds=sorted(b)
        bd=[max(res[(sc,wl,t)][s][0] for t in SC[sc]) for s in seeds]
        bv=[b[s][0] for s in seeds]
        ratio=[x/y for x,y in zip(bv,bd)]
        share=[b[s][1] for s in seeds]
        worst=sorted(zip(ratio,seeds))[:2]
        print("%-13s %-9s %s %s %s %s  %s"%(sc,wl,mmm(bv),mmm(bd),mmm(ratio),mmm(share)," ".join("%d:%.2f"%(s,r) for r,s in worst)))
