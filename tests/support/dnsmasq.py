#!/usr/bin/env python3
"""dnsmasq on 127.0.0.1 and a free port (tests/support/ports.py), for the C++ tests' Dnsmasq:
authoritative for azurecr.io and test, with the extra options given after `--`
(--cname=..., --host-record=...).

Prints `READY <port>` once dnsmasq answers a record only this instance has (a random name with a
random address), then runs until stdin closes or SIGTERM, and stops dnsmasq before it exits, so
that a test that stops it can count on the server being gone."""
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402


def query_a(port, name, timeout=0.3):
    """The IPv4 addresses 127.0.0.1:port answers for `name` (one UDP query), or None."""
    query_id = random.getrandbits(16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0" + \
        struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            answer = s.recv(4096)
        except OSError:
            return None
    try:
        return parse_a(answer, query_id)
    except (IndexError, struct.error):  # whatever else holds the port may answer anything
        return None


def parse_a(answer, query_id):
    answer_id, flags, questions, count = struct.unpack(">HHHH", answer[:8])
    if answer_id != query_id or flags & 0x000F:
        return None
    offset = 12
    for _ in range(questions):
        offset = skip_name(answer, offset) + 4
    addresses = []
    for _ in range(count):
        offset = skip_name(answer, offset)
        kind, _, _, length = struct.unpack(">HHIH", answer[offset:offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            addresses.append(socket.inet_ntoa(answer[offset:offset + 4]))
        offset += length
    return addresses


def skip_name(packet, offset):
    while True:
        length = packet[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += 1 + length


def start_dnsmasq(records):
    """dnsmasq with `records` on a free port: (port, process)."""
    proof_name = f"ready-{ports.nonce()}.test"
    proof_address = "127.{}.{}.{}".format(*os.urandom(3))

    def start(port):
        argv = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", "--bind-interfaces", "--listen-address=127.0.0.1",
                "--pid-file=", f"--port={port}", "--local=/azurecr.io/", "--local=/test/",
                f"--host-record={proof_name},{proof_address}", *records]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                preexec_fn=ports.die_with_parent)

    def ready(port):
        return query_a(port, proof_name) == [proof_address]

    return ports.start_on_free_port("dnsmasq", start, ready)


def main():
    records = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    port, process = start_dnsmasq(records)
    # A flag, not a threading.Event: a signal handler that sets an Event can deadlock on the
    # Event's own lock when the signal lands while the main thread holds it in wait() (a test
    # that stopped dnsmasq hung in CI so). A list's append takes no lock of ours.
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    threading.Thread(target=lambda: (sys.stdin.read(), stopping.append(True)),
                     daemon=True).start()
    print(f"READY {port}", flush=True)
    while not stopping:
        time.sleep(0.2)
        if process.poll() is not None:
            print(f"dnsmasq exited with {process.returncode}", file=sys.stderr)
            break
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
