#!/usr/bin/python3
"""Test peer for synsight's end-to-end tests: real sockets, run inside the
test's network namespaces with `ip netns exec`. Standard library only.

  peer.py listen ADDR PORT [--v6only] [--close-after SEC]
      bind+listen, print "ready <pid>", then stay until killed (or close the
      listening socket after SEC seconds and print "closed", staying alive).
  peer.py connect ADDR PORT [--timeout SEC]
      one connect(); print "<pid> <errno>" (0 on success).
"""
import errno
import os
import socket
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr, port, v6only, close_after):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    s.bind((addr, port))
    s.listen(16)
    print("ready", os.getpid(), flush=True)
    if close_after is not None:
        time.sleep(close_after)
        s.close()
        print("closed", flush=True)
    while True:
        time.sleep(3600)


def connect(addr, port, timeout):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(timeout)
    code = 0
    try:
        s.connect((addr, port))
    except OSError as e:
        code = e.errno if e.errno is not None else errno.ETIMEDOUT
    print(os.getpid(), code, flush=True)


def main(argv):
    args = argv[1:]
    opts = {}
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--v6only":
            opts["v6only"] = True
        elif args[i] in ("--close-after", "--timeout"):
            opts[args[i][2:]] = float(args[i + 1])
            i += 1
        else:
            pos.append(args[i])
        i += 1
    cmd, addr, port = pos[0], pos[1], int(pos[2])
    if cmd == "listen":
        listen(addr, port, opts.get("v6only", False), opts.get("close-after"))
    elif cmd == "connect":
        connect(addr, port, opts.get("timeout", 5.0))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
