#!/usr/bin/python3
"""Kernel-matrix scenarios: every refusal reason provoked for real (sockets,
nft/iptables rules, sysctls, Landlock) inside network namespaces this script
creates and always deletes, traced by the real `synsight trace --json`.

Each scenario asserts the attributed fields (kind, reason, cause, port, pids)
and records the hook that served it (the record's evidence: hook, method or
check; for syscall-based reasons, the doctor's line). The hook expected on
this kernel is derived independently of synsight: from the kernel's own BTF
(which enum values and tracepoints exist) and from loading a two-instruction
fentry program with the bpf(2) syscall. A scenario whose record names
another hook fails: a kernel new enough for a hook must use it.

Runs the same on the host and inside the kernel-matrix guests (where the
init passes --slow for the 1-vCPU TCG guest).

  scenarios.py --out FILE [--synsight BIN] [--peer peer.py] [--slow N]
               [--only NAME,...] [--passes default,kprobe,kfree_skb]

Output: JSON Lines to FILE: an "env" line, a "doctor" line, one "scenario"
line per scenario and pass, and a final "done" line. Exit status 0 when no
scenario failed ("unavailable" is not a failure: the kernel cannot show it,
and the line says why).
"""
import ctypes
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# The kernel, seen independently of synsight


class BTF:
    """The kernel's BTF (/sys/kernel/btf/vmlinux): names, functions, and the
    argument counts of BTF-typed tracepoints. Hand-written because no
    packaged Python library reads BTF; only the few kinds needed are decoded."""

    KIND_SIZES = {1: 4, 3: 12, 4: 12, 5: 12, 6: 8, 13: 8, 14: 4, 15: 12, 17: 4, 19: 12}
    VLEN_KINDS = {4, 5, 6, 13, 15, 19}

    def __init__(self, path="/sys/kernel/btf/vmlinux"):
        data = open(path, "rb").read()
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data, 0)
        assert magic == 0xEB9F, "not BTF"
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self.funcs = {}       # name -> type id (BTF_KIND_FUNC)
        self.typedefs = {}    # name -> referenced type id
        self.kinds = []       # per id: (kind, vlen, type)
        self.kinds.append((0, 0, 0))
        off, tid = 0, 1
        n = len(types)
        unpack = struct.unpack_from
        while off < n:
            name_off, info, size_type = unpack("<III", types, off)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            if kind == 12:
                self.funcs[self.name(name_off)] = tid
            elif kind == 8:
                nm = self.name(name_off)
                if nm.startswith("btf_trace_"):
                    self.typedefs[nm] = size_type
            self.kinds.append((kind, vlen, size_type))
            off += 12
            extra = self.KIND_SIZES.get(kind, 0)
            off += extra * vlen if kind in self.VLEN_KINDS else extra
            tid += 1

    def name(self, off):
        end = self.strings.index(b"\0", off)
        return self.strings[off:end].decode()

    def has_name(self, name):
        """A type, enum value or member of that name exists."""
        return (b"\0" + name.encode() + b"\0") in self.strings

    def tp_nargs(self, tp):
        """Arguments of a BTF-typed tracepoint (without the context), or -1."""
        t = self.typedefs.get("btf_trace_" + tp)
        if t is None:
            return -1
        kind, _, ref = self.kinds[t]
        if kind != 2:
            return -1
        kind, vlen, _ = self.kinds[ref]
        return vlen - 1 if kind == 13 else -1


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_bpf = 321
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BPF_RAW_TRACEPOINT_OPEN = 17


def fentry_loads(btf, func, attach_type=BPF_TRACE_FENTRY):
    """0 if a trivial fentry (or fexit) program on `func` loads and attaches,
    else the errno; with the raw bpf(2) syscall. Attaching matters: the
    trampoline refuses some functions only then (6.1 x86: more than six
    arguments)."""
    fid = btf.funcs.get(func)
    if fid is None:
        return errno.ENOENT
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = 0; exit
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into("<IIQQ", attr, 0, BPF_PROG_TYPE_TRACING, 2, ctypes.addressof(ibuf), ctypes.addressof(lic))
    struct.pack_into("<I", attr, 68, attach_type)
    struct.pack_into("<I", attr, 108, fid)
    abuf = ctypes.create_string_buffer(bytes(attr), len(attr))
    fd = _libc.syscall(SYS_bpf, BPF_PROG_LOAD, abuf, len(attr))
    if fd < 0:
        return ctypes.get_errno()
    # raw_tracepoint_open {u64 name; u32 prog_fd} attaches a tracing program.
    rbuf = ctypes.create_string_buffer(struct.pack("<QI4x", 0, fd), 16)
    link = _libc.syscall(SYS_bpf, BPF_RAW_TRACEPOINT_OPEN, rbuf, 16)
    err = ctypes.get_errno() if link < 0 else 0
    if link >= 0:
        os.close(link)
    os.close(fd)
    return err


def kallsyms_has(func):
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[2] == func and p[1] in "tT":
                    return True
    except OSError:
        pass
    return False


class Kernel:
    """What this kernel offers, and so which hook each reason must use."""

    def __init__(self):
        self.release = os.uname().release
        self.cache = {}
        self.btf = BTF()
        self.kprobes = os.path.exists("/sys/bus/event_source/devices/kprobe/type")
        self.fentry_errno = fentry_loads(self.btf, "tcp_v4_send_reset")
        self.fentry = self.fentry_errno == 0
        self.landlock_abi = landlock_abi()

    def kprobe_ok(self, func):
        key = ("kprobe", func)
        if key not in self.cache:
            self.cache[key] = self.kprobes and kallsyms_has(func)
        return self.cache[key]

    def fentry_ok(self, func, attach_type=BPF_TRACE_FENTRY):
        key = ("fentry", func, attach_type)
        if key not in self.cache:
            self.cache[key] = self.fentry and fentry_loads(self.btf, func, attach_type) == 0
        return self.cache[key]

    def describe(self):
        return {
            "release": self.release,
            "fentry": self.fentry,
            "fentry_errno": errno.errorcode.get(self.fentry_errno, str(self.fentry_errno)) if self.fentry_errno else "",
            "kprobes": self.kprobes,
            "rst_reason_no_socket": self.btf.has_name("SK_RST_REASON_NO_SOCKET"),
            "drop_reason_no_socket": self.btf.has_name("SKB_DROP_REASON_NO_SOCKET"),
            "drop_reason_listen_overflow": self.btf.has_name("SKB_DROP_REASON_TCP_LISTEN_OVERFLOW"),
            "consume_skb_args": self.btf.tp_nargs("consume_skb"),
            "kfree_skb_args": self.btf.tp_nargs("kfree_skb"),
            "icmp_send_tp": self.btf.tp_nargs("icmp_send") >= 0,
            "cap_capable_tp": self.btf.tp_nargs("cap_capable") >= 0,
            "landlock_abi": self.landlock_abi,
            "selinux": open("/sys/fs/selinux/enforce").read().strip() if os.path.exists("/sys/fs/selinux/enforce") else "",
        }

    # The hook each reason must use here, in synsight's order of preference.
    # None: this kernel cannot show it (the string says why).

    def reset_hook(self, forced=None):
        if forced == "kprobe":
            return ("kprobe/tcp_v{4,6}_send_reset", None) if self.kprobe_ok("tcp_v4_send_reset") \
                else (None, "kernel has no kprobes (CONFIG_KPROBES)")
        if forced == "kfree_skb":
            return ("tp_btf/kfree_skb", None) if self.btf.has_name("SKB_DROP_REASON_NO_SOCKET") \
                else (None, "kfree_skb has no drop reasons before 5.17")
        if self.btf.has_name("SK_RST_REASON_NO_SOCKET"):
            return "tp_btf/tcp_send_reset", None
        if self.fentry_ok("tcp_v4_send_reset"):
            return "fentry/tcp_v{4,6}_send_reset", None
        if self.kprobe_ok("tcp_v4_send_reset"):
            return "kprobe/tcp_v{4,6}_send_reset", None
        if self.btf.has_name("SKB_DROP_REASON_NO_SOCKET"):
            return "tp_btf/kfree_skb", None
        return None, "no hook sees no-socket resets"

    def syn_overflow_method(self, forced=None):
        if forced == "kprobe":
            return ("kprobe/tcp_conn_request", None) if self.kprobe_ok("tcp_conn_request") \
                else (None, "kernel has no kprobes (CONFIG_KPROBES)")
        if self.fentry_ok("tcp_conn_request"):
            return "fentry/tcp_conn_request", None
        if self.kprobe_ok("tcp_conn_request"):
            return "kprobe/tcp_conn_request", None
        if self.btf.tp_nargs("consume_skb") >= 2:
            return "tp_btf/consume_skb", None
        return None, "no fentry/kprobe, and consume_skb has no call site before 6.12"

    def ack_overflow_method(self, abort, forced=None):
        if forced == "kprobe":
            if not abort and self.btf.has_name("SKB_DROP_REASON_TCP_LISTEN_OVERFLOW"):
                return "tp_btf/kfree_skb TCP_LISTEN_OVERFLOW", None
            return ("kretprobe/tcp_v{4,6}_syn_recv_sock", None) if self.kprobe_ok("tcp_v4_syn_recv_sock") \
                else (None, "kernel has no kprobes (CONFIG_KPROBES)")
        if not abort and self.btf.has_name("SKB_DROP_REASON_TCP_LISTEN_OVERFLOW"):
            return "tp_btf/kfree_skb TCP_LISTEN_OVERFLOW", None
        if abort and self.btf.has_name("SK_RST_REASON_INVALID_SYN"):
            return "tp_btf/tcp_send_reset", None
        if self.fentry_ok("tcp_v4_syn_recv_sock", BPF_TRACE_FEXIT):
            return "fexit/tcp_v{4,6}_syn_recv_sock", None
        if self.kprobe_ok("tcp_v4_syn_recv_sock"):
            return "kretprobe/tcp_v{4,6}_syn_recv_sock", None
        return None, ("no TCP_LISTEN_OVERFLOW drop reason before 6.15" if not abort
                      else "no reset reason before 6.10") + ", and no fexit/kretprobe"

    def unanswered_syn_method(self, forced=None):
        """Who sees a SYN a listener leaves unanswered (no_route_back, the
        SYN backlog's reserve): consume_skb, which runs after
        tcp_conn_request decided, or, beside fentry or kprobe on
        tcp_conn_request (which run before), its fexit or kretprobe."""
        method, why = self.syn_overflow_method(forced)
        if method == "tp_btf/consume_skb":
            return method, None
        if method == "fentry/tcp_conn_request" and self.fentry_ok("tcp_conn_request", BPF_TRACE_FEXIT):
            return "fexit/tcp_conn_request", None
        if method == "kprobe/tcp_conn_request":
            return "kretprobe/tcp_conn_request", None
        return None, why or "the per-SYN hook %s runs before tcp_conn_request decides, and no fexit/tcp_conn_request" % method

    def syscall_hook(self):
        fx = all(self.fentry_ok(f, t) for f, t in (("__sys_connect", BPF_TRACE_FEXIT), ("__sys_bind", BPF_TRACE_FENTRY),
                                                   ("__sys_bind", BPF_TRACE_FEXIT), ("__sys_listen", BPF_TRACE_FENTRY),
                                                   ("__sys_listen", BPF_TRACE_FEXIT)))
        return SYSCALL_HOOK_FX if fx else SYSCALL_HOOK_CLASSIC

    def client_error_hook(self):
        """Connection errors: inet_sk_error_report (5.14+) where a cgroup v2
        can be had for cgroup/connect{4,6} (mounted, or mountable: every
        kernel with cgroup2 in /proc/filesystems), else the state-change hook."""
        with open("/proc/filesystems") as f:
            cgroup2 = any(l.split()[-1] == "cgroup2" for l in f if l.strip())
        if cgroup2 and self.btf.tp_nargs("inet_sk_error_report") >= 0:
            return "tp_btf/inet_sk_error_report"
        return "tp_btf/inet_sock_set_state"

    def cap_check(self):
        """privileged_port: the caller's credentials, judged at the failing
        bind()'s exit (every kernel: no capability hook)."""
        return "credentials at the failing bind()"


def landlock_abi():
    try:
        return max(0, _libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))  # LANDLOCK_CREATE_RULESET_VERSION
    except Exception:
        return 0


# --------------------------------------------------------------------------
# Test plumbing: namespaces, peers, the trace


SLOW = 1.0
# reason -> the hook text of its doctor line (doctor_hooks), for scenarios that check it.
DOCTOR = {}


def sh(*args, check=True, timeout=60):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout * SLOW)
    if check and r.returncode != 0:
        raise Failure("`%s` exited %d: %s" % (" ".join(args), r.returncode, r.stdout.strip()))
    return r.stdout


def wait_until(cond, timeout=10):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return cond()


class Failure(Exception):
    pass


class Unavailable(Exception):
    pass


class NetNS:
    prefix = "synsight-km-"
    count = 0

    def __init__(self):
        NetNS.count += 1
        self.number = NetNS.count
        self.name = "%s%d-%d" % (self.prefix, os.getpid(), self.number)
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        self.inode = os.stat("/run/netns/" + self.name).st_ino
        CLEANUP.append(self.remove)

    def exec(self, *args, **kw):
        return sh("ip", "netns", "exec", self.name, *args, **kw)

    def remove(self):
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        for p in out.split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def link(self, other, v4="198.18.0", v6=None):
        """veth pair: self .1, other .2 (and fd00:5e::1/2 with v6)."""
        a, b = "kma%dx%d" % (os.getpid() % 10000, self.number), "kmb%dx%d" % (os.getpid() % 10000, self.number)
        sh("ip", "link", "add", a, "netns", self.name, "type", "veth", "peer", "name", b, "netns", other.name)
        sh("ip", "-n", self.name, "addr", "add", v4 + ".1/24", "dev", a)
        sh("ip", "-n", other.name, "addr", "add", v4 + ".2/24", "dev", b)
        if v6:
            sh("ip", "-n", self.name, "addr", "add", v6 + "1/64", "dev", a, "nodad")
            sh("ip", "-n", other.name, "addr", "add", v6 + "2/64", "dev", b, "nodad")
        sh("ip", "-n", self.name, "link", "set", a, "up")
        sh("ip", "-n", other.name, "link", "set", b, "up")
        ok = wait_until(lambda: all("state UP" in sh("ip", "-n", ns.name, "link", "show", "dev", d)
                                    for ns, d in ((self, a), (other, b))), 10)
        if not ok:
            raise Failure("veth %s/%s did not come up" % (a, b))
        return a, b


CLEANUP = []


def cleanup():
    while CLEANUP:
        try:
            CLEANUP.pop()()
        except Exception:
            pass


CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_peer_module = None


def peer_module():
    """Support/peer.py, imported once: the peers run its code in forked
    children (no interpreter start per peer: seconds each in a TCG guest)."""
    global _peer_module
    if _peer_module is None:
        import importlib.util
        # No __pycache__ next to peer.py: it is in the Swift test target's
        # sources, where SwiftPM would warn about an unhandled file.
        sys.dont_write_bytecode = True
        spec = importlib.util.spec_from_file_location("synsight_peer", PEER)
        _peer_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_peer_module)
    return _peer_module


class Child:
    """`peer.py ARGS` in a forked child that joined namespace `ns` (setns),
    as `ip netns exec NS python3 peer.py ARGS` would run it; optionally as
    uid/gid 65534 without capabilities (a root -> non-root setresuid drops
    them all, like `setpriv --reuid 65534 --inh-caps=-all`)."""

    def __init__(self, ns, args, unprivileged=False, selinux_context=None, userns=False, cgroup_dir=None):
        m = peer_module()
        args = [str(a) for a in args]
        nsfd = os.open("/run/netns/" + ns.name, os.O_RDONLY)
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                os.dup2(w, 1)
                os.dup2(w, 2)
                if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                if cgroup_dir:
                    # As a service manager starts a unit's process: in its cgroup from the start.
                    with open(cgroup_dir + "/cgroup.procs", "w") as f:
                        f.write(str(os.getpid()))
                # Root of a user namespace of its own (as `unshare --user`):
                # every capability there, none over the network namespace.
                if userns and _libc.unshare(CLONE_NEWUSER) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
                if unprivileged:
                    os.setgroups([])
                    os.setresgid(65534, 65534, 65534)
                    os.setresuid(65534, 65534, 65534)
                if selinux_context:
                    # As runcon does: the domain is entered at execve.
                    with open("/proc/self/attr/exec", "w") as f:
                        f.write(selinux_context)
                    os.execv("/usr/bin/python3", ["python3", PEER] + args)
                m.main(["peer.py"] + args)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
                if not isinstance(e.code, int):
                    print(e.code)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                except Exception:
                    pass
                os._exit(code)
        os.close(w)
        os.close(nsfd)
        os.set_blocking(r, False)
        self.pid, self.fd, self.buf, self.status, self.args = pid, r, b"", None, args
        CLEANUP.append(self.kill)

    def output(self):
        while self.fd is not None:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        return self.buf.decode(errors="replace")

    def poll(self):
        if self.status is None:
            p, st = os.waitpid(self.pid, os.WNOHANG)
            if p:
                self.status = st
        return self.status

    def kill(self):
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(self.pid, 0)
            self.status = -9
        if self.fd is not None:
            self.output()
            os.close(self.fd)
            self.fd = None

    def result(self, timeout=30):
        """Waits for the child to exit; the integers it printed (pid, errno, ...)."""
        if not wait_until(lambda: self.poll() is not None, timeout):
            self.kill()
            raise Failure("peer %s did not finish: %s" % (" ".join(self.args), self.output()))
        out = self.output()
        nums = [int(x) for x in out.split() if x.lstrip("-").isdigit()]
        if len(nums) < 2:
            raise Failure("bad peer output from %s: %r" % (" ".join(self.args), out))
        return nums


def Peer(ns, args, ready="ready", timeout=15, cgroup_dir=None):
    """A long-running peer (listen, stall, hold), once it printed `ready`."""
    c = Child(ns, args, cgroup_dir=cgroup_dir)
    if not wait_until(lambda: c.output().startswith(ready) or c.poll() is not None, timeout) or c.poll() is not None:
        raise Failure("peer %s did not start: %s" % (" ".join(args), c.output()))
    return c


def peer(ns, *args, unprivileged=False, userns=False, cgroup_dir=None, timeout=30):
    """A one-shot peer.py command; returns the integers it printed (pid, errno, ...)."""
    return Child(ns, args, unprivileged, userns=userns, cgroup_dir=cgroup_dir).result(timeout)


# Connect timeouts are not stretched for a slow guest: the connects that
# time out are the ones expected to, and loopback connects that succeed
# take milliseconds even under TCG.
def connect(ns, addr, port, timeout=3, *options):
    return peer(ns, "connect", addr, port, "--timeout", timeout, *options)


def connect_async(ns, addr, port, timeout=2):
    return Child(ns, ["connect", addr, port, "--timeout", timeout])


def result_of(c):
    try:
        return c.result()
    except Failure:
        return [-1, -1]


# Options every trace of a pass takes, added by scenarios' prestart hooks
# (e.g. --pod-log-dir for a pod log root the scenario made).
EXTRA_TRACE_ARGS = []


def set_trace_option(name, value):
    """Sets `name value` in EXTRA_TRACE_ARGS, replacing an earlier pass's."""
    if name in EXTRA_TRACE_ARGS:
        i = EXTRA_TRACE_ARGS.index(name)
        del EXTRA_TRACE_ARGS[i:i + 2]
    EXTRA_TRACE_ARGS.extend([name, value])


class Trace:
    """`synsight trace --json` for one pass of scenarios."""

    def __init__(self, args, env=None):
        self.out = tempfile.NamedTemporaryFile(prefix="km-trace-out-", delete=False)
        self.err = tempfile.NamedTemporaryFile(prefix="km-trace-err-", delete=False)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([SYNSIGHT, "trace", "--json"] + args + EXTRA_TRACE_ARGS,
                                     stdout=self.out, stderr=self.err, env=e)
        self.parsed = []
        self.offset = 0
        self.start = 0
        if not wait_until(lambda: "synsight: tracing" in self.stderr() or self.proc.poll() is not None, 60) \
                or self.proc.poll() is not None:
            err = self.stderr()
            self.stop()
            self.remove_files()
            raise Failure("synsight trace %s did not start: %s" % (" ".join(args), err.strip()))

    def stderr(self):
        return open(self.err.name, errors="replace").read()

    def records(self):
        with open(self.out.name, errors="replace") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind("\n")
        if end >= 0:
            for line in data[:end].split("\n"):
                if line.strip():
                    try:
                        self.parsed.append(json.loads(line))
                    except ValueError:
                        raise Failure("unparsable JSON line from synsight: %r" % line)
            self.offset += len(data[:end + 1].encode())
        return self.parsed

    def mark(self):
        """Records from now on only: wait() ignores what came before."""
        self.start = len(self.records())

    def wait(self, match, timeout=10):
        found = wait_until(lambda: next((r for r in self.records()[self.start:] if match(r)), None), timeout)
        return found

    def remove_files(self):
        for f in (self.out, self.err):
            f.close()
            try:
                os.unlink(f.name)
            except OSError:
                pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.stderr()


# Scenario ports come from a small pool fixed per run, and the trace is
# started with --port for each: refusal storms on other ports (another
# program's benchmark on a shared host) are dropped in the kernel and cannot
# crowd the scenarios' records out of the ring buffer. Consecutive
# scenarios take different triplets (port, port+1, port+2); records are
# matched only among those that arrived after the scenario started.
PORT_TRIPLETS = 4
PORT_BASE = random.randrange(20000, 29000, 16)
_port_turn = [0]


def rnd_port():
    _port_turn[0] += 1
    return PORT_BASE + 3 * (_port_turn[0] % PORT_TRIPLETS)


def prestart_port(i):
    """Ports of their own for listeners that live through a whole pass
    (another scenario's other_netns lookup would find them on a shared port)."""
    return PORT_BASE + 3 * PORT_TRIPLETS + i


def filter_ports():
    return [PORT_BASE + i for i in range(3 * PORT_TRIPLETS + 3)] + [80]


# --------------------------------------------------------------------------
# Assertions


class Check:
    def __init__(self):
        self.failures = []

    def eq(self, what, got, want):
        if got != want:
            self.failures.append("%s: got %r, want %r" % (what, got, want))

    def true(self, what, cond):
        if not cond:
            self.failures.append(what)


def ev(r):
    return r.get("evidence") or {}


def pid_of(r, key):
    return (r.get(key) or {}).get("pid")


def record_hook(r):
    e = ev(r)
    for k in ("hook", "method", "check"):
        if isinstance(e.get(k), str):
            return e[k]
    return None


def hook_matches(got, want):
    """`want` is a stable prefix of what synsight writes (method strings carry
    an explanation after the hook name)."""
    return got is not None and want is not None and got.startswith(want)


def expect_common(c, r, kind, reason, cause, port, family="ipv4"):
    c.eq("kind", r.get("kind"), kind)
    c.eq("reason", r.get("reason"), reason)
    if cause is not None:
        c.eq("cause", r.get("cause"), cause)
    c.eq("port", r.get("port"), port)
    c.eq("family", r.get("family"), family)
    c.eq("v", r.get("v"), 1)
    c.true("hint is empty", bool(r.get("hint")))
    c.true("ts %r is not RFC 3339 UTC" % r.get("ts"), str(r.get("ts") or "").endswith("Z"))


def addr_of(r, key):
    return (r.get(key) or {}).get("addr")


def hint_has(c, r, text):
    c.true("hint lacks %r: %r" % (text, r.get("hint")), text in (r.get("hint") or ""))


def listeners_of(r):
    return ev(r).get("listeners") or []


# --------------------------------------------------------------------------
# Scenarios: each returns (record, check, expected_hook); the hook is
# compared by the runner.

SCENARIOS = []


def scenario(name, reason, passes=("default",)):
    def wrap(fn):
        SCENARIOS.append((name, reason, passes, fn))
        return fn
    return wrap


PRESTARTED = {}          # scenario function name -> what its prestart returned (or the error)
PRESTARTED_CLEANUP = {}  # scenario function name -> cleanups of what it started


def release_prestarted():
    """Clean up what prestart hooks made for scenarios that did not run
    (the pass's trace failed to start, or a scenario was never reached)."""
    for cleanups in PRESTARTED_CLEANUP.values():
        CLEANUP.extend(cleanups)
    PRESTARTED_CLEANUP.clear()
    PRESTARTED.clear()
    cleanup()


def prestarted(name):
    """What the scenario's prestart made; consumed by the first attempt."""
    v = PRESTARTED.pop(name, None)
    if v is None:
        raise Failure("the listener started before synsight is gone (consumed by the first attempt)")
    if isinstance(v, Exception):
        raise Failure("starting the listener before synsight failed: %s" % v)
    return v


def no_listener_record(t, ns, port, family=None, timeout=10):
    return t.wait(lambda r: r.get("kind") == "refusal" and r.get("reason") == "no_listener"
                  and r.get("netns") == ns.inode and r.get("port") == port
                  and (family is None or r.get("family") == family), timeout)


def refusal_check(c, r, cause, port, client_pid, process_pid=None, family="ipv4"):
    """What every no_listener refusal carries: the common fields, the refused
    port as local.port, the connecting client, and the listener's process
    (none for a port nobody listened on)."""
    expect_common(c, r, "refusal", "no_listener", cause, port, family)
    c.eq("local.port", (r.get("local") or {}).get("port"), port)
    c.eq("client.pid", pid_of(r, "client"), client_pid)
    if process_pid is None:
        c.eq("process", r.get("process"), None)
    else:
        c.eq("process.pid", pid_of(r, "process"), process_pid)
        c.true("process.comm %r is not python's" % (r.get("process") or {}).get("comm"),
               str((r.get("process") or {}).get("comm")).startswith("python"))


@scenario("closed port, IPv4", "no_listener/never_listened", passes=("default", "kprobe", "kfree_skb"))
def sc_closed_v4(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    pid, err = connect(ns, "127.0.0.1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port, "ipv4")
    if r:
        refusal_check(c, r, "never_listened", port, pid)
        c.true("client.comm %r is not python's" % (r.get("client") or {}).get("comm"),
               str((r.get("client") or {}).get("comm")).startswith("python"))
        c.eq("local.addr", addr_of(r, "local"), "127.0.0.1")
        c.eq("remote.addr", addr_of(r, "remote"), "127.0.0.1")
    return r, c, k.reset_hook(pas if pas != "default" else None)


STORM = """
import socket, sys
n = 0
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
    except ConnectionRefusedError:
        n += 1
    s.close()
print(n)
"""


@scenario("storm folded in the kernel", "no_listener/never_listened", passes=("default", "kprobe", "kfree_skb"))
def sc_closed_fold(t, k, pas):
    """A trace of its own with --fold 3: of a 300-refusal storm at most 3 per
    CPU and second cross the ring buffer; the rest come back as summary
    records folded in the kernel (bpf/fold.bpf.h) with their local clients.
    Individual + folded = the client's ECONNREFUSED count, exactly."""
    ns = NetNS()
    port = rnd_port()
    targs, tenv, _ = PASSES[pas]
    own = Trace(targs + ["--fold", "3", "--port", str(port)], tenv)
    CLEANUP.append(own.remove_files)
    CLEANUP.append(own.stop)
    refused = int(ns.exec("/usr/bin/python3", "-c", STORM, str(port), "300").strip())
    c = Check()
    c.eq("client refused", refused, 300)

    def mine(r):
        return r.get("port") == port and r.get("netns") == ns.inode

    def tally():
        recs = [r for r in own.records() if mine(r)]
        single = [r for r in recs if r.get("kind") == "refusal"]
        kernel = [r for r in recs if r.get("kind") == "summary" and ev(r).get("folded_in") == "kernel"]
        user = [r for r in recs if r.get("kind") == "summary" and ev(r).get("folded_in") is None]
        return single, kernel, user

    wait_until(lambda: sum(len(x) if i == 0 else sum(r.get("count", 0) for r in x)
                           for i, x in enumerate(tally())) >= refused, 20)
    own.stop()
    single, kernel, user = tally()
    folded = sum(r.get("count", 0) for r in kernel)
    c.eq("individual + kernel-folded + user-folded", len(single) + folded + sum(r.get("count", 0) for r in user), refused)
    c.true("some refusals folded in the kernel (%d individual)" % len(single), folded > 0)
    for r in kernel:
        c.eq("summary reason, cause", (r.get("reason"), r.get("cause")), ("no_listener", "never_listened"))
        c.eq("summary summarized_kind", ev(r).get("summarized_kind"), "refusal")
        # A read between a refusal's fold and its client's (microseconds
        # apart, on one CPU) counts that client in the next summary: within
        # one per CPU of the count (KernelFoldTests asserts the same).
        short = r.get("count", 0) - ev(r).get("local_clients", 0)
        c.true("summary local_clients %r of count %r" % (ev(r).get("local_clients"), r.get("count")),
               abs(short) <= (os.cpu_count() or 1))
        c.true("summary client.comm %r is not python's" % (r.get("client") or {}).get("comm"),
               str((r.get("client") or {}).get("comm")).startswith("python"))
        c.true("summary first_ts/last_ts missing", bool(r.get("first_ts")) and bool(r.get("last_ts")))
    c.eq("local clients over the storm", sum(ev(r).get("local_clients", 0) for r in kernel), folded)
    c.true("no connect_failure for a folded refusal's client",
           not any(r.get("kind") == "connect_failure" and mine(r) for r in own.records()))
    r = single[0] if single else None
    return r, c, k.reset_hook(pas if pas != "default" else None)


@scenario("closed port, IPv6", "no_listener/never_listened", passes=("default", "kprobe", "kfree_skb"))
def sc_closed_v6(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    pid, err = connect(ns, "::1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port, "ipv6")
    if r:
        refusal_check(c, r, "never_listened", port, pid, family="ipv6")
        c.eq("local.addr", addr_of(r, "local"), "::1")
    return r, c, k.reset_hook(pas if pas != "default" else None)


@scenario("listener killed by SIGKILL", "no_listener/listener_exited")
def sc_listener_exited(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    listener = Peer(ns, ["listen", "127.0.0.1", str(port)])
    listener.kill()
    pid, err = connect(ns, "127.0.0.1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port)
    if r:
        refusal_check(c, r, "listener_exited", port, pid, listener.pid)
        c.eq("evidence.signal", ev(r).get("signal"), 9)
        c.eq("evidence.signal_name", ev(r).get("signal_name"), "SIGKILL")
        c.true("evidence.exited_at missing", isinstance(ev(r).get("exited_at"), str))
    return r, c, k.reset_hook()


@scenario("listener closed, process alive", "no_listener/listener_closed")
def sc_listener_closed(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    listener = Peer(ns, ["listen", "0.0.0.0", str(port), "--close-after", "0.2"])
    c = Check()
    c.true("listener did not close", wait_until(lambda: "closed" in listener.output(), 10))
    pid, err = connect(ns, "127.0.0.1", port)
    r = no_listener_record(t, ns, port)
    if r:
        refusal_check(c, r, "listener_closed", port, pid, listener.pid)
        c.true("evidence.closed_at missing", isinstance(ev(r).get("closed_at"), str))
        c.eq("evidence.exited_at", ev(r).get("exited_at"), None)
    return r, c, k.reset_hook()


@scenario("127.0.0.1-only listener reached over veth", "no_listener/bound_to_other_address")
def sc_bound_other(t, k, pas):
    server, client = NetNS(), NetNS()
    server.link(client)
    port = rnd_port()
    listener = Peer(server, ["listen", "127.0.0.1", str(port)])
    pid, err = connect(client, "198.18.0.1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, server, port)
    if r:
        # The client lives in another namespace of this host: still joined.
        refusal_check(c, r, "bound_to_other_address", port, pid, listener.pid)
        c.eq("local.addr", addr_of(r, "local"), "198.18.0.1")
        c.eq("remote.addr", addr_of(r, "remote"), "198.18.0.2")
        c.true("evidence.listeners %r lacks 127.0.0.1 with the listener's pid" % listeners_of(r),
               any(l.get("addr") == "127.0.0.1" and l.get("pid") == listener.pid for l in listeners_of(r)))
        hint_has(c, r, "127.0.0.1")
    return r, c, k.reset_hook()


@scenario("IPv6-only listener reached over IPv4", "no_listener/family_mismatch")
def sc_family(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    listener = Peer(ns, ["listen", "::", str(port), "--v6only"])
    pid, err = connect(ns, "127.0.0.1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port)
    if r:
        refusal_check(c, r, "family_mismatch", port, pid, listener.pid)
        first = (listeners_of(r) or [{}])[0]
        c.eq("evidence.listeners[0].ipv6only", first.get("ipv6only"), True)
        c.eq("evidence.listeners[0].family", first.get("family"), "ipv6")
    return r, c, k.reset_hook()


@scenario("port listening only in another namespace", "no_listener/other_netns")
def sc_other_netns(t, k, pas):
    server, client = NetNS(), NetNS()
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    pid, err = connect(client, "127.0.0.1", port)
    c = Check()
    r = no_listener_record(t, client, port)
    if r:
        refusal_check(c, r, "other_netns", port, pid, listener.pid)
        c.true("evidence.listeners %r lacks the server's namespace" % listeners_of(r),
               any(l.get("netns") == server.inode for l in listeners_of(r)))
    return r, c, k.reset_hook()


def device_namespace():
    """A namespace with a second device (dummy; ifb where dummy.ko is missing)
    holding 198.19.0.1/24: a listener bound to it takes only SYNs that come
    in on it. Returns (namespace, device)."""
    ns = NetNS()
    dev = "kmd%d" % ns.number
    if subprocess.run(["ip", "-n", ns.name, "link", "add", dev, "type", "dummy"], capture_output=True).returncode != 0:
        sh("ip", "-n", ns.name, "link", "add", dev, "type", "ifb")
    sh("ip", "-n", ns.name, "addr", "add", "198.19.0.1/24", "dev", dev)
    sh("ip", "-n", ns.name, "link", "set", dev, "up")
    return ns, dev


def device_of(r, key):
    d = ev(r).get(key)
    return d.get("name") if isinstance(d, dict) else None


def bound_device_check(c, t, ns, dev, port, listener):
    """A SYN to 127.0.0.1 (in on lo) for a 0.0.0.0 listener bound to `dev`."""
    pid, err = connect(ns, "127.0.0.1", port)
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port)
    if r:
        refusal_check(c, r, "bound_to_other_device", port, pid, listener.pid)
        c.eq("evidence.syn_device.name", device_of(r, "syn_device"), "lo")
        bound = [(l.get("bound_device") or {}).get("name") for l in listeners_of(r)]
        c.true("evidence.listeners %r lack the bound device %s" % (listeners_of(r), dev), dev in bound)
        hint_has(c, r, "SO_BINDTODEVICE")
    return r


@scenario("listener bound to a device (SO_BINDTODEVICE) reached on loopback", "no_listener/bound_to_other_device",
          passes=("default", "kprobe"))
def sc_bound_device(t, k, pas):
    ns, dev = device_namespace()
    port = rnd_port()
    listener = Peer(ns, ["listen", "0.0.0.0", str(port), "--device", dev])
    c = Check()
    return bound_device_check(c, t, ns, dev, port, listener), c, k.reset_hook(pas if pas != "default" else None)


def prestart_bound_listener():
    ns, dev = device_namespace()
    # The port of sc_predates_no_listener's listener (the --port filter holds
    # 16 ports): no other scenario refuses on it, and each of the two finds
    # its own namespace's listener before one in another namespace.
    port = prestart_port(1)
    return ns, dev, port, Peer(ns, ["listen", "0.0.0.0", str(port), "--device", dev])


@scenario("device-bound listener started before synsight (the iterator names its device)",
          "no_listener/bound_to_other_device (predates)")
def sc_bound_device_predates(t, k, pas):
    ns, dev, port, listener = prestarted("sc_bound_device_predates")
    c = Check()
    return bound_device_check(c, t, ns, dev, port, listener), c, k.reset_hook()


sc_bound_device_predates.prestart = prestart_bound_listener


@scenario("VRF: a default-VRF listener reached through a VRF, and a VRF listener reached on loopback",
          "no_listener/other_vrf")
def sc_other_vrf(t, k, pas):
    server, client = NetNS(), NetNS()
    vrf = "kmvrf%d" % server.number
    if subprocess.run(["ip", "-n", server.name, "link", "add", vrf, "type", "vrf", "table", "10"],
                      capture_output=True).returncode != 0:
        raise Unavailable("no VRF support (CONFIG_NET_VRF, vrf.ko)")
    sh("ip", "-n", server.name, "link", "set", vrf, "up")
    a, b = server.link(client)
    sh("ip", "-n", server.name, "link", "set", a, "master", vrf)
    # Enslaving cycles the device: (re)address it after, IPv6 without DAD.
    sh("ip", "-n", server.name, "addr", "replace", "198.18.0.1/24", "dev", a)
    sh("ip", "-n", server.name, "-6", "addr", "replace", "fd00:5e::1/64", "dev", a, "nodad")
    sh("ip", "-n", client.name, "-6", "addr", "replace", "fd00:5e::2/64", "dev", b, "nodad")
    server.exec("sysctl", "-qw", "net.ipv4.tcp_l3mdev_accept=0")
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    c = Check()
    pid, err = connect(client, "198.18.0.1", port)
    c.eq("connect errno (through the VRF)", err, errno.ECONNREFUSED)
    r = no_listener_record(t, server, port)
    if r:
        refusal_check(c, r, "other_vrf", port, pid, listener.pid)
        c.eq("evidence.syn_vrf.name", device_of(r, "syn_vrf"), vrf)
        c.eq("evidence.syn_vrf.vrf", (ev(r).get("syn_vrf") or {}).get("vrf"), True)
        c.eq("evidence.syn_device.name", device_of(r, "syn_device"), a)
        hint_has(c, r, "tcp_l3mdev_accept")
    # The other way round: a listener in the VRF, a client on the default VRF's loopback.
    port2 = port + 1
    inside = Peer(server, ["listen", "0.0.0.0", str(port2), "--device", vrf])
    pid2, err2 = connect(server, "127.0.0.1", port2)
    c.eq("connect errno (loopback, listener in the VRF)", err2, errno.ECONNREFUSED)
    r2 = no_listener_record(t, server, port2)
    c.true("no record for the VRF listener reached on loopback", r2 is not None)
    if r2:
        refusal_check(c, r2, "other_vrf", port2, pid2, inside.pid)
        bound = [l.get("bound_device") or {} for l in listeners_of(r2)]
        c.true("evidence.listeners %r lack VRF %s" % (listeners_of(r2), vrf),
               any(b.get("name") == vrf and b.get("vrf") is True for b in bound))
        hint_has(c, r2, "ip vrf exec " + vrf)
    # IPv6 through the VRF (the L3 slave's index is in IP6CB, not IPCB): a dual-stack listener.
    port3 = port + 2
    dual = Peer(server, ["listen", "::", str(port3)])
    pid3, err3 = connect(client, "fd00:5e::1", port3)
    c.eq("connect errno (IPv6 through the VRF)", err3, errno.ECONNREFUSED)
    r3 = no_listener_record(t, server, port3, family="ipv6")
    c.true("no record for the IPv6 SYN through the VRF", r3 is not None)
    if r3:
        refusal_check(c, r3, "other_vrf", port3, pid3, dual.pid, family="ipv6")
        c.eq("evidence.syn_vrf.name (IPv6)", device_of(r3, "syn_vrf"), vrf)
        c.eq("evidence.syn_device.name (IPv6)", device_of(r3, "syn_device"), a)
    return r, c, k.reset_hook()


def counted(r):
    """A record of drops counted from the listener's counter (consume_skb armed on anomaly, not yet attached)."""
    return (ev(r).get("method") or "").startswith("counter")


def overflow_record(t, ns, port, reason, stage=None, timeout=10):
    """The first record of a SYN (or ACK) seen one by one; counted records are checked by check_counted."""
    return t.wait(lambda r: r.get("netns") == ns.inode and r.get("port") == port and r.get("reason") == reason
                  and (stage is None or ev(r).get("stage") == stage) and not counted(r), timeout)


def check_counted(c, t, ns, port):
    """Where consume_skb is armed on anomaly, SYNs dropped before it was attached come as counted records:
    at least one drop, the listener's process, no client, no remote."""
    for r in t.records()[t.start:]:
        if r.get("netns") == ns.inode and r.get("port") == port and counted(r):
            c.true("counted_drops %r >= 1" % ev(r).get("counted_drops"), (ev(r).get("counted_drops") or 0) >= 1)
            c.true("counted record without client", "client" not in r and "remote" not in r)


def fill_accept_queue(ns, port):
    """Two held connections: a backlog-1 listener's accept queue (2) is full."""
    return [Peer(ns, ["hold", "127.0.0.1", str(port), "--seconds", "60"], ready="connected") for _ in range(2)]


def accept_full(t, ns, port, server, cause="listener_not_accepting", c=None):
    """A third connect to `server` (stalled, backlog 1, queue filled): its
    SYN is dropped at the SYN stage, with the queue's evidence."""
    holders = fill_accept_queue(ns, port)
    pid, err = connect(ns, "127.0.0.1", port, timeout=1.5)
    c = c or Check()
    c.true("third connect completed", err != 0)
    r = overflow_record(t, ns, port, "accept_queue_full")
    if r:
        expect_common(c, r, "drop", "accept_queue_full", cause, port)
        c.eq("process.pid", pid_of(r, "process"), server.pid)
        c.eq("client.pid", pid_of(r, "client"), pid)
        c.eq("evidence.stage", ev(r).get("stage"), "syn")
        c.eq("evidence.max_backlog", ev(r).get("max_backlog"), 1)
        c.eq("evidence.accept_queue", ev(r).get("accept_queue"), 2)
        c.true("evidence.somaxconn %r" % ev(r).get("somaxconn"), (ev(r).get("somaxconn") or 0) > 0)
        if cause == "listener_not_accepting":
            hint_has(c, r, "backlog")
    check_counted(c, t, ns, port)
    del holders
    return r, c


@scenario("accept queue full at the SYN (backlog 1, never accepts)", "accept_queue_full/listener_not_accepting",
          passes=("default", "kprobe"))
def sc_accept_full(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1"])
    r, c = accept_full(t, ns, port, server)
    return r, c, k.syn_overflow_method(pas if pas == "kprobe" else None)


def proc_state(pid):
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


@scenario("accept queue full at the SYN, the listener stopped (SIGSTOP)", "accept_queue_full/listener_stopped")
def sc_accept_full_stopped(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1"])
    os.kill(server.pid, signal.SIGSTOP)
    c = Check()
    c.true("the listener did not stop: state %r" % proc_state(server.pid), wait_until(lambda: proc_state(server.pid) == "T", 5))
    r, c = accept_full(t, ns, port, server, cause="listener_stopped", c=c)
    if r:
        c.eq("evidence.listener_state.threads", (ev(r).get("listener_state") or {}).get("threads"), {"T": 1})
        hint_has(c, r, "kill -CONT %d" % server.pid)
    os.kill(server.pid, signal.SIGCONT)
    return r, c, k.syn_overflow_method()


def cpu_limited_cgroup(name, quota_us, period_us=100000):
    """A cgroup with a CPU quota (CFS bandwidth control), as `docker run
    --cpus` or a pod's resources.limits.cpu sets one: in cgroup v2 where its
    cpu controller is available (the guests), else in v1's cpu hierarchy
    (this host is hybrid: Docker's cgroupfs driver limits CPU there).
    Registers its removal (and the root's +cpu, if this enabled it).
    Returns (path as /proc/<pid>/cgroup shows it, directory, hierarchy)."""
    v2 = next((r for r in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
               if os.path.exists(r + "/cgroup.controllers")), None)
    if v2 and "cpu" in open(v2 + "/cgroup.controllers").read().split():
        if "cpu" not in open(v2 + "/cgroup.subtree_control").read().split():
            with open(v2 + "/cgroup.subtree_control", "w") as f:
                f.write("+cpu")

            def disable():
                with open(v2 + "/cgroup.subtree_control", "w") as f:
                    f.write("-cpu")
            CLEANUP.append(disable)
        path, d = cgroup_tree([name])
        with open(d + "/cpu.max", "w") as f:
            f.write("%d %d" % (quota_us, period_us))
        return path, d, "v2"
    v1 = None
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        f, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] == "cgroup" and "cpu" in tail[2].split(",") and f[3] == "/":
            v1 = f[4]
            break
    if v1 is None:
        raise Unavailable("no cgroup hierarchy with the cpu controller")
    d = v1 + "/" + name
    os.mkdir(d)
    CLEANUP.append(lambda: remove_cgroup(d, v1))
    with open(d + "/cpu.cfs_period_us", "w") as f:
        f.write(str(period_us))
    with open(d + "/cpu.cfs_quota_us", "w") as f:
        f.write(str(quota_us))
    return "/" + name, d, "v1"


def nr_throttled(d):
    for line in open(d + "/cpu.stat"):
        k, _, v = line.partition(" ")
        if k == "nr_throttled":
            return int(v)
    return 0


@scenario("accept queue full, the listener throttled at its cgroup's CPU limit (0.1 CPU, a thread spinning)",
          "accept_queue_full/listener_throttled")
def sc_accept_full_throttled(t, k, pas):
    path, d, hierarchy = cpu_limited_cgroup("synsight-km-%d-cpu" % os.getpid(), 10000, 100000)
    ns = NetNS()
    port = rnd_port()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1", "--spin"], cgroup_dir=d)
    c = Check()
    c.true("the cgroup was never throttled", wait_until(lambda: nr_throttled(d) > 0, 10))
    r, c = accept_full(t, ns, port, server, cause="listener_throttled", c=c)
    if r:
        th = ev(r).get("cpu_throttle") or {}
        c.eq("evidence.cpu_throttle.cgroup", th.get("cgroup"), path)
        c.eq("evidence.cpu_throttle.hierarchy", th.get("hierarchy"), hierarchy)
        c.eq("evidence.cpu_throttle.quota_us", th.get("quota_us"), 10000)
        c.eq("evidence.cpu_throttle.period_us", th.get("period_us"), 100000)
        c.eq("evidence.cpu_throttle.throttling", th.get("throttling"), True)
        c.true("evidence.cpu_throttle.throttled_periods %r" % th.get("throttled_periods"), (th.get("throttled_periods") or 0) > 0)
        hint_has(c, r, "0.1 CPU (10 ms per 100 ms period)")
        hint_has(c, r, path)
    return r, c, k.syn_overflow_method()


@scenario("accept queue full at the SYN, 12th listener of its port (one per namespace)",
          "accept_queue_full/listener_not_accepting (crowded port)")
def sc_accept_full_crowded(t, k, pas):
    """A node whose pods all listen on the same port: on kernels that match
    a consumed SYN to its listener by port (consume_skb), the 12th listener
    of the port must still be seen SYN by SYN, with its client."""
    port = rnd_port()
    others = []
    for _ in range(11):
        ns = NetNS()
        others.append(Peer(ns, ["listen", "127.0.0.1", str(port)]))
    ns = NetNS()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1"])
    r, c = accept_full(t, ns, port, server)
    del others
    return r, c, k.syn_overflow_method()


@scenario("accept queue full at the SYN with tcp_abort_on_overflow: still a drop",
          "accept_queue_full/listener_not_accepting (abort_on_overflow, syn)")
def sc_accept_full_abort(t, k, pas):
    ns = NetNS()
    ns.exec("sysctl", "-qw", "net.ipv4.tcp_abort_on_overflow=1")
    port = rnd_port()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1"])
    r, c = accept_full(t, ns, port, server)
    return r, c, k.syn_overflow_method()


def prestart_stalled_server():
    ns = NetNS()
    port = prestart_port(0)
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1"])
    return ns, port, server


@scenario("accept queue full, listener started before synsight (iter/tcp)",
          "accept_queue_full/listener_not_accepting (predates)")
def sc_accept_full_predates(t, k, pas):
    ns, port, server = prestarted("sc_accept_full_predates")
    r, c = accept_full(t, ns, port, server)
    return r, c, k.syn_overflow_method()


sc_accept_full_predates.prestart = prestart_stalled_server


def prestart_loopback_listener():
    ns = NetNS()
    port = prestart_port(1)
    listener = Peer(ns, ["listen", "127.0.0.1", str(port)])
    return ns, port, listener


@scenario("listener started before synsight, reached on another address, then killed",
          "no_listener/bound_to_other_address + listener_exited (predates)")
def sc_predates_no_listener(t, k, pas):
    ns, port, listener = prestarted("sc_predates_no_listener")
    c = Check()
    # 127.0.0.2 is local (lo holds 127/8) but the listener is bound to .1 only.
    pid1, _ = connect(ns, "127.0.0.2", port)
    r1 = no_listener_record(t, ns, port)
    c.true("no bound_to_other_address record", r1 is not None)
    if r1:
        refusal_check(c, r1, "bound_to_other_address", port, pid1, listener.pid)
    listener.kill()
    pid2, _ = connect(ns, "127.0.0.1", port)
    r = t.wait(lambda r: r.get("netns") == ns.inode and r.get("port") == port and r.get("cause") == "listener_exited")
    if r:
        refusal_check(c, r, "listener_exited", port, pid2, listener.pid)
        c.eq("evidence.signal", ev(r).get("signal"), 9)
    return r, c, k.reset_hook()


sc_predates_no_listener.prestart = prestart_loopback_listener


@scenario("accept() fails with EMFILE behind a full queue", "accept_queue_full/fd_exhausted")
def sc_fd_exhausted(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    server = Peer(ns, ["stall", "127.0.0.1", str(port), "--backlog", "1", "--emfile"])
    holders = fill_accept_queue(ns, port)
    c = Check()
    fd = t.wait(lambda r: r.get("reason") == "fd_exhausted" and pid_of(r, "process") == server.pid, 10)
    c.true("no fd_exhausted overflow record for the server", fd is not None)
    if fd:
        c.eq("fd_exhausted.kind", fd.get("kind"), "overflow")
        c.eq("fd_exhausted.errno", ev(fd).get("errno"), "EMFILE")
        c.true("fd_exhausted.nofile_limit %r" % ev(fd).get("nofile_limit"), (ev(fd).get("nofile_limit") or 0) > 0)
        c.eq("fd_exhausted.port", fd.get("port"), port)
    pid, err = connect(ns, "127.0.0.1", port, timeout=1.5)
    r = overflow_record(t, ns, port, "accept_queue_full")
    if r:
        expect_common(c, r, "drop", "accept_queue_full", "fd_exhausted", port)
        c.eq("process.pid", pid_of(r, "process"), server.pid)
        c.eq("client.pid", pid_of(r, "client"), pid)
        c.eq("evidence.accept_errno", ev(r).get("accept_errno"), "EMFILE")
    check_counted(c, t, ns, port)
    del holders
    return r, c, k.syn_overflow_method()


def syn_queue(t, k, pas, cookies):
    server, client = NetNS(), NetNS()
    server.link(client)
    server.exec("sysctl", "-qw", "net.ipv4.tcp_syncookies=%d" % cookies)
    client.exec("nft", "add table inet t; add chain inet t in { type filter hook input priority 0; }; "
                "add rule inet t in tcp flags & (syn | ack) == (syn | ack) drop")
    port = rnd_port()
    listener = Peer(server, ["stall", "0.0.0.0", str(port), "--backlog", "2"])
    # 3 s: the clients retransmit their SYNs after 1 s; where consume_skb is armed on anomaly, the first
    # burst's drops are only counted (check_counted) and the retransmitted SYNs are the ones seen.
    procs = [connect_async(client, "198.18.0.1", port, timeout=3) for _ in range(6)]
    r = overflow_record(t, server, port, "syn_queue_full")
    for p in procs:
        result_of(p)
    c = Check()
    if r:
        if cookies == 0:
            expect_common(c, r, "drop", "syn_queue_full", "syncookies_off", port)
            hint_has(c, r, "tcp_syncookies")
        else:
            expect_common(c, r, "overflow", "syn_queue_full", "syncookies_sent", port)
        c.eq("process.pid", pid_of(r, "process"), listener.pid)
        c.eq("evidence.max_backlog", ev(r).get("max_backlog"), 2)
        c.true("evidence.syn_queue > 2", (ev(r).get("syn_queue") or 0) > 2)
        c.eq("remote.addr", (r.get("remote") or {}).get("addr"), "198.18.0.2")
    check_counted(c, t, server, port)
    return r, c, k.syn_overflow_method(pas if pas == "kprobe" else None)


@scenario("SYN queue full, syncookies off", "syn_queue_full/syncookies_off", passes=("default", "kprobe"))
def sc_synq_drop(t, k, pas):
    return syn_queue(t, k, pas, 0)


@scenario("SYN queue full, syncookies on", "syn_queue_full/syncookies_sent")
def sc_synq_cookie(t, k, pas):
    return syn_queue(t, k, pas, 1)


def ack_stage(t, k, pas, abort):
    expected = k.ack_overflow_method(abort, pas if pas == "kprobe" else None)
    server, client = NetNS(), NetNS()
    server.link(client)
    if abort:
        server.exec("sysctl", "-qw", "net.ipv4.tcp_abort_on_overflow=1")
    port = rnd_port()
    listener = Peer(server, ["stall", "0.0.0.0", str(port), "--backlog", "1"])
    client.exec("nft", "add table inet hold; add chain inet hold out { type filter hook output priority 0; }; "
                "add rule inet hold out tcp dport %d tcp flags & (syn | ack | fin | rst) == ack drop" % port)
    held = [Peer(client, ["hold", "198.18.0.1", str(port), "--seconds", "60"], ready="connected") for _ in range(2)]
    fillers = [Peer(server, ["hold", "198.18.0.1", str(port), "--seconds", "60"], ready="connected") for _ in range(2)]
    client.exec("nft", "delete table inet hold")
    # The server retransmits its SYN-ACK after ~1 s; the clients' ACKs then overflow.
    r = overflow_record(t, server, port, "accept_queue_full", stage="ack", timeout=15)
    c = Check()
    if r:
        expect_common(c, r, "refusal" if abort else "drop", "accept_queue_full", None, port)
        c.eq("process.pid", pid_of(r, "process"), listener.pid)
        c.true("client.pid %r is not one of the held clients" % pid_of(r, "client"),
               pid_of(r, "client") in [p.pid for p in held])
        c.eq("remote.addr", (r.get("remote") or {}).get("addr"), "198.18.0.2")
        if abort:
            c.eq("evidence.tcp_abort_on_overflow", ev(r).get("tcp_abort_on_overflow"), True)
    del fillers
    return r, c, expected


@scenario("accept queue full at the ACK stage: ACK dropped", "accept_queue_full/listener_not_accepting (ack)",
          passes=("default", "kprobe"))
def sc_ack_drop(t, k, pas):
    return ack_stage(t, k, pas, False)


@scenario("accept queue full at the ACK stage, tcp_abort_on_overflow: RST", "accept_queue_full (ack, RST)")
def sc_ack_reset(t, k, pas):
    return ack_stage(t, k, pas, True)


V4S, V4C = "198.18.7.1", "198.18.7.2"
V6P = "fd00:5e::"


def fw_pair():
    server, client = NetNS(), NetNS()
    server.link(client, v4="198.18.7", v6=V6P)
    # No tentative IPv6 address left, or the first connects fail.
    wait_until(lambda: "tentative" not in server.exec("ip", "-6", "addr") + client.exec("ip", "-6", "addr"), 10)
    return server, client


def nft_load(ns, ruleset):
    with tempfile.NamedTemporaryFile("w", prefix="km-nft-", suffix=".nft", delete=False) as f:
        f.write(ruleset)
    try:
        ns.exec("nft", "-f", f.name)
    finally:
        os.unlink(f.name)


def prestart_dnat():
    """A DNAT rule loaded before synsight starts: where conntrack is a
    module, its BTF (struct nf_conn) must be there when the programs load."""
    server, client = fw_pair()
    target = prestart_port(2)
    published = target + 1000
    nft_load(server, "table ip km_nat {\n chain prerouting {\n"
             "  type nat hook prerouting priority dstnat; policy accept;\n"
             "  tcp dport %d dnat to %s:%d\n }\n}\n" % (published, V4S, target))
    return server, client, published, target


@scenario("DNAT to a closed port: original destination from conntrack, client joined",
          "no_listener (DNAT, original_destination)")
def sc_dnat(t, k, pas):
    server, client, published, target = prestarted("sc_dnat")
    pid, err = connect(client, V4S, published)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, server, target)
    if r:
        # never_listened, or other_netns when another scenario listens on that port elsewhere.
        expect_common(c, r, "refusal", "no_listener", None, target)
        c.true("cause %r" % r.get("cause"), r.get("cause") in ("never_listened", "other_netns"))
        c.eq("local.port", (r.get("local") or {}).get("port"), target)
        c.eq("client.pid", pid_of(r, "client"), pid)
        c.eq("original_destination", r.get("original_destination"), {"addr": V4S, "port": published})
        c.eq("evidence.nat", ev(r).get("nat"), "dnat")
        hint_has(c, r, "the client connected to %s:%d" % (V4S, published))
    return r, c, k.reset_hook()


sc_dnat.prestart = prestart_dnat


def cgroup_tree(components):
    """Creates <cgroup v2 root>/<components...> (/sys/fs/cgroup as the guest's
    /init mounts it, /sys/fs/cgroup/unified on a hybrid host) and registers
    its removal, deepest first, with any process left moved back to the
    root. Returns (path as /proc/<pid>/cgroup shows it, directory)."""
    root = next((r for r in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
                 if os.path.exists(r + "/cgroup.controllers")), None)
    if root is None:
        raise Unavailable("no cgroup v2 hierarchy mounted")
    created, d = [], root
    for c in components:
        d = d + "/" + c
        if not os.path.isdir(d):
            os.mkdir(d)
            created.append(d)

    def remove():
        for x in reversed(created):
            remove_cgroup(x, root)
    CLEANUP.append(remove)
    return "/" + "/".join(components), d


def remove_cgroup(d, root):
    """Moves what is left in cgroup `d` to its hierarchy's `root`, then removes it."""
    try:
        for pid in open(d + "/cgroup.procs").read().split():
            with open(root + "/cgroup.procs", "w") as f:
                f.write(pid)
    except OSError:
        pass
    wait_until(lambda: not os.path.isdir(d) or _rmdir(d), 5)


def _rmdir(d):
    try:
        os.rmdir(d)
        return True
    except OSError:
        return False


def killed_in_cgroup(t, components):
    """A listener moved into a cgroup laid out as systemd or kubelet lay
    theirs out, killed with SIGKILL, then refused: the record."""
    path, d = cgroup_tree(components)
    ns = NetNS()
    port = rnd_port()
    listener = Peer(ns, ["listen", "127.0.0.1", str(port), "--await-cgroup", path], ready="waiting")
    with open(d + "/cgroup.procs", "w") as f:
        f.write(str(listener.pid))
    if not wait_until(lambda: "ready" in listener.output(), 10):
        raise Failure("the listener did not start in %s: %s" % (path, listener.output()))
    listener.kill()
    pid, err = connect(ns, "127.0.0.1", port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = no_listener_record(t, ns, port)
    if r:
        refusal_check(c, r, "listener_exited", port, pid, listener.pid)
        c.eq("process.cgroup", (r.get("process") or {}).get("cgroup"), path)
    return r, c


@scenario("killed systemd service (cgroup v2 system.slice): the unit named", "no_listener (workload: unit)")
def sc_identity_unit(t, k, pas):
    unit = "km\\x2dsvc-%d.service" % os.getpid()
    r, c = killed_in_cgroup(t, ["system.slice", unit])
    if r:
        p = r.get("process") or {}
        c.eq("process.unit", p.get("unit"), "km-svc-%d.service" % os.getpid())
        c.eq("process.cgroup (escaped unit name)", p.get("cgroup"), "/system.slice/" + unit)
        c.true("no container or pod", p.get("container") is None and p.get("pod") is None)
    return r, c, k.reset_hook()


def prestart_identity_pod():
    """A kubelet-style pod log directory (<ns>_<pod>_<uid>/<container>/) in a
    temporary root that synsight, started next, is pointed at with
    --pod-log-dir (EXTRA_TRACE_ARGS: every trace of the pass takes it)."""
    uid = "%08x-%04x-4%03x-8%03x-%012x" % (random.getrandbits(32), random.getrandbits(16), random.getrandbits(12),
                                          random.getrandbits(12), random.getrandbits(48))
    logs = tempfile.mkdtemp(prefix="km-pods-")
    os.makedirs("%s/shop_api-km_%s/api" % (logs, uid))
    set_trace_option("--pod-log-dir", logs)
    CLEANUP.append(lambda: shutil.rmtree(logs, ignore_errors=True))
    return uid


@scenario("killed pod container (kubelet systemd driver, containerd scope): the pod named",
          "no_listener (workload: pod)")
def sc_identity_pod(t, k, pas):
    uid = prestarted("sc_identity_pod")
    cid = "%064x" % random.getrandbits(256)
    r, c = killed_in_cgroup(t, ["kubepods.slice", "kubepods-besteffort.slice",
                                "kubepods-besteffort-pod%s.slice" % uid.replace("-", "_"),
                                "cri-containerd-%s.scope" % cid])
    if r:
        p = r.get("process") or {}
        c.eq("process.pod", p.get("pod"), {"namespace": "shop", "name": "api-km", "uid": uid, "container": "api",
                                           "qos": "besteffort"})
        c.eq("process.container", p.get("container"), {"runtime": "containerd", "id": cid})
        c.eq("process.unit", p.get("unit"), None)
        hint_has(c, r, "pod shop/api-km")
    return r, c, k.reset_hook()


sc_identity_pod.prestart = prestart_identity_pod


def fw_record(t, ns, port, timeout=10):
    return t.wait(lambda r: (r.get("reason") or "").startswith("firewall_") and r.get("netns") == ns.inode
                  and r.get("port") == port, timeout)


def fw_check(c, r, reject, port, client_pid, table, chain, rule_contains, family="ipv4", method=None,
             handle=None, reject_with=None):
    """A firewall record names the table, chain, hook and rule (and its nft
    handle when given: read with `nft -a list ruleset`, independently of
    synsight), found in the namespace's ruleset."""
    expect_common(c, r, "refusal" if reject else "drop", "firewall_reject" if reject else "firewall_drop", None, port, family)
    c.eq("local.port", (r.get("local") or {}).get("port"), port)
    c.eq("client.pid", pid_of(r, "client"), client_pid)
    e = ev(r)
    c.eq("evidence.table", e.get("table"), table)
    c.eq("evidence.chain", e.get("chain"), chain)
    c.eq("evidence.chain_hook", e.get("chain_hook"), chain.lower())
    c.true("evidence.rule %r lacks %r" % (e.get("rule"), rule_contains), rule_contains in (e.get("rule") or ""))
    c.true("evidence.rule_method %r: the rule was not looked up" % e.get("rule_method"),
           e.get("rule_method") not in (None, "ruleset_unavailable"))
    if handle is not None:
        c.eq("evidence.handle", e.get("handle"), handle)
    if reject_with:
        c.eq("evidence.reject_with", e.get("reject_with"), reject_with)
    if method:
        c.eq("evidence.method", e.get("method"), method)
    hint_has(c, r, str(port))


def nft_handle(ns, match):
    """The handle nft gave the rule whose text contains `match`."""
    for line in ns.exec("nft", "-a", "list", "ruleset").splitlines():
        if match in line and "# handle " in line:
            return int(line.rsplit("# handle ", 1)[1].strip())
    return None


FW_HOOK = "tp_btf/kfree_skb (NETFILTER_DROP)"


def fw_expected(k):
    return (FW_HOOK, None) if k.btf.has_name("SKB_DROP_REASON_NETFILTER_DROP") else (None, "no NETFILTER_DROP before 5.18")


def fw_input_rule(server, port, rule, comment=""):
    """One nft rule `tcp dport PORT RULE` in an inet input chain; its handle."""
    nft_load(server, 'table inet filter { chain input { type filter hook input priority 0; policy accept;\n'
             'tcp dport %d %s\n}\n}\n' % (port, rule + comment))
    return nft_handle(server, "tcp dport %d " % port)


@scenario("nft INPUT reject with tcp reset, IPv4", "firewall_reject (tcp reset)")
def sc_fw_in_reset(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    handle = fw_input_rule(server, port, "counter reject with tcp reset", ' comment "km"')
    pid, err = connect(client, V4S, port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = fw_record(t, server, port)
    if r:
        fw_check(c, r, True, port, pid, "inet filter", "input", 'reject with tcp reset comment "km"', method="client_errno",
                 handle=handle, reject_with="tcp-reset")
    return r, c, fw_expected(k)


@scenario("nft INPUT reject (ICMP port-unreachable), IPv4", "firewall_reject (icmp)")
def sc_fw_in_icmp(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    handle = fw_input_rule(server, port, "reject")
    pid, err = connect(client, V4S, port)
    c = Check()
    c.eq("connect errno", err, errno.ECONNREFUSED)
    r = fw_record(t, server, port)
    if r:
        fw_check(c, r, True, port, pid, "inet filter", "input", "tcp dport %d reject" % port,
                 method="icmp_send" if k.btf.tp_nargs("icmp_send") >= 0 else None,
                 handle=handle, reject_with="icmp port-unreachable")
    return r, c, fw_expected(k)


@scenario("nft INPUT drop, IPv4", "firewall_drop")
def sc_fw_in_drop(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    handle = fw_input_rule(server, port, "drop")
    pid, err = connect(client, V4S, port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = fw_record(t, server, port)
    if r:
        fw_check(c, r, False, port, pid, "inet filter", "input", "tcp dport %d drop" % port, method="retransmission",
                 handle=handle)
        c.eq("remote.addr", addr_of(r, "remote"), V4C)
        # One record per connection attempt, not one per retransmitted SYN.
        time.sleep(0.5 * SLOW)
        mine = [x for x in t.records()[t.start:] if x.get("port") == port and x.get("netns") == server.inode]
        c.eq("records for the dropped attempt", len(mine), 1)
    return r, c, fw_expected(k)


@scenario("a client reusing its 4-tuple: each attempt reported once (by its ISN)",
          "firewall_reject/firewall_drop (reused 4-tuple)")
def sc_fw_reused_tuple(t, k, pas):
    """Two attempts from one source port to a rejected port, then two to a
    dropped one (each retransmitted once): a new attempt on a 4-tuple
    already reported is a failure of its own, its retransmissions are not."""
    server, client = fw_pair()
    port = rnd_port()
    nft_load(server, 'table inet reuse { chain input { type filter hook input priority 0; policy accept;\n'
             'tcp dport %d reject with tcp reset\ntcp dport %d drop\n}\n}\n' % (port, port + 1))
    sport = 41000 + port % 1000
    pids, c = [], Check()
    for dport, timeout, want in ((port, 3, errno.ECONNREFUSED), (port, 3, errno.ECONNREFUSED),
                                 (port + 1, 1.5, errno.ETIMEDOUT), (port + 1, 1.5, errno.ETIMEDOUT)):
        pid, err = peer(client, "connect", V4S, dport, "--timeout", timeout, "--sport", sport)
        c.eq("connect errno to %d" % dport, err, want)
        pids.append(pid)
    for dport, reject, pair in ((port, True, pids[:2]), (port + 1, False, pids[2:])):
        got = [t.wait(lambda r, p=p, d=dport: (r.get("reason") or "").startswith("firewall_")
                      and r.get("port") == d and pid_of(r, "client") == p) for p in pair]
        for r, pid in zip(got, pair):
            c.true("no record of attempt %d to port %d" % (pid, dport), r is not None)
            if r:
                fw_check(c, r, reject, dport, pid, "inet reuse", "input", "tcp dport %d " % dport)
                c.eq("remote.port", (r.get("remote") or {}).get("port"), sport)
                # A dropped attempt is decided by its client's retransmission (drops 1) or by
                # the retransmitted SYN's drop (drops 2), whichever comes first.
                c.eq("evidence.method", ev(r).get("method"), "client_errno" if reject else "retransmission")
                if reject:
                    c.eq("evidence.drops", ev(r).get("drops"), 1)
    # One record per attempt: the retransmissions and the ETIMEDOUTs add none.
    time.sleep(0.5 * SLOW)
    mine = [x for x in t.records()[t.start:] if x.get("port") in (port, port + 1) and x.get("netns") == server.inode]
    c.eq("records for the 4 attempts", len(mine), 4)
    return (mine[0] if mine else None), c, fw_expected(k)


def fw_reject_and_drop(t, client, rules_ns, dest, port):
    """Connects to `port` (rejected with a reset) and `port + 1` (dropped);
    returns the check and (record, client pid) for each, looked up in
    `rules_ns`, where the rules are."""
    pid, err = connect(client, dest, port)
    pid2, err2 = connect(client, dest, port + 1, timeout=2)
    c = Check()
    c.eq("connect errno (reject)", err, errno.ECONNREFUSED)
    c.eq("connect errno (drop)", err2, errno.ETIMEDOUT)
    r = fw_record(t, rules_ns, port)
    r2 = fw_record(t, rules_ns, port + 1)
    c.true("no drop record", r2 is not None)
    return c, (r, pid), (r2, pid2)


@scenario("nft INPUT reject with tcp reset and drop, IPv6", "firewall_reject/firewall_drop (IPv6)")
def sc_fw_v6(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    nft_load(server, 'table ip6 filter6 { chain input { type filter hook input priority 0; policy accept;\n'
             'tcp dport %d reject with tcp reset\ntcp dport %d drop\n}\n}\n' % (port, port + 1))
    handles = [nft_handle(server, "tcp dport %d " % p) for p in (port, port + 1)]
    c, (r, pid), (r2, pid2) = fw_reject_and_drop(t, client, server, V6P + "1", port)
    if r:
        fw_check(c, r, True, port, pid, "ip6 filter6", "input", "reject with tcp reset", "ipv6", method="client_errno",
                 handle=handles[0])
        c.eq("remote.addr", addr_of(r, "remote"), V6P + "2")
    if r2:
        fw_check(c, r2, False, port + 1, pid2, "ip6 filter6", "input", "tcp dport %d drop" % (port + 1), "ipv6",
                 handle=handles[1])
    return r, c, fw_expected(k)


@scenario("nft OUTPUT reject and drop of the client's own SYN", "firewall_reject/firewall_drop (OUTPUT)")
def sc_fw_out(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    nft_load(client, 'table inet out { chain output { type filter hook output priority 0; policy accept;\n'
             'tcp dport %d reject with tcp reset\ntcp dport %d drop\n}\n}\n' % (port, port + 1))
    handles = [nft_handle(client, "tcp dport %d " % p) for p in (port, port + 1)]
    # OUTPUT drops happen in the client's namespace.
    c, (r, pid), (r2, pid2) = fw_reject_and_drop(t, client, client, V4S, port)
    if r:
        fw_check(c, r, True, port, pid, "inet out", "output", "reject with tcp reset", handle=handles[0])
        c.eq("evidence.local_socket", ev(r).get("local_socket"), True)
    if r2:
        fw_check(c, r2, False, port + 1, pid2, "inet out", "output", "tcp dport %d drop" % (port + 1), handle=handles[1])
        c.eq("evidence.client_context", ev(r2).get("client_context"), "process")
    return r, c, fw_expected(k)


IP_VS_SO_SET_ADD = 64 + 1024 + 64 + 2


def ipvs_service(ns, vip, port):
    """An IPVS virtual service TCP vip:port (scheduler rr) with no real
    servers, added in `ns` through IPVS's setsockopt interface (what
    `ipvsadm -A -t vip:port -s rr` does; kube-proxy in IPVS mode keeps a
    Service without ready endpoints so). The VIP on a dummy device, as
    kube-proxy puts ClusterIPs on kube-ipvs0."""
    if subprocess.run(["modprobe", "ip_vs_rr"], capture_output=True).returncode != 0:
        raise Unavailable("no IPVS (ip_vs.ko, ip_vs_rr.ko)")
    ns.exec("ip", "link", "add", "kube-ipvs0", "type", "dummy")
    ns.exec("ip", "addr", "add", vip + "/32", "dev", "kube-ipvs0")
    # struct ip_vs_service_user: protocol, addr, port, fwmark, sched_name, flags, timeout, netmask.
    ns.exec("python3", "-c", "import socket, struct\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n"
            "s.setsockopt(socket.IPPROTO_IP, %d, struct.pack('=H2x4sH2xI16sIII', 6, socket.inet_aton('%s'), "
            "socket.htons(%d), 0, b'rr', 0, 0, 0xffffffff))\n" % (IP_VS_SO_SET_ADD, vip, port))


@scenario("IPVS virtual service without real servers (kube-proxy IPVS mode, a Service without endpoints): "
          "a client on the node and one routed to it", "firewall_reject/ipvs_no_destination")
def sc_ipvs_no_dest(t, k, pas):
    server, client = fw_pair()
    vip, port = "10.96.%d.10" % (server.number % 250), rnd_port()
    ipvs_service(server, vip, port)
    client.exec("ip", "route", "add", vip + "/32", "via", V4S)
    c = Check()
    out = []
    for who, ns in (("remote", client), ("local", server)):
        pid, err = connect(ns, vip, port)
        c.eq("connect errno (%s client)" % who, err, errno.ECONNREFUSED)
        r = t.wait(lambda r: r.get("reason") == "firewall_reject" and r.get("netns") == server.inode
                   and r.get("port") == port and pid_of(r, "client") == pid, 10)
        c.true("no record for the %s client" % who, r is not None)
        if r:
            expect_common(c, r, "refusal", "firewall_reject", "ipvs_no_destination", port)
            ipvs = ev(r).get("ipvs") or {}
            c.eq("evidence.ipvs.service (%s)" % who, ipvs.get("service"), "TCP %s:%d" % (vip, port))
            c.eq("evidence.ipvs.scheduler (%s)" % who, ipvs.get("scheduler"), "rr")
            c.eq("evidence.ipvs.destinations (%s)" % who, ipvs.get("destinations"), [])
            c.eq("evidence.chain_hook (%s)" % who, ev(r).get("chain_hook"), "input" if who == "remote" else "output")
            hint_has(c, r, "ipvsadm -Ln -t %s:%d" % (vip, port))
            out.append(r)
    return (out[0] if out else None), c, fw_expected(k)


@scenario("iptables (nft backend) REJECT tcp-reset and DROP", "firewall_reject/firewall_drop (iptables)")
def sc_fw_iptables(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    server.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset")
    server.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(port + 1), "-j", "DROP")
    c, (r, pid), (r2, pid2) = fw_reject_and_drop(t, client, server, V4S, port)
    if r:
        fw_check(c, r, True, port, pid, "ip filter", "INPUT", "tcp dport %d" % port, reject_with="tcp-reset")
        hint_has(c, r, "iptables")
    if r2:
        fw_check(c, r2, False, port + 1, pid2, "ip filter", "INPUT", "tcp dport %d" % (port + 1))
    return r, c, fw_expected(k)


# The rest of a handshake (issue 17): its final ACK, and the RST or ICMP
# error answering a SYN, dropped on this host; a FORWARD rule of a router.
def fw_segment_record(t, ns, port, segment, timeout=10):
    return t.wait(lambda r: (r.get("reason") or "").startswith("firewall_") and r.get("netns") == ns.inode
                  and r.get("port") == port and ev(r).get("segment") == segment, timeout)


def answer_check(c, r, server_addr, client_addr, consequence, client_pid):
    """A dropped answer or final ACK is shown from the SYN's view (the
    server local, the client remote), names the client's connect() caller
    (found in the kernel: the CPU's latest connect()), and its hint says
    what it means."""
    c.eq("local.addr", addr_of(r, "local"), server_addr)
    c.eq("remote.addr", addr_of(r, "remote"), client_addr)
    c.eq("client.pid (the connect() caller)", pid_of(r, "client"), client_pid)
    hint_has(c, r, consequence)


@scenario("nft INPUT drops the handshake's final ACK", "firewall_drop (segment ack)")
def sc_fw_ack_drop(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    handle = fw_input_rule(server, port, "tcp flags & (syn | ack | fin | rst) == ack drop")
    pid, err = connect(client, V4S, port)
    c = Check()
    # The client believes it is connected: its connect() succeeds.
    c.eq("connect errno", err, 0)
    r = fw_segment_record(t, server, port, "ack")
    if r:
        expect_common(c, r, "drop", "firewall_drop", None, port)
        e = ev(r)
        c.eq("evidence.table", e.get("table"), "inet filter")
        c.eq("evidence.chain", e.get("chain"), "input")
        c.eq("evidence.chain_hook", e.get("chain_hook"), "input")
        c.eq("evidence.handle", e.get("handle"), handle)
        c.true("evidence.rule %r" % e.get("rule"), "tcp dport %d" % port in (e.get("rule") or ""))
        c.eq("evidence.tcp_flags", e.get("tcp_flags"), 0x10)
        c.eq("process.pid (the listener)", pid_of(r, "process"), listener.pid)
        answer_check(c, r, V4S, V4C, "believes it is connected", pid)
        # One record per 4-tuple: the ACKs answering the retransmitted SYN-ACKs are not new records.
        time.sleep(2 * SLOW)
        mine = [x for x in t.records()[t.start:] if x.get("port") == port and x.get("netns") == server.inode
                and (x.get("reason") or "").startswith("firewall_")]
        c.eq("firewall records for the connection", len(mine), 1)
    return r, c, fw_expected(k)


@scenario("nft INPUT drops an established connection's ACKs: not a handshake's", "firewall_drop (no segment)")
def sc_fw_established_ack(t, k, pas):
    server, client = fw_pair()
    port = rnd_port()

    def listen():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((V4S, port))
        s.listen(4)
        return s
    ls = in_netns(server, listen)
    cs = in_netns(client, lambda: socket.create_connection((V4S, port), timeout=5))
    conn, _ = ls.accept()
    # After the handshake: the client's ACKs of the server's data are dropped
    # (early demux gives them the established socket, not a request socket).
    handle = fw_input_rule(server, port, "tcp flags & (syn | ack | fin | rst) == ack drop")
    c = Check()
    try:
        for _ in range(2):
            conn.sendall(b"x" * 100)
            cs.settimeout(5)
            c.eq("bytes received", len(cs.recv(100)), 100)
        r = fw_record(t, server, port)
    finally:
        for so in (cs, conn, ls):
            so.close()
    if r:
        expect_common(c, r, "drop", "firewall_drop", None, port)
        e = ev(r)
        c.eq("evidence.handle", e.get("handle"), handle)
        c.eq("evidence.tcp_flags", e.get("tcp_flags"), 0x10)
        c.eq("evidence.segment (none: not a handshake segment)", e.get("segment"), None)
        c.true("hint speaks of no handshake ACK: %r" % r.get("hint"), "handshake" not in (r.get("hint") or ""))
    return r, c, fw_expected(k)


@scenario("nft OUTPUT drops the RST refusing a SYN; the client times out", "firewall_drop (segment rst), dropped_on_host")
def sc_fw_rst_out(t, k, pas):
    server, client = fw_pair()
    client.exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
    port = rnd_port()
    nft_load(server, 'table inet out { chain output { type filter hook output priority 0; policy accept;\n'
             'tcp sport %d tcp flags & rst == rst drop\n}\n}\n' % port)
    handle = nft_handle(server, "tcp sport %d " % port)
    pid, err = connect(client, V4S, port, timeout=15)
    c = Check()
    # No listener, but the refusal never arrives.
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = fw_segment_record(t, server, port, "rst")
    if r:
        expect_common(c, r, "drop", "firewall_drop", None, port)
        e = ev(r)
        c.eq("evidence.(table, chain, chain_hook, handle)",
             (e.get("table"), e.get("chain"), e.get("chain_hook"), e.get("handle")), ("inet out", "output", "output", handle))
        c.eq("evidence.method", e.get("method"), "answer_dropped")
        c.eq("evidence.tcp_flags", e.get("tcp_flags"), 0x14)
        answer_check(c, r, V4S, V4C, "never learns it was refused", pid)
        if timeout_explained(k):
            tr = timeout_record(t, client, port)
            c.true("a connect_timeout record", tr is not None)
            if tr:
                expect_common(c, tr, "connect_failure", "connect_timeout", "dropped_on_host", port)
                d = ev(tr).get("drop") or {}
                c.eq("connect_timeout evidence.drop (reason, segment, chain)",
                     (d.get("reason"), d.get("segment"), d.get("chain")), ("firewall_drop", "rst", "output"))
                c.eq("connect_timeout process.pid", pid_of(tr, "process"), pid)
                hint_has(c, tr, "the RSTs refusing it")
        # The SYN and its retransmission were both refused; one attempt, one refusal (same ISN).
        time.sleep(0.5 * SLOW)
        refused = [x for x in t.records()[t.start:]
                   if x.get("reason") == "no_listener" and x.get("port") == port and x.get("netns") == server.inode]
        c.eq("no_listener records for the one attempt", len(refused), 1)
    return r, c, fw_expected(k)


def icmp_answer_dropped(t, k, v6):
    """An nft INPUT reject (ICMP or ICMPv6 admin-prohibited) whose error an
    OUTPUT rule drops: the client never learns it was refused."""
    server, client = fw_pair()
    port = rnd_port()
    table, icmp, want = ("ip6 fw6", "icmpv6", {"type": 1, "code": 1}) if v6 else ("ip fw", "icmp", {"type": 3, "code": 13})
    nft_load(server, 'table %s { chain input { type filter hook input priority 0; policy accept;\n'
             'tcp dport %d reject with %s type admin-prohibited\n}\n'
             'chain output { type filter hook output priority 0; policy accept;\n'
             '%s type destination-unreachable drop\n}\n}\n' % (table, port, icmp, icmp))
    handle = nft_handle(server, "%s type destination-unreachable drop" % icmp)
    (srv, cli) = (V6P + "1", V6P + "2") if v6 else (V4S, V4C)
    pid, err = connect(client, srv, port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = fw_segment_record(t, server, port, "icmp")
    if r:
        expect_common(c, r, "drop", "firewall_drop", None, port, "ipv6" if v6 else "ipv4")
        e = ev(r)
        c.eq("evidence.(table, chain, handle)", (e.get("table"), e.get("chain"), e.get("handle")), (table, "output", handle))
        c.eq("evidence.icmp", e.get("icmp"), want)
        c.eq("evidence.method", e.get("method"), "answer_dropped")
        answer_check(c, r, srv, cli, "never learns it was refused", pid)
    return r, c, fw_expected(k)


@scenario("nft INPUT reject whose ICMP error an OUTPUT rule drops", "firewall_drop (segment icmp)")
def sc_fw_icmp_out(t, k, pas):
    return icmp_answer_dropped(t, k, v6=False)


@scenario("nft INPUT reject whose ICMPv6 error an OUTPUT rule drops, IPv6", "firewall_drop (segment icmp, IPv6)")
def sc_fw_icmp6_out(t, k, pas):
    return icmp_answer_dropped(t, k, v6=True)


@scenario("nft FORWARD drop in a router namespace between two namespaces", "firewall_drop (forward)")
def sc_fw_forward(t, k, pas):
    client, router, server = reset_ttl_topology()
    port = rnd_port()
    Peer(server, ["listen", "0.0.0.0", str(port)])
    nft_load(router, 'table inet routing { chain forward { type filter hook forward priority 0; policy accept;\n'
             'tcp dport %d drop\n}\n}\n' % port)
    handle = nft_handle(router, "tcp dport %d " % port)
    pid, err = connect(client, RTTL_S, port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = fw_record(t, router, port)
    if r:
        fw_check(c, r, False, port, pid, "inet routing", "forward", "tcp dport %d drop" % port, handle=handle)
        c.eq("netns (the router's)", r.get("netns"), router.inode)
        c.eq("evidence.segment", ev(r).get("segment"), "syn")
        c.eq("local.addr", addr_of(r, "local"), RTTL_S)
        c.eq("remote.addr", addr_of(r, "remote"), RTTL_C)
    return r, c, fw_expected(k)


# bpf_task_pt_regs (5.15+, every kernel of the matrix): connect() is traced at
# its exit only, reading its arguments from the saved user registers. Where
# BPF trampolines load, on the syscall functions themselves (no syscall
# tracepoint, so no syscall slow path); else the classic tracepoints.
SYSCALL_HOOK_CLASSIC = "syscalls:sys_{enter,exit}_{bind,listen} + sys_exit_connect"
SYSCALL_HOOK_FX = "fentry+fexit/__sys_{bind,listen} + fexit/__sys_connect"


def sys_record(t, ns, kind, reason, port, pid=None, key="process", timeout=10):
    return t.wait(lambda r: r.get("kind") == kind and r.get("reason") == reason and r.get("netns") == ns.inode
                  and r.get("port") == port and (pid is None or pid_of(r, key) == pid), timeout)


BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_PROG_ATTACH = 8
BPF_CGROUP_INET4_BIND = 8
BPF_CGROUP_INET4_CONNECT = 10
BPF_F_ALLOW_MULTI = 2


def cgroup_deny(cgroup_dir, attach_type, name):
    """Loads a cgroup sock_addr program that refuses every call (r0 = 0:
    EPERM), named `name`, and attaches it to `cgroup_dir` (raw bpf(2), as
    systemd's SocketBindDeny= attaches its `sd_bind4`). The cgroup's removal
    detaches it. Returns its program id."""
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = 0; exit
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into("<IIQQ", attr, 0, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, 2, ctypes.addressof(ibuf), ctypes.addressof(lic))
    struct.pack_into("16s", attr, 48, name.encode())
    struct.pack_into("<I", attr, 68, attach_type)
    abuf = ctypes.create_string_buffer(bytes(attr), len(attr))
    fd = _libc.syscall(SYS_bpf, BPF_PROG_LOAD, abuf, len(attr))
    if fd < 0:
        raise Failure("loading a cgroup sock_addr program: %s" % os.strerror(ctypes.get_errno()))
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            at = ctypes.create_string_buffer(struct.pack("<IIII4x", cg, fd, attach_type, BPF_F_ALLOW_MULTI), 20)
            if _libc.syscall(SYS_bpf, BPF_PROG_ATTACH, at, 20) != 0:
                raise Failure("attaching it to %s: %s" % (cgroup_dir, os.strerror(ctypes.get_errno())))
        finally:
            os.close(cg)
        prog_id = int(re.search(r"prog_id:\s*(\d+)", open("/proc/self/fdinfo/%d" % fd).read()).group(1))
    finally:
        os.close(fd)
    return prog_id


def bpf_programs_of(r):
    return [p for p in (ev(r).get("bpf_programs") or []) if isinstance(p, dict)]


@scenario("bind() and connect() refused by cgroup BPF programs (systemd SocketBindDeny= style)", "lsm_denied/cgroup_bpf")
def sc_cgroup_bpf(t, k, pas):
    path, d = cgroup_tree(["system.slice", "synsight-km-%d-deny.service" % os.getpid()])
    bind_id = cgroup_deny(d, BPF_CGROUP_INET4_BIND, "sd_bind4")
    conn_id = cgroup_deny(d, BPF_CGROUP_INET4_CONNECT, "deny_connect4")
    ns = NetNS()
    port = rnd_port()
    c = Check()
    pid, err = peer(ns, "bind", "127.0.0.1", port, cgroup_dir=d)
    c.eq("bind errno", err, errno.EPERM)
    r = sys_record(t, ns, "denial", "lsm_denied", port)
    if r:
        expect_common(c, r, "denial", "lsm_denied", "cgroup_bpf", port)
        c.eq("process.pid", pid_of(r, "process"), pid)
        progs = bpf_programs_of(r)
        c.true("evidence.bpf_programs %r lack program %d" % (progs, bind_id), any(p.get("id") == bind_id for p in progs))
        c.eq("evidence.bpf_programs[0].attach", (progs or [{}])[0].get("attach"), "cgroup bind4 " + path)
        c.eq("evidence.bpf_programs[0].owner", (progs or [{}])[0].get("owner"), "systemd")
        hint_has(c, r, "SocketBindAllow=")
    pid2, err2 = peer(ns, "connect", "127.0.0.1", port + 1, cgroup_dir=d)
    c.eq("connect errno", err2, errno.EPERM)
    r2 = sys_record(t, ns, "denial", "lsm_denied", port + 1)
    c.true("no record of the refused connect()", r2 is not None)
    if r2:
        expect_common(c, r2, "denial", "lsm_denied", "cgroup_bpf", port + 1)
        c.eq("client.pid", pid_of(r2, "client"), pid2)
        progs = bpf_programs_of(r2)
        c.true("evidence.bpf_programs %r lack program %d" % (progs, conn_id), any(p.get("id") == conn_id for p in progs))
        hint_has(c, r2, "bpftool cgroup detach %s connect4 id %d" % (d, conn_id))
    return r, c, (k.syscall_hook(), None)


@scenario("bind() EADDRINUSE with a listening holder", "address_in_use")
def sc_bind_in_use(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    holder = Peer(ns, ["listen", "127.0.0.1", str(port)])
    pid, err = peer(ns, "bind", "127.0.0.1", port)
    c = Check()
    c.eq("bind errno", err, errno.EADDRINUSE)
    r = sys_record(t, ns, "bind_failure", "address_in_use", port)
    if r:
        expect_common(c, r, "bind_failure", "address_in_use", None, port)
        c.eq("process.pid (holder)", pid_of(r, "process"), holder.pid)
        c.eq("client.pid", pid_of(r, "client"), pid)
        c.eq("evidence.failed_in", ev(r).get("failed_in"), "bind")
        h = ev(r).get("holder") or {}
        c.eq("evidence.holder", (h.get("state"), h.get("pid"), h.get("port")), ("LISTEN", holder.pid, port))
        c.eq("evidence.requested.addr", (ev(r).get("requested") or {}).get("addr"), "127.0.0.1")
        c.eq("local.port", (r.get("local") or {}).get("port"), port)
    return r, c, (k.syscall_hook(), None)


@scenario("listen() EADDRINUSE (two SO_REUSEADDR sockets)", "address_in_use (listen)")
def sc_listen_in_use(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    pid, err = peer(ns, "listen-twice", "127.0.0.1", port)
    c = Check()
    c.eq("listen errno", err, errno.EADDRINUSE)
    r = sys_record(t, ns, "bind_failure", "address_in_use", port)
    if r:
        expect_common(c, r, "bind_failure", "address_in_use", None, port)
        c.eq("evidence.failed_in", ev(r).get("failed_in"), "listen")
        c.eq("evidence.call", ev(r).get("call"), "listen")
        c.eq("client.pid", pid_of(r, "client"), pid)
        # The first socket of the same process holds it.
        c.eq("process.pid", pid_of(r, "process"), pid)
        c.eq("evidence.holder.state", (ev(r).get("holder") or {}).get("state"), "LISTEN")
        c.eq("local.addr", addr_of(r, "local"), "127.0.0.1")
    return r, c, (k.syscall_hook(), None)


def privileged_bind(t, k, uid, capability_check, **who):
    """bind() to port 80 of a new namespace as `who` (peer()'s unprivileged=
    or userns=): EACCES, one privileged_port record with the caller's uid
    and the capability check's verdict."""
    ns = NetNS()
    pid, err = peer(ns, "bind", "0.0.0.0", 80, **who)
    c = Check()
    c.eq("bind errno", err, errno.EACCES)
    r = sys_record(t, ns, "bind_failure", "privileged_port", 80)
    if r:
        expect_common(c, r, "bind_failure", "privileged_port", None, 80)
        c.eq("process.pid", pid_of(r, "process"), pid)
        c.eq("evidence.uid", ev(r).get("uid"), uid)
        c.eq("evidence.capability", ev(r).get("capability"), "CAP_NET_BIND_SERVICE")
        c.eq("evidence.ip_unprivileged_port_start", ev(r).get("ip_unprivileged_port_start"), 1024)
        c.eq("evidence.capability_check", ev(r).get("capability_check"), capability_check)
    return r, c


@scenario("privileged port as uid 65534", "privileged_port")
def sc_privileged(t, k, pas):
    r, c = privileged_bind(t, k, 65534, "not in the effective set", unprivileged=True)
    return r, c, (k.cap_check(), None)


@scenario("privileged port as root of its own user namespace", "privileged_port")
def sc_privileged_userns(t, k, pas):
    """uid 0 with every capability, but in its own user namespace: the
    network namespace belongs to the initial one (a rootless container on
    the host's network)."""
    r, c = privileged_bind(t, k, 0, "held only in the process's own user namespace, not in the one owning the network namespace",
                           userns=True)
    if r:
        hint_has(c, r, "network namespace created inside its user namespace")
    return r, c, (k.cap_check(), None)


@scenario("bind() to an address not on this host", "address_not_available")
def sc_addr_not_avail(t, k, pas):
    ns = NetNS()
    port = rnd_port()
    pid, err = peer(ns, "bind", "192.0.2.1", port)
    c = Check()
    c.eq("bind errno", err, errno.EADDRNOTAVAIL)
    r = sys_record(t, ns, "bind_failure", "address_not_available", port)
    if r:
        expect_common(c, r, "bind_failure", "address_not_available", "not_configured", port)
        c.eq("process.pid", pid_of(r, "process"), pid)
        c.eq("local.addr", addr_of(r, "local"), "192.0.2.1")
        c.eq("evidence.addr", ev(r).get("addr"), "192.0.2.1")
        # The namespace's own addresses, read when the failure was decoded: its loopback only.
        c.eq("evidence.addresses", [(a.get("addr"), a.get("interface")) for a in ev(r).get("addresses") or []],
             [("127.0.0.1", "lo")])
        hint_has(c, r, "ip_nonlocal_bind")
    # The host's own address, bound inside a namespace (a container given its host's address):
    # where the host has a global IPv4 address (this machine's eth0; a guest has none).
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/\d+ .*scope global", sh("ip", "-4", "addr", "show"))
    if m:
        host = m.group(1)
        pid2, err2 = peer(ns, "bind", host, port + 1)
        c.eq("bind errno (the host's address)", err2, errno.EADDRNOTAVAIL)
        r2 = sys_record(t, ns, "bind_failure", "address_not_available", port + 1)
        c.true("no record for the host's address bound in a namespace", r2 is not None)
        if r2:
            expect_common(c, r2, "bind_failure", "address_not_available", "not_configured", port + 1)
            c.eq("evidence.host_address.addr", (ev(r2).get("host_address") or {}).get("addr"), host)
            hint_has(c, r2, "published port")
    return r, c, (k.syscall_hook(), None)


def v6_addr_flags(ns, dev, addr):
    out = sh("ip", "-n", ns.name, "-6", "addr", "show", "dev", dev)
    line = next((l for l in out.splitlines() if (" %s/" % addr) in l), "")
    return line


@scenario("bind() to an IPv6 address whose DAD cannot finish (no carrier) and to one another host has",
          "address_not_available/tentative + duplicate_address")
def sc_addr_dad(t, k, pas):
    if not os.path.exists("/proc/net/if_inet6"):
        raise Unavailable("no IPv6 in this kernel")
    # Tentative: a veth whose peer is down has no carrier, so DAD never starts.
    a, b = NetNS(), NetNS()
    da, db = a.link(b)
    sh("ip", "-n", b.name, "link", "set", db, "down")
    sh("ip", "-n", a.name, "-6", "addr", "add", "fd00:5f::1/64", "dev", da)
    c = Check()
    c.true("fd00:5f::1 is not tentative: %s" % v6_addr_flags(a, da, "fd00:5f::1"),
           wait_until(lambda: "tentative" in v6_addr_flags(a, da, "fd00:5f::1"), 5))
    port = rnd_port()
    pid, err = peer(a, "bind", "fd00:5f::1", port)
    c.eq("bind errno (tentative)", err, errno.EADDRNOTAVAIL)
    r = sys_record(t, a, "bind_failure", "address_not_available", port)
    if r:
        expect_common(c, r, "bind_failure", "address_not_available", "tentative", port, family="ipv6")
        c.eq("process.pid", pid_of(r, "process"), pid)
        conf = ev(r).get("configured") or {}
        c.eq("evidence.configured", (conf.get("addr"), conf.get("interface"), conf.get("tentative")), ("fd00:5f::1", da, True))
        hint_has(c, r, "IPV6_FREEBIND")
    # Duplicate: the other end of a live veth already has the address (no DAD there); this end's
    # DAD asks for it and is answered, so it fails (not a race between two tentative addresses).
    x, y = NetNS(), NetNS()
    dx, dy = x.link(y)
    sh("ip", "-n", y.name, "-6", "addr", "add", "fd00:60::1/64", "dev", dy, "nodad")
    c.true("fd00:60::1 on the peer stayed tentative: %s" % v6_addr_flags(y, dy, "fd00:60::1"),
           wait_until(lambda: "tentative" not in v6_addr_flags(y, dy, "fd00:60::1"), 10))
    sh("ip", "-n", x.name, "-6", "addr", "add", "fd00:60::1/64", "dev", dx)
    c.true("fd00:60::1 never failed DAD: %s" % v6_addr_flags(x, dx, "fd00:60::1"),
           wait_until(lambda: "dadfailed" in v6_addr_flags(x, dx, "fd00:60::1"), 20))
    pid2, err2 = peer(x, "bind", "fd00:60::1", port + 1)
    c.eq("bind errno (dadfailed)", err2, errno.EADDRNOTAVAIL)
    r2 = sys_record(t, x, "bind_failure", "address_not_available", port + 1)
    c.true("no record for the DAD-failed address", r2 is not None)
    if r2:
        expect_common(c, r2, "bind_failure", "address_not_available", "duplicate_address", port + 1, family="ipv6")
        c.eq("evidence.configured.dadfailed", (ev(r2).get("configured") or {}).get("dadfailed"), True)
        hint_has(c, r2, "another host")
    return r, c, (k.syscall_hook(), None)


@scenario("Landlock-restricted bind and connect", "lsm_denied/landlock")
def sc_landlock(t, k, pas):
    if k.landlock_abi < 4:
        raise Unavailable("Landlock ABI %d: TCP bind/connect rules need ABI 4 (Linux 6.7)" % k.landlock_abi)
    ns = NetNS()
    port = rnd_port()
    Peer(ns, ["listen", "127.0.0.1", str(port + 1)])
    b = peer(ns, "landlock", port + 2, "bind", "127.0.0.1", port, unprivileged=True)
    cn = peer(ns, "landlock", port + 2, "connect", "127.0.0.1", port + 1, unprivileged=True)
    c = Check()
    c.eq("bind errno", b[1], errno.EACCES)
    c.eq("connect errno", cn[1], errno.EACCES)
    r = sys_record(t, ns, "denial", "lsm_denied", port, pid=b[0])
    r2 = sys_record(t, ns, "denial", "lsm_denied", port + 1, pid=cn[0])
    c.true("no lsm_denied record for the connect", r2 is not None)
    for rec, op in ((r, "bind"), (r2, "connect")):
        if rec:
            expect_common(c, rec, "denial", "lsm_denied", "landlock", rec.get("port"))
            c.eq("evidence.operation (%s)" % op, ev(rec).get("operation"), op)
    if r:
        c.eq("evidence.sandboxed_pid (bind)", ev(r).get("sandboxed_pid"), b[0])
    if r2:
        c.eq("client.pid (connect)", pid_of(r2, "client"), cn[0])
        c.eq("remote.port (connect)", (r2.get("remote") or {}).get("port"), port + 1)
    return r, c, (k.syscall_hook(), None)


@scenario("ephemeral ports exhausted (2-port range)", "ephemeral_ports_exhausted")
def sc_ephemeral(t, k, pas):
    ns = NetNS()
    ns.exec("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40001")
    port = rnd_port()
    Peer(ns, ["listen", "127.0.0.1", str(port)])
    f = peer(ns, "exhaust", "127.0.0.1", port, 2)
    c = Check()
    c.eq("connect errno", f[1], errno.EADDRNOTAVAIL)
    c.eq("connections made before the failure", f[2:], [2])
    r = sys_record(t, ns, "connect_failure", "ephemeral_ports_exhausted", port, pid=f[0], key="client")
    if r:
        expect_common(c, r, "connect_failure", "ephemeral_ports_exhausted", None, port)
        c.eq("process.pid", pid_of(r, "process"), f[0])
        c.eq("remote.port", (r.get("remote") or {}).get("port"), port)
        c.eq("evidence.ip_local_port_range", ev(r).get("ip_local_port_range"), "40000 40001")
        c.eq("evidence.ports_in_range", ev(r).get("ports_in_range"), 2)
    return r, c, (k.syscall_hook(), None)


@scenario("connect() refused by the routing table: no route, unreachable, prohibit, blackhole (v4), prohibit and a route through lo (v6)", "no_route")
def sc_no_route(t, k, pas):
    """The routing table refuses the connect() itself; each refusal named
    from the destination's lookup replayed in the namespace, and a prohibit
    route's EACCES is no LSM denial."""
    ns = NetNS()
    for kind, addr in (("unreachable", "203.0.113.2"), ("prohibit", "203.0.113.3"), ("blackhole", "203.0.113.4")):
        ns.exec("ip", "route", "add", kind, addr)
    ns.exec("ip", "-6", "route", "add", "prohibit", "2001:db8::3")
    # IPv6 makes a route through lo a reject route, which `ip -6 route get` answers as unicast dev lo.
    ns.exec("ip", "-6", "route", "add", "2001:db8:5::/64", "dev", "lo")
    port = rnd_port()
    c = Check()
    for addr, want, cause, result in (("203.0.113.1", errno.ENETUNREACH, "no_matching_route", "no_route"),
                                      ("203.0.113.2", errno.EHOSTUNREACH, "unreachable_route", "unreachable"),
                                      ("203.0.113.3", errno.EACCES, "prohibit_route", "prohibit"),
                                      ("203.0.113.4", errno.EINVAL, "blackhole_route", "invalid"),
                                      ("2001:db8::3", errno.EACCES, "prohibit_route", "prohibit")):
        pid, err = connect(ns, addr, port, timeout=2)
        c.eq("connect errno to %s" % addr, err, want)
        r = t.wait(lambda r: r.get("reason") == "no_route" and r.get("netns") == ns.inode
                   and addr_of(r, "remote") == addr, 10)
        c.true("no no_route record for %s" % addr, r is not None)
        if not r:
            return None, c, (k.syscall_hook(), None)
        expect_common(c, r, "connect_failure", "no_route", cause, port, "ipv6" if ":" in addr else "ipv4")
        c.eq("client.pid", pid_of(r, "client"), pid)
        c.eq("evidence.errno", ev(r).get("errno"), errno.errorcode[want])
        c.eq("evidence.route_lookup.result", (ev(r).get("route_lookup") or {}).get("result"), result)
    no_route_through_lo(t, ns, port, c)
    no_route_link_local(t, ns, port, c)
    c.true("a prohibit route's EACCES reported as an LSM denial",
           t.wait(lambda r: r.get("reason") == "lsm_denied" and r.get("netns") == ns.inode, 1) is None)
    no_route_socket_keys(t, ns, port, c)
    return r, c, (k.syscall_hook(), None)


def no_route_link_local(t, ns, port, c):
    """An IPv6 link-local destination without a scope id (and a socket bound
    to no device): tcp_v6_connect refuses it with EINVAL before any route,
    whatever links the namespace has: link_local_without_scope."""
    ns.exec("ip", "link", "add", "km-ll0", "type", "veth", "peer", "name", "km-ll1")
    ns.exec("ip", "link", "set", "km-ll0", "up")
    ns.exec("ip", "link", "set", "km-ll1", "up")
    addr = "fe80::1"
    pid, err = connect(ns, addr, port, timeout=2)
    c.eq("connect errno to %s (no scope id)" % addr, err, errno.EINVAL)
    r = t.wait(lambda r: r.get("reason") == "no_route" and r.get("netns") == ns.inode and addr_of(r, "remote") == addr, 10)
    c.true("no no_route record for %s" % addr, r is not None)
    if r:
        expect_common(c, r, "connect_failure", "no_route", "link_local_without_scope", port, "ipv6")
        c.eq("client.pid", pid_of(r, "client"), pid)
        hint_has(c, r, "fe80::1%<interface>")


def no_route_through_lo(t, ns, port, c):
    """IPv6 makes a route through lo a reject route without an error of its
    own: connect() sends the SYN, the kernel discards it on the way out
    (ip6_pkt_discard_out) and its ICMPv6 error fails the connect() with
    ENETUNREACH, while `ip -6 route get` answers `unicast ... dev lo`.
    The drop names the client and says the route rejects (never that a
    route exists now); where the drop is not seen, the connect()'s
    ENETUNREACH is loopback_route."""
    addr = "2001:db8:5::1"
    pid, err = connect(ns, addr, port, timeout=2)
    c.eq("connect errno to %s (a route through lo)" % addr, err, errno.ENETUNREACH)
    r = t.wait(lambda r: r.get("netns") == ns.inode and r.get("port") == port and "no_route" in (r.get("reason"), r.get("cause"))
               and addr in (addr_of(r, "remote"), addr_of(r, "local")), 10)
    c.true("no record for the route through lo", r is not None)
    if not r:
        return
    hint = r.get("hint") or ""
    c.true("the hint says the route through lo rejects, not that a route exists now: %r" % hint,
           "through lo" in hint and "exists now" not in hint and "finds one now" not in hint)
    c.eq("evidence.route_lookup (result, interface)", ((ev(r).get("route_lookup") or {}).get("result"),
         (ev(r).get("route_lookup") or {}).get("interface")), ("route", "lo"))
    if r.get("reason") == "packet_dropped":
        c.eq("client.pid (the SYN dropped on the way out)", pid_of(r, "client"), pid)
        c.eq("evidence.direction", ev(r).get("direction"), "egress")
    else:
        c.eq("cause (connect() only)", (r.get("reason"), r.get("cause")), ("no_route", "loopback_route"))
        c.eq("client.pid", pid_of(r, "client"), pid)


def no_route_socket_keys(t, ns, port, c):
    """The lookup is replayed with the socket's own keys. With a default
    route in place, root's lookup finds a route for each of these; the
    socket's does not: bound (SO_BINDTODEVICE) to a device that is down;
    owned by a user a uidrange rule prohibits (EACCES: not an LSM); marked
    (SO_MARK) for a blackhole fwmark rule."""
    # veth pairs inside the namespace (this host's kernel has no dummy driver).
    ns.exec("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    ns.exec("ip", "link", "set", "up0p", "up")
    ns.exec("ip", "link", "set", "up0", "up")
    ns.exec("ip", "addr", "add", "198.51.100.1/24", "dev", "up0")
    ns.exec("ip", "route", "add", "default", "via", "198.51.100.254")
    ns.exec("ip", "link", "add", "down0", "type", "veth", "peer", "name", "down0p")
    ns.exec("ip", "rule", "add", "uidrange", "65534-65534", "prohibit")
    ns.exec("ip", "rule", "add", "fwmark", "0x7", "blackhole")
    cases = ((["--device", "down0"], False, errno.ENETUNREACH, "bound_device_down", "no_route", "203.0.113.10"),
             ([], True, errno.EACCES, "prohibit_route", "prohibit", "203.0.113.11"),
             (["--mark", "7"], False, errno.EINVAL, "blackhole_route", "invalid", "203.0.113.12"))
    for opts, unpriv, want, cause, result, addr in cases:
        pid, err = peer(ns, "connect", addr, port, "--timeout", 2, *opts, unprivileged=unpriv)
        c.eq("connect errno to %s (%s)" % (addr, cause), err, want)
        r = t.wait(lambda r: r.get("kind") == "connect_failure" and r.get("netns") == ns.inode
                   and addr_of(r, "remote") == addr, 10)
        c.true("no record for %s (%s)" % (addr, cause), r is not None)
        if not r:
            continue
        expect_common(c, r, "connect_failure", "no_route", cause, port)
        c.eq("client.pid (%s)" % cause, pid_of(r, "client"), pid)
        lookup = ev(r).get("route_lookup") or {}
        c.eq("evidence.route_lookup.result (%s)" % cause, lookup.get("result"), result)
        c.eq("evidence.route_lookup.uid (%s)" % cause, lookup.get("uid"), 65534 if unpriv else 0)
        if opts[:1] == ["--device"]:
            c.eq("evidence.route_lookup.oif", lookup.get("oif"), "down0")
            dev = ev(r).get("bound_device") or {}
            c.eq("evidence.bound_device", (dev.get("name"), dev.get("up")), ("down0", False))
            hint_has(c, r, "ip link set down0 up")
        if opts[:1] == ["--mark"]:
            c.eq("evidence.route_lookup.mark", lookup.get("mark"), 7)


@scenario("no ARP answer: EHOSTUNREACH", "connect_failure/host_unreachable")
def sc_host_unreach(t, k, pas):
    client, other = NetNS(), NetNS()
    other.link(client)
    port = rnd_port()
    pid, err = connect(client, "198.18.0.77", port, timeout=15)
    c = Check()
    c.eq("connect errno", err, errno.EHOSTUNREACH)
    r = t.wait(lambda r: r.get("kind") == "connect_failure" and r.get("netns") == client.inode and r.get("port") == port, 15)
    if r:
        expect_common(c, r, "connect_failure", "unknown", "host_unreachable", port)
        c.eq("process.pid", pid_of(r, "process"), pid)
        c.eq("remote.addr", addr_of(r, "remote"), "198.18.0.77")
        c.eq("evidence.errno", ev(r).get("errno"), "EHOSTUNREACH")
    return r, c, (k.client_error_hook(), None)


def timeout_explained(k):
    """Timeouts are explained (connect_timeout) where inet_sk_error_report
    exists (5.14+); elsewhere they stay unknown/timed_out."""
    return k.btf.tp_nargs("inet_sk_error_report") >= 0


def tcp_retrans_segs(ns):
    """The namespace's own retransmitted-segment count (/proc/net/snmp,
    Tcp RetransSegs): the SYN retransmissions of its one connect()."""
    rows = [l.split() for l in ns.exec("cat", "/proc/net/snmp").splitlines() if l.startswith("Tcp:")]
    return int(rows[1][rows[0].index("RetransSegs")]) if len(rows) == 2 else -1


def timeout_record(t, ns, port):
    return t.wait(lambda r: r.get("kind") == "connect_failure" and r.get("netns") == ns.inode and r.get("port") == port, 15)


def timeout_check(c, r, client, dev=None):
    """An explained timeout: ETIMEDOUT, the SYN retransmissions the client's
    namespace counted (at least one), the egress interface."""
    e = ev(r)
    c.eq("evidence.errno", e.get("errno"), "ETIMEDOUT")
    retrans = tcp_retrans_segs(client)
    c.true("SYNs retransmitted (RetransSegs %d)" % retrans, retrans >= 1)
    c.eq("evidence.syn_retransmits", e.get("syn_retransmits"), retrans)
    if dev is not None:
        c.eq("evidence.egress_interface", e.get("egress_interface"), dev)


@scenario("SYNs that vanish: ETIMEDOUT", "connect_failure/connect_timeout/no_answer_past_host (veth)")
def sc_timed_out(t, k, pas):
    client, other = NetNS(), NetNS()
    _, dev = other.link(client)
    client.exec("ip", "neigh", "add", "198.18.0.88", "lladdr", "02:00:00:00:00:88", "dev", dev, "nud", "permanent")
    client.exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
    port = rnd_port()
    pid, err = connect(client, "198.18.0.88", port, timeout=15)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = timeout_record(t, client, port)
    if r:
        if timeout_explained(k):
            expect_common(c, r, "connect_failure", "connect_timeout", "no_answer_past_host", port)
            timeout_check(c, r, client, dev)
            c.eq("evidence.next_hop", ev(r).get("next_hop"), "directly connected")
            c.true("evidence.after_ms %r < 1000" % ev(r).get("after_ms"), (ev(r).get("after_ms") or 0) >= 1000)
            hint_has(c, r, "198.18.0.88")
        else:
            expect_common(c, r, "connect_failure", "unknown", "timed_out", port)
        c.eq("process.pid", pid_of(r, "process"), pid)
    return r, c, (k.client_error_hook(), None)


def timeout_dummy_client(v6):
    """A client namespace whose route to 198.18.78.0/24 (fd00:78::/64) goes
    via a gateway on a `dummy` device, which consumes what it is sent and
    answers nothing (ifb without a redirect does the same where dummy.ko is
    missing). Returns (namespace, device, its ifindex)."""
    client = NetNS()
    dev = "kmt%d" % client.number
    if subprocess.run(["ip", "-n", client.name, "link", "add", dev, "type", "dummy"], capture_output=True).returncode != 0:
        sh("ip", "-n", client.name, "link", "add", dev, "type", "ifb")
    sh("ip", "-n", client.name, "link", "set", dev, "up")
    if v6:
        sh("ip", "-n", client.name, "-6", "addr", "add", "fd00:77::2/64", "dev", dev, "nodad")
        sh("ip", "-n", client.name, "-6", "route", "add", "fd00:78::/64", "via", "fd00:77::1", "dev", dev)
    else:
        sh("ip", "-n", client.name, "addr", "add", "198.18.77.2/24", "dev", dev)
        sh("ip", "-n", client.name, "route", "add", "198.18.78.0/24", "via", "198.18.77.1", "dev", dev)
    client.exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
    index = int(sh("ip", "-n", client.name, "-o", "link", "show", "dev", dev).split(":")[0])
    return client, dev, index


def timeout_past_host(t, k, v6):
    client, dev, index = timeout_dummy_client(v6)
    port = rnd_port()
    pid, err = connect(client, "fd00:78::9" if v6 else "198.18.78.9", port, timeout=15)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    if not timeout_explained(k):
        raise Unavailable("no tp_btf/inet_sk_error_report (5.14+): timeouts stay unknown/timed_out")
    r = timeout_record(t, client, port)
    if r:
        expect_common(c, r, "connect_failure", "connect_timeout", "no_answer_past_host", port,
                      "ipv6" if v6 else "ipv4")
        e = ev(r)
        timeout_check(c, r, client, dev)
        c.eq("evidence.ifindex", e.get("ifindex"), index)
        c.eq("evidence.next_hop", e.get("next_hop"), "fd00:77::1" if v6 else "198.18.77.1")
        c.eq("remote.addr", addr_of(r, "remote"), "fd00:78::9" if v6 else "198.18.78.9")
        hint_has(c, r, dev)
        # IPv6 drops the socket's route at each retransmission timeout
        # (ip6_negative_advice): the last retransmitted SYN's route is used.
        c.eq("evidence.route_from", e.get("route_from"), "last_retransmit" if v6 else "socket")
        c.eq("process.pid", pid_of(r, "process"), pid)
    return r, c, (k.client_error_hook(), None)


@scenario("SYNs into a dummy route: ETIMEDOUT past this host", "connect_timeout/no_answer_past_host")
def sc_timeout_past_host(t, k, pas):
    return timeout_past_host(t, k, False)


@scenario("IPv6 SYNs into a dummy route: ETIMEDOUT past this host", "connect_timeout/no_answer_past_host (IPv6)")
def sc_timeout_past_host_v6(t, k, pas):
    return timeout_past_host(t, k, True)


@scenario("nft DROP in the peer namespace: ETIMEDOUT explained by the drop", "connect_timeout/dropped_on_host")
def sc_timeout_dropped(t, k, pas):
    server, client = fw_pair()
    client.exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
    port = rnd_port()
    fw_input_rule(server, port, "drop", ' comment "km-tmo-%d"' % port)
    pid, err = connect(client, V4S, port, timeout=15)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    if not timeout_explained(k):
        raise Unavailable("no tp_btf/inet_sk_error_report (5.14+): timeouts stay unknown/timed_out")
    if fw_expected(k)[0] is None:
        raise Unavailable(fw_expected(k)[1])
    r = timeout_record(t, client, port)
    if r:
        expect_common(c, r, "connect_failure", "connect_timeout", "dropped_on_host", port)
        d = ev(r).get("drop") or {}
        c.eq("evidence.drop.reason", d.get("reason"), "firewall_drop")
        c.eq("evidence.drop.netns", d.get("netns"), server.inode)
        c.eq("evidence.drop.table", d.get("table"), "inet filter")
        c.eq("evidence.drop.chain", d.get("chain"), "input")
        c.true("evidence.drop.rule names the rule: %r" % d.get("rule"), "tcp dport %d drop" % port in (d.get("rule") or ""))
        c.eq("evidence.drop.rule_comment", d.get("rule_comment"), "km-tmo-%d" % port)
        timeout_check(c, r, client)
        c.eq("process.pid", pid_of(r, "process"), pid)
        hint_has(c, r, "dropped on this host")
        # The drop itself is its own record, with the same client.
        fw = fw_record(t, server, port, timeout=2)
        c.eq("the firewall_drop record's client.pid", pid_of(fw, "client") if fw else None, pid)
    return r, c, (k.client_error_hook(), None)


# A connect() its application gives up on (bpf/timeouts.bpf.h): python's
# socket timeout (2.5 s) closes the socket in SYN_SENT long before the
# kernel's own ETIMEDOUT (tcp_syn_retries 3: 15 s), after two SYN
# retransmissions (1 s, 3 s... the second is not reached).
ABANDON_AFTER = 2.5


def abandon_hook(k):
    """Where the close of a connecting socket is seen: tcp_destroy_sock
    (armed while a SYN is unanswered) without the state-change hook, else
    the state change SYN_SENT -> CLOSE."""
    if not timeout_explained(k):
        raise Unavailable("no tp_btf/inet_sk_error_report (5.14+): timeouts stay unknown/timed_out")
    if k.client_error_hook() == "tp_btf/inet_sk_error_report":
        if k.btf.tp_nargs("tcp_destroy_sock") < 0:
            raise Unavailable("no tp_btf/tcp_destroy_sock: a connect() given up is not seen")
        return "tp_btf/tcp_destroy_sock"
    return "tp_btf/inet_sock_set_state"


def abandoned_connect(client, addr, port, *options):
    """One connect() python gives up on after ABANDON_AFTER s: its pid, and
    the check that python did (its own timeout)."""
    client.exec("sysctl", "-qw", "net.ipv4.tcp_syn_retries=3")
    pid, err = connect(client, addr, port, ABANDON_AFTER, *options)
    c = Check()
    c.eq("connect errno (python's own timeout)", err, errno.ETIMEDOUT)
    return pid, c


def abandon_check(c, r, client, pid):
    """Given up by the application: no errno, the SYNs the namespace
    retransmitted, after_ms the application's timeout, the client."""
    e = ev(r)
    c.eq("evidence.abandoned_by", e.get("abandoned_by"), "application")
    c.eq("evidence.errno (none was reported)", e.get("errno"), None)
    retrans = tcp_retrans_segs(client)
    c.true("SYNs retransmitted (RetransSegs %d)" % retrans, retrans >= 1)
    c.eq("evidence.syn_retransmits", e.get("syn_retransmits"), retrans)
    after, wanted = e.get("after_ms") or 0, int(ABANDON_AFTER * 1000)
    c.true("evidence.after_ms %r is not the application's timeout (%d ms)" % (after, wanted), wanted <= after < wanted + 1500)
    c.eq("process.pid", pid_of(r, "process"), pid)
    hint_has(c, r, "gave up connecting")


@scenario("connect() given up by its application after 2.5 s, SYNs into a dummy route",
          "connect_timeout/no_answer_past_host, abandoned_by application")
def sc_connect_abandoned(t, k, pas):
    hook = abandon_hook(k)
    client, dev, index = timeout_dummy_client(False)
    port = rnd_port()
    pid, c = abandoned_connect(client, "198.18.78.9", port)
    r = timeout_record(t, client, port)
    if r:
        expect_common(c, r, "connect_failure", "connect_timeout", "no_answer_past_host", port)
        abandon_check(c, r, client, pid)
        c.eq("evidence.egress_interface", ev(r).get("egress_interface"), dev)
        c.eq("evidence.ifindex", ev(r).get("ifindex"), index)
        c.eq("evidence.next_hop", ev(r).get("next_hop"), "198.18.77.1")
    return r, c, (hook, None)


@scenario("connect() given up by its application after 2.5 s, its SYNs dropped by nft in the peer namespace",
          "connect_timeout/dropped_on_host, abandoned_by application")
def sc_connect_abandoned_dropped(t, k, pas):
    hook = abandon_hook(k)
    if fw_expected(k)[0] is None:
        raise Unavailable(fw_expected(k)[1])
    server, client = fw_pair()
    port = rnd_port()
    fw_input_rule(server, port, "drop", ' comment "km-abandon-%d"' % port)
    pid, c = abandoned_connect(client, V4S, port)
    r = timeout_record(t, client, port)
    if r:
        expect_common(c, r, "connect_failure", "connect_timeout", "dropped_on_host", port)
        abandon_check(c, r, client, pid)
        d = ev(r).get("drop") or {}
        c.eq("evidence.drop.reason", d.get("reason"), "firewall_drop")
        c.eq("evidence.drop.rule_comment", d.get("rule_comment"), "km-abandon-%d" % port)
    return r, c, (hook, None)


@scenario("connect() given up after 2.5 s with SO_LINGER 0 (an abort), its SYNs dropped by nft in the peer namespace",
          "connect_timeout/dropped_on_host, abandoned_by application; no ECONNRESET failure")
def sc_connect_abandoned_linger0(t, k, pas):
    # tcp_disconnect clears the destination, the route and the
    # retransmission count before its ECONNRESET report: the record has
    # them from the last retransmitted SYN.
    hook = abandon_hook(k)
    if hook == "tp_btf/tcp_destroy_sock":
        hook = "tp_btf/inet_sk_error_report"
    if fw_expected(k)[0] is None:
        raise Unavailable(fw_expected(k)[1])
    server, client = fw_pair()
    port = rnd_port()
    fw_input_rule(server, port, "drop", ' comment "km-linger0-%d"' % port)
    pid, c = abandoned_connect(client, V4S, port, "--linger0")
    r = timeout_record(t, client, port)
    if r:
        expect_common(c, r, "connect_failure", "connect_timeout", "dropped_on_host", port)
        abandon_check(c, r, client, pid)
        c.eq("remote.addr", (r.get("remote") or {}).get("addr"), V4S)
        d = ev(r).get("drop") or {}
        c.eq("evidence.drop.rule_comment", d.get("rule_comment"), "km-linger0-%d" % port)
        time.sleep(1)
        others = [o for o in t.records()[t.start:] if pid_of(o, "process") == pid and o != r]
        c.eq("other records of the client (an ECONNRESET failure)", others, [])
    return r, c, (hook, None)


# Injected resets (bpf/resets.bpf.h): a client namespace reaches a server
# namespace through a router namespace. The server's own RSTs arrive with
# TTL 63 (64, one router), the router's `reject with tcp reset` with 64.
RTTL_C, RTTL_R1, RTTL_R2, RTTL_S = "198.18.63.2", "198.18.63.1", "198.18.64.2", "198.18.64.1"


def reset_ttl_expected(k):
    """The tcp_reset hook synsight must use here (fentry, else kprobe, on
    tcp_reset and tcp_finish_connect alike), or why it cannot."""
    if k.fentry_ok("tcp_reset") and k.fentry_ok("tcp_finish_connect"):
        return "fentry/tcp_reset", None
    if k.kprobe_ok("tcp_reset") and k.kprobe_ok("tcp_finish_connect"):
        return "kprobe/tcp_reset", None
    return None, "no fentry or kprobe on tcp_reset (BPF trampolines refused, no CONFIG_KPROBES)"


def reset_ttl_topology():
    """client -- router -- server: (client, router, server) namespaces."""
    client, router, server = NetNS(), NetNS(), NetNS()
    router.link(client, v4="198.18.63")   # router .1, client .2
    server.link(router, v4="198.18.64")   # server .1, router .2
    router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    client.exec("ip", "route", "add", "default", "via", RTTL_R1)
    server.exec("ip", "route", "add", "default", "via", RTTL_R2)
    return client, router, server


def reset_record(t, port, timeout=10):
    """The record of a refusal of port `port` that carries evidence.reset."""
    return t.wait(lambda r: r.get("port") == port and isinstance(ev(r).get("reset"), dict), timeout)


@scenario("RST injected by a router namespace: TTL against the peer's SYN-ACKs", "evidence.reset (injected_reset_suspected)",
          passes=("default", "kprobe"))
def sc_injected_reset(t, k, pas):
    want, why = reset_ttl_expected(k)
    if pas == "kprobe":
        want, why = ("kprobe/tcp_reset", None) if k.kprobe_ok("tcp_reset") and k.kprobe_ok("tcp_finish_connect") \
            else (None, "kernel has no kprobes (CONFIG_KPROBES)")
    client, router, server = reset_ttl_topology()
    port = rnd_port()                    # a listener: the baseline
    closed, injected = port + 1, port + 2
    c = Check()
    # 1. A real refusal by the server: its RST crosses the router (TTL 63). No baseline yet.
    pid, err = connect(client, RTTL_S, closed)
    c.eq("connect errno (closed port)", err, errno.ECONNREFUSED)
    first = no_listener_record(t, server, closed)
    if want is None:
        # This kernel cannot read the RST: doctor says so, the refusal is still attributed.
        c.true("doctor reports injected_reset_suspected UNAVAILABLE: %r" % DOCTOR.get("injected_reset_suspected"),
               (DOCTOR.get("injected_reset_suspected") or "").startswith("UNAVAILABLE"))
        c.true("no_listener record of the closed port", first is not None)
        if first:
            c.eq("no_listener client.pid", pid_of(first, "client"), pid)
            c.true("no evidence.reset without the hook", "reset" not in ev(first))
        if c.failures:
            raise Failure("; ".join(c.failures))
        raise Unavailable(why + "; doctor says so and the refusal is attributed without evidence.reset")
    if first is None:
        raise Failure("no no_listener record for the first refusal (port %d)" % closed)
    r1 = ev(first).get("reset") or {}
    c.eq("first refusal: evidence.reset.ttl", r1.get("ttl"), 63)
    c.eq("first refusal: evidence.reset.hops", r1.get("hops"), 1)
    c.eq("first refusal: evidence.reset.verdict", r1.get("verdict"), "no_baseline")
    c.eq("first refusal: client.pid", pid_of(first, "client"), pid)
    # 2. A connection that succeeds: the baseline (its SYN-ACK arrives with TTL 63).
    listener = Peer(server, ["listen", RTTL_S, port])
    _, ok = connect(client, RTTL_S, port)
    c.eq("connect errno (listener)", ok, 0)
    listener.kill()
    # 3. The router answers for the server: its RST arrives with TTL 64.
    nft_load(router, "table inet km_rttl { chain forward { type filter hook forward priority 0; policy accept;\n"
             "tcp dport %d reject with tcp reset\n}\n}\n" % injected)
    pid3, err3 = connect(client, RTTL_S, injected)
    c.eq("connect errno (injected)", err3, errno.ECONNREFUSED)
    r = reset_record(t, injected)
    if r is None:
        raise Failure("no record of port %d with evidence.reset" % injected)
    e = ev(r).get("reset") or {}
    c.true("injected: reason %r/%r" % (r.get("reason"), r.get("cause")),
           r.get("reason") == "firewall_reject" or (r.get("reason"), r.get("cause")) == ("unknown", "injected_reset_suspected"))
    c.eq("injected: evidence.reset.ttl", e.get("ttl"), 64)
    c.eq("injected: evidence.reset.hops", e.get("hops"), 0)
    c.eq("injected: evidence.reset.verdict", e.get("verdict"), "differs")
    c.eq("injected: evidence.reset.likely_middlebox", e.get("likely_middlebox"), True)
    c.eq("injected: evidence.reset.hops_closer", e.get("hops_closer"), 1)
    b = e.get("baseline") or {}
    c.eq("injected: baseline.ttl_min", b.get("ttl_min"), 63)
    c.eq("injected: baseline.hops_min", b.get("hops_min"), 1)
    c.true("injected: baseline.packets >= 1 (%r)" % b.get("packets"), (b.get("packets") or 0) >= 1)
    c.eq("injected: client", pid_of(r, "client") or pid_of(r, "process"), pid3)
    c.true("injected: hint names the middlebox: %r" % r.get("hint"), "middlebox" in (r.get("hint") or ""))
    # 4. A second real refusal: the same distance as the peer's packets, not flagged.
    pid4, err4 = connect(client, RTTL_S, closed)
    c.eq("connect errno (second refusal)", err4, errno.ECONNREFUSED)
    second = t.wait(lambda x: x.get("port") == closed and pid_of(x, "client") == pid4, 10)
    if second is None:
        c.failures.append("no record of the second refusal")
    else:
        e4 = ev(second).get("reset") or {}
        c.eq("second refusal: reason", second.get("reason"), "no_listener")
        c.eq("second refusal: evidence.reset.ttl", e4.get("ttl"), 63)
        c.eq("second refusal: evidence.reset.verdict", e4.get("verdict"), "consistent")
        c.eq("second refusal: evidence.reset.likely_middlebox", e4.get("likely_middlebox"), False)
    # The runner compares the hook that read the RST (evidence.reset.hook).
    view = dict(r)
    view["evidence"] = e
    return view, c, (want, why)


@scenario("RST in the name of a peer past this host (tun, 4 hops): TTL against its SYN-ACKs",
          "connect_failure/unknown/injected_reset_suspected", passes=("default", "kprobe"))
def sc_injected_reset_remote(t, k, pas):
    return injected_reset_remote(t, k, pas, False)


def tun_peer(prefix, answers, local, remote):
    """A namespace whose only way out is a tun device answered by peer.py tun
    (a user-space peer past this host: ANSWERS as peer.py says), addressed
    <local>.2 and routing <remote>.0 to it (IPv6 when the prefixes end in
    ':': /64s, no DAD); returns the namespace and the peer's address <remote>.1."""
    subprocess.run(["modprobe", "tun"], capture_output=True)
    ns = NetNS()
    dev = "%s%d" % (prefix, ns.number)
    Peer(ns, ["tun", dev, answers])
    v6 = local.endswith(":")
    if v6:
        sh("ip", "-n", ns.name, "-6", "addr", "add", local + ":2/64", "dev", dev, "nodad")
    else:
        sh("ip", "-n", ns.name, "addr", "add", local + ".2/24", "dev", dev)
    sh("ip", "-n", ns.name, "link", "set", dev, "up")
    if v6:
        sh("ip", "-n", ns.name, "-6", "route", "add", remote + ":/64", "dev", dev)
    else:
        sh("ip", "-n", ns.name, "route", "add", remote + ".0/24", "dev", dev)
    return ns, remote + (":1" if v6 else ".1")


def remote_refusal(t, c, ns, remote, port, want_errno, what, required=True):
    """One connect() from `ns` to the tun peer's `port`, its errno checked,
    and the client's connect_failure record of it. A record
    that does not come fails the scenario (missing_record) when `required`,
    else is one failed check and None."""
    pid, err = connect(ns, remote, port)
    c.eq("connect errno (%s)" % what, err, want_errno)
    r = t.wait(lambda x: x.get("kind") == "connect_failure" and x.get("port") == port and pid_of(x, "process") == pid, 10)
    if r is None:
        if required:
            raise missing_record(t, what, port, err, c)
        c.failures.append("no connect_failure record with the client of %s (port %d)" % (what, port))
    return r


def missing_record(t, what, port, err, c):
    """The Failure of a record that did not come: what the connect() got,
    what was recorded for the port instead and the checks failed so far,
    so that a failure on a CI machine explains itself."""
    seen = ["%s/%s/%s pid=%s" % (r.get("kind"), r.get("reason"), r.get("cause"), pid_of(r, "process") or pid_of(r, "client"))
            for r in t.records()[t.start:] if r.get("port") == port]
    return Failure("no connect_failure record of %s (port %d; connect errno %s; records of the port: %s)%s"
                   % (what, port, errno.errorcode.get(err, err), seen or "none",
                      "; " + "; ".join(c.failures) if c.failures else ""))


@scenario("a peer past this host (tun) rejecting with ICMP: port unreachable, admin prohibited; a RST beside",
          "connect_failure/unknown/rejected_with_icmp", passes=("default",))
def sc_icmp_reject_remote(t, k, pas):
    """ECONNREFUSED with no TCP segment received is an ICMP port unreachable
    (a firewall's reject), told from a reset by tcp_sock.segs_in; one record
    per connect() though the kernel may report an ICMP refusal twice."""
    port = rnd_port()
    prohibited, closed = port + 1, port + 2
    ns, remote = tun_peer("kmi", "%d:icmp3:60,%d:icmp13:60,%d:rst:60" % (port, prohibited, closed), "198.18.69", "198.18.70")
    c = Check()
    r = remote_refusal(t, c, ns, remote, port, errno.ECONNREFUSED, "the port unreachable")
    expect_common(c, r, "connect_failure", "unknown", "rejected_with_icmp", port)
    c.eq("evidence.refused_by", ev(r).get("refused_by"), "icmp")
    r2 = remote_refusal(t, c, ns, remote, prohibited, errno.EHOSTUNREACH, "the admin prohibited", required=False)
    if r2:
        expect_common(c, r2, "connect_failure", "unknown", "host_unreachable", prohibited)
        c.true("host_unreachable hint names firewalld's reject: %r" % r2.get("hint"), "firewalld" in (r2.get("hint") or ""))
    r3 = remote_refusal(t, c, ns, remote, closed, errno.ECONNREFUSED, "the reset", required=False)
    if r3:
        expect_common(c, r3, "connect_failure", "unknown", "connection_refused", closed)
        c.eq("reset: evidence.refused_by", ev(r3).get("refused_by"), "tcp_reset")
    time.sleep(0.5)
    for p in (port, prohibited, closed):
        n = sum(1 for x in t.records()[t.start:] if x.get("port") == p)
        c.eq("records of port %d" % p, n, 1)
    return r, c, (k.client_error_hook(), None)


@scenario("IPv6: RST in the name of a peer past this host (tun, 4 hops): hop limit against its SYN-ACKs",
          "connect_failure/unknown/injected_reset_suspected (IPv6)", passes=("default",))
def sc_injected_reset_remote_v6(t, k, pas):
    return injected_reset_remote(t, k, pas, True)


def injected_reset_remote(t, k, pas, v6):
    """The peer is a user-space TCP stack behind a tun device (peer.py tun):
    nothing on this host explains its refusals, which stay the client's own
    records (unknown/connection_refused); its packets start at TTL 60."""
    family = "ipv6" if v6 else "ipv4"
    want, why = reset_ttl_expected(k)
    if pas == "kprobe":
        want, why = ("kprobe/tcp_reset", None) if k.kprobe_ok("tcp_reset") and k.kprobe_ok("tcp_finish_connect") \
            else (None, "kernel has no kprobes (CONFIG_KPROBES)")
    port = rnd_port()
    closed, injected = port + 1, port + 2
    answers = "%d:synack:60,%d:rst:60,%d:rst:64" % (port, closed, injected)
    ns, remote = tun_peer("kmr", answers, "fd00:65:" if v6 else "198.18.65", "fd00:66:" if v6 else "198.18.66")
    c = Check()
    first = remote_refusal(t, c, ns, remote, closed, errno.ECONNREFUSED, "the first refusal")
    expect_common(c, first, "connect_failure", "unknown", "connection_refused", closed, family)
    if want is None:
        c.true("doctor reports injected_reset_suspected UNAVAILABLE: %r" % DOCTOR.get("injected_reset_suspected"),
               (DOCTOR.get("injected_reset_suspected") or "").startswith("UNAVAILABLE"))
        c.true("no evidence.reset without the hook", "reset" not in ev(first))
        if c.failures:
            raise Failure("; ".join(c.failures))
        raise Unavailable(why + "; doctor says so and the refusal stays unknown/connection_refused without evidence.reset")
    r1 = ev(first).get("reset") or {}
    c.eq("first refusal: evidence.reset.ttl", r1.get("ttl"), 60)
    c.eq("first refusal: evidence.reset.hops", r1.get("hops"), 4)
    c.eq("first refusal: evidence.reset.verdict", r1.get("verdict"), "no_baseline")
    c.eq("first refusal: evidence.reset.field", r1.get("field"), "hop_limit" if v6 else "ttl")
    _, ok = connect(ns, remote, port)
    c.eq("connect errno (the peer's SYN-ACK)", ok, 0)
    r = remote_refusal(t, c, ns, remote, injected, errno.ECONNREFUSED, "the injected reset")
    expect_common(c, r, "connect_failure", "unknown", "injected_reset_suspected", injected, family)
    e = ev(r).get("reset") or {}
    c.eq("injected: evidence.reset.ttl", e.get("ttl"), 64)
    c.eq("injected: evidence.reset.verdict", e.get("verdict"), "differs")
    c.eq("injected: evidence.reset.hops_closer", e.get("hops_closer"), 4)
    c.eq("injected: evidence.reset.baseline.ttl_min", (e.get("baseline") or {}).get("ttl_min"), 60)
    again = remote_refusal(t, c, ns, remote, closed, errno.ECONNREFUSED, "the second refusal", required=False)
    if again:
        c.eq("second refusal: cause", again.get("cause"), "connection_refused")
        c.eq("second refusal: evidence.reset.verdict", (ev(again).get("reset") or {}).get("verdict"), "consistent")
    # A refusal storm: every refusal has its record, at most 16 per second carry the RST's TTL.
    n = 100
    started = time.time()
    spid, refused, _ = peer(ns, "storm", remote, closed, n)
    elapsed = time.time() - started
    c.eq("storm: refused", refused, n)
    storm = lambda: [x for x in t.records()[t.start:] if x.get("port") == closed and pid_of(x, "process") == spid]
    wait_until(lambda: len(storm()) >= n, 20)
    got = storm()
    with_reset = sum(1 for x in got if "reset" in ev(x))
    c.eq("storm: records", len(got), n)
    windows = int(elapsed) + 2
    c.true("storm: %d of %d records carry evidence.reset in %.1f s (at most 16 per second)" % (with_reset, len(got), elapsed),
           1 <= with_reset <= 16 * windows)
    view = dict(r)
    view["evidence"] = e
    return view, c, (want, why)


# Handshake segments dropped for other reasons (drop/packet_dropped): the
# reason name must be the running kernel's, read from its BTF by synsight;
# the scenario derives what it expects from the same BTF independently.
DROP_HOOK = "tp_btf/kfree_skb"


def drop_expected(k):
    return (DROP_HOOK, None) if k.btf.has_name("SKB_DROP_REASON_NETFILTER_DROP") \
        else (None, "no kfree_skb drop reasons before 5.18")


def drop_record(t, ns, port, timeout=10):
    return t.wait(lambda r: r.get("reason") == "packet_dropped" and r.get("netns") == ns.inode
                  and r.get("port") == port, timeout)


def drop_check(c, k, r, port, client_pid, kernel_reason, cause, interface, direction):
    """`kernel_reason`: the SKB_DROP_REASON_ name the kernel should report; a
    kernel without it must still give a named reason (or `unknown` with the
    number), never crash."""
    want_name = kernel_reason.lower() if k.btf.has_name("SKB_DROP_REASON_" + kernel_reason) else None
    expect_common(c, r, "drop", "packet_dropped", cause if want_name else None, port)
    e = ev(r)
    if want_name:
        c.eq("evidence.drop_reason", e.get("drop_reason"), want_name)
    c.true("evidence.drop_reason_code missing", isinstance(e.get("drop_reason_code"), int))
    c.eq("evidence.interface", e.get("interface"), interface)
    c.eq("evidence.direction", e.get("direction"), direction)
    c.eq("client.pid", pid_of(r, "client"), client_pid)
    c.true("evidence.location %r is not a symbol" % e.get("location"),
           isinstance(e.get("location"), str) and not e["location"].startswith("0x"))


@scenario("strict rp_filter, asymmetric routes: SYN dropped", "packet_dropped/rp_filter")
def sc_drop_rp_filter(t, k, pas):
    server, client = NetNS(), NetNS()
    s1, c1 = server.link(client, v4="198.18.40")
    # A second link: the route back to the client's second address.
    a, b = "kmr%dx%d" % (os.getpid() % 10000, server.number), "kms%dx%d" % (os.getpid() % 10000, server.number)
    sh("ip", "link", "add", a, "netns", server.name, "type", "veth", "peer", "name", b, "netns", client.name)
    sh("ip", "-n", server.name, "addr", "add", "198.18.41.1/24", "dev", a)
    sh("ip", "-n", client.name, "addr", "add", "198.18.41.2/24", "dev", b)
    sh("ip", "-n", server.name, "link", "set", a, "up")
    sh("ip", "-n", client.name, "link", "set", b, "up")
    # The device's own setting is 0: the kernel applies the larger of it and all's.
    server.exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
    server.exec("sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % s1)
    mac = json.loads(sh("ip", "-n", server.name, "-j", "link", "show", "dev", s1))[0]["address"]
    client.exec("ip", "neigh", "replace", "198.18.40.1", "lladdr", mac, "dev", c1, "nud", "permanent")
    port = rnd_port()
    pid, err = peer(client, "connect", "198.18.40.1", port, "--timeout", 2, "--source", "198.18.41.2")
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = drop_record(t, server, port)
    if r:
        drop_check(c, k, r, port, pid, "IP_RPFILTER", "rp_filter", s1, "ingress")
        c.eq("evidence.sysctl", ev(r).get("sysctl"), "net.ipv4.conf.%s.rp_filter" % s1)
        if k.btf.has_name("SKB_DROP_REASON_IP_RPFILTER"):
            # The values that decided it and the route back, read in the server's namespace.
            rp = ev(r).get("rp_filter") or {}
            c.eq("evidence.rp_filter (all, device, effective, mode)",
                 (rp.get("all"), rp.get("device"), rp.get("effective"), rp.get("mode")), (1, 0, 1, "strict"))
            back = ev(r).get("route_back") or {}
            c.eq("evidence.route_back (destination, result, interface, next_hop)",
                 (back.get("destination"), back.get("result"), back.get("interface"), back.get("next_hop")),
                 ("198.18.41.2", "route", a, "directly connected"))
            c.eq("evidence.route_unavailable", ev(r).get("route_unavailable"), None)
            c.true("hint names the interface the route back leaves by: %r" % r.get("hint"),
                   "leaves by %s, not %s" % (a, s1) in (r.get("hint") or ""))
    return r, c, drop_expected(k)


def no_route_back_attempt(t, c, client, addr, port, want, listener, cause, *connect_args):
    """A connect() from `client` that times out because the listener leaves
    its SYNs unanswered (the first SYN arms the per-SYN program, its
    retransmission at 1 s is reported), and the port's no_route_back record,
    checked for `cause`, the listener and the client; None if none came."""
    pid, err = peer(client, "connect", addr, port, "--timeout", 4 * SLOW, *connect_args)
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = t.wait(lambda r: r.get("reason") == "no_route_back" and r.get("port") == port, 10 if want[0] else 3)
    if r:
        expect_common(c, r, "drop", "no_route_back", cause, port)
        c.eq("process.pid (the listener)", pid_of(r, "process"), listener.pid)
        c.eq("client.pid", pid_of(r, "client"), pid)
    return r


@scenario("rp_filter off, no route back: the listener drops the SYN unanswered", "no_route_back",
          passes=("default", "kprobe"))
def sc_no_route_back(t, k, pas):
    """A multi-homed host's classic: the client sends from an address the
    server has no route to, reverse-path filtering (off) lets the SYN in,
    and tcp_conn_request drops it because the SYN-ACK cannot be routed: no
    drop reason, no RST, only the listener's drop counter. Seen by
    consume_skb (it runs after the decision), or beside fentry or kprobe on
    tcp_conn_request by its fexit or kretprobe."""
    want = k.unanswered_syn_method(pas if pas == "kprobe" else None)
    server, client = NetNS(), NetNS()
    s1, c1 = server.link(client, v4="198.18.46")
    client.exec("ip", "addr", "add", "198.18.47.2/32", "dev", c1)
    server.exec("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    server.exec("sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % s1)
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    c = Check()
    r = no_route_back_attempt(t, c, client, "198.18.46.1", port, want, listener, "no_matching_route", "--source", "198.18.47.2")
    if r:
        back = ev(r).get("route_back") or {}
        c.eq("evidence.route_back (destination, source, result, errno)",
             (back.get("destination"), back.get("source"), back.get("result"), back.get("errno")),
             ("198.18.47.2", "198.18.46.1", "no_route", "ENETUNREACH"))
    return r, c, want


@scenario("a marked listener (SO_MARK) whose policy rule routes its SYN-ACKs to an unreachable route", "no_route_back (the listener's mark)",
          passes=("default", "kprobe"))
def sc_no_route_back_marked(t, k, pas):
    """Policy routing by the listener's own mark: the main table routes the
    client back, but the SYN-ACK's lookup carries the listener's SO_MARK,
    which a rule sends to a table with an unreachable default route. The
    route back is replayed with the listener's mark and owner, read by the
    per-SYN program (or its fexit/kretprobe beside fentry/kprobe)."""
    want = k.unanswered_syn_method(pas if pas == "kprobe" else None)
    server, client = NetNS(), NetNS()
    server.link(client, v4="198.18.49")
    server.exec("ip", "rule", "add", "fwmark", "0x2a", "lookup", "142", "priority", "100")
    server.exec("ip", "route", "add", "unreachable", "default", "table", "142")
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port), "--mark", "0x2a"])
    c = Check()
    r = no_route_back_attempt(t, c, client, "198.18.49.1", port, want, listener, "unreachable_route")
    if r:
        back = ev(r).get("route_back") or {}
        c.eq("evidence.route_back (destination, mark, uid, errno)",
             (back.get("destination"), back.get("mark"), back.get("uid"), back.get("errno")),
             ("198.18.49.2", 0x2a, 0, "EHOSTUNREACH"))
        c.true("hint's lookup carries the mark: %r" % r.get("hint"), "from 198.18.49.1 mark 0x2a" in (r.get("hint") or ""))
    return r, c, want


@scenario("syncookies off, the SYN backlog's reserve: new clients' SYNs dropped before the queue is full",
          "syn_queue_full/syncookies_off (reserve)", passes=("default", "kprobe"))
def sc_syn_backlog_reserve(t, k, pas):
    """With tcp_syncookies 0, tcp_conn_request keeps the last quarter of
    tcp_max_syn_backlog for peers it has talked to before: a new client's
    SYN is dropped unanswered from max - max/4 + 1 half-open connections
    on, however large the listen() backlog. 24 clients whose SYN-ACKs are
    dropped hold the SYN queue of a listen(64) listener with
    tcp_max_syn_backlog 16: from the 13th on they are refused; their
    retransmitted SYNs (1 s, 3 s) are the ones reported once the first
    burst armed the per-SYN programs."""
    want = k.unanswered_syn_method(pas if pas == "kprobe" else None)
    server, client = NetNS(), NetNS()
    server.link(client)
    server.exec("sysctl", "-qw", "net.ipv4.tcp_syncookies=0", "net.ipv4.tcp_max_syn_backlog=16")
    client.exec("nft", "add table inet t; add chain inet t in { type filter hook input priority 0; }; "
                "add rule inet t in tcp flags & (syn | ack) == (syn | ack) drop")
    port = rnd_port()
    listener = Peer(server, ["stall", "0.0.0.0", str(port), "--backlog", "64"])
    client.exec(sys.executable, "-c", "import socket, time\nsocks = []\nfor _ in range(24):\n"
                "    s = socket.socket(); s.setblocking(False)\n"
                "    try: s.connect(('198.18.0.1', %d))\n    except BlockingIOError: pass\n"
                "    socks.append(s)\ntime.sleep(4)\n" % port)
    r = overflow_record(t, server, port, "syn_queue_full", timeout=10 if want[0] else 3)
    c = Check()
    if r:
        expect_common(c, r, "drop", "syn_queue_full", "syncookies_off", port)
        c.eq("process.pid (the listener)", pid_of(r, "process"), listener.pid)
        c.eq("evidence.max_syn_backlog", ev(r).get("max_syn_backlog"), 16)
        c.true("evidence.syn_queue %r in 13..63 (past the reserve, below the backlog)" % ev(r).get("syn_queue"),
               13 <= (ev(r).get("syn_queue") or 0) < 64)
        c.eq("evidence.max_backlog", ev(r).get("max_backlog"), 64)
        c.eq("remote.addr", (r.get("remote") or {}).get("addr"), "198.18.0.2")
        hint_has(c, r, "past three quarters of net.ipv4.tcp_max_syn_backlog (16)")
    c.true("no no_route_back record for the port", not any(
        x.get("reason") == "no_route_back" and x.get("port") == port for x in t.records()[t.start:]))
    return r, c, want


@scenario("router namespace without a route: forwarded SYN dropped", "packet_dropped/no_route")
def sc_drop_no_route(t, k, pas):
    router, client = NetNS(), NetNS()
    r1, _ = router.link(client, v4="198.18.42")
    router.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    client.exec("ip", "route", "add", "198.18.43.0/24", "via", "198.18.42.1")
    port = rnd_port()
    pid, err = connect(client, "198.18.43.9", port, timeout=2)
    c = Check()
    c.true("connect errno %r" % err, err in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT))
    r = drop_record(t, router, port)
    if r:
        drop_check(c, k, r, port, pid, "IP_INNOROUTES", "no_route", r1, "forward")
        if k.btf.has_name("SKB_DROP_REASON_IP_INNOROUTES"):
            # The router's lookup for the SYN, replayed in its namespace.
            lk = ev(r).get("route_lookup") or {}
            c.eq("evidence.route_lookup (destination, source, iif, result, errno)",
                 (lk.get("destination"), lk.get("source"), lk.get("iif"), lk.get("result"), lk.get("errno")),
                 ("198.18.43.9", "198.18.42.2", r1, "no_route", "ENETUNREACH"))
            c.eq("evidence.route_unavailable", ev(r).get("route_unavailable"), None)
    return r, c, drop_expected(k)


@scenario("router namespace with forwarding off: forwarded SYN dropped (v4, v6)", "packet_dropped/forwarding_disabled")
def sc_drop_forwarding_off(t, k, pas):
    """A namespace routes for the client but forwards nothing
    (net.ipv4.ip_forward and net.ipv6.conf.all.forwarding 0, a new
    namespace's defaults): what a host with containers behind it sees after
    something turned forwarding off."""
    router, client = NetNS(), NetNS()
    r1, _ = router.link(client, v4="198.18.44", v6="fd00:44::")
    # Routes for the destination (back out the client's link: never used,
    # the packet is dropped before; IPv6 makes a route through lo a reject route).
    router.exec("ip", "route", "add", "198.18.45.0/24", "via", "198.18.44.2")
    router.exec("ip", "-6", "route", "add", "fd00:45::/64", "via", "fd00:44::2")
    client.exec("ip", "route", "add", "198.18.45.0/24", "via", "198.18.44.1")
    client.exec("ip", "-6", "route", "add", "fd00:45::/64", "via", "fd00:44::1")
    port = rnd_port()
    c = Check()
    r = None
    for addr, family, sysctl in (("198.18.45.9", "ipv4", "net.ipv4.conf.%s.forwarding" % r1),
                                 ("fd00:45::9", "ipv6", "net.ipv6.conf.all.forwarding")):
        pid, err = connect(client, addr, port, timeout=2)
        c.true("connect errno %r (%s)" % (err, family), err == errno.ETIMEDOUT)
        r = t.wait(lambda r: r.get("reason") == "packet_dropped" and r.get("netns") == router.inode
                   and r.get("port") == port and addr_of(r, "local") == addr, 10)
        c.true("no drop record for %s" % addr, r is not None)
        if not r:
            continue
        expect_common(c, r, "drop", "packet_dropped", None, port, family)
        if k.btf.has_name("SKB_DROP_REASON_IP_INADDRERRORS"):
            c.eq("cause (%s)" % family, r.get("cause"), "forwarding_disabled")
            c.eq("evidence.drop_reason (%s)" % family, ev(r).get("drop_reason"), "ip_inaddrerrors")
            c.eq("evidence.sysctl (%s)" % family, ev(r).get("sysctl"), sysctl)
            hint_has(c, r, "does not forward")
        c.eq("evidence.interface (%s)" % family, ev(r).get("interface"), r1)
        c.eq("client.pid (%s)" % family, pid_of(r, "client"), pid)
    return r, c, drop_expected(k)


TC_PROG = r"""
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/in.h>
__attribute__((section("tc"), used)) int km_drop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->protocol != IPPROTO_TCP)
		return 0;
	struct tcphdr *th = (void *)ip + ip->ihl * 4;
	if ((void *)(th + 1) > end)
		return 0;
	return th->FIELD == __builtin_bswap16(PORT) ? 2 : 0;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


def tc_filter_program(ns, dev, where):
    """The program of the one bpf filter on `dev` at `where`, as `tc -j
    filter show` reports it (independently of synsight), with the filter's
    pref and name."""
    filters = json.loads(ns.exec("tc", "-j", "filter", "show", "dev", dev, where))
    f = next((f for f in filters if f.get("options")), {})
    prog = dict((f.get("options") or {}).get("prog") or {})
    prog["pref"], prog["bpf_name"] = f.get("pref"), (f.get("options") or {}).get("bpf_name")
    return prog


def tc_programs_check(c, k, r, method, ns, dev, where, reason):
    """The record names the filter's BPF program (id, name, tag, type, tc
    pref and filter name, attach point; the hint says how to inspect it)
    when it is one (`bpf da`), and an empty list for u32 + gact (no BPF
    program at that attach point); either way every attach point was read."""
    if not k.btf.has_name("SKB_DROP_REASON_" + reason):
        return
    e = ev(r)
    progs = e.get("bpf_programs")
    if method == "bpf da":
        want = tc_filter_program(ns, dev, where)
        c.eq("evidence.bpf_programs[].attach", [p.get("attach") for p in progs or []], ["tc %s on %s" % (where, dev)])
        c.eq("evidence.bpf_programs[].name", [p.get("name") for p in progs or []], ["km_drop"])
        p = (progs or [{}])[0]
        c.true("evidence.bpf_programs[0].id %r" % p.get("id"), isinstance(p.get("id"), int) and p["id"] > 0)
        c.eq("evidence.bpf_programs[0] (id, tag, type, tc_pref, tc_name, owner)",
             (p.get("id"), p.get("tag"), p.get("type"), p.get("tc_pref"), p.get("tc_name"), p.get("owner")),
             (want.get("id"), want.get("tag"), "sched_cls", want.get("pref"), want.get("bpf_name"), None))
        hint_has(c, r, "`bpftool prog show id %s`" % p.get("id"))
        hint_has(c, r, "`tc filter show dev %s %s`" % (dev, where))
    else:
        c.eq("evidence.bpf_programs (a u32 filter is no BPF program)", progs, [])
    c.eq("evidence.bpf_programs_unavailable", e.get("bpf_programs_unavailable"), None)


def tc_drop_check(c, r, port, listener, client_addr):
    """A handshake segment a tc filter dropped: the listener it was for, the
    connecting client's address."""
    c.eq("process.pid", pid_of(r, "process"), listener.pid)
    c.eq("local.port", (r.get("local") or {}).get("port"), port)
    c.eq("remote.addr", addr_of(r, "remote"), client_addr)


def require_tc():
    if not os.access("/usr/sbin/tc", os.X_OK) and not shutil.which("tc"):
        raise Unavailable("tc (iproute2) is not installed")


def tc_drop_filter(ns, dev, port, egress=False, flags=None):
    """A tc filter dropping TCP to `port` at ingress (from it at egress),
    only segments whose flags are exactly `flags` when given (0x10: a pure
    ACK, 0x14: RST|ACK): u32 + gact where the kernel has them (the guests'
    modules), else a direct-action BPF program built with the host's clang;
    Unavailable when neither can be had."""
    where, field, cfield = ("egress", "sport", "source") if egress else ("ingress", "dport", "dest")
    ns.exec("tc", "qdisc", "add", "dev", dev, "clsact")
    match_flags = ["match", "u8", "0x%x" % flags, "0xff", "at", "33"] if flags is not None else []
    gact = subprocess.run(["ip", "netns", "exec", ns.name, "tc", "filter", "add", "dev", dev, where,
                           "protocol", "ip", "u32", "match", "ip", field, str(port), "0xffff"] + match_flags
                          + ["action", "drop"], capture_output=True, text=True)
    if gact.returncode == 0:
        return "u32 action drop"
    clang = next((p for p in ("/opt/swift/usr/bin/clang", "/usr/bin/clang") if os.access(p, os.X_OK)), None)
    if not clang:
        raise Unavailable("tc: no gact action (%s) and no clang for a BPF filter" % gact.stderr.strip())
    d = tempfile.mkdtemp(prefix="km-tc-")
    CLEANUP.append(lambda: shutil.rmtree(d, ignore_errors=True))
    cond = "th->%s == __builtin_bswap16(%d)" % (cfield, port)
    if flags is not None:
        cond += " && ((unsigned char *)th)[13] == %d" % flags
    with open(os.path.join(d, "drop.c"), "w") as f:
        f.write(TC_PROG.replace("th->FIELD == __builtin_bswap16(PORT)", cond))
    sh(clang, "-target", "bpf", "-O2", "-I/usr/include/%s-linux-gnu" % os.uname().machine,
       "-c", os.path.join(d, "drop.c"), "-o", os.path.join(d, "drop.o"))
    ns.exec("tc", "filter", "add", "dev", dev, where, "bpf", "da", "obj", os.path.join(d, "drop.o"), "sec", "tc")
    return "bpf da"


@scenario("tc ingress filter drops the SYN", "packet_dropped/bpf_program")
def sc_drop_tc(t, k, pas):
    require_tc()
    server, client = NetNS(), NetNS()
    s1, _ = server.link(client, v4="198.18.44")
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    method = tc_drop_filter(server, s1, port)
    pid, err = connect(client, "198.18.44.1", port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = drop_record(t, server, port)
    if r:
        drop_check(c, k, r, port, pid, "TC_INGRESS", "bpf_program", s1, "ingress")
        tc_drop_check(c, r, port, listener, "198.18.44.2")
        hint_has(c, r, s1)
        c.eq("evidence.segment", ev(r).get("segment"), "syn")
        if k.btf.has_name("SKB_DROP_REASON_TC_INGRESS"):
            c.eq("evidence.attach_point", ev(r).get("attach_point"), "tc ingress")
        tc_programs_check(c, k, r, method, server, s1, "ingress", "TC_INGRESS")
    return r, c, drop_expected(k)


def tc_egress_drop_check(c, k, r, port, segment):
    """What every record of a segment a tc egress filter dropped carries:
    packet_dropped, bpf_program where the kernel names TC_EGRESS (returned,
    else None), the segment, direction egress."""
    want = "tc_egress" if k.btf.has_name("SKB_DROP_REASON_TC_EGRESS") else None
    expect_common(c, r, "drop", "packet_dropped", "bpf_program" if want else None, port)
    if want:
        c.eq("evidence.drop_reason", ev(r).get("drop_reason"), want)
    c.eq("evidence.segment", ev(r).get("segment"), segment)
    c.eq("evidence.direction", ev(r).get("direction"), "egress")
    return want


@scenario("tc egress filter on the server drops its SYN-ACK", "packet_dropped/bpf_program (syn_ack)")
def sc_drop_tc_egress(t, k, pas):
    require_tc()
    server, client = NetNS(), NetNS()
    s1, _ = server.link(client, v4="198.18.45")
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    method = tc_drop_filter(server, s1, port, egress=True)
    pid, err = connect(client, "198.18.45.1", port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = drop_record(t, server, port)
    if r:
        want = tc_egress_drop_check(c, k, r, port, "syn_ack")
        c.eq("evidence.interface", ev(r).get("interface"), s1)
        # The server is `local` whichever way the segment went.
        c.eq("local.addr", addr_of(r, "local"), "198.18.45.1")
        c.eq("client.pid", pid_of(r, "client"), pid)
        tc_drop_check(c, r, port, listener, "198.18.45.2")
        if want:
            c.eq("evidence.attach_point", ev(r).get("attach_point"), "tc egress")
        tc_programs_check(c, k, r, method, server, s1, "egress", "TC_EGRESS")
    return r, c, drop_expected(k)


@scenario("tc ingress filter drops the handshake's final ACK", "packet_dropped/bpf_program (ack)")
def sc_drop_tc_ack(t, k, pas):
    require_tc()
    server, client = NetNS(), NetNS()
    s1, _ = server.link(client, v4="198.18.46")
    port = rnd_port()
    listener = Peer(server, ["listen", "0.0.0.0", str(port)])
    method = tc_drop_filter(server, s1, port, flags=0x10)
    pid, err = connect(client, "198.18.46.1", port)
    c = Check()
    # The client believes it is connected.
    c.eq("connect errno", err, 0)
    r = drop_record(t, server, port)
    if r:
        want = "tc_ingress" if k.btf.has_name("SKB_DROP_REASON_TC_INGRESS") else None
        expect_common(c, r, "drop", "packet_dropped", "bpf_program" if want else None, port)
        if want:
            c.eq("evidence.drop_reason", ev(r).get("drop_reason"), want)
            c.eq("evidence.attach_point", ev(r).get("attach_point"), "tc ingress")
        c.eq("evidence.segment", ev(r).get("segment"), "ack")
        c.eq("evidence.direction", ev(r).get("direction"), "ingress")
        c.eq("evidence.interface", ev(r).get("interface"), s1)
        tc_drop_check(c, r, port, listener, "198.18.46.2")
        c.eq("client.pid (the connect() caller)", pid_of(r, "client"), pid)
        hint_has(c, r, "believes it is connected")
        tc_programs_check(c, k, r, method, server, s1, "ingress", "TC_INGRESS")
        time.sleep(2 * SLOW)
        mine = [x for x in t.records()[t.start:] if x.get("port") == port and x.get("reason") == "packet_dropped"]
        c.eq("packet_dropped records for the connection", len(mine), 1)
    # Where TC_INGRESS is not a reason of the kernel, the ACK's drop is not one synsight reports.
    return r, c, drop_expected(k) if k.btf.has_name("SKB_DROP_REASON_TC_INGRESS") \
        else (None, "no TC_INGRESS drop reason: a pure ACK's drop is reported only with a failure's reason")


@scenario("tc egress filter drops the RST refusing a SYN", "packet_dropped/bpf_program (rst)")
def sc_drop_tc_rst(t, k, pas):
    require_tc()
    server, client = NetNS(), NetNS()
    s1, _ = server.link(client, v4="198.18.47")
    port = rnd_port()
    method = tc_drop_filter(server, s1, port, egress=True, flags=0x14)
    pid, err = connect(client, "198.18.47.1", port, timeout=2)
    c = Check()
    # No listener, but the refusal never arrives.
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = drop_record(t, server, port)
    if r:
        if tc_egress_drop_check(c, k, r, port, "rst"):
            c.eq("evidence.attach_point", ev(r).get("attach_point"), "tc egress")
        c.eq("evidence.interface", ev(r).get("interface"), s1)
        answer_check(c, r, "198.18.47.1", "198.18.47.2", "never learns it was refused", pid)
        tc_programs_check(c, k, r, method, server, s1, "egress", "TC_EGRESS")
    return r, c, drop_expected(k) if k.btf.has_name("SKB_DROP_REASON_TC_EGRESS") \
        else (None, "no TC_EGRESS drop reason: a RST's drop is reported only with a failure's reason")


TC_ICMP_PROG = r"""
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
__attribute__((section("tc"), used)) int km_drop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return 0;
	return ip->protocol == IPPROTO_ICMP ? 2 : 0;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


@scenario("tc egress filter drops the ICMP error a REJECT answers a SYN with", "packet_dropped/bpf_program (icmp)")
def sc_drop_tc_icmp(t, k, pas):
    require_tc()
    server, client = NetNS(), NetNS()
    s1, _ = server.link(client, v4="198.18.48")
    port = rnd_port()
    nft_load(server, 'table ip fw { chain input { type filter hook input priority 0; policy accept;\n'
             'tcp dport %d reject with icmp type admin-prohibited\n}\n}\n' % port)
    server.exec("tc", "qdisc", "add", "dev", s1, "clsact")
    gact = subprocess.run(["ip", "netns", "exec", server.name, "tc", "filter", "add", "dev", s1, "egress", "protocol", "ip",
                           "u32", "match", "ip", "protocol", "1", "0xff", "action", "drop"], capture_output=True, text=True)
    method = "u32 action drop"
    if gact.returncode != 0:
        clang = next((p for p in ("/opt/swift/usr/bin/clang", "/usr/bin/clang") if os.access(p, os.X_OK)), None)
        if not clang:
            raise Unavailable("tc: no gact action (%s) and no clang for a BPF filter" % gact.stderr.strip())
        d = tempfile.mkdtemp(prefix="km-tc-")
        CLEANUP.append(lambda: shutil.rmtree(d, ignore_errors=True))
        with open(os.path.join(d, "drop.c"), "w") as f:
            f.write(TC_ICMP_PROG)
        sh(clang, "-target", "bpf", "-O2", "-I/usr/include/%s-linux-gnu" % os.uname().machine,
           "-c", os.path.join(d, "drop.c"), "-o", os.path.join(d, "drop.o"))
        server.exec("tc", "filter", "add", "dev", s1, "egress", "bpf", "da", "obj", os.path.join(d, "drop.o"), "sec", "tc")
        method = "bpf da"
    pid, err = connect(client, "198.18.48.1", port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = drop_record(t, server, port)
    if r:
        tc_egress_drop_check(c, k, r, port, "icmp")
        c.eq("evidence.icmp", ev(r).get("icmp"), {"type": 3, "code": 13})
        answer_check(c, r, "198.18.48.1", "198.18.48.2", "never learns it was refused", pid)
        tc_programs_check(c, k, r, method, server, s1, "egress", "TC_EGRESS")
    return r, c, drop_expected(k) if k.btf.has_name("SKB_DROP_REASON_TC_EGRESS") \
        else (None, "no TC_EGRESS drop reason: an ICMP answer's drop is reported only with a failure's reason")


# Conntrack: a `ct state invalid` rule (firewall_drop/conntrack_invalid) and
# a full table (packet_dropped/conntrack_full). Where conntrack is a module,
# its BTF must be there when synsight loads: the rules are loaded by prestart.
CT_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
CT_HELD = 64


def in_netns(ns, fn):
    """Runs fn() in a thread that joined `ns` (setns is per thread): the
    sockets it makes stay in that namespace. Returns fn's value."""
    import threading
    out = {}

    def run():
        fd = os.open("/run/netns/" + ns.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            out["v"] = fn()
        except BaseException as e:
            out["e"] = e
        finally:
            os.close(fd)
    th = threading.Thread(target=run)
    th.start()
    th.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def prestart_ct_invalid():
    server, client = NetNS(), NetNS()
    server.link(client, v4="198.18.62")
    # No port in the rules (the trace's port filter has no room for more):
    # every TCP packet of this namespace is the scenario's. The rules load
    # nf_conntrack where it is a module (its sysctls come with it).
    nft_load(client, "table inet km_ct {\n"
             " chain out { type filter hook output priority raw; meta l4proto tcp notrack; }\n"
             " chain in { type filter hook input priority 0; ct state invalid counter drop; }\n}\n")
    client.exec("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
    return server, client


@scenario("untracked SYN, its SYN-ACK dropped by `ct state invalid`", "firewall_drop/conntrack_invalid")
def sc_ct_invalid(t, k, pas):
    server, client = prestarted("sc_ct_invalid")
    port = rnd_port()
    Peer(server, ["listen", "0.0.0.0", str(port)])
    pid, err = connect(client, "198.18.62.1", port, timeout=2)
    c = Check()
    c.eq("connect errno", err, errno.ETIMEDOUT)
    r = fw_record(t, client, port)
    if r:
        expect_common(c, r, "drop", "firewall_drop", "conntrack_invalid", port)
        e = ev(r)
        c.eq("evidence.ct_state", e.get("ct_state"), "invalid")
        c.eq("evidence.table", e.get("table"), "inet km_ct")
        c.eq("evidence.chain", e.get("chain"), "in")
        c.true("evidence.rule %r lacks ct state invalid" % e.get("rule"), "ct state invalid" in (e.get("rule") or ""))
        c.eq("evidence.tcp_flags", e.get("tcp_flags"), 0x12)
    return r, c, fw_expected(k)


sc_ct_invalid.prestart = prestart_ct_invalid


def prestart_ct_full():
    server, client = NetNS(), NetNS()
    dev, _ = server.link(client, v4="198.18.63")
    nft_load(server, "table inet km_ctf {\n chain in { type filter hook input priority 0; "
             "ct state invalid drop; ct state established,related accept; }\n}\n")
    return server, client, dev


def ct_max_watchdog(original):
    """Restores nf_conntrack_max if this process dies (or after 60 s) unless
    the returned marker file is gone first: the host must never stay changed.
    The guests' initramfs has no setsid: a guest is thrown away after its run."""
    if shutil.which("setsid") is None:
        return None
    fd, marker = tempfile.mkstemp(prefix="km-ctmax-")
    os.close(fd)
    subprocess.run(["setsid", "-f", "/bin/sh", "-c",
                    'end=$(( $(date +%s) + 60 )); '
                    'while [ -e "$3" ] && kill -0 "$2" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done; '
                    'if [ -e "$3" ]; then echo "$1" > ' + CT_MAX + '; rm -f "$3"; fi',
                    "km-ctmax-watchdog", original, str(os.getpid()), marker],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return marker


@scenario("conntrack table full: the SYN dropped by conntrack itself", "packet_dropped/conntrack_full")
def sc_ct_full(t, k, pas):
    import socket
    server, client, dev = prestarted("sc_ct_full")
    port = rnd_port()
    held = []
    CLEANUP.append(lambda: [x.close() for x in held])

    def serve():
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(128)
        held.append(ls)
        return ls
    ls = in_netns(server, serve)

    def accept_loop():
        while True:
            try:
                a, _ = ls.accept()
            except OSError:
                return
            held.append(a)
            try:
                if a.recv(1):
                    a.sendall(b"y")
            except OSError:
                pass
    import threading
    threading.Thread(target=accept_loop, daemon=True).start()

    def hold():
        for _ in range(CT_HELD):
            s = socket.socket()
            s.settimeout(5 * SLOW)
            s.connect(("198.18.63.1", port))
            s.sendall(b"x")
            if s.recv(1) != b"y":
                raise Failure("no answer on a held connection")
            held.append(s)
    in_netns(client, hold)
    count = lambda: int(server.exec("cat", "/proc/sys/net/netfilter/nf_conntrack_count").strip() or -1)
    c = Check()
    c.true("the server's namespace holds %d conntrack entries, not %d" % (count(), CT_HELD),
           wait_until(lambda: count() == CT_HELD, 5))
    original = open(CT_MAX).read().strip()
    if int(original) <= CT_HELD:
        raise Unavailable("nf_conntrack_max is already %s" % original)
    marker = ct_max_watchdog(original)
    try:
        with open(CT_MAX, "w") as f:
            f.write(str(CT_HELD))
        pid, err = connect(client, "198.18.63.1", port, timeout=2)
        r = drop_record(t, server, port)
    finally:
        with open(CT_MAX, "w") as f:
            f.write(original)
        if marker:
            os.unlink(marker)
    c.eq("connect errno", err, errno.ETIMEDOUT)
    c.eq("nf_conntrack_max restored", open(CT_MAX).read().strip(), original)
    if r:
        expect_common(c, r, "drop", "packet_dropped", "conntrack_full", port)
        e = ev(r)
        c.eq("evidence.conntrack_count", e.get("conntrack_count"), CT_HELD)
        c.eq("evidence.conntrack_max", e.get("conntrack_max"), CT_HELD)
        c.eq("evidence.sysctl", e.get("sysctl"), "net.netfilter.nf_conntrack_max")
        c.eq("evidence.drop_reason", e.get("drop_reason"), "netfilter_drop")
        c.eq("evidence.interface", e.get("interface"), dev)
        c.eq("evidence.chain_hook", e.get("chain_hook"), "prerouting")
        c.true("evidence.location %r is not a symbol" % e.get("location"),
               isinstance(e.get("location"), str) and not e["location"].startswith("0x"))
        c.true("a rule was named: %r" % e.get("rule"), e.get("rule") is None)
    return r, c, fw_expected(k)


sc_ct_full.prestart = prestart_ct_full


SELINUX_TEST_CONTEXT = "system_u:system_r:km_test_t:s0"  # scripts/kernel-matrix/selinux/km_test.cil


def selinux_enforcing():
    try:
        return open("/sys/fs/selinux/enforce").read().strip() == "1"
    except OSError:
        return False


def selinux_denial(t, k, op):
    """A process in km_test_t (no name_bind/name_connect on http_port_t)
    binds or connects to port 80."""
    if not selinux_enforcing():
        raise Unavailable("SELinux is not enforcing (boot with security=selinux enforcing=1 and a policy)")
    ns = NetNS()
    if op == "bind":
        c = Child(ns, ["bind", "0.0.0.0", 80], selinux_context=SELINUX_TEST_CONTEXT)
        perm = "name_bind"
    else:
        Peer(ns, ["listen", "127.0.0.1", "80"])
        c = Child(ns, ["connect", "127.0.0.1", 80, "--timeout", 3], selinux_context=SELINUX_TEST_CONTEXT)
        perm = "name_connect"
    pid, err = c.result()
    chk = Check()
    chk.eq("%s errno" % op, err, errno.EACCES)
    r = sys_record(t, ns, "denial", "lsm_denied", 80, pid=pid)
    if r:
        expect_common(chk, r, "denial", "lsm_denied", "selinux", 80)
        e = ev(r)
        chk.eq("evidence.scontext", e.get("scontext"), SELINUX_TEST_CONTEXT)
        chk.true("evidence.tcontext %r is not http_port_t" % e.get("tcontext"), ":http_port_t:" in (e.get("tcontext") or ""))
        chk.eq("evidence.tclass", e.get("tclass"), "tcp_socket")
        chk.true("evidence.permissions %r lacks %s" % (e.get("permissions"), perm), perm in (e.get("permissions") or []))
        chk.eq("evidence.mode", e.get("mode"), "enforcing")
        chk.eq("evidence.call", e.get("call"), op)
        chk.true("hint does not name semanage port: %r" % r.get("hint"), "semanage port" in (r.get("hint") or ""))
    return r, chk, (k.syscall_hook(), None)


@scenario("SELinux domain without name_bind binds port 80", "lsm_denied/selinux (name_bind)", passes=("selinux",))
def sc_selinux_bind(t, k, pas):
    return selinux_denial(t, k, "bind")


@scenario("SELinux domain without name_connect connects to port 80", "lsm_denied/selinux (name_connect)",
          passes=("selinux",))
def sc_selinux_connect(t, k, pas):
    return selinux_denial(t, k, "connect")


# --------------------------------------------------------------------------
# The runner

PASSES = {
    # name: (trace arguments, environment, what it proves)
    "default": ([], {}, "hooks chosen by synsight's probes"),
    "kprobe": (["--reset-hook", "kprobe", "--force-hook", "overflow=kprobe", "--force-hook", "resetttl=kprobe"], {},
               "kprobe variants forced"),
    "kfree_skb": (["--reset-hook", "kfree_skb"], {}, "kfree_skb fallback forced"),
    "selinux": ([], {}, "SELinux enforcing with Debian's reference policy"),
}


def doctor_hooks(text):
    """reason -> the hook text of its doctor line."""
    out = {}
    for line in text.splitlines():
        p = line.strip().split(None, 1)
        if len(p) == 2 and line.startswith("  ") and not line.startswith("   "):
            out[p[0]] = p[1].split(" -- ")[0].strip()
    return out


def run_scenario(emit, k, trace, pas, name, reason, fn, doctor):
    """Runs a scenario; a failure is retried once (timing on a loaded 1-vCPU
    guest) and a pass on the retry says so in the results."""
    started = time.time()
    res = attempt(k, trace, pas, name, reason, fn, doctor)
    if res["status"] == "fail":
        first = res
        res = attempt(k, trace, pas, name, reason, fn, doctor)
        if res["status"] == "pass":
            res["retried"] = True
            res["detail"] = "passed on the second attempt; the first failed: %s" % first.get("detail")
    res["seconds"] = round(time.time() - started, 1)
    emit(res)
    return res["status"] != "fail"


def attempt(k, trace, pas, name, reason, fn, doctor):
    res = {"type": "scenario", "pass": pas, "name": name, "reason": reason}
    CLEANUP.extend(PRESTARTED_CLEANUP.pop(fn.__name__, []))
    try:
        trace.mark()
        r, c, (want, why) = fn(trace, k, pas)
        got = record_hook(r) if r else None
        if got is None and r:
            got = doctor.get(r.get("reason"), None)
        res.update({"hook": got, "expected_hook": want})
        if r is None:
            if want is None:
                res.update({"status": "unavailable", "detail": why})
            else:
                res.update({"status": "fail", "detail": "no record (expected one via %s)" % want})
        else:
            res["record"] = {k2: r.get(k2) for k2 in ("kind", "reason", "cause", "port", "family")}
            res["record"]["process"] = pid_of(r, "process")
            res["record"]["client"] = pid_of(r, "client")
            if ev(r).get("drop_reason") is not None:
                res["record"]["drop_reason"] = ev(r).get("drop_reason")
            if want is None:
                c.failures.append("a record came although this kernel should not show it (%s)" % why)
            elif not hook_matches(got, want):
                c.failures.append("hook %r, but this kernel must use %r" % (got, want))
            res.update({"status": "fail" if c.failures else "pass", "detail": "; ".join(c.failures)})
            if c.failures:
                res["json"] = json.dumps(r, sort_keys=True)[:3000]
    except Unavailable as e:
        res.update({"status": "unavailable", "detail": str(e), "hook": None, "expected_hook": None})
    except Exception as e:
        res.update({"status": "fail", "detail": "%s: %s" % (type(e).__name__, e),
                    "trace": traceback.format_exc(limit=3)})
    finally:
        cleanup()
    return res


def measure_cost(connections):
    """BPF program runs per healthy connection on this kernel
    (scripts/bench/per_connection.py: next to this file in a guest)."""
    for d in (HERE, os.path.join(HERE, "..", "bench")):
        if os.path.exists(os.path.join(d, "per_connection.py")) and d not in sys.path:
            sys.path.insert(0, d)
    try:
        import per_connection
        return {"type": "cost", **per_connection.measure(SYNSIGHT, connections, idle=2.0 * SLOW)}
    except Exception as e:
        return {"type": "cost", "error": "%s: %s" % (type(e).__name__, e)}


def main():
    global SYNSIGHT, PEER, SLOW
    args = sys.argv[1:]

    def opt(name, default=None):
        return args[args.index(name) + 1] if name in args else default
    SYNSIGHT = opt("--synsight", "/usr/local/bin/synsight")
    PEER = opt("--peer", os.path.join(HERE, "peer.py"))
    SLOW = float(opt("--slow", "1"))
    only = set(filter(None, (opt("--only", "") or "").split(",")))
    passes = (opt("--passes", "default,kprobe,kfree_skb")).split(",")
    out = open(opt("--out", "/dev/stdout"), "w", buffering=1)

    def emit(obj):
        out.write(json.dumps(obj, sort_keys=True) + "\n")
        out.flush()

    k = Kernel()
    emit({"type": "env", **k.describe()})
    d = subprocess.run([SYNSIGHT, "doctor"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    emit({"type": "doctor", "text": d.stdout, "status": d.returncode})
    doctor = doctor_hooks(d.stdout)
    DOCTOR.update(doctor)
    ok = True

    for pas in passes:
        targs, tenv, _ = PASSES[pas]
        selected = [(n, r, fn) for (n, r, ps, fn) in SCENARIOS if pas in ps and (not only or fn.__name__ in only)]
        if not selected:
            continue
        if pas == "kprobe" and not k.kprobes:
            for n, r, fn in selected:
                emit({"type": "scenario", "pass": pas, "name": n, "reason": r, "status": "unavailable",
                      "detail": "kernel has no kprobes (CONFIG_KPROBES)", "hook": None, "expected_hook": None})
            continue
        # Listeners some scenarios need to exist before synsight starts (found
        # by its /proc snapshot and iter/tcp): started now, kept out of the
        # per-scenario cleanup until their scenario has run.
        for n, r, fn in selected:
            pre = getattr(fn, "prestart", None)
            if pre:
                mark = len(CLEANUP)
                try:
                    PRESTARTED[fn.__name__] = pre()
                except Exception as e:
                    PRESTARTED[fn.__name__] = e
                PRESTARTED_CLEANUP[fn.__name__] = CLEANUP[mark:]
                del CLEANUP[mark:]
        try:
            trace = Trace(targs + [a for p in filter_ports() for a in ("--port", str(p))], tenv)
        except Failure as e:
            for n, r, fn in selected:
                emit({"type": "scenario", "pass": pas, "name": n, "reason": r, "status": "fail", "detail": str(e)})
            ok = False
            release_prestarted()
            continue
        try:
            for n, r, fn in selected:
                ok &= run_scenario(emit, k, trace, pas, n, r, fn, doctor)
        finally:
            summary = trace.stop()
            # Every record synsight wrote, for the host to validate against
            # docs/schema/synsight-record-v1.schema.json (kernel-matrix.sh).
            for rec in trace.records():
                emit({"type": "record", "pass": pas, "record": rec})
            trace.remove_files()
            release_prestarted()
        emit({"type": "trace", "pass": pas, "stderr": summary[-4000:]})
    cost = int(opt("--cost", "0"))
    if cost > 0:
        emit(measure_cost(cost))
    emit({"type": "done"})
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        release_prestarted()
