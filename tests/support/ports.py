"""Ports for every server the tests start, without a race: the one place that picks them.

Two ways, by who binds the socket:
- A server of ours (Python, in this process) gets `listen()`: a socket bound and listening at
  once on a port the kernel picks, so nobody can take the port between the pick and the bind.
- A program that binds its own port (docker-registry, dnsmasq) gets `start_on_free_port()`: a
  port from `pick()`, the program started on it, and started again on another port whenever it
  exits before it is ready (another process took the port first: a bind error). Ready means an
  answer only that instance can give (a nonce it was started with: a response header of the
  registry, a DNS record of dnsmasq), never "something accepted a connection on the port",
  which any other process on that port satisfies too.

`pick()` draws ports outside the kernel's ephemeral range: outgoing connections take their local
ports from there, the test suite opens thousands of them (both integration shards at once), and
a port picked in that range can become the local end of a connection before the server binds
it. Outside it, only another server can take the port, and that is retried."""
import os
import random
import socket
import subprocess
import time

_random = random.SystemRandom()
LOWEST = 10000  # below: ports other software on a developer's machine likes to use


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _free_now(host, port):
    """True when both TCP and UDP can bind host:port at this moment (dnsmasq needs both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def pick(host="127.0.0.1"):
    """A port that is free on TCP and UDP now, outside the ephemeral range where possible."""
    low, high = _ephemeral_range()
    candidates = [(LOWEST, low - 1), (high + 1, 65535)]
    candidates = [(a, b) for a, b in candidates if b - a >= 1000]
    for _ in range(200):
        if not candidates:
            break
        a, b = _random.choice(candidates)
        port = _random.randint(a, b)
        if _free_now(host, port):
            return port
    # A machine whose ephemeral range covers everything: the kernel's pick, still retried.
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listen(host="127.0.0.1", port=0, backlog=128):
    """A TCP socket bound and listening on host:port (port 0: the kernel picks one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def listen_pair(first_host, second_host, attempts=20):
    """Two listening sockets on the same port of two addresses (a name served on two routes),
    the port picked by the kernel for the first and retried while the second is taken."""
    for _ in range(attempts):
        first = listen(first_host)
        try:
            return first, listen(second_host, first.getsockname()[1])
        except OSError:
            first.close()
    raise RuntimeError(f"no port free on both {first_host} and {second_host}")


class StartFailed(RuntimeError):
    pass


def start_on_free_port(name, start, ready, host="127.0.0.1", attempts=8, timeout=30,
                       log_path=None):
    """Starts a server that binds its own port: start(port) -> subprocess.Popen, ready(port) ->
    True once the answer proves that this instance serves the port. A process that exits before
    it is ready is started again on another port (up to `attempts` times); one that neither
    exits nor becomes ready within `timeout` seconds is killed and is an error.
    Returns (port, process)."""
    reasons = []
    for _ in range(attempts):
        port = pick(host)
        process = start(port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reasons.append(f"port {port}: exited with {process.returncode}")
                break
            if ready(port):
                if process.poll() is None:
                    return port, process
                reasons.append(f"port {port}: answered, then exited")
                break
            time.sleep(0.05)
        else:
            process.kill()
            process.wait()
            raise StartFailed(f"{name} on {host}:{port} did not become ready in {timeout} s"
                              + (f"; see {log_path}" if log_path else ""))
    raise StartFailed(f"{name} did not start after {attempts} ports ({'; '.join(reasons)})"
                      + (f"; see {log_path}" if log_path else ""))


def nonce():
    return os.urandom(8).hex()


def die_with_parent():
    """For preexec_fn: the child gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), so a
    harness that is killed leaves no server behind."""
    import ctypes
    import signal
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)
