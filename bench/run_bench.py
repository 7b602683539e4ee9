#!/usr/bin/env python3
"""The measurements behind bench/run (see there). Starts a coordinator and two
workers of 4 slots on free loopback ports, measures cohort against xargs -P and
GNU parallel in the same run; then a coordinator and 4 workers x 8 slots for
cancel latency (against a killpg loop and parallel --halt now,fail=1), and one
with 2 workers for worker-loss recovery; prints one table, and stops everything
it started (steps and jobs carry COHORT_BENCH_MARK in their environment, so
orphans, e.g. of a SIGKILLed worker, are found in /proc and killed).

Usage: bench/run_bench.py BIN_DIR [--quick]
"""
import json
import os
import pwd
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

# Coordinator throughput (bench/loadgen): (simulated workers, steps, reps).
LOADGEN_QUICK = [(100, 10_000, 1)]
LOADGEN_FULL = [(1, 100_000, 3), (10, 100_000, 3), (100, 10_000, 3), (100, 100_000, 3), (1000, 100_000, 3),
                (100, 1_000_000, 1)]

if QUICK:
    N_STEPS, REPS_TP = 200, 2
    N_TIMEOUT, REPS_TO = 8, 2
    N_DISPATCH = 5
    REPS_CANCEL, REPS_LOSS = 1, 1
else:
    N_STEPS, REPS_TP = 2000, 5
    N_TIMEOUT, REPS_TO = 24, 3
    N_DISPATCH = 30
    REPS_CANCEL, REPS_LOSS = 5, 3
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


MARK = "COHORT_BENCH_MARK"  # env var set on every step/job the script starts, to find them in /proc
RUN_ID = f"{os.getpid()}.{int(time.time())}"


def marked(prefix):
    """pids of live (non-zombie) processes whose environment has MARK=prefix..."""
    needle = f"{MARK}={prefix}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                env = fh.read()
            if not any(e.startswith(needle) for e in env.split(b"\0")):
                continue
            with open(f"/proc/{d}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        out.append(int(d))
    return out


def kill_marked(prefix):
    for pid in marked(prefix):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def stop_procs(ps):
    for p in reversed(ps):  # workers first: they kill their steps on SIGTERM
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 10
    for p in reversed(ps):
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    kill_marked(RUN_ID)
    stop_procs(procs)
    kill_marked(RUN_ID)
    shutil.rmtree(workdir, ignore_errors=True)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)

CLIENT = None  # the client endpoint of the cluster in use (set by main)
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


def submit(doc_or_args, timeout=600, client=None):
    if isinstance(doc_or_args, dict):
        f = os.path.join(workdir, "group.json")
        with open(f, "w") as fh:
            json.dump(doc_or_args, fh)
        args = [f]
    else:
        args = list(doc_or_args)
    r = subprocess.run([COHORT, "submit", "--wait", "--json", "--coordinator", client or CLIENT, *args],
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


def start_cluster(tag, n_workers, slots):
    """A coordinator and n_workers workers on fresh loopback ports; returns
    (client endpoint, worker endpoint, [coordinator, workers...], {name: worker})."""
    cp, wp, xp = free_ports(3)
    client, wep = f"tcp://127.0.0.1:{cp}", f"tcp://127.0.0.1:{wp}"
    ps = [start([os.path.join(BIN, "cohort-coordinator"), "--client-endpoint", client, "--worker-endpoint", wep,
                 "--cancel-endpoint", f"tcp://127.0.0.1:{xp}", "--log-level", "warn",
                 "--state-dir", os.path.join(workdir, f"{tag}-state")], f"{tag}-coordinator.log")]
    workers = {}
    for n in range(1, n_workers + 1):
        workers[f"{tag}-w{n}"] = start_worker(wep, f"{tag}-w{n}", slots)
        ps.append(workers[f"{tag}-w{n}"])
    wait_workers(client, n_workers)
    return client, wep, ps, workers


def start_worker(wep, name, slots):
    # COHORT_BENCH_WORKER_FLAGS: extra worker flags, to compare settings in
    # one run's conditions (e.g. "--step-isolation process-group").
    extra = os.environ.get("COHORT_BENCH_WORKER_FLAGS", "").split()
    return start([os.path.join(BIN, "cohort-worker"), "--coordinator", wep, "--name", name, "--slots", str(slots),
                  "--log-level", "warn", "--state-dir", os.path.join(workdir, f"{name}-state"),
                  "--run-as", pwd.getpwuid(os.geteuid()).pw_name] + extra, f"{name}.{time.time():.3f}.log")


def wait_workers(client, n, names=()):
    for _ in range(100):
        r = subprocess.run([COHORT, "workers", "--json", "--coordinator", client, "--connect-timeout", "1"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            ws = [w for w in json.loads(r.stdout or "[]") if w.get("state") != "lost"]
            if len(ws) >= n and all(any(w["name"] == nm for w in ws) for nm in names):
                return
        time.sleep(0.1)
    raise RuntimeError(f"the {n} workers did not register")


N_SIB = 31  # cancel latency: 31 siblings + 1 failing step = 32 = 4 workers x 8 slots


def write_cancel_scripts():
    """sib.sh DIR NAME: trap TERM, start a child, record its start, wait; in the
    trap record the time and exit (bash builtins only, no process spawned).
    fail.sh DIR N: wait (bounded) until N start records exist, record, exit 1."""
    sib = os.path.join(workdir, "sib.sh")
    with open(sib, "w") as fh:
        fh.write('trap \'echo "$EPOCHREALTIME" > "$1/term.$2"; exit 143\' TERM\n'
                 'sleep 60 &\n'
                 'echo "$EPOCHREALTIME" > "$1/start.$2"\n'
                 'wait\n')
    fail = os.path.join(workdir, "fail.sh")
    with open(fail, "w") as fh:
        fh.write('shopt -s nullglob\n'
                 'for ((i = 0; i < 3000; i++)); do\n'
                 '  f=("$1"/start.*); (( ${#f[@]} >= $2 )) && break; sleep 0.01\n'
                 'done\n'
                 'echo "$EPOCHREALTIME" > "$1/fail"\n'
                 'exit 1\n')
    return sib, fail


def read_terms(d, t0):
    """(per-sibling latencies from t0 in s, number of siblings with no TERM record)"""
    lat, missing = [], 0
    for i in range(N_SIB):
        try:
            lat.append(float(open(os.path.join(d, f"term.{i}")).read()) - t0)
        except (OSError, ValueError):
            missing += 1
    return lat, missing


def record_terms(res, name, d):
    """Adds the siblings' TERM latencies, measured from the failing step's own
    time stamp in d/fail, to res[name], res[name_missing] and res[name_last]."""
    t_fail = float(open(os.path.join(d, "fail")).read())
    lat, missing = read_terms(d, t_fail)
    res[name] += lat
    res[name + "_missing"] += missing
    if lat:
        res[name + "_last"].append(max(lat))
    return t_fail


def wait_files(d, n, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if sum(1 for f in os.listdir(d) if f.startswith("start.")) >= n:
            return True
        time.sleep(0.005)
    return False


def measure_cancel(reps):
    """cohort fail-fast on 4 workers x 8 slots, the killpg floor and GNU parallel
    --halt now,fail=1, per rep in that order."""
    sib, fail = write_cancel_scripts()
    client, _, ps, _ = start_cluster("cancel", 4, 8)
    res = {"cohort": [], "cohort_last": [], "wait": [], "alive": [], "cohort_missing": 0,
           "floor": [], "floor_last": [],
           "parallel": [], "parallel_last": [], "parallel_missing": 0, "parallel_alive": []}
    try:
        for rep in range(reps):
            # cohort
            d = os.path.join(workdir, f"cancel-c{rep}")
            os.makedirs(d)
            tag = f"{RUN_ID}.cancel-c{rep}"
            steps = [{"id": f"s{i}", "command": ["bash", sib, d, str(i)], "env": {MARK: tag}} for i in range(N_SIB)]
            steps.insert(rep % (N_SIB + 1), {"id": "fail", "command": ["bash", fail, d, str(N_SIB)], "env": {MARK: tag}})
            doc = submit({"max_parallel": N_SIB + 1, "timeout_s": 120, "steps": steps}, timeout=120, client=client)
            t_ret = time.time()
            alive = marked(tag)
            res["alive"].append(len(alive))
            kill_marked(tag)
            if doc["state"] not in ("failed", "cancelled"):
                raise RuntimeError(f"cancel group ended {doc['state']}: {doc['counts']}")
            t_fail = record_terms(res, "cohort", d)
            res["wait"].append(t_ret - t_fail)

            # floor: the same siblings, each its own session/process group, one killpg loop
            d = os.path.join(workdir, f"cancel-f{rep}")
            os.makedirs(d)
            tag = f"{RUN_ID}.cancel-f{rep}"
            env = dict(os.environ, **{MARK: tag})
            sibs = [subprocess.Popen(["bash", sib, d, str(i)], env=env, start_new_session=True,
                                     stdin=subprocess.DEVNULL) for i in range(N_SIB)]
            if not wait_files(d, N_SIB, 30):
                raise RuntimeError("the floor's siblings did not start")
            pgids = [p.pid for p in sibs]
            t0 = time.time()
            for pg in pgids:
                os.killpg(pg, signal.SIGTERM)
            for p in sibs:
                p.wait()
            lat, _ = read_terms(d, t0)
            res["floor"] += lat
            res["floor_last"].append(max(lat))
            kill_marked(tag)

            # GNU parallel --halt now,fail=1 -j 32, same shape
            d = os.path.join(workdir, f"cancel-p{rep}")
            os.makedirs(d)
            tag = f"{RUN_ID}.cancel-p{rep}"
            jobs = [f"bash {sib} {d} {i}" for i in range(N_SIB)]
            jobs.insert(rep % (N_SIB + 1), f"bash {fail} {d} {N_SIB}")
            jf = os.path.join(workdir, f"jobs-p{rep}")
            with open(jf, "w") as fh:
                fh.write("\n".join(jobs) + "\n")
            try:
                subprocess.run(["parallel", "--will-cite", "--halt", "now,fail=1", "-j", str(N_SIB + 1), "-a", jf],
                               env=dict(os.environ, **{MARK: tag}), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=120)
            except subprocess.TimeoutExpired:
                pass
            res["parallel_alive"].append(len(marked(tag)))
            kill_marked(tag)
            record_terms(res, "parallel", d)
    finally:
        stop_procs(ps)
    return res


def measure_worker_loss(reps):
    """2 workers at the default heartbeat (1000 ms, liveness 3); SIGKILL the
    worker running a one-step group's step and start it again at once, as
    systemd's Restart= would; time from the kill to the step's second start.
    (A worker that never comes back has its steps run again only after the
    default 60 s lease: by design, so that a cut-off worker's steps never run
    twice at once. That case is not timed.)"""
    client, wep, ps, workers = start_cluster("loss", 2, 4)
    out = []
    try:
        for rep in range(reps):
            rec = os.path.join(workdir, f"loss{rep}.starts")
            tag = f"{RUN_ID}.loss{rep}"
            gfile = os.path.join(workdir, f"loss{rep}.json")
            with open(gfile, "w") as fh:
                json.dump({"steps": [{"id": "s", "command": ["bash", "-c", f'echo "$EPOCHREALTIME" >> {rec}; sleep 30'],
                                      "env": {MARK: tag}}]}, fh)
            r = subprocess.run([COHORT, "submit", gfile, "--coordinator", client], capture_output=True, text=True,
                               check=True)
            gid = r.stdout.strip().split()[-1]

            def starts():
                try:
                    return [float(x) for x in open(rec).read().split()]
                except (OSError, ValueError):
                    return []
            end = time.time() + 30
            while len(starts()) < 1 and time.time() < end:
                time.sleep(0.005)
            st = json.loads(subprocess.run([COHORT, "status", gid, "--json", "--coordinator", client],
                                           capture_output=True, text=True, check=True).stdout)
            name = st["steps"][0]["worker"]
            victim = workers[name]
            t_kill = time.time()
            victim.kill()
            victim.wait()
            # Back at once: it kills its leftovers and registers as a new
            # process, which tells the coordinator the old steps are dead.
            workers[name] = start_worker(wep, name, 4)
            ps.append(workers[name])
            end = time.time() + 120
            while len(starts()) < 2 and time.time() < end:
                time.sleep(0.005)
            s2 = starts()
            if len(s2) < 2:
                raise RuntimeError("the step did not run again after its worker was killed")
            out.append(s2[1] - t_kill)
            subprocess.run([COHORT, "cancel", gid, "--coordinator", client], capture_output=True)
            subprocess.run([COHORT, "wait", gid, "--coordinator", client], capture_output=True, timeout=60)
            kill_marked(tag)  # in case the restarted worker's leftover cleanup missed one
            wait_workers(client, 2, [name])
    finally:
        stop_procs(ps)
    return out


def run_loadgen(k, n, store_args=()):
    """One bench/loadgen run (K simulated workers x 8 slots answering every
    RUN at once, real coordinator, real sockets, default heartbeat); its
    key=value line as a dict."""
    loadgen = os.path.join(os.path.dirname(BIN), "bench", "loadgen")
    # --heartbeat-ms 1000: the default, so a long SUBMIT that starved
    # heartbeats would show up as redone attempts (runs > N).
    r = subprocess.run([loadgen, "--workers", str(k), "--slots", "8", "--steps", str(n),
                        "--heartbeat-ms", "1000", "--coordinator-bin",
                        os.path.join(BIN, "cohort-coordinator"), "--timeout-s", "900", *store_args],
                       capture_output=True, text=True, timeout=1000)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen K={k} N={n} {' '.join(store_args)} failed: {r.stderr.strip()[-500:]}")
    line = r.stdout.strip().splitlines()[-1]
    row = dict(kv.split("=", 1) for kv in line.split())
    if row["state"] != "completed" or int(row["runs"]) != n:
        raise RuntimeError(f"loadgen K={k} N={n}: {line}")
    print(f"      {' '.join(store_args)} {line}", file=sys.stderr)
    return row


def measure_loadgen():
    """bench/loadgen per (K, N) with --store memory, the coordinator alone;
    returns, per (K, N), the list of its runs."""
    out = []
    for k, n, reps in (LOADGEN_QUICK if QUICK else LOADGEN_FULL):
        out.append((k, n, [run_loadgen(k, n, ("--store", "memory")) for _ in range(reps)]))
    return out


class PgServer:
    """A PostgreSQL server of the benchmark's own: initdb in a temporary
    directory (as the postgres user when run as root, since PostgreSQL
    refuses root), reachable only on a Unix socket there; durable, as an
    operator runs it (fsync on)."""

    def __init__(self):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if not os.path.exists(os.path.join(bindir, "postgres")):
            bindir = "/usr/lib/postgresql/15/bin"
        self.dir = tempfile.mkdtemp(prefix="cohort-bench-pg-", dir="/tmp")
        self.port = free_ports(1)[0]
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            pw = pwd.getpwnam(user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run([os.path.join(bindir, "initdb"), "-D", self.dir + "/data", "-U", "cohort", "--auth=trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"], user=user, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc = subprocess.Popen([os.path.join(bindir, "postgres"), "-D", self.dir + "/data", "-k", self.dir,
                                      "-p", str(self.port), "-c", "listen_addresses="], user=user,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "postgres.log"), "w"))
        procs.append(self.proc)
        for _ in range(300):
            if subprocess.run(["pg_isready", "-q", "-h", self.dir, "-p", str(self.port)]).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the benchmark's PostgreSQL did not start")
        self.dbs = 0

    def fresh_uri(self):
        """A new empty database, as a --store URI."""
        self.dbs += 1
        name = f"bench{self.dbs}"
        subprocess.run(["psql", "-q", "-h", self.dir, "-p", str(self.port), "-U", "cohort", "-d", "postgres", "-c",
                        f"CREATE DATABASE {name}"], check=True, stdout=subprocess.DEVNULL)
        return f"postgresql://cohort@{self.dir.replace('/', '%2F')}:{self.port}/{name}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


# The state store's cost: the same load with each store, interleaved rep by
# rep so that a change in the machine's load hits all alike. A PostgreSQL
# run gets a database of its own.
STORE_MODES = (("memory", lambda pg: ("--store", "memory")),
               ("sqlite, --sync normal (default)", lambda pg: ("--store", "sqlite")),
               ("sqlite, --sync full", lambda pg: ("--store", "sqlite", "--sync", "full")),
               ("postgresql (one server on this machine, fsync on)", lambda pg: ("--store", pg.fresh_uri())))


def measure_store(pg):
    k, n, reps = (100, 10_000, 1) if QUICK else (100, 100_000, 3)
    runs = {label: [] for label, _ in STORE_MODES}
    for _ in range(reps):
        for label, args in STORE_MODES:
            runs[label].append(float(run_loadgen(k, n, args(pg))["steps_per_s"]))
    return k, n, runs


def measure_takeover(pg, reps):
    """Two coordinators on one database at the default lease; the leader is
    SIGKILLed at a random point of its renewal cycle. Seconds from the kill
    until the standby has loaded the state and serves (its 'listening' line)."""
    out = []
    for rep in range(reps):
        uri = pg.fresh_uri()
        eps = [free_ports(3) for _ in range(2)]
        logs = [os.path.join(workdir, f"takeover{rep}-c{i}.log") for i in range(2)]

        def coordinator(i):
            c, w, x = eps[i]
            return start([os.path.join(BIN, "cohort-coordinator"), "--store", uri, "--name", f"c{i}",
                          "--client-endpoint", f"tcp://127.0.0.1:{c}", "--worker-endpoint", f"tcp://127.0.0.1:{w}",
                          "--cancel-endpoint", f"tcp://127.0.0.1:{x}", "--log-level", "info"], os.path.basename(logs[i]))

        def logged(i, what):
            with open(logs[i]) as fh:
                return what in fh.read()

        def wait_for(cond, limit=30):
            deadline = time.time() + limit
            while not cond():
                if time.time() > deadline:
                    raise RuntimeError("takeover: the coordinators did not get there; see " + " ".join(logs))
                time.sleep(0.01)

        leader = coordinator(0)
        wait_for(lambda: logged(0, "event=listening"))
        standby = coordinator(1)
        wait_for(lambda: logged(1, "event=leader_seen"))
        time.sleep(0.25 * (rep % 4) + 0.1)  # a different point of the leader's 1 s renewal cycle each rep
        t0 = time.time()
        leader.kill()
        wait_for(lambda: logged(1, "event=listening"))
        out.append(time.time() - t0)
        print(f"      takeover {rep + 1}: {out[-1]:.2f} s", file=sys.stderr)
        stop_procs([leader, standby])
    return out


def main():
    global CLIENT
    CLIENT, _, main_ps, _ = start_cluster("bench", 2, 4)

    rows = []  # (what, cohort, peer label, peer, ratio, target)

    # 1. process-step throughput ------------------------------------------------
    print(f"[1/6] throughput: {N_STEPS} x true, parallelism {PAR}, {REPS_TP} reps", file=sys.stderr)
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
    print(f"[2/6] timeouts: {N_TIMEOUT} x sleep 30 with {TIMEOUT_S}s timeout, {REPS_TO} reps", file=sys.stderr)
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
    print(f"[3/6] dispatch latency: {N_DISPATCH} one-step groups", file=sys.stderr)
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

    stop_procs(main_ps)

    # 4. cancel latency -------------------------------------------------------------
    print(f"[4/6] cancel latency: {N_SIB} siblings + 1 failing step on 4 workers x 8 slots, "
          f"killpg floor, parallel --halt now,fail=1; {REPS_CANCEL} reps", file=sys.stderr)
    cx = measure_cancel(REPS_CANCEL)

    # 5. worker-loss recovery -------------------------------------------------------
    print(f"[5/6] worker-loss recovery: SIGKILL the step's worker, default heartbeat; {REPS_LOSS} reps",
          file=sys.stderr)
    loss = measure_worker_loss(REPS_LOSS)

    # 6. coordinator throughput without process spawns ------------------------------
    print("[6/6] coordinator throughput: bench/loadgen, simulated workers x 8 slots", file=sys.stderr)
    lg = measure_loadgen()
    pg = PgServer()
    st_k, st_n, st_runs = measure_store(pg)
    print("[6/6] takeover: the leader of two coordinators on PostgreSQL SIGKILLed", file=sys.stderr)
    takeover = measure_takeover(pg, 2 if QUICK else 7)
    pg.stop()

    # table ---------------------------------------------------------------------
    def mm(xs, fmt):
        return f"{fmt(statistics.median(xs))} [{fmt(min(xs))}–{fmt(max(xs))}]"

    js = lambda v: f"{v:,.0f}"
    ms = lambda v: f"{v * 1000:.1f}"
    med = statistics.median
    print()
    print(f"bench/run{' --quick' if QUICK else ''}: {os.cpu_count()} CPUs, "
          f"coordinator + 2 workers x 4 slots on loopback (cancel latency: 4 x 8 slots; worker loss: "
          f"2 x 4 slots, default heartbeat); median [min–max] over reps")
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
              f"{(f'{p99 / c99:.0f}× less late (p99)') if c99 >= 0.001 else 'cohort p99 < 1 ms late'} | p99 ≤ 20 ms "
              f"{'met' if c99 <= 0.020 else 'MISSED'}"
              f"{f'; but kills up to {ms(-min(c))} ms EARLY' if min(c) < -0.001 else ''} |")
    print(f"| dispatch latency, submit → step's process running, ms: p50 / p99 [min–max], n={len(disp)} | "
          f"{ms(pct(disp, 50))} / {ms(pct(disp, 99))} [{ms(min(disp))}–{ms(max(disp))}] | plain fork+exec from "
          f"the client | {ms(pct(floor, 50))} / {ms(pct(floor, 99))} | "
          f"+{ms(pct(disp, 50) - pct(floor, 50))} ms (p50) | (none set) |")
    sms = lambda v: f"{v * 1000:+.1f}"
    c50, c99, cmax = pct(cx["cohort"], 50), pct(cx["cohort"], 99), max(cx["cohort"])
    f50, f99, fmax = pct(cx["floor"], 50), pct(cx["floor"], 99), max(cx["floor"])
    p50, p99, pmax = pct(cx["parallel"], 50), pct(cx["parallel"], 99), max(cx["parallel"] or [float("nan")])
    n = len(cx["cohort"])
    last = lambda k: f"{ms(statistics.median(cx[k]))} [{ms(min(cx[k]))}–{ms(max(cx[k]))}]" if cx[k] else "–"
    print(f"| cancel latency, failing step's exit → each sibling's TERM trap, ms: p50 / p99 / max, "
          f"{N_SIB} siblings x {REPS_CANCEL} reps (n={n}{', ' + str(cx['cohort_missing']) + ' NO TERM' if cx['cohort_missing'] else ''}) | "
          f"{ms(c50)} / {ms(c99)} / {ms(cmax)} | plain `killpg` loop (floor) | {ms(f50)} / {ms(f99)} / {ms(fmax)} | "
          f"{sms(c50 - f50)} / {sms(c99 - f99)} / {sms(cmax - fmax)} ms | p50 ≤ floor+2 ms "
          f"{'met' if c50 - f50 <= 0.002 else 'MISSED'}; p99 ≤ floor+10 ms {'met' if c99 - f99 <= 0.010 else 'MISSED'} |")
    print(f"| | | `parallel --halt now,fail=1 -j {N_SIB + 1}`"
          f"{' (' + str(cx['parallel_missing']) + ' of ' + str(N_SIB * REPS_CANCEL) + ' got no TERM)' if cx['parallel_missing'] else ''} | "
          f"{ms(p50)} / {ms(p99)} / {ms(pmax)} | {p50 / c50:.1f}× / {p99 / c99:.1f}× cohort's (p50 / p99) | |")
    print(f"| cancel: last sibling's TERM per rep, ms, median [min–max] | {last('cohort_last')} | floor / parallel | "
          f"{last('floor_last')} / {last('parallel_last')} | {sms(statistics.median(cx['cohort_last']) - statistics.median(cx['floor_last']))} ms vs floor | "
          f"(p99 target above) |")
    print(f"| cancel: failing step's exit → `submit --wait` returns, ms, median [min–max]; group processes alive "
          f"then | {mm(cx['wait'], ms)}; alive: {sum(cx['alive'])} | parallel: alive when it returned | "
          f"{sum(cx['parallel_alive'])} | | none alive {'met' if sum(cx['alive']) == 0 else 'MISSED'} |")
    print(f"| worker-loss recovery, SIGKILL of the step's worker, restarted at once → step running again, s, "
          f"median [min–max], {len(loss)} reps, heartbeat 1000 ms x liveness 3 | {mm(loss, lambda v: f'{v:.2f}')} | "
          f"Celery / Ray / Kubernetes defaults | ~120 / tens of s / ~300 (documented defaults, not run) | "
          f"{120 / statistics.median(loss):.0f}× / – / {300 / statistics.median(loss):.0f}× faster | (none set) |")
    for k, n, runs in lg:
        col = lambda key: [float(r[key]) for r in runs]
        sps = col("steps_per_s")
        best = statistics.median(sps)
        target = ""
        if k == 100:
            target = f"≥ 100,000 steps/s {'met' if best >= 100_000 else 'MISSED'}"
        if n >= 1_000_000:
            target += "; 10⁶-step group finished: met"
        mid = lambda key, f="{:.2f}": f.format(statistics.median(col(key)))
        print(f"| coordinator throughput (bench/loadgen), K={k} simulated workers x 8 slots, N={n:,} steps, "
              f"{len(runs)} run(s): steps/s submit → result, median [min–max]; median submit / dispatch / result s; "
              f"coord CPU s; peak RSS MiB, B/step | {mm(sps, js)}; {mid('submit_s')} / {mid('dispatch_s')} / "
              f"{mid('result_s')}; {mid('coord_cpu_s')}; {statistics.median(col('coord_peak_rss_kib')) / 1024:.0f}, "
              f"{mid('rss_per_step_b', '{:.0f}')} | Ray / Dask (published) | 8,000–21,000 tasks/s / ~1 ms per task | "
              f"{best / 21_000:.1f}× Ray's top | {target} |")
    mem = statistics.median(st_runs["memory"])
    for label, _ in STORE_MODES[1:3]:
        got = statistics.median(st_runs[label])
        goal = 0.7 if "normal" in label else 0.4
        print(f"| coordinator throughput with the state store, {label}, K={st_k} x 8 slots, N={st_n:,} steps, "
              f"{len(st_runs[label])} run(s) interleaved, steps/s | {mm(st_runs[label], js)} | `--store memory` | "
              f"{mm(st_runs['memory'], js)} | **{got / mem:.2f}×** | ≥ {goal}× {'met' if got / mem >= goal else 'MISSED'} |")
    pg_label, sq_label = STORE_MODES[3][0], STORE_MODES[1][0]
    got, sq = statistics.median(st_runs[pg_label]), statistics.median(st_runs[sq_label])
    print(f"| coordinator throughput with the state store, {pg_label}, K={st_k} x 8 slots, N={st_n:,} steps, "
          f"{len(st_runs[pg_label])} run(s) interleaved, steps/s | {mm(st_runs[pg_label], js)} | `--store sqlite` | "
          f"{mm(st_runs[sq_label], js)} | **{got / sq:.2f}×** | ≥ 0.5× {'met' if got / sq >= 0.5 else 'MISSED'} |")
    print(f"| takeover after SIGKILL of the leader, default --leader-lease-ms 4000, s until the standby serves, "
          f"{len(takeover)} reps | median {statistics.median(takeover):.2f}, max {max(takeover):.2f} | — | — | — | "
          f"≤ 5 s {'met' if max(takeover) <= 5 else 'MISSED'} |")
    print()
    print("Timeout lateness = time from start to kill − 0.2 s. 'Seen by the step': bash records $EPOCHREALTIME "
          "when it starts and in its TERM trap (its start is ~1–2 ms after the spawn, which this hides). "
          "'From records': cohort's history[].finished_at − started_at (ms, coordinator's clock of the "
          "reports); parallel's joblog JobRuntime. Dispatch latency: client wall clock just before running "
          "`cohort submit -- date +%s.%N` to the time that date prints. "
          "Cancel latency: every sibling is `bash` that traps TERM, starts `sleep 60 &`, records $EPOCHREALTIME "
          "and waits; in the trap it records $EPOCHREALTIME and exits (no process spawned). The failing step "
          "waits until all 31 siblings have started, records $EPOCHREALTIME and exits 1; latencies run from "
          "that record. Floor: the same 31 siblings started here, each in its own session (setsid), then one "
          "Python loop of os.killpg(pgid, SIGTERM), timed from just before the loop. 'Alive' scans /proc/*/environ "
          "for the group's marker variable right after `cohort submit --wait` returns. Worker loss: the step "
          "records $EPOCHREALTIME at each start; time from just before SIGKILL to the second start record.")
    print()


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
