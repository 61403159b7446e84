#!/usr/bin/env python3
"""Helpers for tests/bench/engine.sh: timing, memory accounting, the report.

Results accumulate in a JSON file (first argument of every subcommand), so the shell
script stays in charge of ordering, deadlines and cleanup:

  bench.py RES latency N WARMUP TIMEOUT NAME CMD [NAME CMD ...]
        Runs the commands round-robin (warm-ups first, not recorded), N timed rounds.
        CMD is one shell-quoted string, split with shlex (no shell); "{i}" in it becomes a
        unique number per run. Any non-zero exit or timeout is an error (exit 1).
  bench.py RES mem KEY ours DAEMON_PID
        RSS/PSS of our daemon + its shim children (not the containers' own processes).
  bench.py RES mem KEY dockerd DOCKERD_PID TAG
        RSS/PSS of dockerd + its containerd child + every containerd-shim whose command
        line mentions TAG (our temporary directory, so other dockerds are not counted).
  bench.py RES set KEY VALUE          store a string
  bench.py RES report                 print the comparison and the markdown summary
"""
import json
import os
import shlex
import statistics
import subprocess
import sys
import time


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------- latency

def cmd_latency(res, args):
    n, warm, timeout = int(args[0]), int(args[1]), float(args[2])
    rest = args[3:]
    if not rest or len(rest) % 2:
        sys.exit("latency: NAME CMD pairs expected")
    cmds = [(rest[k], shlex.split(rest[k + 1])) for k in range(0, len(rest), 2)]
    samples = {name: [] for name, _ in cmds}
    counter = [0]

    def one(name, argv):
        counter[0] += 1
        argv = [a.replace("{i}", str(counter[0])) for a in argv]
        t0 = time.perf_counter_ns()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"latency: {name}: timed out after {timeout}s: {shlex.join(argv)}",
                  file=sys.stderr)
            sys.exit(1)
        dt = (time.perf_counter_ns() - t0) / 1e6
        if p.returncode != 0:
            print(f"latency: {name}: exit {p.returncode}: {shlex.join(argv)}\n"
                  f"{p.stdout.decode(errors='replace')}", file=sys.stderr)
            sys.exit(1)
        return dt

    for _ in range(warm):
        for name, argv in cmds:
            one(name, argv)
    for _ in range(n):
        for name, argv in cmds:
            samples[name].append(one(name, argv))

    data = load(res)
    for name, s in samples.items():
        data.setdefault("latency", {})[name] = s
        print(f"  {name:<16} {fmt_lat(s)}")
    save(res, data)


def fmt_lat(s):
    s = sorted(s)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return (f"median {statistics.median(s):8.1f} ms   min {s[0]:8.1f}   p90 {p90:8.1f}"
            f"   max {s[-1]:8.1f}   (n={len(s)})")


# ---------------------------------------------------------------- memory

def procs():
    """pid -> (ppid, argv) for every live process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        out[int(d)] = (ppid, argv)
    return out


def mem_of(pid):
    """(rss, pss, uss) in KiB of one process, from smaps_rollup (VmRSS if that is missing).
    USS = Private_Clean + Private_Dirty: what killing the process would free."""
    rss = pss = None
    uss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss":
                    rss = int(v.split()[0])
                elif k == "Pss":
                    pss = int(v.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    uss += int(v.split()[0])
    except OSError:
        pass
    if rss is None:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    if pss is None:
        pss = uss = rss or 0
    return rss or 0, pss, uss


def base(argv):
    return os.path.basename(argv[0]) if argv else ""


def cmd_mem(res, args):
    key, kind, pid = args[0], args[1], int(args[2])
    ps = procs()
    if pid not in ps:
        sys.exit(f"mem: process {pid} is gone")
    groups = {}  # role -> [pids]
    if kind == "ours":
        groups["daemon"] = [pid]
        groups["shims"] = [p for p, (pp, a) in ps.items()
                           if pp == pid and ((len(a) > 1 and a[1] == "shim")
                                               or os.path.basename(a[0]) == "system-docker-shim")]
        other = [p for p, (pp, a) in ps.items() if pp == pid and p not in groups["shims"]]
        if other:
            print(f"  note: daemon children that are not shims (not counted): {other}")
    elif kind == "dockerd":
        tag = args[3]
        groups["dockerd"] = [pid]
        groups["containerd"] = [p for p, (pp, a) in ps.items()
                                if pp == pid and base(a) == "containerd"]
        groups["shims"] = [p for p, (pp, a) in ps.items()
                           if base(a).startswith("containerd-shim") and any(tag in x for x in a)]
    else:
        sys.exit(f"mem: unknown kind {kind}")
    entry = {"roles": {}}
    tr = tp = tu = 0
    for role, pids in groups.items():
        r = p = u = 0
        for q in pids:
            a, b, c = mem_of(q)
            r += a
            p += b
            u += c
        entry["roles"][role] = {"n": len(pids), "rss_kib": r, "pss_kib": p, "uss_kib": u}
        tr += r
        tp += p
        tu += u
    entry["rss_kib"], entry["pss_kib"], entry["uss_kib"] = tr, tp, tu
    data = load(res)
    data.setdefault("mem", {})[key] = entry
    save(res, data)
    parts = ", ".join(f"{role} x{v['n']}: RSS {mib(v['rss_kib'])} PSS {mib(v['pss_kib'])}"
                      f" USS {mib(v['uss_kib'])}"
                      for role, v in entry["roles"].items() if v["n"])
    print(f"  {key:<14} total RSS {mib(tr)}  PSS {mib(tp)}  USS {mib(tu)}   ({parts})")


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


# ---------------------------------------------------------------- report

def cmd_set(res, args):
    data = load(res)
    data.setdefault("info", {})[args[0]] = args[1]
    save(res, data)


def cmd_report(res, _args):
    d = load(res)
    lat = {k: statistics.median(v) for k, v in d.get("latency", {}).items()}
    mem = d.get("mem", {})
    info = d.get("info", {})
    ncont = int(info.get("containers", "100"))
    rows = []  # (metric, ours, runc, dockerd, ratio, target)

    def ratio(a, b):
        return a / b if a is not None and b else None

    def fr(x):
        return "n/a" if x is None else f"{x:.2f}"

    def ok(x, limit):
        if x is None:
            return ""
        return " (met)" if x <= limit else " (missed)"

    o, r, k = lat.get("ours"), lat.get("runc"), lat.get("dockerd")
    ms = lambda x: "n/a" if x is None else f"{x:.1f} ms"
    print("== 1. run --rm busybox true (median)")
    print(f"  system-docker {ms(o)} | runc run {ms(r)} | dockerd {ms(k)}")
    ro, rk = ratio(o, r), ratio(o, k)
    print(f"  ours/runc    = {fr(ro)}   target <= 1.5{ok(ro, 1.5)}")
    print(f"  ours/dockerd = {fr(rk)}   target <= 0.2{ok(rk, 0.2)}")
    rows.append(("`run --rm busybox true`, median", ms(o), ms(r), ms(k),
                 f"{fr(ro)} vs runc, {fr(rk)} vs dockerd", "≤ 1.5× runc, ≤ 0.2× dockerd"))

    print("== 2. idle engine memory (no containers)")
    oi, ki = mem.get("ours-idle"), mem.get("dockerd-idle")
    if oi:
        print(f"  system-docker daemon: RSS {mib(oi['rss_kib'])}  PSS {mib(oi['pss_kib'])}"
              f"  USS {mib(oi['uss_kib'])}   target RSS <= 10 MiB{ok(oi['rss_kib'] / 1024, 10)}")
    if ki:
        kr = ki["roles"]
        print(f"  dockerd {mib(kr['dockerd']['rss_kib'])} + containerd "
              f"{mib(kr['containerd']['rss_kib'])} = RSS {mib(ki['rss_kib'])}"
              f"  PSS {mib(ki['pss_kib'])}  USS {mib(ki['uss_kib'])}")
    if oi and ki:
        print(f"  ours/dockerd RSS = {fr(ratio(oi['rss_kib'], ki['rss_kib']))}"
              f"   PSS = {fr(ratio(oi['pss_kib'], ki['pss_kib']))}")
    for m, target in (("rss", "≤ 10 MiB"), ("pss", "—")):
        k = m + "_kib"
        if oi:
            rows.append((f"idle engine {m.upper()} (dockerd: + containerd)", mib(oi[k]), "—",
                         mib(ki[k]) if ki else "n/a", fr(ratio(oi[k], ki[k]) if ki else None),
                         target))

    print(f"== 3. per-container memory ({ncont} x sleep; engine + shims, "
          f"(with {ncont} - idle) / {ncont})")
    per = {}
    for eng in ("ours", "dockerd"):
        a, b = mem.get(f"{eng}-idle"), mem.get(f"{eng}-{ncont}")
        if a and b:
            per[eng] = {m: (b[m + "_kib"] - a[m + "_kib"]) / ncont for m in ("rss", "pss", "uss")}
            extra = ""
            if eng == "ours":
                extra = (f"   target <= 1 MiB: RSS{ok(per[eng]['rss'] / 1024, 1)},"
                         f" PSS{ok(per[eng]['pss'] / 1024, 1)}")
            sh = b["roles"]["shims"]
            print(f"  {eng:<8} RSS {mib(per[eng]['rss'])}  PSS {mib(per[eng]['pss'])} per container;"
                  f" one shim's own USS {mib(sh['uss_kib'] / max(sh['n'], 1))}   (total with {ncont}:"
                  f" RSS {mib(b['rss_kib'])}, PSS {mib(b['pss_kib'])},"
                  f" {b['roles']['shims']['n']} shims){extra}")
    po_, pd_ = per.get("ours"), per.get("dockerd")
    if po_ and pd_:
        print("  ours/dockerd " + "   ".join(f"{m.upper()} = {fr(ratio(po_[m], pd_[m]))}"
                                            for m in ("rss", "pss")))
    for m, target in (("rss", "≤ 1 MiB"), ("pss", "—")):
        if po_:
            rows.append((f"per-container {m.upper()} (engine + shims)", mib(po_[m]), "—",
                         mib(pd_[m]) if pd_ else "n/a",
                         fr(ratio(po_[m], pd_[m]) if pd_ else None), target))
    po, pk = lat.get("ours-ps"), lat.get("dockerd-ps")
    print(f"  ps with {ncont} containers (median): system-docker {ms(po)} | docker {ms(pk)}"
          f"   ours/dockerd = {fr(ratio(po, pk))}")
    rows.append((f"`ps` with {ncont} containers, median", ms(po), "—", ms(pk),
                 fr(ratio(po, pk)), "—"))

    print()
    print(f"== 4. summary ({info.get('date', '?')}, Linux {info.get('kernel', '?')}, "
          f"{info.get('cpus', '?')} CPUs)")
    print()
    print(f"Engine benchmark, {info.get('date', '?')}, kernel `{info.get('kernel', '?')}`, "
          f"{info.get('cpus', '?')} CPUs; dockerd {info.get('dockerd_version', '?')}, "
          f"runc {info.get('runc_version', '?')}; client: {info.get('client', '?')}.")
    print()
    print("| metric | system-docker | runc | dockerd | ours / other | target (ours) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    res, sub, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"latency": cmd_latency, "mem": cmd_mem, "set": cmd_set, "report": cmd_report}[sub](res, args)


if __name__ == "__main__":
    main()
