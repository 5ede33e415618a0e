"""bench/gw_ab_summary.py ROWS...: medians of bench/gw_ab.sh runs; added = gateway minus direct of the same round."""
import json, sys
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f)]
med = lambda xs: sorted(xs)[len(xs)//2] if xs else float('nan')
for c in sorted({r["conns"] for r in rows}):
    print(f"conns {c}")
    for l in ("direct","base-batch","mid-batch","new-batch","base-noaudit","mid-noaudit","new-noaudit"):
        xs=[r for r in rows if r["label"]==l and r["conns"]==c]
        if not xs: continue
        # per-round added p50 vs direct of the same round
        d=[]
        for r in xs:
            dr=[q for q in rows if q["label"]=="direct" and q["conns"]==c and q["round"]==r["round"] and q.get("_f")==r.get("_f")]
            if dr and l!="direct": d.append(r["p50_us"]-dr[0]["p50_us"])
        print(f"  {l:13s} n={len(xs)} rps={med([r['rps'] for r in xs]):8.0f} p50={med([r['p50_us'] for r in xs]):6.0f} p99={med([r['p99_us'] for r in xs]):6.0f} added_p50={med(d) if d else 0:6.0f} errs={sum(r['errors'] for r in xs)}")
