"""Proxy authentication with the session token: SPEC §2 (issue #2 item 10.5)."""

import base64
import unittest

from npe2e import (AUDIT_BELOW, E2ETestCase, Response, connect_head, connect_proxy, exchange, num,
                   open_tunnel, read_head, tunnel_roundtrip)


def b64(text):
    return base64.b64encode(text.encode("latin-1")).decode()


class ProxyAuth(E2ETestCase):

    def setUp(self):
        self.echo = self.echo_server()
        self.run_, self.info = self.start_holder(["-q", "--allow", "localhost"])
        self.target = "localhost:%d" % self.echo.port

    def tearDown(self):
        if self.run_ is not None:
            self.finish(self.run_)

    def _assert_407(self, request, label):
        resp = exchange(self.info.port, request)
        with self.subTest(label):
            self.assertErrorResponse(resp, 407)
            self.assertEqual(resp.header_all("proxy-authenticate"), ['Basic realm="nono"'],
                             resp.raw)
            self.assertEqual(resp.header("content-length"), "0")
        return resp

    def test_missing_or_wrong_credentials_get_407(self):
        tok = self.info.token
        rows = [
            ("no Proxy-Authorization", None),
            ("Basic with a wrong token", "Basic " + b64("nono:wrong")),
            ("Bearer with a wrong token", "Bearer wrong"),
            ("Basic without a colon", "Basic " + b64(tok)),
            ("Basic with an empty token", "Basic " + b64("nono:")),
            ("Basic, token with a suffix", "Basic " + b64("nono:" + tok + "x")),
            ("Basic, token truncated", "Basic " + b64("nono:" + tok[:-1])),
            ("Bearer, token upper-cased", "Bearer " + tok.upper()),
            ("Basic, not base64", "Basic %%%%"),
            ("unknown scheme", "Digest " + tok),
            ("token without a scheme", tok),
        ]
        for label, auth in rows:
            self._assert_407(connect_head(self.target, auth), label)
        self.assertEqual(self.echo.connection_count(), 0, "nothing reached the upstream")
        events = self.finish(self.run_)
        self.run_ = None
        denied = [e for e in events if e.get("denial_category") == "authentication_failed"]
        self.assertEqual(len(denied), len(rows), AUDIT_BELOW)
        for ev in denied:
            self.assertEqual(ev.get("decision"), "deny", ev)
            self.assertEqual(num(ev, "status"), 407, ev)

    def test_accepted_credential_spellings(self):
        tok = self.info.token
        rows = [
            ("Basic nono:token", "Proxy-Authorization: Basic " + b64("nono:" + tok)),
            ("Basic, any user name", "Proxy-Authorization: Basic " + b64("someone:" + tok)),
            ("Basic, empty user name", "Proxy-Authorization: Basic " + b64(":" + tok)),
            ("Bearer token", "Proxy-Authorization: Bearer " + tok),
            ("scheme in lower case", "Proxy-Authorization: basic " + b64("nono:" + tok)),
            ("scheme in upper case", "Proxy-Authorization: BEARER " + tok),
            ("header name in upper case", "PROXY-AUTHORIZATION: Bearer " + tok),
            ("header name in lower case", "proxy-authorization: Bearer " + tok),
            ("no space after the colon", "Proxy-Authorization:Bearer " + tok),
            ("tabs and spaces after the colon", "Proxy-Authorization: \t  Bearer " + tok),
        ]
        for i, (label, line) in enumerate(rows):
            with self.subTest(label):
                head = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n\r\n"
                        % (self.target, self.target, line)).encode("latin-1")
                with connect_proxy(self.info.port) as s:
                    s.sendall(head)
                    h, extra = read_head(s)
                    resp = Response(h)
                    self.assertEqual(resp.status, 200, resp.raw)
                    payload = b"ping %d\n" % i
                    self.assertEqual(tunnel_roundtrip(s, payload, extra), payload)

    def test_wrong_token_then_right_token_on_new_connection(self):
        resp = exchange(self.info.port, connect_head(self.target, "Bearer nope"))
        self.assertEqual(resp.status, 407)
        sock, resp, extra = open_tunnel(self.info.port, self.target, self.info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"after 407\n", extra), b"after 407\n")


if __name__ == "__main__":
    unittest.main()
