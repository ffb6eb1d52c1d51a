"""nonoproxy-run as a process: exit statuses, signal forwarding, clean exit, token secrecy.
SPEC §11 (issue #2 items 10.9 and 10.10)."""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

from npe2e import (SCALE, E2ETestCase, connect_head, connect_proxy, exchange, open_tunnel,
                   tunnel_roundtrip)

PR_SET_CHILD_SUBREAPER = 36
SIGNAL_EXIT_TIMEOUT = 20 * SCALE  # a forwarded signal ends the child and nonoproxy-run

SIGNAL_CHILD = r"""
import os, signal, sys
def on_signal(num, frame):
    sys.stdout.write("got %s\n" % signal.Signals(num).name)
    sys.stdout.flush()
    os._exit(3)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)
signal.alarm(200)
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    signal.pause()
"""


def become_subreaper(on):
    """Make this process the reaper of orphaned descendants (or stop), so leftovers can be
    found among its children."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def my_children():
    """Return {pid: comm} of the processes whose parent is this process."""
    me = os.getpid()
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == me:
            out[int(name)] = "%s (state %s)" % (comm, fields[0])
    return out


def read_proc(pid, what):
    with open("/proc/%d/%s" % (pid, what), "rb") as f:
        return f.read()


class ExitStatus(E2ETestCase):

    def _status(self, options, command):
        run = self.start(options, command, stdin=subprocess.DEVNULL)
        run.wait()
        return run

    def test_child_status_is_propagated(self):
        rows = [
            ("exit 0", ["sh", "-c", "exit 0"], 0),
            ("exit 7", ["sh", "-c", "exit 7"], 7),
            ("exit 255", ["sh", "-c", "exit 255"], 255),
            ("killed by SIGTERM", ["sh", "-c", "kill -TERM $$"], 143),
            ("killed by SIGKILL", ["sh", "-c", "kill -KILL $$"], 137),
            ("killed by SIGSEGV", ["sh", "-c", "kill -SEGV $$"], 139),
        ]
        for label, cmd, want in rows:
            run = self._status(["-q"], cmd)
            with self.subTest(label):
                self.assertEqual(run.returncode, want,
                                 "nonoproxy-run must exit (not die) with the child's status")

    def test_exec_failures_are_126_and_127(self):
        tmp = self.make_tmpdir()
        not_exec = os.path.join(tmp, "not-executable.sh")
        with open(not_exec, "w", encoding="ascii") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(not_exec, 0o644)
        rows = [
            ("absolute path that does not exist", [os.path.join(tmp, "missing")], 127),
            ("name not found on PATH", ["nonoproxy-e2e-no-such-command"], 127),
            ("file without execute permission", [not_exec], 126),
            ("a directory", [tmp], 126),
        ]
        for label, cmd, want in rows:
            run = self._status(["-q"], cmd)
            with self.subTest(label):
                self.assertEqual(run.returncode, want)

    def test_own_errors_are_125_and_the_child_never_starts(self):
        tmp = self.make_tmpdir()
        marker = os.path.join(tmp, "child-ran")
        child = ["sh", "-c", 'touch "$0"', marker]
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        rows = [
            ("unknown option", ["--no-such-option"], child),
            ("--port not a number", ["--port", "abc"], child),
            ("--port out of range", ["--port", "70000"], child),
            ("--max-connections not a number", ["--max-connections", "x"], child),
            ("--bind with a hostname", ["--bind", "localhost"], child),
            ("--allow with a bare *", ["--allow", "*"], child),
            ("--allow *foo without the dot", ["--allow", "*foo.com"], child),
            ("port already in use", ["--port", str(busy.getsockname()[1])], child),
            ("no command after --", [], []),
        ]
        for label, options, cmd in rows:
            run = self._status(options, cmd)
            with self.subTest(label):
                self.assertEqual(run.returncode, 125)
                self.assertFalse(os.path.exists(marker), "the child was started")
                self.assertTrue(run.stderr.text().strip(), "a message on stderr")

    def make_tmpdir(self):
        d = tempfile.mkdtemp(prefix="nonoproxy-e2e-")
        self.addCleanup(shutil.rmtree, d, True)
        return d


class Signals(E2ETestCase):

    def test_signals_are_forwarded_to_the_child(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with self.subTest(sig.name):
                run = self.start(["-q"], [sys.executable, "-c", SIGNAL_CHILD])
                run.wait_line(lambda s: s == "ready")
                os.kill(run.pid, sig)
                self.assertEqual(run.wait(SIGNAL_EXIT_TIMEOUT), 3,
                                 "nonoproxy-run exits with the child's status")
                self.assertIn("got %s\n" % sig.name, run.stdout.text())

    def test_child_killed_by_forwarded_signal(self):
        run = self.start(["-q"], ["sh", "-c", 'echo ready; exec sleep 200'])
        run.wait_line(lambda s: s == "ready")
        os.kill(run.pid, signal.SIGTERM)
        self.assertEqual(run.wait(SIGNAL_EXIT_TIMEOUT), 143)


class CleanExit(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        cls.subreaper = become_subreaper(True)

    @classmethod
    def tearDownClass(cls):
        become_subreaper(False)

    def test_port_closed_and_no_process_left(self):
        before = set(my_children())
        run, info = self.start_holder(["-q"])
        with connect_proxy(info.port):
            pass
        child_pid = info.child_pid
        self.assertTrue(os.path.exists("/proc/%d" % child_pid))
        self.assertEqual(run.release_holder(5), 5)
        with self.assertRaises(ConnectionRefusedError, msg="the port is closed after exit"):
            socket.create_connection(("127.0.0.1", info.port), timeout=5).close()
        self.assertFalse(os.path.exists("/proc/%d" % child_pid), "the child is gone")
        if self.subreaper:
            left = {pid: comm for pid, comm in my_children().items() if pid not in before}
            self.assertEqual(left, {}, "processes left behind by nonoproxy-run")

    def test_exit_while_tunnels_are_open(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q"])
        socks = []
        for i in range(3):
            sock, resp, extra = open_tunnel(info.port, "localhost:%d" % echo.port, info.basic())
            self.assertEqual(resp.status, 200, resp.raw)
            self.addCleanup(sock.close)
            self.assertEqual(tunnel_roundtrip(sock, b"x%d" % i, extra), b"x%d" % i)
            socks.append(sock)
        idle = connect_proxy(info.port)      # a client that never sends its head
        self.addCleanup(idle.close)
        self.assertEqual(run.release_holder(0), 0,
                         "nonoproxy-run exits promptly although connections are open")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", info.port), timeout=5).close()


class TokenSecrecy(E2ETestCase):

    def test_token_never_on_command_lines_output_or_audit(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-v", "--allow", "localhost"])
        tok = info.token.encode()

        self.assertNotIn(tok, read_proc(run.pid, "cmdline"), "nonoproxy-run's command line")
        self.assertNotIn(tok, read_proc(info.child_pid, "cmdline"), "the child's command line")

        # Traffic of every kind: allowed tunnel, denied host, failed auth.
        sock, resp, extra = open_tunnel(info.port, "localhost:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"hi\n", extra), b"hi\n")
        self.assertEqual(exchange(info.port, connect_head("127.0.0.2:443", info.basic())).status,
                         403)
        self.assertEqual(exchange(info.port, connect_head("localhost:1", "Bearer x")).status, 407)
        self.assertEqual(exchange(info.port, connect_head("localhost:1", info.basic("x", "y")))
                         .status, 407)
        self.finish_without_token_leak(run, info)


if __name__ == "__main__":
    unittest.main()
