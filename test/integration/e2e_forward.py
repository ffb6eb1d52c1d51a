"""Plain-HTTP forward proxying (absolute-form) through nonoproxy-run: SPEC §2, §3, §5, §9.

Kept in its own module (and CTest test) so that the CONNECT-side modules stay meaningful while
forward mode is not implemented yet."""

import subprocess
import unittest

from npe2e import (AUDIT_BELOW, BODY, E2ETestCase, Response, connect_proxy, exchange, matching,
                   num, read_head, read_exactly, require_tool)

CURL = require_tool("curl")


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
        self.finish(run)

    def test_forward_to_the_proxy_itself_is_refused(self):
        run, info = self.start_holder(["-q"])
        resp = exchange(info.port, get("http://127.0.0.1:%d/" % info.port, info))
        self.assertErrorResponse(resp, 403)
        events = self.finish(run)
        self.assertOneEvent(events, decision="deny", denial_category="self_request")

    def test_token_in_forwarded_urls_is_not_logged(self):
        srv = self.http_server()
        run, info = self.start_holder(["-v", "--allow", "localhost"])
        for path in ("/q?token=%s&a=1" % info.token, "/p/%s/x" % info.token):
            req = get("http://localhost:%d%s" % (srv.port, path), info, ["Connection: close"])
            with self.subTest(path="[token in %s]" % ("query" if "?" in path else "path")):
                self.assertEqual(exchange(info.port, req).status, 200)
        self.finish_without_token_leak(run, info)


if __name__ == "__main__":
    unittest.main()
