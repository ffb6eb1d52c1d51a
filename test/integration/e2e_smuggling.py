"""Request smuggling through nonoproxy-run, judged by what the origin receives: SPEC §1.2, §5, §6.4.

Every case is sent from a raw socket, in one write unless the test says otherwise, to the
plain-HTTP forward proxy (absolute-form, SPEC §5) and to a reverse route with an http://
loopback upstream (SPEC §6), since both share the body code. The origin is
upstream.ScriptedUpstream (plain HTTP), which records every byte it receives.

How "the origin received nothing of it" is made deterministic: every case carries a unique
marker in its path (and the request smuggled inside it names another); at the end of the test
nonoproxy-run exits, which closes every upstream connection, the origin reads each of them to
EOF (ScriptedUpstream.quiesce), and only then are the recorded bytes searched for the markers.
"""

import os
import socket
import unittest

from npe2e import (AUDIT_BELOW, IO_TIMEOUT, E2ETestCase, absolute_request, connect_proxy,
                   exchange, matching, origin_request, read_http_response, read_http_responses,
                   read_to_eof)
from upstream import DEFAULT_BODY, ScriptedUpstream

CHUNKED = ("Transfer-Encoding", "chunked")


def smuggled(cid):
    """A complete request that must never reach the origin as a request of its own."""
    return b"GET /smuggled-%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % cid.encode()


def cl(body):
    return ("Content-Length", str(len(body)))


def bad_chunk(size_line, cid):
    """A chunked body whose first chunk-size line is `size_line`, with a request after it."""
    return size_line + b"\r\nhello\r\n0\r\n\r\n" + smuggled(cid)


# (label, case id, headers, raw body): each must be answered 400 before anything of it goes
# upstream (SPEC §1.2: malformed HTTP ⇒ 400 + audit, then close; issue #4: before anything is
# sent upstream).
def refused_cases():
    te_body = {cid: b"0\r\n\r\n" + smuggled(cid) for cid in ("clte", "tecl", "tesp", "tefold")}
    good_chunked = b"5\r\nhello\r\n0\r\n\r\n"
    rows = [
        ("Content-Length then Transfer-Encoding: chunked", "clte",
         [cl(te_body["clte"]), CHUNKED], te_body["clte"]),
        ("Transfer-Encoding: chunked then Content-Length", "tecl",
         [CHUNKED, cl(te_body["tecl"])], te_body["tecl"]),
        ("Transfer-Encoding with a space before the colon, and Content-Length", "tesp",
         [cl(te_body["tesp"]), ("Transfer-Encoding ", "chunked")], te_body["tesp"]),
        ("Transfer-Encoding folded onto a continuation line, and Content-Length", "tefold",
         [cl(te_body["tefold"]), ("Transfer-Encoding", "\r\n chunked")], te_body["tefold"]),
        ("two differing Content-Length headers", "cl56",
         [("Content-Length", "5"), ("Content-Length", "6")], b"hello!" + smuggled("cl56")),
        ("differing Content-Length values in one header", "cllist",
         [("Content-Length", "5, 6")], b"hello!" + smuggled("cllist")),
        ("Content-Length with a space before the colon", "clsp",
         [("Content-Length ", "5")], b"hello" + smuggled("clsp")),
        ("Content-Length +5", "clplus", [("Content-Length", "+5")], b"hello"),
        ("Content-Length 0x5", "clhex", [("Content-Length", "0x5")], b"hello"),
        ("Content-Length -5", "clneg", [("Content-Length", "-5")], b"hello"),
        ("Content-Length '5 5'", "clspace2", [("Content-Length", "5 5")], b"hello"),
        ("obs-fold with a space", "foldsp",
         [("X-Folded", "a\r\n b"), ("Content-Length", "5")], b"hello"),
        ("obs-fold with a tab", "foldtab",
         [("X-Folded", "a\r\n\tb"), ("Content-Length", "5")], b"hello"),
        ("bare CR in a header value", "barecr",
         [("X-Bare", "a\rb"), ("Content-Length", "5")], b"hello"),
        ("NUL in a header value", "nul", [("X-Nul", "a\x00b"), ("Content-Length", "5")],
         b"hello"),
        ("Transfer-Encoding: chunked, identity", "teid",
         [("Transfer-Encoding", "chunked, identity")], good_chunked + smuggled("teid")),
        ("Transfer-Encoding: chunked, gzip", "tegzip",
         [("Transfer-Encoding", "chunked, gzip")], good_chunked + smuggled("tegzip")),
        ("Transfer-Encoding: gzip alone", "gzip",
         [("Transfer-Encoding", "gzip")], good_chunked + smuggled("gzip")),
        ("Transfer-Encoding: chunked, then a second header: gzip", "te2",
         [CHUNKED, ("Transfer-Encoding", "gzip")], good_chunked + smuggled("te2")),
        ("chunk size zz", "czz", [CHUNKED], bad_chunk(b"zz", "czz")),
        ("chunk size -1", "cneg", [CHUNKED], bad_chunk(b"-1", "cneg")),
        ("chunk size 0x5", "c0x", [CHUNKED], bad_chunk(b"0x5", "c0x")),
        ("chunk size '5 ;' (extension without a name)", "csemi", [CHUNKED],
         bad_chunk(b"5 ;", "csemi")),
        ("chunk size ' 5' (leading space)", "clead", [CHUNKED], bad_chunk(b" 5", "clead")),
        ("chunk size ffffffffffffffffff (overflow)", "cover", [CHUNKED],
         bad_chunk(b"ffffffffffffffffff", "cover")),
        ("chunk data not followed by CRLF", "cnocrlf", [CHUNKED],
         b"5\r\nhelloXX0\r\n\r\n" + smuggled("cnocrlf")),
    ]
    return rows


class SmugglingCases:
    """The cases; a subclass says how requests reach the origin (setup_path, build)."""

    # -- fixtures (subclasses) ----------------------------------------------------------------

    def setup_path(self):
        """Start the origin and nonoproxy-run; set self.srv, self.proxy, self.info."""
        raise NotImplementedError

    def build(self, method, suffix, headers=(), raw_body=b""):
        """Request bytes for origin path /suffix: the head with exactly `headers` (no framing
        header is added) followed by raw_body."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------

    def settle(self):
        """Let nonoproxy-run exit (closing every upstream connection), wait until the origin
        has read each connection to EOF; return the audit events."""
        events = self.finish(self.proxy)
        self.assertTrue(self.srv.quiesce(), "an upstream connection stayed open after "
                        "nonoproxy-run exited")
        return events

    def targets(self):
        return [r.target for r in self.srv.requests()]

    def assert_still_serving(self, suffix):
        """A valid request on a fresh connection is answered 200 from the origin."""
        with connect_proxy(self.info.port) as s:
            s.sendall(self.build("GET", suffix, [("Connection", "close")]))
            res, _ = read_http_response(s)
        self.assertEqual(res.status, 200, "a valid request after the cases: %r" % res)
        self.assertEqual(res.body, DEFAULT_BODY)

    def assert_no_marker_upstream(self, markers):
        """None of the (label, marker bytes) reached the origin, as any byte sequence."""
        raw = self.srv.all_raw()
        leaked = [label for label, marker in markers if marker in raw]
        self.assertEqual(leaked, [], "bytes of these cases reached the origin")

    # -- tests --------------------------------------------------------------------------------

    def test_ambiguous_or_malformed_requests_get_400_and_nothing_goes_upstream(self):
        self.setup_path()
        cases = refused_cases()
        for label, cid, headers, body in cases:
            with self.subTest(label):
                resp = exchange(self.info.port, self.build("POST", "case-" + cid, headers, body))
                self.assertErrorResponse(resp, 400)
        self.assert_still_serving("after-refused")
        events = self.settle()
        markers = []
        for label, cid, _, _ in cases:
            markers += [(label, b"case-" + cid.encode()), (label + " (smuggled request)",
                                                         b"smuggled-" + cid.encode())]
        self.assert_no_marker_upstream(markers)
        self.assertEqual(self.targets(), ["/after-refused"], "requests the origin received")
        refused = matching(events, decision="deny", status=400)
        self.assertEqual(len(refused), len(cases), "one audit deny with status 400 per case "
                         + AUDIT_BELOW)
        self.assertEqual(len(matching(refused, denial_category="malformed_request")),
                         len(cases), "denial_category malformed_request " + AUDIT_BELOW)

    def test_request_inside_a_body_stays_body(self):
        self.setup_path()
        inner = smuggled("inbody")
        chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, inner[:10], len(inner) - 10,
                                                           inner[10:])
        with connect_proxy(self.info.port) as s:
            s.sendall(self.build("POST", "in-chunked", [CHUNKED], chunked))
            first, extra = read_http_response(s)
            s.sendall(self.build("POST", "in-length", [cl(inner), ("Connection", "close")],
                                 inner))
            second, _ = read_http_response(s, initial=extra)
        for res in (first, second):
            self.assertEqual(res.status, 200, res)
            self.assertEqual(res.body, DEFAULT_BODY)
        self.settle()
        reqs = self.srv.requests()
        self.assertEqual([r.target for r in reqs], ["/in-chunked", "/in-length"],
                         "exactly one origin request per client request")
        for r in reqs:
            self.assertEqual(r.body, inner, "the embedded request arrives as body bytes")

    def test_pipelined_requests_after_bodies_are_separate_requests(self):
        self.setup_path()
        data = (self.build("POST", "p1", [cl(b"hello")], b"hello")
                + self.build("POST", "p2", [CHUNKED], b"3\r\nabc\r\n0\r\n\r\n")
                + self.build("PUT", "p3", [CHUNKED, ("X-Order", "3")],
                             b"4\r\nwxyz\r\n0\r\n\r\n")
                + self.build("GET", "p4", [("Connection", "close")]))
        with connect_proxy(self.info.port) as s:
            s.sendall(data)
            responses, extra = read_http_responses(s, ["POST", "POST", "PUT", "GET"])
            after = read_to_eof(s, initial=extra)
        self.assertEqual([r.status for r in responses], [200, 200, 200, 200], responses)
        self.assertEqual(after, b"", "bytes after the last response")
        self.settle()
        reqs = self.srv.requests()
        self.assertEqual([(r.method, r.target, r.body) for r in reqs],
                         [("POST", "/p1", b"hello"), ("POST", "/p2", b"abc"),
                          ("PUT", "/p3", b"wxyz"), ("GET", "/p4", b"")])

    def test_bytes_past_content_length_are_the_next_request(self):
        self.setup_path()
        # The leftover is a valid request: answered second, reaching the origin on its own.
        with connect_proxy(self.info.port) as s:
            s.sendall(self.build("POST", "short1", [("Content-Length", "5")], b"hello")
                      + self.build("GET", "next-valid", [("Connection", "close")]))
            responses, extra = read_http_responses(s, ["POST", "GET"])
            read_to_eof(s, initial=extra)
        self.assertEqual([r.status for r in responses], [200, 200], responses)
        # The leftover is not a request: answered 400 after the first, never glued to it.
        with connect_proxy(self.info.port) as s:
            s.sendall(self.build("POST", "short2", [("Content-Length", "5")], b"hello")
                      + b"GARBAGE-short2 x\r\n\r\n")
            first, extra = read_http_response(s, method="POST")
            rest = read_to_eof(s, initial=extra)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.body, DEFAULT_BODY)
        self.assertTrue(rest.startswith(b"HTTP/1.1 400 ") or rest.startswith(b"HTTP/1.0 400 "),
                        "the leftover bytes are answered 400: %r" % rest[:300])
        events = self.settle()
        reqs = self.srv.requests()
        self.assertEqual([(r.method, r.target, r.body) for r in reqs],
                         [("POST", "/short1", b"hello"), ("GET", "/next-valid", b""),
                          ("POST", "/short2", b"hello")])
        self.assert_no_marker_upstream([("leftover bytes", b"GARBAGE-short2")])
        self.assertEqual(len(matching(events, decision="deny", status=400)), 1, AUDIT_BELOW)

    def test_duplicate_equal_content_length_is_never_two_requests(self):
        self.setup_path()
        with connect_proxy(self.info.port) as s:
            s.sendall(self.build("POST", "dup-equal",
                                 [("Content-Length", "5"), ("Content-Length", "5"),
                                  ("Connection", "close")], b"hello"))
            res, extra = read_http_response(s, method="POST")
            read_to_eof(s, initial=extra)
        self.assertIn(res.status, (200, 400), res)
        self.settle()
        reqs = self.srv.requests()
        if res.status == 400:
            self.assertEqual(reqs, [], "refused with 400, yet the origin got a request")
        else:
            self.assertEqual([(r.target, r.body) for r in reqs], [("/dup-equal", b"hello")])

    def test_valid_framing_variants_arrive_intact(self):
        self.setup_path()
        big = os.urandom(70000)
        rows = [
            ("Transfer-Encoding: Chunked (case)", [("Transfer-Encoding", "Chunked")],
             b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            ("chunk extensions", [CHUNKED], b"5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world"
             b"\r\n0\r\n\r\n", b"hello world"),
            ("upper-case hex chunk size", [CHUNKED], b"A\r\n0123456789\r\n0\r\n\r\n",
             b"0123456789"),
            ("trailer fields", [CHUNKED], b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n", b"abc"),
            ("empty chunked body", [CHUNKED], b"0\r\n\r\n", b""),
            ("Content-Length: 0", [("Content-Length", "0")], b"", b""),
            ("70000-byte Content-Length body", [cl(big)], big, big),
            ("70000-byte body in chunks of 16 KiB", [CHUNKED],
             b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 16384]), big[i:i + 16384])
                      for i in range(0, len(big), 16384)) + b"0\r\n\r\n", big),
        ]
        with connect_proxy(self.info.port) as s:
            extra = b""
            for i, (label, headers, raw, _) in enumerate(rows):
                s.sendall(self.build("POST", "v%d" % i, headers, raw))
                res, extra = read_http_response(s, method="POST", initial=extra)
                with self.subTest(label):
                    self.assertEqual(res.status, 200, res)
        self.settle()
        reqs = self.srv.requests()
        self.assertEqual([r.target for r in reqs], ["/v%d" % i for i in range(len(rows))])
        for (label, _, _, body), req in zip(rows, reqs):
            with self.subTest(label):
                self.assertEqual(len(req.body), len(body))
                self.assertTrue(req.body == body, "the body arrived altered")

    def test_bad_chunk_after_streaming_started_never_completes_the_request(self):
        self.setup_path()
        s = connect_proxy(self.info.port)
        try:
            s.sendall(self.build("POST", "streamed-bad", [CHUNKED], b"9\r\nfirstpart\r\n"))
            arrived = self.srv.wait_for(lambda srv: b"firstpart" in srv.all_raw())
            self.assertTrue(arrived, "the first chunk did not reach the origin within %.0f s: "
                            "bodies must be streamed (SPEC §1.2)" % IO_TIMEOUT)
            s.sendall(b"zz\r\nrest-of-it\r\n0\r\n\r\n" + smuggled("streamed"))
            resp = read_to_eof(s)
        finally:
            s.close()
        self.assertTrue(resp.startswith(b"HTTP/1.1 400 "), "the client is told 400: %r"
                        % resp[:300])
        # The upstream connection that carried the head must be closed, not completed or
        # reused: a valid request afterwards arrives on its own, intact.
        self.assert_still_serving("after-streamed")
        self.settle()
        self.assertEqual(self.targets(), ["/after-streamed"],
                         "the broken request reached the origin complete")
        self.assert_no_marker_upstream([("data after the bad chunk", b"rest-of-it"),
                                        ("the request after it", b"smuggled-streamed")])

    def test_client_gone_mid_body_never_completes_the_request(self):
        self.setup_path()
        s = connect_proxy(self.info.port)
        try:
            s.sendall(self.build("POST", "truncated", [("Content-Length", "20")], b"partial"))
            arrived = self.srv.wait_for(lambda srv: b"partial" in srv.all_raw())
            self.assertTrue(arrived, "the start of the body did not reach the origin within "
                            "%.0f s: bodies must be streamed (SPEC §1.2)" % IO_TIMEOUT)
            s.shutdown(socket.SHUT_WR)
            read_to_eof(s)
        finally:
            s.close()
        self.assert_still_serving("after-truncated")
        self.settle()
        self.assertEqual(self.targets(), ["/after-truncated"],
                         "a request whose body was cut short reached the origin complete")


class ForwardSmuggling(SmugglingCases, E2ETestCase):
    """Absolute-form requests to the plain-HTTP forward proxy (SPEC §5)."""

    def setup_path(self):
        self.srv = ScriptedUpstream(tls=False)
        self.addCleanup(self.srv.close)
        self.proxy, self.info = self.start_holder(["-q", "--allow", "127.0.0.1"])

    def build(self, method, suffix, headers=(), raw_body=b""):
        url = "http://127.0.0.1:%d/%s" % (self.srv.port, suffix)
        return absolute_request(method, url, self.info.basic(), headers) + raw_body


class ReverseSmuggling(SmugglingCases, E2ETestCase):
    """Origin-form requests to a reverse route with an http:// loopback upstream (SPEC §6)."""

    def setup_path(self):
        self.srv = ScriptedUpstream(tls=False)
        self.addCleanup(self.srv.close)
        env = dict(os.environ, NP_E2E_SMUGGLING_KEY="np-e2e-smuggling-" + os.urandom(6).hex())
        self.proxy, self.info = self.start_holder(
            ["-q", "--route", "svc=http://127.0.0.1:%d,credential=env://NP_E2E_SMUGGLING_KEY"
             % self.srv.port], env=env)

    def build(self, method, suffix, headers=(), raw_body=b""):
        hdrs = [("Authorization", "Bearer " + self.info.token)] + list(headers)
        return origin_request(method, "/svc/" + suffix, "127.0.0.1:%d" % self.info.port,
                              hdrs) + raw_body


if __name__ == "__main__":
    unittest.main()
