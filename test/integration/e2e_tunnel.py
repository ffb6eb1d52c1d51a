"""CONNECT tunnels through nonoproxy-run: SPEC §4 (issue #2 items 10.11 and 10.12)."""

import hashlib
import os
import select
import socket
import threading
import time
import unittest

from npe2e import (AUDIT_BELOW, IO_TIMEOUT, SCALE, E2ETestCase, Response, connect_head,
                   connect_proxy, exchange, matching, num, open_tunnel, read_exactly, read_head,
                   read_to_eof, tunnel_roundtrip)


class TunnelData(E2ETestCase):

    def test_half_close_is_propagated(self):
        echo = self.echo_server("echo_then_close")
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        payload = os.urandom(256 * 1024)
        sock, resp, extra = open_tunnel(info.port, "localhost:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        self.assertEqual(extra, b"")
        with sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)   # the server answers only after our EOF
            back = read_to_eof(sock)
        self.assertEqual(len(back), len(payload))
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(payload).hexdigest())
        self.assertEqual(echo.wait_received(lambda r: r and len(r[0]) == len(payload))[0],
                         payload)
        events = self.finish(run)
        close = self.assertOneEvent(events, event="close", mode="connect", port=echo.port)
        self.assertEqual(num(close, "bytes_up"), len(payload), close)
        self.assertEqual(num(close, "bytes_down"), len(payload), close)

    def test_early_bytes_after_the_head_are_forwarded(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        early = b"early bytes sent with the CONNECT head\n"
        with connect_proxy(info.port) as s:
            s.sendall(connect_head("localhost:%d" % echo.port, info.basic()) + early)
            head, extra = read_head(s)
            resp = Response(head)
            self.assertEqual(resp.status_line, "HTTP/1.1 200 Connection established")
            self.assertEqual(read_exactly(s, len(early), initial=extra), early)
            self.assertEqual(tunnel_roundtrip(s, b"and more\n"), b"and more\n")
        self.assertEqual(echo.wait_received(lambda r: r and len(r[0]) >= len(early) + 9)[0],
                         early + b"and more\n")
        events = self.finish(run)
        close = self.assertOneEvent(events, event="close", mode="connect", port=echo.port)
        self.assertEqual(num(close, "bytes_up"), len(early) + 9, close)

    def test_early_bytes_with_http10_connect(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q"])
        early = b"\x16\x03\x01 looks like a ClientHello"
        with connect_proxy(info.port) as s:
            s.sendall(connect_head("localhost:%d" % echo.port, info.basic(), version="HTTP/1.0",
                                   host_header=False) + early)
            head, extra = read_head(s)
            resp = Response(head)
            self.assertEqual(resp.status, 200, resp.raw)
            self.assertEqual(read_exactly(s, len(early), initial=extra), early)
        self.finish(run)

    def test_large_transfer_both_ways_at_once(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q"])
        payload = os.urandom(4 * 1024 * 1024)
        sock, resp, extra = open_tunnel(info.port, "127.0.0.1:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        errors = []

        def writer():
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                errors.append(exc)

        t = threading.Thread(target=writer, daemon=True)
        with sock:
            t.start()
            back = read_to_eof(sock, timeout=IO_TIMEOUT * 2, initial=extra)
            t.join(IO_TIMEOUT)
        self.assertEqual(errors, [])
        self.assertEqual(len(back), len(payload))
        self.assertTrue(back == payload, "echoed bytes differ")
        self.finish(run)

    def test_idle_tunnel_is_closed(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--idle-timeout", "2"])
        sock, resp, extra = open_tunnel(info.port, "localhost:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"once\n", extra), b"once\n")
            t0 = time.monotonic()
            readable, _, _ = select.select([sock], [], [], 2 + 20 * SCALE)
            self.assertTrue(readable, "idle tunnel still open after %.0f s" % (2 + 20 * SCALE))
            elapsed = time.monotonic() - t0
            self.assertEqual(read_to_eof(sock), b"", "EOF, no extra bytes")
        self.assertGreaterEqual(elapsed, 1.8, "closed before the 2 s idle timeout")
        self.assertLessEqual(elapsed, 2 + 8 * SCALE, "closed long after the 2 s idle timeout")
        events = self.finish(run)
        self.assertOneEvent(events, event="close", mode="connect", port=echo.port)


class ConnectParsing(E2ETestCase):

    def test_bad_authorities_get_400(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        p = echo.port
        targets = [
            "localhost",                      # no port
            "localhost:",                     # empty port
            "localhost:abc",
            "localhost:0",
            "localhost:65536",
            "localhost:+%d" % p,
            "localhost:-1",
            "localhost:%d/" % p,
            "user@localhost:%d" % p,          # userinfo
            "user:pw@localhost:%d" % p,
            "local%%68ost:%d" % p,             # percent-escape
            "[::1:%d" % p,                    # unclosed bracket
            "::1:%d" % p,                     # IPv6 without brackets
            "http://localhost:%d/" % p,
        ]
        for target in targets:
            resp = exchange(info.port, connect_head(target, info.basic()))
            with self.subTest(target=target):
                self.assertErrorResponse(resp, 400)
        self.assertEqual(echo.connection_count(), 0, "no guess ever reached the upstream")
        events = self.finish(run)
        bad = matching(events, denial_category="malformed_request")
        self.assertEqual(len(bad), len(targets), AUDIT_BELOW)
        for ev in bad:
            self.assertEqual(num(ev, "status"), 400, ev)

    def test_407_closes_the_connection(self):
        # A 407 closes the connection: the proxy must not answer a second request sent on it.
        run, info = self.start_holder(["-q"])
        with connect_proxy(info.port) as s:
            s.sendall(connect_head("localhost:1", None) + connect_head("localhost:1", None))
            resp = Response(read_to_eof(s))
        self.assertEqual(resp.status, 407, resp.raw)
        self.assertEqual(resp.raw.count(b" 407 "), 1, resp.raw)
        self.finish(run)


if __name__ == "__main__":
    unittest.main()
