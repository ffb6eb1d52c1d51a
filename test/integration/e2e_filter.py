"""Host filtering through nonoproxy-run: SPEC §3 (issue #2 item 10.4), self requests, 502s."""

import unittest

from npe2e import (AUDIT_BELOW, IN_NETNS, E2ETestCase, closed_port, connect_head, exchange,
                   matching, num, open_tunnel, tunnel_roundtrip)

# Spellings of the cloud metadata address (and of the other hard-denied link-local addresses)
# that a proxy would only ever send to a link-local destination if it were broken.
METADATA_IP_TARGETS = [
    "169.254.169.254:80",
    "2852039166:80",                     # one 32-bit decimal number
    "0xa9fea9fe:80",                     # one hexadecimal number
    "0XA9FEA9FE:80",
    "0251.0376.0251.0376:80",            # dotted octal
    "169.254.43518:80",                  # a.b.c with a 16-bit last part
    "0xa9.0xfe.0xa9.0xfe:80",            # dotted hexadecimal
    "169.254.169.254.:80",               # trailing dot
    "169.254.0.1:443",                   # anywhere in 169.254.0.0/16
    "[::ffff:169.254.169.254]:80",       # IPv4-mapped
    "[::ffff:a9fe:a9fe]:80",             # IPv4-mapped, hex words
    "[::169.254.169.254]:80",            # IPv4-compatible
    "[64:ff9b::a9fe:a9fe]:80",           # NAT64
    "[64:ff9b::169.254.169.254]:80",
    "[fe80::1]:80",                      # IPv6 link-local
    "[FE80::A9FE:A9FE]:80",
]

# Targets that, through a broken proxy, would send packets or DNS queries off the machine:
# only probed inside the private network namespace, where nothing can leave.
METADATA_NETNS_TARGETS = [
    "[2002:a9fe:a9fe::1]:80",            # 6to4 of 169.254.169.254
    "[fd00:ec2::254]:80",
    "100.100.100.200:80",
    "192.0.0.192:80",
    "[::ffff:100.100.100.200]:80",
    "metadata.google.internal:80",
    "METADATA.Google.Internal:80",
    "metadata.google.internal.:80",
    "metadata.azure.internal:80",
]
METADATA_NETNS_BARE_NAMES = [
    "metadata:80",
    "instance-data:80",
]


class MetadataDenied(E2ETestCase):
    """The hard deny list holds for an empty allowlist, a non-empty one, and a wildcard that
    would match the metadata names."""

    def _probe_all(self, options, targets):
        run, info = self.start_holder(["-q", "--connect-timeout", "2"] + options)
        auth = info.basic()
        for target in targets:
            resp = exchange(info.port, connect_head(target, auth))
            with self.subTest(target=target, options=options):
                self.assertErrorResponse(resp, 403)
                ctype = (resp.header("content-type") or "").lower()
                self.assertTrue(ctype.startswith("text/plain"), resp.raw)
                body = resp.body.decode("utf-8", errors="replace")
                self.assertTrue(body.strip(), "the 403 body gives a reason")
                self.assertNotIn("\n", body.rstrip("\r\n"), "one-line reason: %r" % body)
        events = self.finish(run)
        denied = matching(events, event="decision", decision="deny",
                          denial_category="host_denied")
        self.assertEqual(len(denied), len(targets),
                         "one host_denied event per probe " + AUDIT_BELOW)
        for ev in denied:
            self.assertEqual(num(ev, "status"), 403, ev)
            self.assertEqual(ev.get("mode"), "connect", ev)
        self.assertEqual(matching(events, decision="allow"), [], AUDIT_BELOW)

    def _targets(self, bare_names=True):
        targets = list(METADATA_IP_TARGETS)
        if IN_NETNS:
            targets += METADATA_NETNS_TARGETS
            if bare_names:
                targets += METADATA_NETNS_BARE_NAMES
        return targets

    def test_metadata_denied_with_empty_allowlist(self):
        self._probe_all([], self._targets())

    def test_metadata_denied_with_allowlist(self):
        self._probe_all(["--allow", "localhost"], self._targets())

    def test_metadata_denied_even_when_a_wildcard_matches(self):
        self._probe_all(["--allow", "*.internal", "--allow", "*.google.internal"],
                        self._targets(bare_names=False))


class SelfAndUpstreamFailures(E2ETestCase):

    def test_request_to_the_proxy_itself_is_refused(self):
        run, info = self.start_holder(["-q"])
        rows = [
            ("CONNECT to 127.0.0.1:<own port>",
             connect_head("127.0.0.1:%d" % info.port, info.basic())),
            ("CONNECT to localhost:<own port>",
             connect_head("localhost:%d" % info.port, info.basic())),
        ]
        self._self_requests(run, info, rows)

    def _self_requests(self, run, info, rows):
        for label, request in rows:
            resp = exchange(info.port, request)
            with self.subTest(label):
                self.assertErrorResponse(resp, 403)
        events = self.finish(run)
        self.assertEqual(len(matching(events, decision="deny", denial_category="self_request")),
                         len(rows), AUDIT_BELOW)

    def test_connection_refused_gives_502(self):
        hold, port = closed_port()
        self.addCleanup(hold.close)
        run, info = self.start_holder(["-q", "--connect-timeout", "5"])
        resp = exchange(info.port, connect_head("127.0.0.1:%d" % port, info.basic()))
        self.assertErrorResponse(resp, 502)
        events = self.finish(run)
        ev = self.assertOneEvent(events, event="decision", mode="connect", decision="deny",
                                 denial_category="upstream_connect_failed", port=port)
        self.assertEqual(num(ev, "status"), 502, ev)

    @unittest.skipUnless(IN_NETNS, "would send a DNS query off the machine; runs only in the "
                                   "private network namespace")
    def test_unresolvable_name_gives_502(self):
        run, info = self.start_holder(["-q", "--connect-timeout", "5"])
        resp = exchange(info.port, connect_head("no-such-host.invalid:443", info.basic()))
        self.assertErrorResponse(resp, 502)
        events = self.finish(run)
        self.assertOneEvent(events, event="decision", decision="deny",
                            denial_category="upstream_connect_failed",
                            target="no-such-host.invalid", port=443)

    def test_ipv6_loopback_literal_is_an_ordinary_destination(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q"])
        sock, resp, extra = open_tunnel(info.port, "[::1]:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"over ::1\n", extra), b"over ::1\n")
        events = self.finish(run)
        self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                            port=echo.port)

    def test_allowlist_is_case_insensitive_and_exact(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--allow", "LocalHost"])
        sock, resp, extra = open_tunnel(info.port, "LOCALHOST:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"case\n", extra), b"case\n")
        targets = ["127.0.0.1:%d" % echo.port, "[::1]:%d" % echo.port]
        if IN_NETNS:  # names a broken filter would send to DNS
            targets += ["localhost.localdomain:%d" % echo.port, "xlocalhost:%d" % echo.port,
                        "sub.localhost:%d" % echo.port]
        for target in targets:
            resp = exchange(info.port, connect_head(target, info.basic()))
            with self.subTest(target=target):
                self.assertErrorResponse(resp, 403)
        self.finish(run)


if __name__ == "__main__":
    unittest.main()
