#!/usr/bin/env python3
"""Writes the fixture recording used by the report golden tests: a rotated,
gzipped file and the active file, as `synsight record --compress` leaves
them. Deterministic (fixed times, no randomness); run it again only to change
the fixture, then regenerate the goldens (SYNSIGHT_UPDATE_GOLDEN=1)."""
import gzip, json, os, sys

BASE = 1795317000  # 2026-11-22T03:10:00Z

def ts(sec, frac=0):
    import datetime
    t = datetime.datetime.fromtimestamp(BASE + sec, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % frac

def line(o):
    return json.dumps(o, separators=(",", ":"), ensure_ascii=True) + "\n"

nginx = {"pid": 1234, "comm": "nginx", "exe": "/usr/sbin/nginx"}
java = {"pid": 4321, "comm": "java", "exe": "/usr/lib/jvm/java-17/bin/java"}
curl = {"pid": 5555, "comm": "curl", "exe": "/usr/bin/curl"}
evil = {"pid": 666, "comm": "<script>alert(\"x\")</script> & 'q' \x1b[31m\u202eevil", "exe": "/tmp/a&b<c>"}

def no_listener(sec, frac, port=8080):
    return {"v": 1, "ts": ts(sec, frac), "kind": "refusal", "reason": "no_listener", "cause": "listener_exited",
            "port": port, "family": "ipv4", "netns": 4026531833,
            "local": {"addr": "10.0.0.1", "port": port}, "remote": {"addr": "10.0.0.2", "port": 40000 + sec},
            "process": nginx, "client": curl,
            "evidence": {"exited_at": ts(4), "signal": 9, "signal_name": "SIGKILL", "hook": "tp_btf/tcp_send_reset"},
            "hint": "nginx (pid 1234) was killed by SIGKILL and nothing listens on port 8080 since: restart the service"}

def summary(base, count, first, last):
    s = dict(base)
    s.update({"kind": "summary", "ts": ts(last, 900000000), "count": count,
              "first_ts": ts(first, 100000000), "last_ts": ts(last, 900000000)})
    s["evidence"] = dict(s["evidence"], summarized_kind=base["kind"])
    return s

def overflow(sec, frac):
    return {"v": 1, "ts": ts(sec, frac), "kind": "drop", "reason": "accept_queue_full",
            "cause": "listener_not_accepting", "port": 9090, "family": "ipv6", "netns": 4026531833,
            "local": {"addr": "::1", "port": 9090}, "remote": {"addr": "::1", "port": 50000 + sec},
            "process": java,
            "evidence": {"stage": "syn", "accept_queue": 129, "max_backlog": 128, "syn_queue": 0,
                         "somaxconn": 4096, "listener_drops": 3,
                         "method": "tp_btf/consume_skb in tcp_rcv_state_process + listener sk_drops"},
            "hint": "java (pid 4321) does not accept fast enough: accept queue 129/128"}

def firewall(sec):
    return {"v": 1, "ts": ts(sec), "kind": "drop", "reason": "firewall_drop",
            "port": 5432, "family": "ipv4", "netns": 4026531833,
            "local": {"addr": "10.0.0.1", "port": 5432}, "remote": {"addr": "10.0.0.9", "port": 33000 + sec},
            "evidence": {"method": "retransmission", "chain_hook": "input", "mark": 0, "drops": 2,
                         "table": "inet filter", "chain": "input", "handle": 17,
                         "rule": "tcp dport 5432 ip saddr != 10.0.0.0/29 drop", "rule_method": "ruleset_match",
                         "hook": "tp_btf/kfree_skb (NETFILTER_DROP)"},
            "hint": "nft rule 'tcp dport 5432 ip saddr != 10.0.0.0/29 drop' (table inet filter, chain input, handle 17) dropped the SYN"}

def lsm(sec):
    return {"v": 1, "ts": ts(sec), "kind": "denial", "reason": "lsm_denied", "cause": "selinux",
            "port": 8443, "family": "ipv4", "netns": 4026531833,
            "local": {"addr": "0.0.0.0", "port": 8443}, "process": evil,
            "evidence": {"call": "bind", "errno": "EACCES", "protocol": "tcp",
                         "scontext": "system_u:system_r:httpd_t:s0", "tcontext": "system_u:object_r:unreserved_port_t:s0",
                         "tclass": "tcp_socket", "permissions": ["name_bind"], "requested": ["name_bind"],
                         "mode": "enforcing", "result": -13, "note": "a&b <i>not html</i>"},
            "hint": "SELinux denied name_bind on port 8443: semanage port -a -t http_port_t -p tcp 8443"}

rotated, active = [], []
# 03:10:05..03:10:40: nginx is dead; 10 refusals pass individually per second, the rest are summarized.
for sec in range(5, 41):
    for k in range(10):
        rotated.append(no_listener(sec, k * 90000000))
    extra = 40 if sec < 20 else 12
    rotated.append(summary(no_listener(sec, 0), extra, sec, sec))
rotated.append({"v": 1, "ts": ts(50), "kind": "lost", "count": 7,
                "evidence": {"where": "ring buffer full"},
                "hint": "the consumer fell behind: filter with --port, or enlarge the ring buffer"})
# 03:11:00..03:12:30: java's accept queue overflows in bursts.
for sec in range(60, 150, 3):
    for k in range(4):
        (rotated if sec < 120 else active).append(overflow(sec, k * 200000000))
    (rotated if sec < 120 else active).append(summary(overflow(sec, 0), 25, sec, sec))
for sec in (130, 131, 131, 160, 200, 230):
    active.append(firewall(sec))
active.append(lsm(175))

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "recording")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "synsight-20261122T031200.000000000Z.jsonl.gz"), "wb") as f:
    # mtime=0: byte-identical output on every run.
    with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
        g.write("".join(line(o) for o in rotated).encode())
with open(os.path.join(out, "synsight.jsonl"), "w") as f:
    f.write("".join(line(o) for o in active))
