import json, statistics, collections
rows = collections.OrderedDict()
for line in open("/tmp/faust-study/results.jsonl"):
    r = json.loads(line); rows.setdefault(r["variant"], []).append(r)
for k, rs in rows.items():
    eps = [r["events_per_s"] for r in rs]; cpu = [r["cpu_pct"] for r in rs]
    print(f"{k:45s} n={len(rs)} median={statistics.median(eps):>8.0f} ev/s  runs={eps}  cpu%={statistics.median(cpu)}")
