"""Summarize py-spy raw (collapsed) output: per-thread totals, top self & inclusive frames."""
import sys, re, collections
path = sys.argv[1]; top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
threads = collections.Counter(); selfc = collections.Counter(); incl = collections.Counter(); total = 0
filt = sys.argv[3] if len(sys.argv) > 3 else None
for line in open(path):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n); frames = stack.split(";")
    th = frames[0]
    if filt and filt not in th: continue
    th = re.sub(r"\(\d+\)", "", th)
    threads[th] += n; total += n
    fr = [re.sub(r" \(.*/(site-packages|python3\.11)/", " (", f) for f in frames[1:]]
    fr_noline = [re.sub(r":\d+\)$", ")", f) for f in fr]
    if fr_noline: selfc[fr_noline[-1]] += n
    for f in set(fr_noline): incl[f] += n
print(f"total samples {total}")
for th, n in threads.most_common(): print(f"  thread {th}: {n} ({100*n/total:.1f}%)")
print("\nTOP SELF (leaf) %:")
for f, n in selfc.most_common(top): print(f"  {100*n/total:5.1f}%  {f}")
print("\nTOP INCLUSIVE %:")
for f, n in incl.most_common(top*2): print(f"  {100*n/total:5.1f}%  {f}")
