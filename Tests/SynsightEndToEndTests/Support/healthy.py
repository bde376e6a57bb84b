#!/usr/bin/python3
"""Healthy HTTP/1.0-style traffic for synsight's end-to-end tests (real
sockets inside the test's namespaces; standard library only).

  healthy.py serve ADDR PORT
      listen, print "ready <pid>", then for each connection: read the
      request, answer, close (the server closes first); until killed.
  healthy.py clients ADDR PORT N
      N connections one after another: connect, send a request with
      "Connection: close", read the answer to EOF, close; print "<pid> <ok>"
      (how many got the whole answer).
"""
import os
import socket
import sys

ANSWER = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"


def serve(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    print("ready", os.getpid(), flush=True)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(5)
            c.recv(1024)
            c.sendall(ANSWER)
        except OSError:
            pass
        c.close()


def clients(addr, port, n):
    ok = 0
    for _ in range(n):
        c = socket.create_connection((addr, port), timeout=5)
        c.sendall(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            b = c.recv(4096)
            if not b:
                break
            got += b
        c.close()
        ok += got.endswith(b"ok")
    print(os.getpid(), ok, flush=True)


if __name__ == "__main__":
    cmd, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "serve":
        serve(addr, port)
    elif cmd == "clients":
        clients(addr, port, int(sys.argv[4]))
    else:
        sys.exit("unknown command " + cmd)
