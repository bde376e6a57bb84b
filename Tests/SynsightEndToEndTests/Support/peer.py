#!/usr/bin/python3
"""Test peer for synsight's end-to-end tests: real sockets, run inside the
test's network namespaces with `ip netns exec`. Standard library only.

  peer.py listen ADDR PORT [--v6only] [--close-after SEC] [--accept-one] [--await-cgroup TEXT]
                 [--device DEV] [--mark N]
      bind+listen (bound to device DEV, marked N with SO_MARK: its SYN-ACKs
      are routed by the policy rules of that mark), print "ready <pid>", then stay until killed (or close the
      listening socket after SEC seconds and print "closed", staying alive;
      or, with --accept-one, accept one connection, close the listening
      socket, print "served" and keep that connection open).
      --await-cgroup: first print "waiting <pid>" and wait until
      /proc/self/cgroup contains TEXT (the test moves it: `ip netns exec`
      mounts its own /sys, without the cgroup hierarchies), then listen.
  peer.py connect ADDR PORT [--timeout SEC] [--source ADDR] [--device DEV] [--mark N] [--linger0]
      one connect() (bound to ADDR first with --source, to device DEV with
      SO_BINDTODEVICE, marked N with SO_MARK; with --linger0, SO_LINGER 0,
      so closing it at the timeout aborts it: HAProxy's "option nolinger");
      print "<pid> <errno>" (0 on success).
  peer.py connect-polling ADDR PORT [--timeout SEC]
      a non-blocking connect() whose caller reads SO_ERROR in a loop (as a
      busy event loop may), from another CPU than the one its SYN timer runs
      on, that CPU kept busy at nice 19: it takes a failure's error the
      moment the kernel sets it, before the kernel reports it; print
      "<pid> <errno>".

  peer.py tun DEV ANSWERS
      a remote TCP peer in user space, behind tun device DEV (created here,
      IPv4 and IPv6, no packet info; the test addresses and routes it after "ready
      <pid>"): each SYN to a port of ANSWERS ("PORT:synack:TTL,PORT:rst:TTL,PORT:icmp3:TTL")
      is answered with a SYN-ACK, a RST+ACK, or (IPv4) an ICMP destination
      unreachable of that code (3 port, 13 administratively prohibited), sent
      with that TTL (hop limit); nothing else is answered. The kernel of the namespace sees a peer that no
      socket, rule or drop of this host stands for (injected resets).

Options for any command (untrusted names, raw bytes given in hex):
  --comm-hex HEX          set the process name (comm) to these bytes first,
                          by writing /proc/self/comm
  --exe-in DIR --exe-dir-hex HEX
                          first re-exec the interpreter from DIR/<bytes>/python3
                          (a hard link, else a copy), so /proc/<pid>/exe is a
                          path with those bytes; the test removes DIR
"""
import errno
import os
import signal
import socket
import struct
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr, port, v6only, close_after, device=None, accept_one=False, mark=0):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    if device:
        # SO_BINDTODEVICE: what a service's bind-interface setting (or `ip vrf exec`) does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    if family_of(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    s.bind((addr, port))
    s.listen(16)
    print("ready", os.getpid(), flush=True)
    if accept_one:
        conn, _ = s.accept()
        s.close()
        print("served", flush=True)
    if close_after is not None:
        time.sleep(close_after)
        s.close()
        print("closed", flush=True)
    while True:
        time.sleep(3600)


def connect(addr, port, timeout, source=None, sport=0, device=None, mark=0, linger0=False):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(timeout)
    if linger0:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    code = 0
    if device:
        # As `curl --interface DEV` (or a client's bind-interface setting) does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    try:
        if sport:
            # A fixed source port: the same 4-tuple as an earlier attempt.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if source or sport:
            s.bind((source or "", sport))
        s.connect((addr, port))
    except OSError as e:
        code = e.errno if e.errno is not None else errno.ETIMEDOUT
    print(os.getpid(), code, flush=True)
    s.close()


def connect_polling(addr, port, timeout):
    # The timer is armed on the CPU that connect()s (cpus[0]), where a busy
    # process keeps it from being taken by another CPU; the poller reads
    # SO_ERROR on cpus[1], so the error is read while the kernel is still
    # between setting it and reporting it (tcp_done_with_error, 6.10+).
    cpus = sorted(os.sched_getaffinity(0))
    hog = None
    if len(cpus) > 1:
        hog = os.fork()
        if hog == 0:
            os.sched_setaffinity(0, {cpus[0]})
            os.nice(19)
            while True:
                pass
        os.sched_setaffinity(0, {cpus[0]})
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setblocking(False)
    code = 0
    try:
        s.connect((addr, port))
    except BlockingIOError:
        pass
    except OSError as e:
        code = e.errno
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[1]})
    deadline = time.monotonic() + timeout
    while code == 0 and time.monotonic() < deadline:
        code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            try:
                s.getpeername()
                break  # connected
            except OSError:
                pass
    if hog:
        os.kill(hog, signal.SIGKILL)
        os.waitpid(hog, 0)
    print(os.getpid(), code if code or time.monotonic() < deadline else errno.ETIMEDOUT, flush=True)
    s.close()


def stall(addr, port, backlog, emfile, spin=False):
    """Listen with a small backlog and never accept (or, with emfile, try to
    accept at the open-file limit so every accept() fails with EMFILE).
    With spin, a thread burns CPU from then on (in a cgroup with a CPU
    quota: throttled every period)."""
    import resource
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(backlog)
    if emfile:
        probe = os.open("/dev/null", os.O_RDONLY)  # the kernel hands out the lowest free fd
        os.close(probe)
        lowest_free = probe
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # The next fd accept() would take is the lowest free one: forbid it.
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    print("ready", os.getpid(), flush=True)
    if spin:
        import threading

        def burn():
            while True:
                pass
        threading.Thread(target=burn, daemon=True).start()
    while True:
        if emfile:
            try:
                c, _ = s.accept()
                c.close()
            except OSError as e:
                if e.errno != errno.EMFILE:
                    raise
                time.sleep(0.05)
        else:
            time.sleep(3600)


def hold(addr, port, seconds):
    """Connect and keep the connection open (it sits in the accept queue)."""
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((addr, port))
    print("connected", os.getpid(), flush=True)
    time.sleep(seconds)


# --- bind/listen/connect failure helpers (BindFailureTests.swift) ---
#   peer.py bind ADDR PORT [--reuseaddr] [--listen]
#       one bind() (and listen()); print "<pid> <errno>" (0 on success).
#   peer.py listen-twice ADDR PORT
#       two SO_REUSEADDR sockets bound to ADDR:PORT; the first listens, then
#       the second listen(); print "<pid> <errno>".
#   peer.py landlock ALLOWED_PORT (bind|connect) ADDR PORT
#       Landlock-restrict TCP bind/connect to ALLOWED_PORT (ABI 4+, via raw
#       syscalls 444-446), then one bind() or connect(); print "<pid> <errno>".
#   peer.py exhaust ADDR PORT N
#       hold N connections to ADDR:PORT, then one more connect(); print
#       "<pid> <errno> <held>".


def sys_errno(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno if e.errno is not None else -1


def cmd_bind(addr, port, reuseaddr, do_listen):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    if reuseaddr:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def run():
        s.bind((addr, port))
        if do_listen:
            s.listen(4)
    print(os.getpid(), sys_errno(run), flush=True)


def cmd_listen_twice(addr, port):
    a = socket.socket(family_of(addr), socket.SOCK_STREAM)
    b = socket.socket(family_of(addr), socket.SOCK_STREAM)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
    a.listen(4)
    print(os.getpid(), sys_errno(lambda: b.listen(4)), flush=True)


def cmd_landlock(allowed, op, addr, port):
    import ctypes
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    bind_tcp, connect_tcp = 1, 2
    # struct landlock_ruleset_attr { u64 handled_access_fs; u64 handled_access_net; }
    attr = ctypes.create_string_buffer(struct.pack("QQ", 0, bind_tcp | connect_tcp))
    fd = libc.syscall(444, attr, ctypes.c_size_t(16), ctypes.c_uint32(0))
    if fd < 0:
        sys.exit("landlock_create_ruleset: errno %d" % ctypes.get_errno())
    # struct landlock_net_port_attr { u64 allowed_access; u64 port; } (packed)
    rule = ctypes.create_string_buffer(struct.pack("QQ", bind_tcp | connect_tcp, allowed))
    if libc.syscall(445, ctypes.c_int(fd), ctypes.c_int(2), rule, ctypes.c_uint32(0)) != 0:
        sys.exit("landlock_add_rule: errno %d" % ctypes.get_errno())
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        sys.exit("prctl: errno %d" % ctypes.get_errno())
    if libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
        sys.exit("landlock_restrict_self: errno %d" % ctypes.get_errno())
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(3)
    if op == "bind":
        code = sys_errno(lambda: s.bind((addr, port)))
    else:
        code = sys_errno(lambda: s.connect((addr, port)))
    print(os.getpid(), code, flush=True)


def cmd_exhaust(addr, port, n):
    held = []
    for _ in range(n):
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((addr, port))
            held.append(s)
        except OSError:
            s.close()
            break
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(3)
    print(os.getpid(), sys_errno(lambda: s.connect((addr, port))), len(held), flush=True)


def cmd_storm(addr, port, n):
    """n connects one after another, each on a new socket; prints the pid
    and how many were refused (ECONNREFUSED) and how many failed otherwise."""
    refused = other = 0
    for _ in range(n):
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        s.settimeout(2)
        code = sys_errno(lambda: s.connect((addr, port)))
        s.close()
        if code == errno.ECONNREFUSED:
            refused += 1
        elif code != 0:
            other += 1
    print(os.getpid(), refused, other, flush=True)


def extra(args):
    opts = [a for a in args if a.startswith("--")]
    pos = [a for a in args if not a.startswith("--")]
    cmd = pos[0]
    if cmd == "bind":
        cmd_bind(pos[1], int(pos[2]), "--reuseaddr" in opts, "--listen" in opts)
    elif cmd == "listen-twice":
        cmd_listen_twice(pos[1], int(pos[2]))
    elif cmd == "landlock":
        cmd_landlock(int(pos[1]), pos[2], pos[3], int(pos[4]))
    elif cmd == "exhaust":
        cmd_exhaust(pos[1], int(pos[2]), int(pos[3]))
    elif cmd == "storm":
        cmd_storm(pos[1], int(pos[2]), int(pos[3]))
    else:
        return False
    return True


def take_option(args, name):
    """Removes `name VALUE` from args; returns VALUE (or None)."""
    if name not in args:
        return None
    i = args.index(name)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def untrusted_names(args):
    """Applies --exe-in/--exe-dir-hex (re-exec) and --comm-hex."""
    exe_in = take_option(args, "--exe-in")
    exe_dir = take_option(args, "--exe-dir-hex")
    if exe_in is not None and exe_dir is not None:
        import shutil
        d = os.path.join(os.fsencode(exe_in), bytes.fromhex(exe_dir))
        os.makedirs(d, exist_ok=True)
        exe = os.path.join(d, b"python3")
        if not os.path.exists(exe):
            try:
                os.link(os.path.realpath(sys.executable), exe)
            except OSError:
                shutil.copy2(os.path.realpath(sys.executable), exe)
        os.execv(exe, [exe, os.path.abspath(__file__)] + args)
    comm = take_option(args, "--comm-hex")
    if comm is not None:
        with open("/proc/self/comm", "wb", buffering=0) as f:
            f.write(bytes.fromhex(comm))


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tun_answer(pkt, rules):
    """The answer to one IPv4 or IPv6 packet read from the tun device, or None."""
    if len(pkt) >= 40 and pkt[0] >> 4 == 4 and pkt[9] == socket.IPPROTO_TCP:
        th = (pkt[0] & 0xF) * 4
        src, dst = pkt[12:16], pkt[16:20]
    elif len(pkt) >= 60 and pkt[0] >> 4 == 6 and pkt[6] == socket.IPPROTO_TCP:  # no extension headers
        th = 40
        src, dst = pkt[8:24], pkt[24:40]
    else:
        return None
    sport, dport, seq = struct.unpack("!HHI", pkt[th:th + 8])
    if pkt[th + 13] & 0x12 != 0x02 or dport not in rules:  # a SYN without ACK, to a port answered
        return None
    kind, ttl = rules[dport]
    if kind.startswith("icmp"):
        return tun_icmp(pkt[:th + 8], int(kind[4:] or 3), ttl) if len(src) == 4 else None
    flags, window = (0x12, 65535) if kind == "synack" else (0x14, 0)  # SYN+ACK, or RST+ACK
    tcp = bytearray(struct.pack("!HHIIBBHHH", dport, sport, 1000 if kind == "synack" else 0,
                                (seq + 1) & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0))
    if len(src) == 4:
        pseudo = dst + src + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, ttl, socket.IPPROTO_TCP, 0, dst, src))
        struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
    else:
        pseudo = dst + src + struct.pack("!I3xB", len(tcp), socket.IPPROTO_TCP)
        ip = bytearray(struct.pack("!IHBB16s16s", 0x60000000, len(tcp), socket.IPPROTO_TCP, ttl, dst, src))
    struct.pack_into("!H", tcp, 16, inet_checksum(pseudo + tcp))
    return bytes(ip + tcp)


def tun_icmp(quote, code, ttl):
    """An ICMP destination unreachable (code 3: port, 13: administratively
    prohibited) from the SYN's destination, quoting its IPv4 header and the
    first 8 bytes of its TCP header, as a firewall's reject sends it."""
    src, dst = quote[12:16], quote[16:20]
    icmp = bytearray(struct.pack("!BBHI", 3, code, 0, 0) + quote)
    struct.pack_into("!H", icmp, 2, inet_checksum(bytes(icmp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, ttl, socket.IPPROTO_ICMP, 0, dst, src))
    struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
    return bytes(ip + icmp)


def tun(dev, answers):
    import fcntl
    rules = {}
    for a in answers.split(","):
        port, kind, ttl = a.split(":")
        rules[int(port)] = (kind, int(ttl))
    fd = os.open("/dev/net/tun", os.O_RDWR)
    TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    print("ready", os.getpid(), flush=True)
    while True:
        answer = tun_answer(os.read(fd, 65535), rules)
        if answer:
            os.write(fd, answer)


def main(argv):
    args = argv[1:]
    untrusted_names(args)
    if args and args[0] == "tun":
        tun(args[1], args[2])
        return
    if args and args[0] in ("bind", "listen-twice", "landlock", "exhaust", "storm"):
        extra(args)
        return
    opts = {}
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--v6only":
            opts["v6only"] = True
        elif args[i] == "--emfile":
            opts["emfile"] = True
        elif args[i] == "--spin":
            opts["spin"] = True
        elif args[i] == "--linger0":
            opts["linger0"] = True
        elif args[i] == "--accept-one":
            opts["accept-one"] = True
        elif args[i] == "--await-cgroup":
            print("waiting", os.getpid(), flush=True)
            deadline = time.monotonic() + 10
            while args[i + 1] not in open("/proc/self/cgroup").read():
                if time.monotonic() > deadline:
                    sys.exit("not moved into a cgroup containing " + args[i + 1])
                time.sleep(0.01)
            i += 1
        elif args[i] in ("--close-after", "--timeout", "--backlog", "--seconds"):
            opts[args[i][2:]] = float(args[i + 1])
            i += 1
        elif args[i] == "--device":
            opts["device"] = args[i + 1]
            i += 1
        elif args[i] == "--source":
            opts["source"] = args[i + 1]
            i += 1
        elif args[i] in ("--sport", "--mark"):
            opts[args[i][2:]] = int(args[i + 1], 0)
            i += 1
        else:
            pos.append(args[i])
        i += 1
    cmd, addr, port = pos[0], pos[1], int(pos[2])
    if cmd == "listen":
        listen(addr, port, opts.get("v6only", False), opts.get("close-after"), opts.get("device"),
               opts.get("accept-one", False), opts.get("mark", 0))
    elif cmd == "stall":
        stall(addr, port, int(opts.get("backlog", 1)), opts.get("emfile", False), opts.get("spin", False))
    elif cmd == "hold":
        hold(addr, port, opts.get("seconds", 30.0))
    elif cmd == "connect-polling":
        connect_polling(addr, port, opts.get("timeout", 5.0))
    elif cmd == "connect":
        connect(addr, port, opts.get("timeout", 5.0), opts.get("source"), opts.get("sport", 0),
                opts.get("device"), opts.get("mark", 0), opts.get("linger0", False))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
