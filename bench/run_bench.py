#!/usr/bin/env python3
"""The measurements behind bench/run (see there). Starts a coordinator and two
workers of 4 slots on free loopback ports, measures cohort against xargs -P and
GNU parallel in the same run, prints one table, and stops everything it started.

Usage: bench/run_bench.py BIN_DIR [--quick]
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

BIN = sys.argv[1]
QUICK = "--quick" in sys.argv[2:]

if QUICK:
    N_STEPS, REPS_TP = 200, 2
    N_TIMEOUT, REPS_TO = 8, 2
    N_DISPATCH = 5
else:
    N_STEPS, REPS_TP = 2000, 5
    N_TIMEOUT, REPS_TO = 24, 3
    N_DISPATCH = 30
TIMEOUT_S = 0.2
PAR = 8

procs = []
workdir = tempfile.mkdtemp(prefix="cohort-bench.")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(argv, log):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, log), "w"))
    procs.append(p)
    return p


def stop_all():
    for p in reversed(procs):  # workers first: they kill their steps on SIGTERM
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 10
    for p in reversed(procs):
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(workdir, ignore_errors=True)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)

cli_port, wrk_port, cxl_port = free_ports(3)
CLIENT = f"tcp://127.0.0.1:{cli_port}"
COHORT = os.path.join(BIN, "cohort")


def iso(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def submit(doc_or_args, timeout=600):
    if isinstance(doc_or_args, dict):
        f = os.path.join(workdir, "group.json")
        with open(f, "w") as fh:
            json.dump(doc_or_args, fh)
        args = [f]
    else:
        args = list(doc_or_args)
    r = subprocess.run([COHORT, "submit", *args[:1], "--wait", "--json", "--coordinator", CLIENT, *args[1:]],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"cohort submit exited {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, executable="/bin/bash")


def main():
    start([os.path.join(BIN, "cohort-coordinator"), "--client-endpoint", CLIENT,
           "--worker-endpoint", f"tcp://127.0.0.1:{wrk_port}", "--cancel-endpoint", f"tcp://127.0.0.1:{cxl_port}",
           "--log-level", "warn"], "coordinator.log")
    for n in (1, 2):
        start([os.path.join(BIN, "cohort-worker"), "--coordinator", f"tcp://127.0.0.1:{wrk_port}",
               "--name", f"bench-w{n}", "--slots", "4", "--log-level", "warn"], f"worker-{n}.log")
    for _ in range(100):
        r = subprocess.run([COHORT, "workers", "--json", "--coordinator", CLIENT, "--connect-timeout", "1"],
                           capture_output=True, text=True)
        if r.returncode == 0 and len(json.loads(r.stdout or "[]")) >= 2:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("the two workers did not register")

    rows = []  # (what, cohort, peer label, peer, ratio, target)

    # 1. process-step throughput ------------------------------------------------
    print(f"[1/3] throughput: {N_STEPS} x true, parallelism {PAR}, {REPS_TP} reps", file=sys.stderr)
    group = {"max_parallel": PAR, "steps": [{"id": str(i), "command": ["true"]} for i in range(N_STEPS)]}
    gfile = os.path.join(workdir, "throughput.json")
    with open(gfile, "w") as fh:
        json.dump(group, fh)
    tp = {"cohort": [], "xargs": [], "parallel": []}
    for _ in range(REPS_TP):
        def run_cohort():
            doc = submit([gfile])
            if doc["state"] != "completed" or doc["counts"]["completed"] != N_STEPS:
                raise RuntimeError(f"throughput group ended {doc['state']}: {doc['counts']}")
        tp["cohort"].append(N_STEPS / timed(run_cohort))
        tp["xargs"].append(N_STEPS / timed(lambda: sh(f"seq {N_STEPS} | xargs -P {PAR} -n 1 true")))
        tp["parallel"].append(N_STEPS / timed(lambda: sh(f"seq {N_STEPS} | parallel --will-cite -j {PAR} true")))

    # 2. timeout precision -------------------------------------------------------
    print(f"[2/3] timeouts: {N_TIMEOUT} x sleep 30 with {TIMEOUT_S}s timeout, {REPS_TO} reps", file=sys.stderr)
    # The step records its own start and the moment SIGTERM reaches it (bash
    # builtins only, no process spawned), so lateness is seen from the step.
    trapdir = os.path.join(workdir, "traps")
    os.makedirs(trapdir)

    trapsh = os.path.join(workdir, "trap.sh")
    with open(trapsh, "w") as fh:
        fh.write('s=$EPOCHREALTIME; trap \'echo "$s $EPOCHREALTIME" > '+ trapdir + '/"$1"; exit 143\' TERM; sleep 30 & wait\n')

    def read_traps(prefix):
        out = []
        for f in os.listdir(trapdir):
            if f.startswith(prefix):
                s, t = open(os.path.join(trapdir, f)).read().split()
                out.append(float(t) - float(s) - TIMEOUT_S)
        return out

    late = {"cohort_hist": [], "cohort_step": [], "par_joblog": [], "par_step": []}
    for rep in range(REPS_TO):
        doc = submit({"max_parallel": PAR, "timeout_s": TIMEOUT_S, "on_failure": "continue",
                      "steps": [{"id": str(i), "command": ["bash", trapsh, f"c{rep}-{i}"]}
                                for i in range(N_TIMEOUT)]})
        for st in doc["steps"]:
            for h in st["history"]:
                if h["status"] == "timed_out" and h.get("started_at") and h.get("finished_at"):
                    late["cohort_hist"].append(iso(h["finished_at"]) - iso(h["started_at"]) - TIMEOUT_S)
        joblog = os.path.join(workdir, f"joblog{rep}")
        subprocess.run(f"seq {N_TIMEOUT} | parallel --will-cite -j {PAR} --timeout {TIMEOUT_S} --joblog {joblog} "
                       f"bash {trapsh} p{rep}-{{}}", shell=True, executable="/bin/bash",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(joblog) as fh:
            next(fh)
            for line in fh:
                late["par_joblog"].append(float(line.split("\t")[3]) - TIMEOUT_S)
    for rep in range(REPS_TO):
        late["cohort_step"] += read_traps(f"c{rep}-")
        late["par_step"] += read_traps(f"p{rep}-")

    # 3. dispatch latency --------------------------------------------------------
    print(f"[3/3] dispatch latency: {N_DISPATCH} one-step groups", file=sys.stderr)
    disp = []
    for _ in range(N_DISPATCH):
        t0 = time.time()
        doc = submit(["--", "date", "+%s.%N"])
        disp.append(float(doc["steps"][0]["stdout"].strip()) - t0)
        time.sleep(0.05)
    # the same measure for a plain fork+exec from this client, as the floor
    floor = []
    for _ in range(N_DISPATCH):
        t0 = time.time()
        r = subprocess.run(["date", "+%s.%N"], capture_output=True, text=True)
        floor.append(float(r.stdout.strip()) - t0)

    # table ---------------------------------------------------------------------
    def mm(xs, fmt):
        return f"{fmt(statistics.median(xs))} [{fmt(min(xs))}–{fmt(max(xs))}]"

    js = lambda v: f"{v:,.0f}"
    ms = lambda v: f"{v * 1000:.1f}"
    med = statistics.median
    print()
    print(f"bench/run{' --quick' if QUICK else ''}: {os.cpu_count()} CPUs, "
          f"coordinator + 2 workers x 4 slots on loopback; median [min–max] over reps")
    print()
    print("| measure | cohort | peer | peer figure | ratio | target |")
    print("|---|---|---|---|---|---|")
    r_x = med(tp["cohort"]) / med(tp["xargs"])
    r_p = med(tp["cohort"]) / med(tp["parallel"])
    print(f"| throughput, {N_STEPS} x `true`, -P {PAR}, jobs/s ({REPS_TP} reps) | {mm(tp['cohort'], js)} | "
          f"`xargs -P {PAR}` | {mm(tp['xargs'], js)} | **{r_x:.2f}×** | ≥ 0.9× {'met' if r_x >= 0.9 else 'MISSED'} |")
    print(f"| | | `parallel -j {PAR}` | {mm(tp['parallel'], js)} | **{r_p:.2f}×** | ≥ 5× "
          f"{'met' if r_p >= 5 else 'MISSED'} |")
    for label, c, p, pl in (("seen by the step (TERM trap − own start)", late["cohort_step"], late["par_step"],
                             "`parallel --timeout`"),
                            ("from records (cohort history, parallel joblog)", late["cohort_hist"], late["par_joblog"],
                             "`parallel --joblog`")):
        c99, p99 = pct(c, 99), pct(p, 99)
        print(f"| timeout lateness, ms, {label}: p50 / p99 [min–max], n={len(c)} | "
              f"{ms(pct(c, 50))} / {ms(c99)} [{ms(min(c))}–{ms(max(c))}] | {pl} | "
              f"{ms(pct(p, 50))} / {ms(p99)} [{ms(min(p))}–{ms(max(p))}] | "
              f"{p99 / c99 if c99 > 0 else float('nan'):.1f}× less late (p99) | p99 ≤ 20 ms "
              f"{'met' if c99 <= 0.020 else 'MISSED'} |")
    print(f"| dispatch latency, submit → step's process running, ms: p50 / p99 [min–max], n={len(disp)} | "
          f"{ms(pct(disp, 50))} / {ms(pct(disp, 99))} [{ms(min(disp))}–{ms(max(disp))}] | plain fork+exec from "
          f"the client | {ms(pct(floor, 50))} / {ms(pct(floor, 99))} | "
          f"+{ms(pct(disp, 50) - pct(floor, 50))} ms (p50) | (none set) |")
    print()
    print("Timeout lateness = time from start to kill − 0.2 s. 'Seen by the step': bash records $EPOCHREALTIME "
          "when it starts and in its TERM trap (its start is ~1–2 ms after the spawn, which this hides). "
          "'From records': cohort's history[].finished_at − started_at (ms, coordinator's clock of the "
          "reports); parallel's joblog JobRuntime.")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
