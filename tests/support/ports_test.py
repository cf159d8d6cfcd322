#!/usr/bin/env python3
"""tests/support/ports.py: a server whose port is taken by another process is started again on
another port, and a squatter that accepts connections is never taken for the server."""
import os
import socket
import subprocess
import sys
import threading
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsmasq  # noqa: E402
import ports  # noqa: E402

# A server that binds the port it is given (exit 1 when it cannot) and answers every connection
# with its instance's nonce, as docker-registry answers with its instance header.
SERVER = r"""
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""


def answer_of(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            return c.recv(64).decode()
    except OSError:
        return None


class StartOnFreePort(unittest.TestCase):
    def setUp(self):
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            process.kill()
            process.wait()

    def start_server(self, port, instance):
        process = subprocess.Popen([sys.executable, "-c", SERVER, str(port), instance])
        self.processes.append(process)
        return process

    def test_a_taken_port_is_retried_on_another_and_the_squatter_is_not_taken_for_the_server(self):
        squatter = ports.listen()  # accepts connections (the kernel queues them), answers none
        taken = squatter.getsockname()[1]
        self.addCleanup(squatter.close)
        other = self.start_server(ports.pick(), "other")  # answers, but not with our nonce
        self.addCleanup(other.kill)
        instance = ports.nonce()
        picks = iter([taken, int(other.args[3]), ports.pick()])
        with mock.patch.object(ports, "pick", lambda host="127.0.0.1": next(picks)):
            port, process = ports.start_on_free_port(
                "test server", lambda p: self.start_server(p, instance),
                lambda p: answer_of(p) == instance, timeout=10)
        self.assertNotIn(port, (taken, int(other.args[3])))
        self.assertIsNone(process.poll())
        self.assertEqual(answer_of(port), instance)

    def test_a_server_that_never_proves_itself_is_an_error_naming_it(self):
        with self.assertRaisesRegex(ports.StartFailed, "silent server on 127.0.0.1:[0-9]+ did not"):
            ports.start_on_free_port("silent server", lambda p: self.start_server(p, "x"),
                                     lambda p: False, timeout=1)

    def test_a_server_that_always_exits_is_given_up_after_its_attempts(self):
        def start(port):
            process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
            self.processes.append(process)
            return process
        with self.assertRaisesRegex(ports.StartFailed, r"after 3 ports \(port [0-9]+: exited with 3"):
            ports.start_on_free_port("doomed", start, lambda p: False, attempts=3)


class Pick(unittest.TestCase):
    def test_picks_are_outside_the_ephemeral_range_and_free_on_tcp_and_udp(self):
        low, high = ports._ephemeral_range()
        for _ in range(50):
            port = ports.pick()
            self.assertTrue(ports.LOWEST <= port < low or high < port <= 65535, port)

    def test_a_port_bound_on_udp_only_is_not_free(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            self.assertFalse(ports._free_now("127.0.0.1", udp.getsockname()[1]))

    def test_listen_pair_shares_one_port_on_two_addresses(self):
        first, second = ports.listen_pair("127.0.0.1", "127.0.0.4")
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        self.assertEqual(first.getsockname()[1], second.getsockname()[1])
        self.assertEqual(second.getsockname()[0], "127.0.0.4")


class DnsmasqProof(unittest.TestCase):
    def test_a_silent_port_is_no_answer(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            self.assertIsNone(dnsmasq.query_a(silent.getsockname()[1], "ready.test", timeout=0.1))

    def test_a_garbled_answer_is_no_answer(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as liar:
            liar.bind(("127.0.0.1", 0))

            def answer():
                packet, sender = liar.recvfrom(512)
                liar.sendto(packet[:2] + b"\x81\x80\x00\x01\x00\x05", sender)  # cut short

            threading.Thread(target=answer, daemon=True).start()
            self.assertIsNone(dnsmasq.query_a(liar.getsockname()[1], "ready.test", timeout=2))

    def test_another_dnsmasq_on_the_port_is_never_taken_for_ours(self):
        first_port, first = dnsmasq.start_dnsmasq([])
        self.addCleanup(first.wait)
        self.addCleanup(first.kill)
        picks = iter([first_port, ports.pick()])
        with mock.patch.object(ports, "pick", lambda host="127.0.0.1": next(picks)):
            port, process = dnsmasq.start_dnsmasq(["--host-record=ours.test,127.0.0.9"])
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        self.assertNotEqual(port, first_port)
        self.assertEqual(dnsmasq.query_a(port, "ours.test"), ["127.0.0.9"])
        self.assertIsNone(dnsmasq.query_a(first_port, "ours.test"))  # NXDOMAIN there


if __name__ == "__main__":
    unittest.main()
