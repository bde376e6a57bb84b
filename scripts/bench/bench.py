#!/usr/bin/env python3
"""synsight benchmarks (issue 6). Run through scripts/bench.sh, as root.

Every target is measured in one run and written to docs/benchmarks.md:
  1. refusal storm: every refusal accounted for (records + summary counts),
     zero lost, at the fastest rate this machine generates;
  2. CPU per million refusals vs an equivalent bpftrace script;
  3. healthy traffic (nginx + wrk, Connection: close) with and without
     `synsight record`;
  4. start-up: launch -> attached and reading;
  5. memory of `record` over a 60 s storm;
  6. `synsight report` throughput over 1 GB of recordings.

All traffic stays on loopback inside network namespaces this script creates
(named sb<pid>-*) and deletes, even on failure; every process it starts is
stopped by its own PID. No host sysctl, rule or service is touched.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- plumbing

NS_PREFIX = f"sb{os.getpid()}-"
created_ns = []
started = []  # Popen objects
tmp_root = None


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def netns_add(name):
    full = NS_PREFIX + name
    run(["ip", "netns", "add", full])
    created_ns.append(full)
    run(["ip", "-n", full, "link", "set", "lo", "up"])
    return full


def netns_inode(ns):
    return os.stat(f"/run/netns/{ns}").st_ino


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    started.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    """Stops one process we started, by its PID; returns its rusage CPU s."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in started:
        started.remove(p)


def cleanup():
    for p in list(started):
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        except Exception:
            pass
    started.clear()
    for ns in list(created_ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        created_ns.remove(ns)
    if tmp_root and os.path.isdir(tmp_root):
        shutil.rmtree(tmp_root, ignore_errors=True)


def on_signal(signum, _frame):
    raise SystemExit(f"interrupted by signal {signum}")


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds (children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def out_rsts(ns):
    """The namespace's TcpOutRsts (ground truth for refusals sent)."""
    text = run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]).stdout
    tcp = [l.split() for l in text.splitlines() if l.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("OutRsts")])


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# BPF_ENABLE_STATS (bpf(2) command 32, type BPF_STATS_RUN_TIME): while the
# returned fd is open the kernel accounts each BPF program's run time, without
# touching the kernel.bpf_stats_enabled sysctl (nothing to restore).
def enable_bpf_stats():
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 1)(0)
    fd = libc.syscall(321, 32, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "bpf(BPF_ENABLE_STATS)")
    return fd


def bpf_run_time(pid):
    """Sum of run_time_ns and run_cnt of the BPF programs `pid` holds open
    (from /proc/<pid>/fdinfo of its bpf-prog fds; each program counted once)."""
    progs = dict(held_programs(pid))
    ns = sum(int(info.get("run_time_ns", 0)) for info in progs.values())
    cnt = sum(int(info.get("run_cnt", 0)) for info in progs.values())
    return ns, cnt, sorted(progs)


def held_programs(pid):
    """(program id, fdinfo fields) of each BPF program `pid` holds an fd of."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue
        out.append((int(info["prog_id"]), info))
    return out


def program_names():
    return {p["id"]: p.get("name", "?") for p in json.loads(run(["bpftool", "prog", "show", "-j"]).stdout)}


def linked_programs(pid):
    """Names of the BPF programs `pid` holds that are attached (have a BPF
    link): not the ones loaded but attached only on anomaly (the per-SYN
    overflow programs, OverflowArming) or run on demand (iterators)."""
    linked = {l["prog_id"] for l in json.loads(run(["bpftool", "link", "show", "-j"]).stdout)}
    names = program_names()
    return {names.get(i, str(i)) for i, _ in held_programs(pid) if i in linked}


def bpf_programs(pid):
    """{program name: (run_time_ns, run_cnt)} of the BPF programs `pid` holds."""
    names = program_names()
    return {names.get(i, str(i)): (int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
            for i, info in held_programs(pid)}


def with_tracefs(command):
    """argv running the shell `command` (which must exec the tracer) where
    tracefs is mounted: the host may not mount it, so it is mounted in a
    private mount namespace of the tracer's own (the host's mounts stay
    untouched). unshare and sh exec, so the process is the tracer itself."""
    inner = f"mount -t tracefs nodev /sys/kernel/tracing && exec {command}"
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- tools


class Synsight:
    BANNER = "synsight: tracing refusals on"

    def __init__(self, binary):
        self.binary = binary

    def start_record(self, directory, extra=()):
        """Starts `synsight record`; returns (process, seconds to ready).

        Ready = the banner on stderr, printed after every BPF program is
        attached, the listener snapshot is taken and pre-existing listeners
        are seeded; the ring buffer is polled right after it."""
        t0 = time.monotonic()
        p = spawn([self.binary, "record", "--dir", directory, *extra],
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = []
        while True:
            line = p.stderr.readline()
            if not line:
                stop(p)
                raise RuntimeError("synsight record exited before it was ready:\n" + "".join(lines))
            lines.append(line)
            if line.startswith(self.BANNER):
                return p, time.monotonic() - t0

    def stop_record(self, p):
        stop(p)
        rest = p.stderr.read()
        if p.returncode != 0:
            raise RuntimeError(f"synsight record exited with {p.returncode}: {rest}")
        return rest


def count_records(directory, netns, port):
    """Refusals to `port` in `netns` that a recording accounts for."""
    individual = summarized = lost = with_client = lines = 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(directory, name)) as f:
            for line in f:
                lines += 1
                r = json.loads(line)
                kind = r.get("kind")
                if kind == "lost":
                    lost += r.get("count", 0)
                    continue
                if r.get("netns") != netns or r.get("port") != port or r.get("reason") != "no_listener":
                    continue
                if kind == "refusal":
                    individual += 1
                    with_client += 1 if "client" in r else 0
                elif kind == "summary":
                    summarized += r.get("count", 0)
    return dict(individual=individual, summarized=summarized, lost=lost,
                with_client=with_client, lines=lines)


class Bpftrace:
    # One line per RST: time, pid, state, reason, local and remote port
    # (saddr/daddr are struct sockaddr_in6 bytes on 6.10+: port at [2..3]).
    PROGRAM = ('tracepoint:tcp:tcp_send_reset { printf("%llu %d %d %d %d %d\\n", nsecs, pid, '
               'args->state, args->reason, (args->saddr[2] << 8) | args->saddr[3], '
               '(args->daddr[2] << 8) | args->daddr[3]); }')

    def __init__(self, program=None):
        self.program = program or self.PROGRAM

    def start(self, out_path):
        err = open(out_path + ".err", "w")
        p = spawn(with_tracefs(f"bpftrace -o {out_path} -e '{self.program}'"),
                  stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(out_path):
                with open(out_path) as f:
                    if "Attaching" in f.read(4096):
                        # The pid that holds the programs is bpftrace itself
                        # (sh exec'd it inside unshare's child).
                        return p, self._bpftrace_pid(p.pid)
            if p.poll() is not None:
                raise RuntimeError("bpftrace exited: " + open(out_path + ".err").read())
            time.sleep(0.05)
        stop(p)
        raise RuntimeError("bpftrace did not attach within 60 s")

    @staticmethod
    def _bpftrace_pid(pid):
        # unshare forks (with -m it does not need to, but be safe): find the
        # bpftrace process below `pid`.
        for _ in range(100):
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            st = f.read()
                        comm = st[st.index("(") + 1:st.rindex(")")]
                        ppid = int(st.rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError):
                        continue
                    if comm == "bpftrace" and (int(entry) == pid or ppid == pid):
                        return int(entry)
            time.sleep(0.05)
        return pid

    @staticmethod
    def count(out_path, port):
        events = lost = 0
        for path in (out_path, out_path + ".err"):
            with open(path, errors="replace") as f:
                for line in f:
                    m = re.search(r"Lost (\d+) events", line)
                    if m:
                        lost += int(m.group(1))
                        continue
                    parts = line.split()
                    if len(parts) == 6 and parts[4] == str(port):
                        events += 1
        return events, lost


# ---------------------------------------------------------------- benchmarks


class Bench:
    def __init__(self, args):
        self.args = args
        self.syn = Synsight(args.synsight)
        self.results = {}
        self.port = 9

    def tmp(self, name):
        path = os.path.join(tmp_root, name)
        os.makedirs(path, exist_ok=True)
        return path

    def storm(self, ns, seconds, workers, port=None):
        """Runs the generator; returns (attempts, refused, other, wall s)."""
        t0 = time.monotonic()
        out = run(["ip", "netns", "exec", ns, self.args.refuse, "127.0.0.1",
                   str(port or self.port), str(seconds), str(workers)]).stdout.split()
        return int(out[0]), int(out[1]), int(out[2]), time.monotonic() - t0

    # -- generator calibration: which generator is fastest here?
    def calibrate(self, ns):
        secs = self.args.calibrate_seconds
        rows = []
        for w in (1, 2, 3, 4):
            before = out_rsts(ns)
            a, r, o, wall = self.storm(ns, secs, w)
            rsts = out_rsts(ns) - before
            rows.append(dict(generator=f"refuse.c, {w} process{'es' if w > 1 else ''}", workers=w,
                             rate=rsts / wall, rsts=rsts))
            log(f"calibrate: refuse.c x{w}: {rsts / wall:,.0f} refusals/s")
        # wrk against the closed port: it reconnects after every refused connect.
        before = out_rsts(ns)
        t0 = time.monotonic()
        subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t2", "-c64", f"-d{secs}s",
                        f"http://127.0.0.1:{self.port}/"], capture_output=True, text=True)
        wall = time.monotonic() - t0
        rsts = out_rsts(ns) - before
        rows.append(dict(generator="wrk -t2 -c64", workers=None, rate=rsts / wall, rsts=rsts))
        log(f"calibrate: wrk: {rsts / wall:,.0f} refusals/s")
        # A Python loop (blocking connect), for scale.
        before = out_rsts(ns)
        code = ("import socket,time\nend=time.monotonic()+%d\n"
                "while time.monotonic()<end:\n s=socket.socket()\n"
                " try: s.connect(('127.0.0.1',%d))\n except OSError: pass\n s.close()\n") % (secs, self.port)
        t0 = time.monotonic()
        run(["ip", "netns", "exec", ns, sys.executable, "-c", code])
        wall = time.monotonic() - t0
        rsts = out_rsts(ns) - before
        rows.append(dict(generator="python3 loop", workers=None, rate=rsts / wall, rsts=rsts))
        log(f"calibrate: python: {rsts / wall:,.0f} refusals/s")
        best = max((r for r in rows if r["workers"]), key=lambda r: r["rate"])
        self.workers = best["workers"]
        self.results["calibration"] = dict(rows=rows, workers=self.workers, seconds=secs)

    # -- targets 1 and 2: storms with synsight and with bpftrace, interleaved
    def storms(self, ns):
        inode = netns_inode(ns)
        secs = self.args.storm_seconds
        stats_fd = enable_bpf_stats()
        rounds = []
        try:
            for i in range(self.args.rounds):
                for tool in ("synsight", "bpftrace"):
                    rounds.append(self.one_storm(tool, ns, inode, secs, i))
        finally:
            os.close(stats_fd)
        self.results["storms"] = dict(rounds=rounds, seconds=secs, workers=self.workers)

    # -- target 1, rate: the refusal rate with `record` running against the
    # rate without it, interleaved pairs, BPF statistics off (they add two
    # clock reads to every program run: the storms above need them for the
    # CPU comparison, so their rates understate what `record` allows)
    def storm_rates(self, ns):
        secs = self.args.storm_seconds
        pairs = []
        for i in range(self.args.rate_pairs):
            order = ("untraced", "synsight") if i % 2 == 0 else ("synsight", "untraced")
            pair = {}
            for tool in order:
                p = None
                if tool == "synsight":
                    p, _ = self.syn.start_record(self.tmp(f"rate-{i}"))
                    time.sleep(0.5)
                r0 = out_rsts(ns)
                _, _, _, wall = self.storm(ns, secs, self.workers)
                pair[tool] = (out_rsts(ns) - r0) / wall
                if p:
                    self.syn.stop_record(p)
            pair["ratio"] = pair["synsight"] / pair["untraced"]
            pairs.append(pair)
            log(f"storm rate #{i}: untraced {pair['untraced']:,.0f}/s, with record {pair['synsight']:,.0f}/s "
                f"({pair['ratio'] * 100:.1f}%)")
        self.results["storm_rates"] = dict(pairs=pairs, seconds=secs, workers=self.workers,
                                           median=median([x["ratio"] for x in pairs]))

    def one_storm(self, tool, ns, inode, secs, i):
        d = self.tmp(f"storm-{tool}-{i}")
        if tool == "synsight":
            p, _ = self.syn.start_record(d)
            pid = p.pid
        else:
            out = os.path.join(d, "bpftrace.out")
            p, pid = Bpftrace().start(out)
        time.sleep(0.5)
        cpu0 = cpu_seconds(pid)
        bpf0, cnt0, names = bpf_run_time(pid)
        r0 = out_rsts(ns)
        a, refused, other, wall = self.storm(ns, secs, self.workers)
        r1 = out_rsts(ns)
        # Let the consumer drain: the ring or perf buffers hold what it has
        # not read yet; wait until its CPU time stops moving.
        last = cpu_seconds(pid)
        for _ in range(100):
            time.sleep(0.3)
            now = cpu_seconds(pid)
            if now - last < 0.005:
                break
            last = now
        cpu1 = cpu_seconds(pid)
        bpf1, cnt1, _ = bpf_run_time(pid)
        if tool == "synsight":
            stderr = self.syn.stop_record(p)
            c = count_records(d, inode, self.port)
            accounted = c["individual"] + c["summarized"]
            lost = c["lost"]
            extra = dict(records=c, summary_text=stderr.strip().splitlines()[:1])
        else:
            stop(p, signal.SIGINT)
            accounted, lost = Bpftrace.count(out, self.port)
            extra = {}
        rsts = r1 - r0
        row = dict(tool=tool, round=i, rsts=rsts, client_refused=refused, rate=rsts / wall,
                   accounted=accounted, lost=lost, user_cpu=cpu1 - cpu0,
                   bpf_cpu=(bpf1 - bpf0) / 1e9, bpf_runs=cnt1 - cnt0, programs=len(names), **extra)
        row["cpu_per_million"] = (row["user_cpu"] + row["bpf_cpu"]) / (rsts / 1e6) if rsts else float("nan")
        log(f"storm {tool} #{i}: {rsts:,} RSTs at {row['rate']:,.0f}/s, accounted {accounted:,}, lost {lost:,}, "
            f"user {row['user_cpu']:.2f} s + bpf {row['bpf_cpu']:.2f} s = {row['cpu_per_million']:.2f} s per million")
        return row

    # -- target 3: nginx under wrk with and without a tracer
    #
    # Three configurations, each its own interleaved pairs:
    #  one_client  nginx with one worker, wrk with one thread: the client's
    #              thread is the bottleneck (and on loopback it also runs the
    #              server's handshake in its softirqs), so this is the one most
    #              sensitive to a per-connection cost;
    #  saturated   nginx with a worker per CPU (Debian's `worker_processes
    #              auto`), wrk with a thread per CPU: every CPU busy, the
    #              ratio is the tracer's share of all the CPU;
    #  syscall_tp  one_client's layout with only bpftrace attached to one
    #              syscall tracepoint that never fires here (sys_exit_bind):
    #              what any syscall tracepoint costs, the part of synsight's
    #              cost that only BPF trampolines avoid.
    #  hooks_floor one_client's layout with a copy of every program `record`
    #              attaches on this kernel, same hooks, bodies `return 0`
    #              (floor-loader.c): what the hooks cost by themselves, the
    #              least any tool attributing through them can cost;
    #  hooks_floor_no_syscalls  the same without the syscall tracepoints:
    #              the hooks where BPF trampolines serve the syscalls.
    HTTP_CONFIGS = (
        ("one_client", dict(workers=1, threads=1, conns=32, tracer="synsight", stats=True)),
        ("saturated", dict(workers=None, threads=None, conns=64, tracer="synsight", stats=False)),
        ("syscall_tp", dict(workers=1, threads=1, conns=32, tracer="syscall_tp", stats=False)),
        ("hooks_floor", dict(workers=1, threads=1, conns=32, tracer="floor", stats=True, floor_skip=())),
        ("hooks_floor_no_syscalls", dict(workers=1, threads=1, conns=32, tracer="floor", stats=False,
                                         floor_skip=("tracepoint/syscalls/",))),
    )

    def healthy(self, ns):
        ncpu = os.cpu_count() or 1
        out = {}
        self.floors = self._build_floors()
        for name, c in self.HTTP_CONFIGS:
            c = dict(c, workers=c["workers"] or ncpu, threads=c["threads"] or ncpu)
            out[name] = self._healthy_config(ns, name, c)
            if name in self.floors:
                out[name]["programs"] = self.floors[name][1]
        self.results["healthy"] = out

    # Iterators run only when read (at start-up), not per connection.
    # Programs `record` holds but runs on demand, not on a hook (the
    # listener iterator, the bare raw_tp run with BPF_PROG_TEST_RUN): the
    # floor has nothing to attach for them. Mirrors BPFProgram.runOnDemand.
    FLOOR_SKIP_SECTIONS = ("iter/",)
    FLOOR_SKIP_EXACT = ("raw_tp", "raw_tracepoint")

    def _build_floors(self):
        """Writes and compiles the hooks-only copies of what `record` attaches
        here: the names of the programs a running `record` has attached (with
        a BPF link), each with its section (hook) from synsight's BPF object,
        body `return 0`.
        Returns {config name: (object path, [(name, section)])}."""
        p, _ = self.syn.start_record(self.tmp("floor-probe"))
        try:
            attached = linked_programs(p.pid)
        finally:
            self.syn.stop_record(p)
        sections = dict(line.split(" ", 1) for line in
                        run([self.args.floor_loader, "sections", self.args.bpf_object]).stdout.splitlines())
        programs = []
        for name in sorted(attached):
            # bpftool names come from BTF (full) or the kernel's 15-character
            # program name: match either.
            full = name if name in sections else next((n for n in sections if n[:15] == name), None)
            if full is None:
                raise RuntimeError(f"hooks_floor: record holds program {name!r}, not in {self.args.bpf_object}")
            sec = sections[full]
            if not sec.startswith(self.FLOOR_SKIP_SECTIONS) and sec not in self.FLOOR_SKIP_EXACT:
                programs.append((full, sections[full]))
        floors = {}
        for cname, c in self.HTTP_CONFIGS:
            if c["tracer"] != "floor":
                continue
            chosen = [(n, sec) for n, sec in programs if not sec.startswith(c["floor_skip"])]
            d = self.tmp(cname)
            src = os.path.join(d, "floor.bpf.c")
            with open(src, "w") as f:
                f.write('char LICENSE[] __attribute__((section("license"), used)) = "GPL";\n')
                for name, section in chosen:
                    # cgroup programs allow with 1 (0 would refuse every
                    # connect()); every other kind ignores the value.
                    verdict = 1 if section.startswith("cgroup") else 0
                    f.write(f'__attribute__((section("{section}"), used)) int {name}(void *ctx) {{ return {verdict}; }}\n')
            obj = os.path.join(d, "floor.bpf.o")
            run(["clang", "-target", "bpf", "-O2", "-g", "-c", src, "-o", obj])
            log(f"{cname}: {len(chosen)} programs: " + ", ".join(f"{n} ({s})" for n, s in chosen))
            floors[cname] = (obj, chosen)
        return floors

    def _nginx(self, ns, workers):
        d = self.tmp(f"nginx-{workers}")
        for sub in ("logs", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:8080 backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
""")
        nginx = spawn(["ip", "netns", "exec", ns, "nginx", "-e", "stderr", "-p", d, "-c", conf,
                       "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            if self._port_open(ns, 8080):
                return nginx
            time.sleep(0.1)
        stop(nginx, signal.SIGQUIT)
        raise RuntimeError("nginx did not start listening on 127.0.0.1:8080")

    def _start_tracer(self, kind, tag, config):
        """Starts the compared tracer; returns a function that stops it."""
        if kind == "synsight":
            p, _ = self.syn.start_record(self.tmp(tag))
            return lambda: self.syn.stop_record(p)
        if kind == "floor":
            return self._start_floor(*self.floors[config])
        bt = Bpftrace(program="tracepoint:syscalls:sys_exit_bind { @n = count(); }")
        p, _ = bt.start(os.path.join(self.tmp(tag), "bpftrace.out"))
        # bpftrace is the process itself (unshare and sh exec it); its exit
        # closes the perf event, which detaches the tracepoint.
        return lambda: stop(p, signal.SIGINT)

    def _start_floor(self, obj, programs):
        return self._spawn_floor(obj, programs)[1]

    def _spawn_floor(self, obj, programs):
        """The floor loader, attached: (its process, a function stopping it)."""
        # Its classic syscall tracepoints need tracefs.
        p = spawn(with_tracefs(f"{self.args.floor_loader} attach {obj}"),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        want = sorted(n for n, _ in programs)
        if not line.startswith("floor: attached") or sorted(line.split()[2:]) != want:
            stop(p)
            raise RuntimeError(f"floor-loader did not attach {want}: {line}{p.stderr.read()}")
        return p, lambda: stop(p, signal.SIGINT)

    def _healthy_config(self, ns, name, c):
        nginx = self._nginx(ns, c["workers"])
        wrk = lambda secs: self.wrk(ns, secs, c["threads"], c["conns"])
        breakdown = None
        try:
            wrk(2)  # warm-up
            runs = []
            secs = self.args.http_seconds
            for i in range(self.args.http_pairs):
                order = ("without", "with") if i % 2 == 0 else ("with", "without")
                pair = {}
                for mode in order:
                    if mode == "with":
                        stop_tracer = self._start_tracer(c["tracer"], f"http-{name}-{i}", name)
                        time.sleep(0.3)
                        try:
                            pair[mode] = wrk(secs)
                        finally:
                            stop_tracer()
                    else:
                        pair[mode] = wrk(secs)
                pair["ratio"] = pair["with"] / pair["without"]
                runs.append(pair)
                log(f"http {name} pair {i}: without {pair['without']:,.0f} req/s, with {pair['with']:,.0f} req/s, "
                    f"ratio {pair['ratio']:.3f}")
            if c["stats"]:
                breakdown = self._healthy_breakdown(wrk, secs, name if c["tracer"] == "floor" else None)
        finally:
            stop(nginx, signal.SIGQUIT)
        return dict(runs=runs, seconds=secs, breakdown=breakdown, workers=c["workers"], threads=c["threads"],
                    conns=c["conns"], tracer=c["tracer"], median_ratio=median([r["ratio"] for r in runs]))

    def _healthy_breakdown(self, wrk, secs, floor=None):
        # Where the overhead goes: one more run with BPF statistics on (not
        # part of the ratio: the statistics cost time themselves). For a
        # floor configuration, its empty programs: what the statistics
        # measure for programs that do nothing, on the same hooks.
        if floor:
            p, stop_it = self._spawn_floor(*self.floors[floor])
        else:
            p, _ = self.syn.start_record(self.tmp("http-stats"))
            stop_it = lambda: self.syn.stop_record(p)
        time.sleep(0.3)
        stats_fd = enable_bpf_stats()
        try:
            before = bpf_programs(p.pid)
            cpu0 = cpu_seconds(p.pid)
            rps = wrk(secs)
            cpu1 = cpu_seconds(p.pid)
            after = bpf_programs(p.pid)
        finally:
            os.close(stats_fd)
        stop_it()
        requests = rps * secs
        per_prog = {}
        for name, (t, c) in after.items():
            t0, c0 = before.get(name, (0, 0))
            if c - c0 > 0:
                per_prog[name] = dict(ns_per_request=(t - t0) / requests, runs_per_request=(c - c0) / requests)
        b = dict(requests_per_s=rps, user_cpu_us_per_request=(cpu1 - cpu0) / requests * 1e6,
                 bpf_ns_per_request=sum(v["ns_per_request"] for v in per_prog.values()), programs=per_prog)
        log(f"http overhead: {b['bpf_ns_per_request']:.0f} ns of BPF and "
            f"{b['user_cpu_us_per_request']:.2f} us of synsight CPU per request")
        return b

    def _port_open(self, ns, port):
        code = ("import socket,sys\ns=socket.socket()\ns.settimeout(0.5)\n"
                "sys.exit(0 if s.connect_ex(('127.0.0.1',%d))==0 else 1)") % port
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                              capture_output=True).returncode == 0

    def wrk(self, ns, secs, threads=1, conns=32):
        out = run(["ip", "netns", "exec", ns, "wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s",
                   "-H", "Connection: close", "http://127.0.0.1:8080/"]).stdout
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if errors and "connect 0" not in errors.group(1):
            log(f"wrk socket errors: {errors.group(1)}")
        return float(m.group(1))

    # -- target 4: launch -> ready
    def startup(self):
        times = []
        for i in range(self.args.startup_runs):
            p, t = self.syn.start_record(self.tmp(f"startup-{i}"))
            self.syn.stop_record(p)
            times.append(t)
        self.results["startup"] = dict(times=times, median=median(times))
        log(f"start-up: median {median(times) * 1000:.0f} ms over {len(times)} runs")

    # -- target 5: RSS over a 60 s storm
    def memory(self, ns):
        d = self.tmp("memory")
        p, _ = self.syn.start_record(d)
        secs = self.args.memory_seconds
        gen = spawn(["ip", "netns", "exec", ns, self.args.refuse, "127.0.0.1", str(self.port),
                     str(secs), str(self.workers)], stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        samples = []
        while gen.poll() is None:
            samples.append((time.monotonic() - t0, rss_kb(p.pid)))
            time.sleep(max(0.0, len(samples) - (time.monotonic() - t0)))
        gen_out = gen.stdout.read().split()
        started.remove(gen)
        hwm = hwm_kb(p.pid)
        self.syn.stop_record(p)
        at = lambda s: min(samples, key=lambda x: abs(x[0] - s))[1]
        after10 = [kb for t, kb in samples if t >= 10]
        res = dict(samples=samples, peak_kb=max(hwm, max(kb for _, kb in samples)),
                   rss10_kb=at(10), rss_end_kb=samples[-1][1], max_after10_kb=max(after10),
                   seconds=secs, refusals=int(gen_out[1]) if gen_out else None)
        res["growth_kb"] = res["max_after10_kb"] - res["rss10_kb"]
        self.results["memory"] = res
        log(f"memory: peak {res['peak_kb'] / 1024:.1f} MB, at 10 s {res['rss10_kb'] / 1024:.1f} MB, "
            f"max after 10 s {res['max_after10_kb'] / 1024:.1f} MB")

    # -- target 6: report over 1 GB
    def report(self, ns):
        src = self.tmp("report-src")
        # Realistic records: a storm recorded without folding (every refusal
        # its own line, with the client joined), then replicated.
        p, _ = self.syn.start_record(src, ["--aggregate", "0"])
        self.storm(ns, 3, 1)
        time.sleep(0.5)
        self.syn.stop_record(p)
        with open(os.path.join(src, "synsight.jsonl"), "rb") as f:
            block = f.read()
        if not block:
            raise RuntimeError("the source recording for the report benchmark is empty")
        d = self.tmp("report-1g")
        target = self.args.report_bytes
        per_file = 64 << 20
        total = 0
        n = 0
        while total < target:
            with open(os.path.join(d, f"synsight-20260101T{n:06d}.000000000Z.jsonl"), "wb") as f:
                written = 0
                while written < per_file and total + written < target:
                    f.write(block)
                    written += len(block)
            total += written
            n += 1
        os.sync()
        # Warm the page cache so the disk is not what is measured.
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 24):
                    pass
        runs = []
        for fmt in ("text", "json"):
            t0 = time.monotonic()
            rp = spawn([self.syn.binary, "report", d, "--format", fmt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
            samples = []
            while rp.poll() is None:
                kb = rss_kb(rp.pid)
                if kb:
                    samples.append((time.monotonic() - t0, kb))
                time.sleep(0.1)
            wall = time.monotonic() - t0
            started.remove(rp)
            err = rp.stderr.read().decode(errors="replace")
            if rp.returncode != 0:
                raise RuntimeError(f"synsight report exited with {rp.returncode}: {err[:500]}")
            quarter = [kb for t, kb in samples if t >= wall * 0.25] or [samples[-1][1]]
            runs.append(dict(format=fmt, seconds=wall, mb_per_s=total / wall / 1e6,
                             peak_kb=max(kb for _, kb in samples), rss_quarter_kb=quarter[0],
                             rss_end_kb=samples[-1][1], growth_kb=max(quarter) - quarter[0]))
            log(f"report --format {fmt}: {total / 1e6:,.0f} MB in {wall:.2f} s = {total / wall / 1e6:,.0f} MB/s, "
                f"peak RSS {runs[-1]['peak_kb'] / 1024:.1f} MB")
        shutil.rmtree(d, ignore_errors=True)
        self.results["report"] = dict(bytes=total, files=n, runs=runs, line_bytes=len(block))


# ---------------------------------------------------------------- main


def wait_quiet(max_wait, threshold):
    t0 = time.monotonic()
    while True:
        la = loadavg()
        if la < threshold:
            return la, time.monotonic() - t0, True
        if time.monotonic() - t0 >= max_wait:
            return la, time.monotonic() - t0, False
        log(f"load average {la:.2f} >= {threshold}: waiting for a quiet machine")
        time.sleep(30)


def main():
    global tmp_root
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synsight", required=True)
    ap.add_argument("--refuse", required=True)
    ap.add_argument("--floor-loader", required=True, help="scripts/bench/floor-loader.c, built")
    ap.add_argument("--bpf-object", required=True, help="synsight's BPF object (refusals.bpf.o)")
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--only", default="calibrate,storms,healthy,startup,memory,report")
    ap.add_argument("--quick", action="store_true", help="short runs, for developing the harness")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    ap.add_argument("--workers", type=int, help="skip calibration's choice")
    args = ap.parse_args()
    q = args.quick
    args.calibrate_seconds = 1 if q else 3
    args.storm_seconds = 3 if q else 10
    args.rounds = 1 if q else 3
    # The rate target's margin (90% of untraced) is near the pairs' spread
    # (0.89-0.95 in one run): more pairs for a steadier median.
    args.rate_pairs = 1 if q else 5
    args.http_seconds = 3 if q else 6
    args.http_pairs = 2 if q else 10
    args.startup_runs = 3 if q else 15
    args.memory_seconds = 15 if q else 60
    args.report_bytes = (128 << 20) if q else (1 << 30)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    tmp_root = tempfile.mkdtemp(prefix="synsight-bench-")
    only = set(args.only.split(","))
    b = Bench(args)
    b.results["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        if args.no_wait:
            quiet = (loadavg(), 0.0, loadavg() < 0.8)
        else:
            quiet = wait_quiet(30 * 60, 0.8)
        b.results["load_at_start"] = dict(load1=quiet[0], waited_s=quiet[1], quiet=quiet[2])
        storm_ns = netns_add("storm")
        b.workers = args.workers or 2
        if "calibrate" in only and not args.workers:
            b.calibrate(storm_ns)
        if "storms" in only:
            b.storms(storm_ns)
            b.storm_rates(storm_ns)
        if "startup" in only:
            b.startup()
        if "memory" in only:
            b.memory(storm_ns)
        if "report" in only:
            b.report(storm_ns)
        if "healthy" in only:
            b.healthy(netns_add("http"))
        with open("/proc/loadavg") as f:
            b.results["load_at_end"] = float(f.read().split()[0])
    finally:
        cleanup()
    with open(args.out, "w") as f:
        json.dump(b.results, f, indent=1)


if __name__ == "__main__":
    main()
