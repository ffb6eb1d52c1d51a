"""Plain-HTTP forward proxying (absolute-form) through nonoproxy-run: SPEC §2, §3, §5, §9.

Real clients (curl, wget, python3 urllib) run as the child command and use http_proxy from the
environment nonoproxy-run gave them; raw-socket clients check what the contract says byte by
byte: the origin-form request the origin receives (upstream.ScriptedUpstream records every
byte), hop-by-hop headers removed, bodies framed exactly both ways, keep-alive to the client
across requests and origins. Request smuggling has its own module, e2e_smuggling.py."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from npe2e import (AUDIT_BELOW, BODY, HERE, Certs, E2ETestCase, Response, absolute_request,
                   closed_port, connect_proxy, exchange, matching, num, read_exactly, read_head,
                   read_http_response, read_to_eof, require_tool)
from upstream import DEFAULT_BODY, Answer, ScriptedUpstream, raw_answer

CURL = require_tool("curl")
WGET = require_tool("wget")
ENV = require_tool("env")


def get(url, info, extra=(), method="GET", body=b""):
    """Build an absolute-form request with the proxy credentials."""
    host = url.split("/")[2]
    lines = ["%s %s HTTP/1.1" % (method, url), "Host: %s" % host,
             "Proxy-Authorization: %s" % info.basic()] + list(extra)
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(sock):
    """Read one response framed by Content-Length; return Response (body included)."""
    head, extra = read_head(sock)
    resp = Response(head)
    length = int(resp.header("content-length") or "0")
    return Response(head + read_exactly(sock, length, initial=extra) if length else head)


class ForwardHttp(E2ETestCase):

    def test_curl_two_requests_on_one_kept_alive_connection(self):
        srv = self.http_server()
        base = "http://localhost:%d" % srv.port
        run = self.start(["-q", "--allow", "localhost"],
                         [CURL, "--noproxy", "", "-sS", "--max-time", "60", "-v",
                          base + "/a?x=1", base + "/b"], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stdout.raw(), BODY + BODY)
        reqs = srv.wait_requests(2)
        self.assertEqual([(r["method"], r["path"]) for r in reqs],
                         [("GET", "/a?x=1"), ("GET", "/b")], "origin-form upstream")
        for r in reqs:
            names = {k.lower() for k, _ in r["headers"]}
            self.assertNotIn("proxy-authorization", names)
            self.assertNotIn("proxy-connection", names)
        self.assertIn("Re-using existing connection", run.stderr.text(),
                      "the client connection is kept alive between requests")
        allowed = matching(run.audit_events(), event="decision", mode="forward",
                           decision="allow", target="localhost", port=srv.port)
        self.assertEqual(len(allowed), 2, AUDIT_BELOW)

    def test_headers_rewritten_and_body_forwarded_on_a_raw_keepalive_connection(self):
        srv = self.http_server()
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        url = "http://localhost:%d/post?q=1" % srv.port
        with connect_proxy(info.port) as s:
            s.sendall(get(url, info, method="POST", body=b"payload=1",
                          extra=["Connection: keep-alive, X-Hop", "X-Hop: secret-hop",
                                 "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
                                 "X-End-To-End: kept"]))
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp.raw)
            self.assertEqual(resp.body, BODY)
            s.sendall(get("http://localhost:%d/second" % srv.port, info))
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp.raw)
            self.assertEqual(resp.body, BODY)
        reqs = srv.wait_requests(2)
        self.assertEqual([(r["method"], r["path"]) for r in reqs],
                         [("POST", "/post?q=1"), ("GET", "/second")])
        first = {k.lower(): v for k, v in reqs[0]["headers"]}
        self.assertEqual(reqs[0]["body"], b"payload=1")
        self.assertEqual(first.get("x-end-to-end"), "kept")
        self.assertEqual(first.get("host"), "localhost:%d" % srv.port)
        for hop in ("x-hop", "keep-alive", "proxy-connection", "proxy-authorization"):
            self.assertNotIn(hop, first, "hop-by-hop header %s reached the upstream" % hop)
        self.finish(run)

    def test_absolute_form_needs_the_token(self):
        srv = self.http_server()
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        port = srv.port
        rows = [
            ("no Proxy-Authorization", None),
            ("Basic with a wrong token", info.basic(token="wrong")),
            ("Bearer with a wrong token", "Bearer wrong"),
        ]
        for label, auth in rows:
            lines = ["GET http://localhost:%d/ HTTP/1.1" % port, "Host: localhost:%d" % port]
            if auth is not None:
                lines.append("Proxy-Authorization: " + auth)
            resp = exchange(info.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
            with self.subTest(label):
                self.assertErrorResponse(resp, 407)
                self.assertEqual(resp.header_all("proxy-authenticate"), ['Basic realm="nono"'])
        self.assertEqual(srv.requests, [], "nothing reached the upstream")
        events = self.finish(run)
        denied = matching(events, decision="deny", denial_category="authentication_failed")
        self.assertEqual(len(denied), len(rows), AUDIT_BELOW)

    def test_denied_host_gets_403(self):
        srv = self.http_server()
        run, info = self.start_holder(["-q", "--allow", "localhost"])
        resp = exchange(info.port, get("http://127.0.0.2:%d/" % srv.port, info))
        self.assertErrorResponse(resp, 403)
        self.assertEqual(srv.requests, [])
        ev = self.assertOneEvent(self.finish(run), event="decision", mode="forward",
                                 decision="deny", denial_category="host_denied")
        self.assertEqual(num(ev, "status"), 403, ev)

    def test_metadata_address_gets_403(self):
        run, info = self.start_holder(["-q", "--connect-timeout", "2"])
        for url in ("http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/",
                    "http://[::ffff:169.254.169.254]/"):
            with self.subTest(url=url):
                self.assertErrorResponse(exchange(info.port, get(url, info)), 403)
        events = self.finish(run)
        self.assertEqual(len(matching(events, denial_category="host_denied")), 3, AUDIT_BELOW)

    def test_https_absolute_form_is_refused_with_400(self):
        run, info = self.start_holder(["-q"])
        resp = exchange(info.port, get("https://localhost:443/", info))
        self.assertErrorResponse(resp, 400)
        self.assertIn(b"CONNECT", resp.body, "the 400 says to use CONNECT")
        events = self.finish(run)
        ev = self.assertOneEvent(events, event="decision", decision="deny", method="GET")
        self.assertEqual(num(ev, "status"), 400, ev)

    def test_forward_to_the_proxy_itself_is_refused(self):
        run, info = self.start_holder(["-q"])
        resp = exchange(info.port, get("http://127.0.0.1:%d/" % info.port, info))
        self.assertErrorResponse(resp, 403)
        events = self.finish(run)
        self.assertOneEvent(events, decision="deny", denial_category="self_request")

    def test_token_in_forwarded_urls_is_not_logged(self):
        """The token never reaches the origin or the audit: a query parameter carrying it is
        dropped (the request goes on), a token in the path is refused with 400."""
        srv = self.http_server()
        run, info = self.start_holder(["-v", "--allow", "localhost"])
        for path, status in (("/q?token=%s&a=1" % info.token, 200),
                             ("/p/%s/x" % info.token, 400)):
            req = get("http://localhost:%d%s" % (srv.port, path), info, ["Connection: close"])
            with self.subTest(path="[token in %s]" % ("query" if "?" in path else "path")):
                self.assertEqual(exchange(info.port, req).status, status)
        got = srv.wait_requests(1)
        self.assertEqual([r["path"] for r in got], ["/q?a=1"])
        self.finish_without_token_leak(run, info)



# --------------------------------------------------------------------------------------------
# Issue #4: real clients, keep-alive across origins, header rewriting, framing both ways
# --------------------------------------------------------------------------------------------

def without_no_proxy(*argv):
    """A child command that drops NO_PROXY/no_proxy (they name 127.0.0.1 and localhost, where
    the test origins listen) and runs argv with the proxy variables nonoproxy-run set."""
    return [ENV, "-u", "NO_PROXY", "-u", "no_proxy"] + list(argv)


HOP_BY_HOP = ("proxy-authorization", "proxy-connection", "keep-alive", "te", "upgrade",
              "transfer-encoding", "trailer")


class ForwardCase(E2ETestCase):
    """Fixtures and assertions shared by the forward-proxy tests below."""

    def origin(self, handler=None, **kw):
        """A plain-HTTP recording origin on 127.0.0.1 (and ::1) with the given handler."""
        srv = ScriptedUpstream(tls=False, handler=handler, **kw)
        self.addCleanup(srv.close)
        return srv

    def tmpdir(self):
        """A temporary directory removed at cleanup."""
        d = tempfile.mkdtemp(prefix="nonoproxy-e2e-fwd-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def forward_events(self, events, **want):
        return matching(events, event="decision", mode="forward", **want)

    def assert_forward_allow(self, events, srv, paths):
        """One forward allow event per origin-form path, in order, for srv."""
        evs = self.forward_events(events, decision="allow", port=srv.port)
        self.assertEqual([ev.get("path") for ev in evs], list(paths), AUDIT_BELOW)
        for ev in evs:
            self.assertEqual(ev.get("target"), "127.0.0.1", ev)
            self.assertEqual(num(ev, "status"), 200, ev)
            self.assertEqual(ev.get("auth_outcome"), "succeeded", ev)

    def assert_no_hop_by_hop(self, req, extra=()):
        names = req.header_names()
        for hop in HOP_BY_HOP + tuple(extra):
            if hop == "transfer-encoding" and req.framing == "chunked":
                continue  # the proxy's own framing of the body it forwards
            self.assertNotIn(hop, names, "hop-by-hop header %s reached the origin: %r"
                             % (hop, req.head))


class ForwardClients(ForwardCase):
    """curl, wget and python3 urllib as the child command, using http_proxy from the
    environment nonoproxy-run gave them (userinfo = the token, sent preemptively)."""

    def assert_one_clean_request(self, srv, request_line):
        reqs = srv.requests()
        self.assertEqual([r.request_line for r in reqs], [request_line], "origin-form upstream")
        self.assertEqual(reqs[0].header_all("host"), [srv.authority()], "Host from the URI")
        self.assert_no_hop_by_hop(reqs[0])
        return reqs[0]

    def test_wget(self):
        srv = self.origin()
        url = srv.url(path="/wget/file.txt?x=1")
        run = self.start(["-q"], without_no_proxy(WGET, "-q", "-O", "-", "--tries=1",
                                                  "--timeout=60", url),
                         stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, "wget's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY)
        self.assert_one_clean_request(srv, "GET /wget/file.txt?x=1 HTTP/1.1")
        self.assert_forward_allow(run.audit_events(), srv, ["/wget/file.txt?x=1"])

    def test_python_urllib(self):
        srv = self.origin()
        url = srv.url(path="/urllib")
        run = self.start(["-q"], [sys.executable, os.path.join(HERE, "client_urllib.py"), url,
                                  Certs.get().ca_cert], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, "client_urllib.py's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY)
        self.assert_one_clean_request(srv, "GET /urllib HTTP/1.1")
        self.assert_forward_allow(run.audit_events(), srv, ["/urllib"])

    def test_curl_uploads_with_content_length_and_chunked(self):
        srv = self.origin()
        payload = os.urandom(200000)
        path = os.path.join(self.tmpdir(), "payload.bin")
        with open(path, "wb") as f:
            f.write(payload)
        common = ["--noproxy", "", "-sS", "--max-time", "60", "--data-binary", "@" + path]
        run = self.start(["-q"], [CURL] + common + [srv.url(path="/upload-length"), "--next"]
                         + common + ["-H", "Transfer-Encoding: chunked",
                                     srv.url(path="/upload-chunked")],
                         stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, "curl's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY * 2)
        reqs = srv.requests()
        self.assertEqual([r.target for r in reqs], ["/upload-length", "/upload-chunked"])
        for r in reqs:
            with self.subTest(r.target):
                self.assertEqual(len(r.body), len(payload))
                self.assertTrue(r.body == payload, "the body arrived altered")


class ForwardKeepAlive(ForwardCase):
    """SPEC §5 (hardened): keep-alive to the client, several requests per connection."""

    def test_three_requests_to_two_origins_on_one_connection(self):
        a = self.origin(handler=lambda r: Answer.fixed(b"A says " + r.target.encode()))
        b = self.origin(handler=lambda r: Answer.fixed(b"B says " + r.target.encode()))
        run, info = self.start_holder(["-q"])
        plan = [(a, "/one"), (b, "/two?x=y"), (a, "/three")]
        with connect_proxy(info.port) as s:
            for origin, path in plan:
                s.sendall(absolute_request("GET", origin.url(path=path), info.basic()))
                res, extra = read_http_response(s)
                with self.subTest(path):
                    self.assertEqual(res.status, 200, res)
                    self.assertEqual(res.body, (b"A says " if origin is a else b"B says ")
                                     + path.encode())
                    self.assertNotEqual((res.header("connection") or "").lower(), "close", res)
                    self.assertEqual(extra, b"", "bytes after the response")
        self.assertEqual([r.target for r in a.requests()], ["/one", "/three"])
        self.assertEqual([r.target for r in b.requests()], ["/two?x=y"])
        for srv in (a, b):
            for r in srv.requests():
                self.assertEqual(r.header_all("host"), [srv.authority()], r)
        events = self.finish(run)
        self.assert_forward_allow(events, a, ["/one", "/three"])
        self.assert_forward_allow(events, b, ["/two?x=y"])

    def test_connection_close_and_http10_end_the_connection(self):
        srv = self.origin()
        run, info = self.start_holder(["-q"])
        with connect_proxy(info.port) as s:
            s.sendall(absolute_request("GET", srv.url(path="/close"), info.basic(),
                                       [("Connection", "close")]))
            res, extra = read_http_response(s)
            self.assertEqual(res.status, 200, res)
            self.assertEqual(res.body, DEFAULT_BODY)
            self.assertEqual(read_to_eof(s, initial=extra), b"", "closed after the response")
        with connect_proxy(info.port) as s:
            s.sendall(b"GET %s HTTP/1.0\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                      % (srv.url(path="/http10").encode(), srv.authority().encode(),
                         info.basic().encode()))
            res, extra = read_http_response(s)
            self.assertEqual(res.status, 200, res)
            self.assertEqual(res.body, DEFAULT_BODY)
            self.assertEqual(read_to_eof(s, initial=extra), b"", "closed after the response")
        self.assertEqual([r.target for r in srv.requests()], ["/close", "/http10"])
        self.finish(run)

    def test_denied_request_after_an_allowed_one(self):
        srv = self.origin()
        run, info = self.start_holder(["-q", "--allow", "127.0.0.1"])
        with connect_proxy(info.port) as s:
            s.sendall(absolute_request("GET", srv.url(path="/ok"), info.basic()))
            res, extra = read_http_response(s)
            self.assertEqual(res.status, 200, res)
            s.sendall(absolute_request("GET", "http://127.0.0.2:%d/denied" % srv.port,
                                       info.basic()))
            resp = Response(read_to_eof(s, initial=extra))
        self.assertErrorResponse(resp, 403)
        self.assertEqual([r.target for r in srv.requests()], ["/ok"])
        events = self.finish(run)
        ev = self.assertOneEvent(events, event="decision", mode="forward", decision="deny",
                                 denial_category="host_denied", target="127.0.0.2")
        self.assertEqual(num(ev, "status"), 403, ev)


class ForwardHeaders(ForwardCase):
    """SPEC §5: origin-form, Host from the URI, Proxy-* and hop-by-hop headers removed."""

    def test_request_rewritten_to_origin_form(self):
        srv = self.origin()
        run, info = self.start_holder(["-q"])
        target = "/p/a%20b;v=1/%2F?q=1&r=%2F&s"
        lines = [
            "POST http://%s%s HTTP/1.1" % (srv.authority(), target),
            "Host: evil.example:1",
            "PROXY-AUTHORIZATION: %s" % info.basic(),
            "Proxy-Connection: keep-alive",
            "Connection: keep-alive, X-Hop, Upgrade, HTTP2-Settings",
            "X-Hop: hop-value",
            "connection: x-hop2",
            "Keep-Alive: timeout=5",
            "TE: trailers",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            "X-Hop2: hop2-value",
            "X-End-To-End: kept  as is",
            "X-Multi: one",
            "Cookie: a=b; c=d",
            "X-Multi: two",
            "User-Agent: nonoproxy-e2e/1",
            "Content-Type: text/plain",
            "Content-Length: 7",
        ]
        with connect_proxy(info.port) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + b"payload")
            res, _ = read_http_response(s, method="POST")
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.body, DEFAULT_BODY)
        reqs = srv.requests()
        self.assertEqual(len(reqs), 1, reqs)
        req = reqs[0]
        self.assertEqual(req.request_line, "POST %s HTTP/1.1" % target,
                         "origin-form target, byte for byte")
        self.assertEqual(req.header_all("host"), [srv.authority()], "Host from the URI")
        self.assert_no_hop_by_hop(req, ("x-hop", "x-hop2", "http2-settings"))
        for value in req.header_all("connection"):
            tokens = {t.strip().lower() for t in value.split(",")}
            self.assertTrue(tokens <= {"keep-alive", "close"},
                            "Connection names the client's hop-by-hop headers: %r" % value)
        kept = [(k.lower(), v) for k, v in req.headers
                if k.lower() in ("x-end-to-end", "x-multi", "cookie", "user-agent",
                                 "content-type")]
        self.assertEqual(kept, [("x-end-to-end", "kept  as is"), ("x-multi", "one"),
                                ("cookie", "a=b; c=d"), ("x-multi", "two"),
                                ("user-agent", "nonoproxy-e2e/1"),
                                ("content-type", "text/plain")],
                         "end-to-end headers kept, in order, values unchanged")
        self.assertEqual(req.body, b"payload")
        raw = srv.all_raw()
        self.assertNotIn(info.token.encode(), raw, "the token reached the origin")
        self.assertNotIn(info.basic().split()[1].encode(), raw, "the token reached the origin")
        self.finish(run)

    def test_ipv6_literal_uri(self):
        srv = self.origin()
        if len(srv._listeners) < 2:
            self.skipTest("no ::1 on this host")
        run, info = self.start_holder(["-q"])
        url = "http://[::1]:%d/v6" % srv.port
        with connect_proxy(info.port) as s:
            s.sendall(absolute_request("GET", url, info.basic(), [("Connection", "close")]))
            res, _ = read_http_response(s)
        self.assertEqual(res.status, 200, res)
        reqs = srv.requests()
        self.assertEqual([r.request_line for r in reqs], ["GET /v6 HTTP/1.1"])
        self.assertEqual(reqs[0].header_all("host"), ["[::1]:%d" % srv.port])
        self.finish(run)

    def test_response_hop_by_hop_headers_removed(self):
        srv = self.origin(handler=lambda r: raw_answer(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: v\r\n"
            b"Keep-Alive: timeout=5, max=100\r\nProxy-Connection: keep-alive\r\n"
            b"X-Resp-E2E: kept\r\nContent-Length: 2\r\n\r\nok"))
        run, info = self.start_holder(["-q"])
        with connect_proxy(info.port) as s:
            s.sendall(absolute_request("GET", srv.url(path="/resp"), info.basic()))
            res, _ = read_http_response(s)
        self.assertEqual(res.status, 200, res)
        self.assertEqual(res.body, b"ok")
        self.assertEqual(res.header_all("x-resp-e2e"), ["kept"])
        for hop in ("x-resp-hop", "keep-alive", "proxy-connection"):
            self.assertEqual(res.header_all(hop), [], "%s reached the client: %r"
                             % (hop, res.raw))
        self.finish(run)


class ForwardResponseFraming(ForwardCase):
    """SPEC §5: response bodies framed exactly (Content-Length, chunked, close-delimited, no
    body), so that the client's next request on the connection gets its own response."""

    def roundtrips(self, info, plan):
        """Send each (method, url) in turn on one connection and read its response; stop at a
        response delimited by the close. Returns the HTTPResults."""
        out = []
        with connect_proxy(info.port) as s:
            extra = b""
            for method, url in plan:
                s.sendall(absolute_request(method, url, info.basic()))
                res, extra = read_http_response(s, method=method, initial=extra)
                out.append(res)
                if res.framing == "close":
                    break
        return out

    def test_chunked_response_then_the_next_request(self):
        big = os.urandom(100000)
        chunks = [b"abc", b"defgh", big]

        def handler(req):
            if req.target == "/chunked":
                return Answer.chunked(chunks)
            return Answer.fixed()
        srv = self.origin(handler=handler)
        run, info = self.start_holder(["-q"])
        res = self.roundtrips(info, [("GET", srv.url(path="/chunked")),
                                     ("GET", srv.url(path="/next"))])
        self.assertEqual(len(res), 2, res)
        self.assertEqual(res[0].status, 200, res[0])
        self.assertTrue(res[0].body == b"".join(chunks), "the chunked body arrived altered")
        self.assertEqual((res[1].status, res[1].body), (200, DEFAULT_BODY))
        self.finish(run)

    def test_close_delimited_response(self):
        body = os.urandom(150000)
        rows = [("HTTP/1.1 without a length", b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\n"),
                ("HTTP/1.0", b"HTTP/1.0 200 OK\r\n\r\n")]
        for label, head in rows:
            with self.subTest(label):
                srv = self.origin(handler=lambda r, head=head: raw_answer(head + body, close=True)
                                  if r.target == "/eof" else Answer.fixed())
                run, info = self.start_holder(["-q"])
                res = self.roundtrips(info, [("GET", srv.url(path="/eof")),
                                             ("GET", srv.url(path="/next"))])
                self.assertEqual(res[0].status, 200, res[0])
                self.assertEqual(len(res[0].body), len(body))
                self.assertTrue(res[0].body == body, "the close-delimited body arrived altered")
                if res[0].framing != "close":  # re-framed: the connection goes on
                    self.assertEqual(len(res), 2)
                    self.assertEqual((res[1].status, res[1].body), (200, DEFAULT_BODY))
                self.finish(run)

    def test_responses_without_a_body(self):
        def handler(req):
            if req.target == "/204":
                return raw_answer(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
            if req.target == "/304":
                return raw_answer(b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n"
                                  b"Content-Length: 20\r\n\r\n")
            return Answer.fixed()  # HEAD: Content-Length of DEFAULT_BODY, no body
        srv = self.origin(handler=handler)
        run, info = self.start_holder(["-q"])
        res = self.roundtrips(info, [("HEAD", srv.url(path="/head")),
                                     ("GET", srv.url(path="/204")),
                                     ("GET", srv.url(path="/304")),
                                     ("GET", srv.url(path="/last"))])
        self.assertEqual([r.status for r in res], [200, 204, 304, 200], res)
        self.assertEqual(res[0].header("content-length"), str(len(DEFAULT_BODY)))
        self.assertEqual([r.body for r in res], [b"", b"", b"", DEFAULT_BODY])
        self.finish(run)

    def test_bytes_past_the_response_length_never_reach_the_client(self):
        def handler(req):
            if req.target == "/first":
                return raw_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                                  b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED")
            return Answer.fixed(b"genuine second\n")
        srv = self.origin(handler=handler)
        run, info = self.start_holder(["-q"])
        res = self.roundtrips(info, [("GET", srv.url(path="/first")),
                                     ("GET", srv.url(path="/second"))])
        self.assertEqual((res[0].status, res[0].body), (200, b"hello"))
        self.assertEqual(len(res), 2, res)
        self.assertEqual((res[1].status, res[1].body), (200, b"genuine second\n"),
                         "the second response is the origin's answer to the second request")
        self.assertNotIn(b"INJECTED", res[0].raw + res[1].raw)
        self.finish(run)

    def test_response_with_content_length_and_chunked(self):
        def handler(req):
            if req.target == "/both":
                return raw_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            return Answer.fixed()
        srv = self.origin(handler=handler)
        run, info = self.start_holder(["-q"])
        with connect_proxy(info.port) as s:
            s.sendall(absolute_request("GET", srv.url(path="/both"), info.basic()))
            res, extra = read_http_response(s)
            if res.status == 200:
                # RFC 9112 §6.3: chunked wins; a forwarding intermediary removes Content-Length.
                self.assertEqual(res.body, b"hello", res)
                self.assertIsNone(res.header("content-length"),
                                  "Content-Length forwarded next to chunked: %r" % res.raw)
                s.sendall(absolute_request("GET", srv.url(path="/after"), info.basic()))
                nxt, _ = read_http_response(s, initial=extra)
                self.assertEqual((nxt.status, nxt.body), (200, DEFAULT_BODY))
            else:
                self.assertEqual(res.status, 502, res)
        self.finish(run)

    def test_broken_upstream_answers_give_502(self):
        def handler(req):
            if req.target == "/garbage":
                return raw_answer(b"NOT HTTP AT ALL\r\n\r\n", close=True)
            if req.target == "/bad-length":
                return raw_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                  b"Content-Length: 7\r\n\r\nhello!!", close=True)
            return Answer.close()
        srv = self.origin(handler=handler)
        run, info = self.start_holder(["-q"])
        for path in ("/garbage", "/bad-length", "/silent-close"):
            with self.subTest(path):
                resp = exchange(info.port, absolute_request("GET", srv.url(path=path),
                                                            info.basic()))
                self.assertErrorResponse(resp, 502)
        events = self.finish(run)
        denied = self.forward_events(events, decision="deny", status=502)
        self.assertEqual(len(denied), 3, AUDIT_BELOW)


class ForwardFailures(ForwardCase):

    def test_refused_connection_gives_502(self):
        holder, port = closed_port()
        self.addCleanup(holder.close)
        run, info = self.start_holder(["-q", "--connect-timeout", "5"])
        resp = exchange(info.port, absolute_request("GET", "http://127.0.0.1:%d/x" % port,
                                                    info.basic()))
        self.assertErrorResponse(resp, 502)
        ev = self.assertOneEvent(self.finish(run), event="decision", mode="forward",
                                 decision="deny", denial_category="upstream_connect_failed")
        self.assertEqual(num(ev, "port"), port, ev)

    def test_bad_absolute_uris_get_400(self):
        srv = self.origin()
        run, info = self.start_holder(["-q"])
        rows = [("empty host", "http:///x"),
                ("port out of range", "http://127.0.0.1:99999/x"),
                ("non-numeric port", "http://127.0.0.1:8x/x"),
                ("userinfo", "http://user:pw@%s/x" % srv.authority()),
                ("fragment", "http://%s/x#frag" % srv.authority())]
        for label, url in rows:
            with self.subTest(label):
                resp = exchange(info.port, absolute_request("GET", url, info.basic(),
                                                            host=srv.authority()))
                self.assertErrorResponse(resp, 400)
        self.assert_still_serving(info, srv)
        self.assertEqual([r.target for r in srv.requests()], ["/ok"])
        events = self.finish(run)
        self.assertEqual(len(matching(events, decision="deny", status=400)), len(rows),
                         AUDIT_BELOW)

    def assert_still_serving(self, info, srv):
        resp = exchange(info.port, absolute_request("GET", srv.url(path="/ok"), info.basic(),
                                                    [("Connection", "close")]))
        self.assertEqual(resp.status, 200, resp)


if __name__ == "__main__":
    unittest.main()
