"""Real clients (curl, python3 urllib) through nonoproxy-run: SPEC §2, §3, §4, §5, §7, §11."""

import os
import subprocess
import sys
import unittest

from npe2e import (BODY, HERE, IN_NETNS, TOKEN_RE, Certs, E2ETestCase, connect_proxy,
                   num, require_tool)

CURL = require_tool("curl")


def curl(*args):
    """Return a curl command that uses the proxy from the environment even for loopback."""
    return [CURL, "--noproxy", "", "-sS", "--max-time", "60"] + list(args)


class ProxyEnvironment(E2ETestCase):
    """§7 env_vars() and §11: what the child receives."""

    def test_child_gets_proxy_variables(self):
        env = dict(os.environ, NONOPROXY_E2E_MARKER="kept")
        for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                     "https_proxy", "NONO_PROXY_TOKEN"):
            env.pop(name, None)
        run, info = self.start_holder(["-q"], env=env)
        child_env = info.env
        self.assertRegex(info.token, TOKEN_RE, "token is 64 lowercase hex characters")
        self.assertEqual(info.user, "nono")
        self.assertEqual(info.host, "127.0.0.1")
        url = "http://nono:%s@127.0.0.1:%d" % (info.token, info.port)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self.assertEqual(child_env.get(name), url, name)
        for name in ("NO_PROXY", "no_proxy"):
            self.assertEqual(child_env.get(name), "localhost,127.0.0.1,::1", name)
        self.assertEqual(child_env.get("NONO_PROXY_TOKEN"), info.token)
        self.assertEqual(child_env.get("NODE_USE_ENV_PROXY"), "1")
        self.assertEqual(child_env.get("NONOPROXY_E2E_MARKER"), "kept",
                         "the caller's environment is passed through")
        with connect_proxy(info.port):
            pass  # the proxy listens on the advertised port
        self.finish(run)

    def test_each_run_has_a_fresh_token(self):
        run1, info1 = self.start_holder(["-q"])
        run2, info2 = self.start_holder(["-q"])
        self.assertNotEqual(info1.token, info2.token)
        self.assertNotEqual(info1.port, info2.port)
        self.finish(run1)
        self.finish(run2)


class CurlHttps(E2ETestCase):
    """Issue #2 item 10.1 and 10.3: curl through HTTPS_PROXY, allowed and denied."""

    def test_curl_https_localhost_allowed(self):
        srv = self.https_server()
        url = "https://localhost:%d/hello" % srv.port
        run = self.start(["-q", "--allow", "localhost"],
                         curl("--cacert", Certs.get().ca_cert, url), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, "curl's exit status is propagated")
        self.assertEqual(run.stdout.raw(), BODY)
        reqs = srv.wait_requests(1)
        self.assertEqual([(r["method"], r["path"]) for r in reqs], [("GET", "/hello")])
        events = run.audit_events()
        self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                            target="localhost", port=srv.port)
        close = self.assertOneEvent(events, event="close", mode="connect", target="localhost",
                                    port=srv.port)
        self.assertGreater(num(close, "bytes_up") or 0, 0, close)
        self.assertGreater(num(close, "bytes_down") or 0, 0, close)
        self.assertIn("duration_ms", close)

    def test_curl_https_ip_literal_allowed(self):
        srv = self.https_server()
        url = "https://127.0.0.1:%d/" % srv.port
        run = self.start(["-q", "--allow", "127.0.0.1"],
                         curl("--cacert", Certs.get().ca_cert, url), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stdout.raw(), BODY)
        events = run.audit_events()
        self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                            target="127.0.0.1", port=srv.port)

    def test_curl_https_allow_entry_with_matching_port(self):
        srv = self.https_server()
        url = "https://localhost:%d/" % srv.port
        run = self.start(["-q", "--allow", "localhost:%d" % srv.port],
                         curl("--cacert", Certs.get().ca_cert, url), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stdout.raw(), BODY)

    def test_curl_https_allow_entry_with_other_port_denies(self):
        srv = self.https_server()
        other = srv.port + 1 if srv.port < 65535 else srv.port - 1
        url = "https://localhost:%d/" % srv.port
        run = self.start(["-q", "--allow", "localhost:%d" % other],
                         curl("--cacert", Certs.get().ca_cert, "-o", "/dev/null",
                              "-w", "%{http_connect}", url), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 56, "curl: CONNECT answered with a non-2xx status")
        self.assertEqual(run.stdout.text(), "403")
        self.assertEqual(srv.requests, [])
        self.assertOneEvent(run.audit_events(), event="decision", mode="connect",
                            decision="deny", denial_category="host_denied", target="localhost",
                            port=srv.port)

    def _denied(self, host):
        srv = self.https_server()
        url = "https://%s:%d/" % (host, srv.port)
        run = self.start(["-q", "--allow", "localhost"],
                         curl("--cacert", Certs.get().ca_cert, "-o", "/dev/null",
                              "-w", "%{http_connect}", url), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 56, "curl: CONNECT answered with a non-2xx status")
        self.assertEqual(run.stdout.text(), "403", "curl's %{http_connect}")
        self.assertEqual(srv.requests, [], "a denied request never reaches the server")
        ev = self.assertOneEvent(run.audit_events(), event="decision", mode="connect",
                                 decision="deny", denial_category="host_denied", target=host,
                                 port=srv.port)
        self.assertEqual(num(ev, "status"), 403, ev)

    def test_curl_denied_ip_literal(self):
        self._denied("127.0.0.2")

    @unittest.skipUnless(IN_NETNS, "a proxy bug could send a DNS query off the machine; "
                                   "runs only in the private network namespace")
    def test_curl_denied_name(self):
        self._denied("denied.invalid")


class UrllibHttps(E2ETestCase):
    """Issue #2 item 10.2: python3 urllib as the child (CONNECT HTTP/1.0, no Host header)."""

    def test_urllib_https_localhost(self):
        srv = self.https_server()
        url = "https://localhost:%d/from-python" % srv.port
        run = self.start(["-q", "--allow", "localhost"],
                         [sys.executable, os.path.join(HERE, "client_urllib.py"), url,
                          Certs.get().ca_cert], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stdout.raw(), BODY)
        self.assertEqual([r["path"] for r in srv.wait_requests(1)], ["/from-python"])
        events = run.audit_events()
        self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                            target="localhost", port=srv.port)
        close = self.assertOneEvent(events, event="close", mode="connect", target="localhost",
                                    port=srv.port)
        self.assertGreater(num(close, "bytes_up") or 0, 0, close)
        self.assertGreater(num(close, "bytes_down") or 0, 0, close)

    def test_urllib_denied(self):
        srv = self.https_server()
        url = "https://127.0.0.2:%d/" % srv.port
        run = self.start(["-q", "--allow", "localhost"],
                         [sys.executable, os.path.join(HERE, "client_urllib.py"), url,
                          Certs.get().ca_cert], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 4, "urllib raises OSError('Tunnel connection failed: 403')")
        self.assertIn("403", run.stderr.text())
        self.assertEqual(srv.requests, [])


if __name__ == "__main__":
    unittest.main()
