#!/usr/bin/env python3
"""Recording TCP proxy for capturing real RTMP wire bytes.

Listens on 127.0.0.1, accepts exactly one connection, connects it to a target,
forwards bytes both ways, and writes each direction to its own file:
  PREFIX.c2s  what the client sent
  PREFIX.s2c  what the server sent
It exits when both sides have closed (or shortly after the first one closes),
or when --timeout seconds have passed since start, whichever comes first.
Python 3 standard library only.
"""

import argparse
import os
import selectors
import socket
import sys
import time

READ_SIZE = 65536
# After one side closes, how long to keep draining the other before giving up.
DRAIN_GRACE_S = 1.5


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen-port", type=int, default=0,
                   help="port on 127.0.0.1 to listen on (0 = ephemeral)")
    p.add_argument("--port-file", help="write the bound port number here once listening")
    p.add_argument("--target", required=True, help="HOST:PORT to forward to")
    p.add_argument("--out", required=True, help="output prefix; writes PREFIX.c2s and PREFIX.s2c")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="overall limit in seconds, including waiting for the client")
    p.add_argument("--max-bytes", type=int, default=0,
                   help="stop recording a direction after this many bytes (0 = no limit); "
                        "forwarding goes on")
    return p.parse_args(argv)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)  # atomic, so a reader never sees a half-written number


def main(argv):
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout
    host, _, port = args.target.rpartition(":")
    target = (host or "127.0.0.1", int(port))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen_port))
    listener.listen(1)
    bound = listener.getsockname()[1]
    if args.port_file:
        write_port_file(args.port_file, bound)
    print(f"record_proxy: listening on 127.0.0.1:{bound}, forwarding to {target[0]}:{target[1]}",
          file=sys.stderr, flush=True)

    listener.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        client, _ = listener.accept()
    except socket.timeout:
        print("record_proxy: no client before the timeout", file=sys.stderr)
        return 1
    finally:
        listener.close()

    server = socket.create_connection(target, timeout=max(0.1, deadline - time.monotonic()))
    for s in (client, server):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    outputs = {
        client: open(args.out + ".c2s", "wb"),
        server: open(args.out + ".s2c", "wb"),
    }
    recorded = {client: 0, server: 0}
    peer = {client: server, server: client}
    open_ends = {client, server}
    drain_deadline = None

    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ)
    sel.register(server, selectors.EVENT_READ)
    try:
        while open_ends:
            now = time.monotonic()
            limit = deadline if drain_deadline is None else min(deadline, drain_deadline)
            if now >= limit:
                break
            for key, _ in sel.select(timeout=limit - now):
                src = key.fileobj
                try:
                    data = src.recv(READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    # Pass the half-close on, then give the other side a moment
                    # to finish (servers usually close right after the client).
                    sel.unregister(src)
                    open_ends.discard(src)
                    try:
                        peer[src].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    if drain_deadline is None:
                        drain_deadline = time.monotonic() + DRAIN_GRACE_S
                    continue
                keep = len(data)
                if args.max_bytes:
                    keep = max(0, min(keep, args.max_bytes - recorded[src]))
                if keep:
                    outputs[src].write(data[:keep])
                    recorded[src] += keep
                dst = peer[src]
                try:
                    dst.setblocking(True)
                    dst.settimeout(max(0.1, deadline - time.monotonic()))
                    dst.sendall(data)
                except OSError:
                    open_ends.clear()
                    break
                finally:
                    dst.setblocking(False)
    finally:
        sel.close()
        for f in outputs.values():
            f.close()
        client.close()
        server.close()
    print(f"record_proxy: recorded c2s={recorded[client]} s2c={recorded[server]} bytes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
