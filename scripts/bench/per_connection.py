#!/usr/bin/env python3
"""BPF program runs and run time per healthy TCP connection (issue 16).

Runs `synsight record --bpf-stats --metrics-address` and, in a network
namespace this script creates (and deletes, even on failure), N healthy
loopback connections like a `Connection: close` web request: the client
connects and sends a request, the server accepts, answers and closes, the
client reads to EOF and closes. Both ends are on this host, so each
connection is traced on both sides.

The per-program counters come from synsight's own metrics
(synsight_bpf_program_runs_total, synsight_bpf_program_run_seconds_total).
They count the whole host: an idle window of the same length before the
connections measures the background (other processes' syscalls, forks,
packets), which is subtracted. Prints one row per program: runs and ns per
connection (BPF statistics add two clock reads to every run, so small
programs look dearer than they are).

    sudo python3 scripts/bench/per_connection.py [--connections 4000] [--json FILE]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NS = f"spc{os.getpid()}"
CLIENT = r"""
import socket, sys, threading
n, port = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(128)
def serve():
    for _ in range(n):
        c, _ = srv.accept()
        c.recv(256)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        c.close()
t = threading.Thread(target=serve)
t.start()
print("ready", flush=True)
sys.stdin.readline()
for _ in range(n):
    c = socket.socket()
    c.connect(("127.0.0.1", port))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while c.recv(256):
        pass
    c.close()
t.join()
print("done", flush=True)
"""


def log(msg):
    print(f"per-connection: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def scrape(port):
    """{program: (hook, runs, seconds)} and the scrape time."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
    text = data.decode().split("\r\n\r\n", 1)[1]
    out = {}
    pat = re.compile(r'^synsight_bpf_program_(runs|run_seconds)_total\{program="([^"]+)",hook="([^"]+)"\} (\S+)$')
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            kind, prog, hook, v = m.groups()
            h, r, s = out.get(prog, (hook, 0.0, 0.0))
            out[prog] = (hook, float(v), s) if kind == "runs" else (hook, r, float(v))
    return out, time.monotonic()


def delta(a, b):
    return {p: (b[p][0], b[p][1] - a.get(p, (0, 0, 0))[1], b[p][2] - a.get(p, (0, 0, 0))[2]) for p in b}


def measure(binary, n, force_hooks=(), extra=(), idle=5.0):
    """Runs `record --bpf-stats` and `n` healthy loopback connections in a
    namespace of its own; returns {"connections", "seconds", "programs":
    [{program, hook, runs, ns, background_runs_per_s}], "total_runs",
    "total_ns"} per connection, the background of an idle window of `idle`
    seconds subtracted. Also used by the kernel matrix (scenarios.py) in its
    guests, where the run counts are exact."""
    tmp = tempfile.mkdtemp(prefix="synsight-per-conn.")
    rec = client = None
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        mport = free_port()
        err = open(f"{tmp}/record.err", "w+")
        rec = subprocess.Popen([binary, "record", "--dir", f"{tmp}/rec", "--bpf-stats"] + list(extra)
                               + [a for h in force_hooks for a in ("--force-hook", h)] + [
                                "--metrics-address", f"127.0.0.1:{mport}"], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while "synsight: tracing" not in open(f"{tmp}/record.err").read():
            if rec.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("record did not start: " + open(f"{tmp}/record.err").read())
            time.sleep(0.1)
        client = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", CLIENT, str(n), str(free_port())],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if client.stdout.readline().strip() != "ready":
            raise RuntimeError("the client did not start")
        time.sleep(1.5)  # metrics are updated about every second
        s0, t0 = scrape(mport)
        # Idle window: the host's background on the same programs.
        log("idle window (background)...")
        time.sleep(idle + 1.2)
        s1, t1 = scrape(mport)
        log(f"{n} connections...")
        start = time.monotonic()
        client.stdin.write("go\n")
        client.stdin.flush()
        if client.stdout.readline().strip() != "done":
            raise RuntimeError("the client failed")
        busy = time.monotonic() - start
        time.sleep(1.2)
        s2, t2 = scrape(mport)
    finally:
        for p in (client, rec):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    bg, fg = delta(s0, s1), delta(s1, s2)
    scale = (t2 - t1) / (t1 - t0)
    rows = []
    for prog, (hook, runs, secs) in fg.items():
        _, bruns, bsecs = bg.get(prog, (hook, 0, 0))
        r = max(0.0, runs - bruns * scale) / n
        ns = max(0.0, secs - bsecs * scale) * 1e9 / n
        rows.append({"program": prog, "hook": hook, "runs": round(r, 2), "ns": round(ns),
                     "background_runs_per_s": round(bruns / (t1 - t0), 1)})
    rows.sort(key=lambda r: (-r["ns"], -r["runs"], r["program"]))
    return {"connections": n, "seconds": busy, "idle_seconds": t1 - t0, "busy_seconds": t2 - t1, "programs": rows,
            "total_runs": round(sum(r["runs"] for r in rows), 2), "total_ns": sum(r["ns"] for r in rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=4000)
    ap.add_argument("--synsight", default=None, help="the synsight binary (default: .build/release, else .build/debug)")
    ap.add_argument("--json", help="also write the result as JSON to this file")
    ap.add_argument("--force-hook", action="append", default=[], metavar="AREA=HOOK",
                    help="passed to record (e.g. connect=inet_sock_set_state measures the state-change hook)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("per-connection: needs root (BPF, network namespaces)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = args.synsight or next((p for p in (f"{root}/.build/release/synsight", f"{root}/.build/debug/synsight")
                                    if os.access(p, os.X_OK)), None)
    if not binary:
        sys.exit("per-connection: no synsight binary: run `swift build -c release` (or pass --synsight)")
    try:
        res = measure(binary, args.connections, args.force_hook, os.environ.get("PER_CONN_EXTRA", "").split())
    except RuntimeError as e:
        sys.exit(f"per-connection: {e}")
    n, busy = res["connections"], res["seconds"]
    print(f"{n} healthy loopback connections in {busy:.1f} s ({n / busy:,.0f}/s), both ends on this host; "
          f"background subtracted (idle {res['idle_seconds']:.1f} s, busy {res['busy_seconds']:.1f} s)")
    print()
    print("| program | hook | runs per connection | BPF ns per connection | background runs/s |")
    print("|---|---|---|---|---|")
    for r in res["programs"]:
        if r["runs"] < 0.005 and r["ns"] < 1:
            continue
        print(f"| `{r['program']}` | `{r['hook']}` | {r['runs']:.2f} | {r['ns']:,} | {r['background_runs_per_s']:,} |")
    print(f"| **total** | | **{res['total_runs']:.2f}** | **{res['total_ns']:,}** | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
