#!/usr/bin/env python3
"""Core publish/subscribe throughput of a NATS server, for comparison with
`hyperraft bench --workload bus`. Speaks the NATS text protocol over plain
sockets (no client library): publishers send PUB commands pipelined in
buffers of --batch messages, subscribers count the MSG frames they receive.

    nats_bus_bench.py --port 4222 --publishers 2 --subscribers 1 \
        --message-bytes 16 --batch 1024 --warmup 1 --duration 5
"""

import argparse
import multiprocessing as mp
import socket
import time

SUBJECT = b"bench"


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.recv(4096)  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    return sock


def publisher(port, size, batch, stop, published):
    sock = connect(port)
    message = b"PUB " + SUBJECT + b" %d\r\n" % size + b"x" * size + b"\r\n"
    buffer = message * batch
    sent = 0
    while not stop.is_set():
        sock.sendall(buffer)
        sent += batch
        if sent % (batch * 64) == 0:
            with published.get_lock():
                published.value += batch * 64
    sock.close()


def subscriber(port, stop, delivered, ready):
    sock = connect(port)
    sock.sendall(b"SUB " + SUBJECT + b" 1\r\nPING\r\n")
    ready.set()
    tail = b""
    count = 0
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        if not data:
            break
        joined = tail + data
        count += joined.count(b"MSG ")
        tail = joined[-3:]
        if b"PING" in data:
            sock.sendall(b"PONG\r\n")
        with delivered.get_lock():
            delivered.value = count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=4222)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--message-bytes", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    stop = mp.Event()
    published = mp.Value("q", 0)
    delivered = [mp.Value("q", 0) for _ in range(args.subscribers)]
    processes = []
    for counter in delivered:
        ready = mp.Event()
        process = mp.Process(target=subscriber, args=(args.port, stop, counter, ready))
        process.start()
        ready.wait()
        processes.append(process)
    time.sleep(0.2)
    for _ in range(args.publishers):
        process = mp.Process(target=publisher, args=(args.port, args.message_bytes, args.batch, stop, published))
        process.start()
        processes.append(process)
    time.sleep(args.warmup)
    start, p0, d0 = time.time(), published.value, sum(c.value for c in delivered)
    time.sleep(args.duration)
    elapsed, p1, d1 = time.time() - start, published.value, sum(c.value for c in delivered)
    stop.set()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
    print(f"nats: {args.publishers} publishers, {args.subscribers} subscribers, {args.message_bytes} B messages")
    print(f"  published {(p1 - p0) / elapsed:12.0f} messages/s")
    print(f"  delivered {(d1 - d0) / elapsed:12.0f} messages/s (every subscriber's copy)")


if __name__ == "__main__":
    main()
