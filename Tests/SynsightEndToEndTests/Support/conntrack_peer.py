#!/usr/bin/python3
"""Conntrack test peers (ConntrackTests.swift), run inside the test's
namespaces with `ip netns exec`. Standard library only.

  conntrack_peer.py serve ADDR PORT
      listen; accept every connection, read one byte, answer one byte and keep
      it open; print "ready <pid>", stay until killed.
  conntrack_peer.py hold ADDR PORT N
      open N connections to a `serve` peer, each sending one byte and reading
      the answer (data both ways: conntrack marks them ASSURED, so a full
      table cannot evict them); print "ready <pid> <N>", stay until killed.
"""
import os
import socket
import sys
import threading
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(addr, port):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    held = []

    def loop():
        while True:
            c, _ = s.accept()
            c.settimeout(5)
            try:
                if c.recv(1):
                    c.sendall(b"y")
            except OSError:
                pass
            held.append(c)

    threading.Thread(target=loop, daemon=True).start()
    print("ready", os.getpid(), flush=True)
    while True:
        time.sleep(3600)


def hold(addr, port, n):
    held = []
    for _ in range(n):
        c = socket.socket(family_of(addr), socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect((addr, port))
        c.sendall(b"x")
        if c.recv(1) != b"y":
            sys.exit("no answer from the server")
        held.append(c)
    print("ready", os.getpid(), len(held), flush=True)
    while True:
        time.sleep(3600)


def main(argv):
    cmd, addr, port = argv[1], argv[2], int(argv[3])
    if cmd == "serve":
        serve(addr, port)
    elif cmd == "hold":
        hold(addr, port, int(argv[4]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
