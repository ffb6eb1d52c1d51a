"""Limits through nonoproxy-run: connection limit (SPEC §10), head timeout and head caps (§1.1,
§1.2); issue #2 items 10.6, 10.7, 10.8."""

import select
import time
import unittest

from npe2e import (AUDIT_BELOW, IO_TIMEOUT, SCALE, E2ETestCase, Response, connect_head,
                   connect_proxy, deadline_after, exchange, matching, num, open_tunnel, read_to_eof,
                   remaining, tunnel_roundtrip)


class ConnectionLimit(E2ETestCase):

    def test_fifth_connection_gets_503_and_a_freed_slot_is_reused(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--max-connections", "4"])
        target = "localhost:%d" % echo.port
        auth = info.basic()
        tunnels = []
        for i in range(4):
            sock, resp, extra = open_tunnel(info.port, target, auth)
            self.assertEqual(resp.status, 200, "tunnel %d: %r" % (i, resp.raw))
            tunnels.append(sock)
            self.addCleanup(sock.close)
            self.assertEqual(tunnel_roundtrip(sock, b"hold %d\n" % i, extra), b"hold %d\n" % i)

        refusals = 0
        resp = exchange(info.port, connect_head(target, auth))
        refusals += 1
        self.assertErrorResponse(resp, 503)
        self.assertEqual(resp.header("retry-after"), "1", resp.raw)

        for i, sock in enumerate(tunnels):  # the held tunnels are unaffected
            self.assertEqual(tunnel_roundtrip(sock, b"still %d\n" % i), b"still %d\n" % i)

        tunnels.pop().close()
        # The slot frees asynchronously: first wait until the upstream side of the closed tunnel
        # has seen its EOF, then retry (bounded) until the proxy takes the new connection.
        end = deadline_after(IO_TIMEOUT)
        delay = 0.02
        while True:
            sock, resp, extra = open_tunnel(info.port, target, auth)
            if resp.status == 200:
                break
            refusals += 1
            self.assertEqual(resp.status, 503, resp.raw)
            self.assertLess(time.monotonic(), end,
                            "no slot freed within %.0f s after a tunnel closed" % IO_TIMEOUT)
            time.sleep(delay)  # bounded back-off between retries
            delay = min(delay * 2, 0.5)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"new\n", extra), b"new\n")
        for s in tunnels:
            s.close()

        events = self.finish(run)
        limited = matching(events, denial_category="connection_limit")
        self.assertEqual(len(limited), refusals,
                         "one connection_limit event per 503 " + AUDIT_BELOW)
        for ev in limited:
            self.assertEqual(ev.get("decision"), "deny", ev)
            self.assertEqual(num(ev, "status"), 503, ev)


class HeadTimeout(E2ETestCase):

    def test_slowloris_gets_408_while_others_are_served(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--header-timeout", "2"])
        target = "localhost:%d" % echo.port
        head = connect_head(target, info.basic())
        interval = 0.45  # not a divisor of 2 s: no byte is sent at the instant of the timeout

        slow = connect_proxy(info.port)
        self.addCleanup(slow.close)
        t0 = time.monotonic()
        slow.sendall(head[:1])
        sent = 1

        # Another client, in parallel, is served normally meanwhile.
        sock, resp, extra = open_tunnel(info.port, target, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"parallel\n", extra), b"parallel\n")
        t_parallel = time.monotonic() - t0

        # Trickle one byte per interval, never completing the head, until the proxy answers.
        end = t0 + 30 * SCALE
        next_send = t0 + interval
        while True:
            readable, _, _ = select.select([slow], [], [], remaining(min(next_send, end)))
            if readable:
                break
            now = time.monotonic()
            self.assertLess(now, end, "no answer 30 s after the head started (%d bytes sent); "
                                      "the head timeout must be total, not per read" % sent)
            if now >= next_send and sent < len(head) - 2:
                try:
                    slow.send(head[sent:sent + 1])
                except OSError:
                    break
                sent += 1
                next_send += interval
        t_answer = time.monotonic() - t0
        resp = Response(read_to_eof(slow))
        self.assertErrorResponse(resp, 408)
        self.assertGreaterEqual(t_answer, 1.8, "408 before the 2 s head timeout")
        self.assertLessEqual(t_answer, 2 + 8 * SCALE, "408 long after the 2 s head timeout")
        self.assertGreater(sent, 2, "the client did trickle")
        self.assertLess(t_parallel, t_answer, "the parallel client was served first")

        events = self.finish(run)
        ev = self.assertOneEvent(events, denial_category="request_timeout")
        self.assertEqual(num(ev, "status"), 408, ev)
        self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                            port=echo.port)


class HeadCaps(E2ETestCase):

    def test_oversized_and_malformed_heads(self):
        echo = self.echo_server()
        # --allow keeps the oversized CONNECT name away from DNS even if a cap were broken
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        target = "localhost:%d" % echo.port
        auth_line = "Proxy-Authorization: %s" % info.basic()

        def head(first, headers):
            return ("\r\n".join([first] + headers) + "\r\n\r\n").encode("latin-1")

        url = "http://localhost:%d/" % echo.port
        fill = ["X-Fill-%d: v" % i for i in range(200)]
        big = ["X-Big-%d: %s" % (i, "b" * 4000) for i in range(20)]
        connect_line = "CONNECT %s HTTP/1.1" % target
        base = ["Host: " + target, auth_line]
        rows = [
            # label, request bytes, expected status
            ("request line of 9000 bytes (absolute-form)",
             head("GET %s%s HTTP/1.1" % (url, "a" * 9000), base), 414),
            ("request line of 9000 bytes (CONNECT)",
             head("CONNECT %s.example:443 HTTP/1.1" % ("h" * 8990), base), 414),
            ("101 header lines", head(connect_line, base + fill[:99]), 431),
            ("header block over 64 KiB in 22 lines", head(connect_line, base + big), 431),
            ("NUL in a header value",
             head(connect_line, base + ["X-A: a\x00b"]), 400),
            ("NUL in the request line",
             head("CONNECT %s\x00 HTTP/1.1" % target, base), 400),
            ("bare CR in a header value", head(connect_line, base + ["X-A: a\rb"]), 400),
            ("obsolete line folding", head(connect_line, base + ["X-A: a", " folded"]), 400),
            ("request line that is not HTTP", head("HELLO", base), 400),
            ("Content-Length and Transfer-Encoding",
             head("POST %s HTTP/1.1" % url,
                  base + ["Content-Length: 3", "Transfer-Encoding: chunked"]), 400),
            ("differing duplicate Content-Length",
             head("POST %s HTTP/1.1" % url, base + ["Content-Length: 3", "Content-Length: 4"]),
             400),
        ]
        for label, request, status in rows:
            resp = exchange(info.port, request)
            with self.subTest(label):
                self.assertErrorResponse(resp, status)

        # The proxy keeps serving, and accepts heads just inside the caps.
        inside = [
            ("100 header lines", head(connect_line, base + fill[:98])),
            ("header block of about 60 KB", head(connect_line, base + big[:15])),
        ]
        for label, request in inside:
            with self.subTest(label), connect_proxy(info.port) as s:
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "EOF before a response head: %r" % data)
                    data += chunk
                resp = Response(data)
                self.assertEqual(resp.status, 200, resp.raw)
                rest = data.partition(b"\r\n\r\n")[2]
                self.assertEqual(tunnel_roundtrip(s, b"ok\n", rest), b"ok\n")

        events = self.finish(run)
        malformed = matching(events, denial_category="malformed_request")
        self.assertEqual([num(e, "status") for e in malformed],
                         [status for _, _, status in rows],
                         "one malformed_request event per bad head, in order "
                         + AUDIT_BELOW)
        self.assertEqual(echo.connection_count(), len(inside), "no bad head reached upstream")


if __name__ == "__main__":
    unittest.main()
