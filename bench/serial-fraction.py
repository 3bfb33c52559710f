#!/usr/bin/env python3
# serial-fraction.py PERF.DATA [N]: from a one-thread `perf record -g`
# profile (dwarf call graphs), the share of CPU samples inside the
# library's parallel regions (a stack through par_run, lib/core/parallel.c,
# or through task_run / sk_task_start: a task that runs beside the caller
# on more than one thread, inside sk_task_start on one) and the rest (the
# serial fraction s), Amdahl's bound 1 / (s + (1 - s) / 2) on the speedup
# at 2 threads, and the N functions that hold most of the serial samples
# (inclusive).
import collections
import subprocess
import sys

out = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "ip,sym"],
                     capture_output=True, text=True, check=True).stdout
samples, cur = [], []
for line in out.splitlines():
    if not line.strip():
        if cur:
            samples.append(cur)
        cur = []
        continue
    parts = line.split()
    cur.append(parts[1] if len(parts) > 1 else "?")
if cur:
    samples.append(cur)
total = len(samples)
par = sum(1 for s in samples if "par_run" in s or "task_run" in s or "sk_task_start" in s)
if total == 0:
    sys.exit("serial-fraction.py: no samples in " + sys.argv[1])
s = (total - par) / total
print(f"{total} samples: parallel {100 * par / total:.1f} %, serial {100 * s:.1f} %, "
      f"Amdahl bound at 2 threads {1 / (s + (1 - s) / 2):.2f}x")
# A stack that perf's copy (at most 64 KiB) does not hold to its root (a
# deep call chain through cfitsio's or libc's large stack buffers) shows
# neither region and counts as serial above; among the samples whose stack
# reaches the library's entry, or the program's, the serial share is:
ROOTS = ("sk_coadd_make", "sk_extract_image", "main", "_start", "dl_main")
PAR = ("par_run", "task_run", "sk_task_start")
rooted = [smp for smp in samples if any(r in smp for r in ROOTS) or any(p in smp for p in PAR)]
if rooted:
    rs = sum(1 for smp in rooted if not any(p in smp for p in PAR)) / len(rooted)
    print(f"  stacks cut short {100 * (total - len(rooted)) / total:.1f} %; of the others serial "
          f"{100 * rs:.1f} %, Amdahl bound at 2 threads {1 / (rs + (1 - rs) / 2):.2f}x")
inc = collections.Counter()
for smp in samples:
    if "par_run" not in smp and "task_run" not in smp and "sk_task_start" not in smp:
        for f in set(smp):
            if f != "[unknown]":
                inc[f] += 1
for f, c in inc.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 15):
    print(f"  {100 * c / total:5.1f} %  {f}")
