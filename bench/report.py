#!/usr/bin/python3
"""Helpers for bench/run.sh; standard library only (run with Debian's /usr/bin/python3).

  report.py parse FIO_JSON DIRECTION
      print "iops bw_bytes p99_us fio_cpu_pct" for DIRECTION (read or write) of one fio
      --output-format=json run (one group: --group_reporting); exit 1 if fio reported an error.

  report.py table RESULTS_TSV
      print the Markdown results table: per row, job count and server, the median over the
      rounds of IOPS, MB/s (10^6 bytes/s), p99 completion latency and CPU use, the IOPS range,
      the peak RSS and the ratio of the median IOPS to nbdkit's.

  report.py targets RESULTS_TSV
      print one line per target of the journaling write path: blockrep-source's median IOPS
      over nbdkit's, against the target ratio, and whether it is met.
"""
import json
import statistics
import sys

SERVER_ORDER = ["blockrep", "nbdkit", "qemu-nbd"]


def parse(path, direction):
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document; start at the first '{'.
    doc = json.loads(text[text.index("{"):])
    job = doc["jobs"][0]
    if job.get("error", 0):
        print("fio job error %d" % job["error"], file=sys.stderr)
        return 1
    d = job[direction]
    pct = d.get("clat_ns", {}).get("percentile", {})
    p99 = pct.get("99.000000", 0) / 1000.0
    # fio's usr_cpu/sys_cpu are per job, in percent of one CPU; with group_reporting they are
    # summed over the jobs of the group.
    cpu = job.get("usr_cpu", 0.0) + job.get("sys_cpu", 0.0)
    print("%.1f %d %.1f %.1f" % (d["iops"], d["bw_bytes"], p99, cpu))
    return 0


def table(path):
    # Columns: row numjobs server round status iops bw_bytes p99_us fio_cpu srv_cpu rss_kib
    runs = {}
    order = []
    failed = {}
    with open(path) as f:
        for line in f:
            c = line.split()
            if not c:
                continue
            key = (c[0], int(c[1]))
            if key not in order:
                order.append(key)
            srv = c[2]
            if c[4] != "ok":
                failed[(key, srv)] = failed.get((key, srv), 0) + 1
                continue
            runs.setdefault((key, srv), []).append(
                dict(iops=float(c[5]), bw=float(c[6]), p99=float(c[7]), fio_cpu=float(c[8]),
                     srv_cpu=float(c[9]), rss=int(c[10])))

    print("| row | jobs | server | IOPS (median) | IOPS range | MB/s | vs nbdkit | p99 lat (us) "
          "| server CPU % | fio CPU % | server peak RSS (MiB) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in order:
        row, jobs = key
        base = runs.get((key, "nbdkit"))
        base_iops = statistics.median(r["iops"] for r in base) if base else None
        for srv in SERVER_ORDER:
            rs = runs.get((key, srv))
            nfail = failed.get((key, srv), 0)
            if not rs:
                print("| %s | %d | %s | FAILED (%d runs) | | | | | | | |" % (row, jobs, srv, nfail))
                continue
            med = lambda k: statistics.median(r[k] for r in rs)
            iops = med("iops")
            ratio = "%.2f" % (iops / base_iops) if base_iops else "n/a"
            lo = min(r["iops"] for r in rs)
            hi = max(r["iops"] for r in rs)
            note = " (%d failed)" % nfail if nfail else ""
            print("| %s | %d | %s | %s%s | %s-%s | %.0f | %s | %.0f | %.0f | %.0f | %.1f |" % (
                row, jobs, srv, "{:,.0f}".format(iops), note, "{:,.0f}".format(lo),
                "{:,.0f}".format(hi), med("bw") / 1e6, ratio, med("p99"), med("srv_cpu"),
                med("fio_cpu"), max(r["rss"] for r in rs) / 1024.0))
    return 0


# The journaling write path's targets: (row, minimum ratio of blockrep's median IOPS to
# nbdkit's). Every byte written goes to the journal and to the disk, hence the lower bar for
# large sequential writes, which are bound by memory bandwidth.
TARGETS = [("randwrite-4k", 0.85), ("seqwrite-1m", 0.60)]


def targets(path):
    med = {}
    with open(path) as f:
        for line in f:
            c = line.split()
            if len(c) < 6 or c[4] != "ok":
                continue
            med.setdefault((c[0], int(c[1]), c[2]), []).append(float(c[5]))
    for (row, want) in TARGETS:
        for jobs in sorted({k[1] for k in med if k[0] == row}):
            b = med.get((row, jobs, "blockrep"))
            n = med.get((row, jobs, "nbdkit"))
            if not b or not n:
                print("- %s jobs=%d: not measured" % (row, jobs))
                continue
            ratio = statistics.median(b) / statistics.median(n)
            print("- %s jobs=%d: blockrep-source (journaling) / nbdkit = %.2f, target >= %.2f: %s"
                  % (row, jobs, ratio, want, "met" if ratio >= want else "NOT MET"))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "parse":
        return parse(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "table":
        return table(argv[2])
    if len(argv) == 3 and argv[1] == "targets":
        return targets(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
