"""nonoproxy-run -c/--config FILE (SPEC §11, issue #5 item 1) end to end.

The documented example docs/examples/nonoproxy.json is copied at test time and adapted to local
fixtures: every route upstream becomes the recording HTTPS upstream (one path per route), every
credential an env:// variable or a file:// path holding a fresh secret, the external proxy is
dropped, the test CA becomes ca_file, and "localhost" joins the example's allowlist. Checked:
an allowed CONNECT works and a host outside the allowlist is denied; each of the example's
inject modes puts its secret where it belongs; the env:// variables named by the file's routes
do not reach the child; command-line options add to the file's lists; a bad key, a bad file
and a missing file exit 125 with a message naming the file and the key path, and the child is
never started; the external proxy's password from the file never appears in any output.
"""

import base64
import json
import os
import shutil
import tempfile
import unittest

from npe2e import (AUDIT_BELOW, Certs, E2ETestCase, closed_port, find_leaks, http_exchange,
                   matching, open_tunnel, tunnel_roundtrip)
from upstream import DEFAULT_BODY, RecordingUpstream

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "docs", "examples", "nonoproxy.json")
PASSWORD = "np-e2e-config-pw-7c1d"
INJECT_ERR = "expected one of header, url_path, query_param, basic_auth"


def load_example():
    with open(EXAMPLE, encoding="utf-8") as f:
        return json.load(f)


def clean_env(**extra):
    """The test's environment without NP_E2E_* and NONOPROXY_EXTERNAL_PROXY, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NP_E2E_") and k != "NONOPROXY_EXTERNAL_PROXY"}
    env.update(extra)
    return env


class ConfigCase(E2ETestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nonoproxy-e2e-config-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write_config(self, doc, name="nonoproxy.json"):
        """Write doc (a dict, or raw text) into the test's directory; return its path."""
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
        return path

    def upstream(self):
        srv = RecordingUpstream()
        self.addCleanup(srv.close)
        return srv

    def adapt_example(self, srv):
        """The example with local upstreams and fresh secrets: (doc, env, secrets by prefix)."""
        doc = load_example()
        env = clean_env()
        secrets = {}
        for i, route in enumerate(doc["routes"]):
            prefix = route["prefix"]
            secret = "np-e2e-cfg-%s-%s" % (prefix, os.urandom(6).hex())
            if route.get("inject_mode", "header").lower() == "basic_auth":
                secret = "user:" + secret
            secrets[prefix] = secret
            route["upstream"] = srv.url(path="/" + prefix)
            ref = route.get("credential_key", "")
            if ref.startswith("file://"):
                path = os.path.join(self.dir, "secret-%d" % i)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(secret + "\n")
                route["credential_key"] = "file://" + path
            else:
                var = "NP_E2E_CFG_%d" % i
                env[var] = secret
                route["credential_key"] = "env://" + var
            if route.get("tls_ca") is not None:
                route["tls_ca"] = Certs.get().ca_cert
            if route.get("tls_client_cert") is not None:  # issue 14: a real PEM pair
                route["tls_client_cert"] = Certs.get().leaf_cert
                route["tls_client_key"] = Certs.get().leaf_key
        doc["allowed_hosts"].append("localhost")
        doc["external_proxy"] = None
        doc["ca_file"] = Certs.get().ca_cert
        return doc, env, secrets

    def assert_refused(self, options, want_stderr):
        """nonoproxy-run exits 125 with exactly want_stderr, and the child never starts."""
        marker = os.path.join(self.dir, "child-ran")
        run = self.start(options, ["sh", "-c", 'echo ran > "$1"', "sh", marker],
                         env=clean_env(), audit=False)
        self.assertEqual(run.wait(), 125, "exit status")
        self.assertEqual(run.stderr.text(), want_stderr)
        self.assertFalse(os.path.exists(marker), "the child was started")
        return run


class ExampleFile(ConfigCase):

    def test_example_connect_and_every_inject_mode(self):
        srv = self.upstream()
        echo = self.echo_server()
        doc, env, secrets = self.adapt_example(srv)
        path = self.write_config(doc)
        run, info = self.start_holder(["-q", "-c", path], env=env)
        child_env = info.env

        # CONNECT: "localhost" (added to the file's allowlist) is allowed, 127.0.0.1 is not.
        sock, resp, extra = open_tunnel(info.port, "localhost:%d" % echo.port, info.basic())
        self.assertEqual(resp.status, 200, resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"through the file's allowlist\n", extra),
                             b"through the file's allowlist\n")
        sock, resp, _ = open_tunnel(info.port, "127.0.0.1:%d" % echo.port, info.basic())
        self.assertIsNone(sock)
        self.assertEqual(resp.status, 403, resp.raw)

        # The file's routes: base URLs, phantoms, and no env:// variable in the child.
        tok = info.token
        for prefix in secrets:
            self.assertEqual(child_env.get("%s_BASE_URL" % prefix.upper()),
                             "http://127.0.0.1:%d/%s" % (info.port, prefix))
        self.assertEqual(child_env.get("OPENAI_API_KEY"), tok)
        self.assertEqual(child_env.get("GH_TOKEN"), tok)
        leaked = sorted(k for k in child_env if k.startswith("NP_E2E_CFG_"))
        self.assertEqual(leaked, [], "env:// variables of the file's routes reached the child")

        rows = [  # (prefix, request target, request headers, check of the upstream request)
            ("openai", "/openai/models", [("Authorization", "Bearer " + tok)],
             lambda r: self.assertEqual(r.header_all("authorization"),
                                        ["Bearer " + secrets["openai"]])),
            ("github", "/github/user", [("Authorization", "token " + tok)],
             lambda r: self.assertEqual(r.header_all("authorization"),
                                        ["token " + secrets["github"]])),
            ("telegram", "/telegram/bot%s/getMe" % tok, [],
             lambda r: self.assertEqual(r.request_line, "GET /telegram/bot%s/getMe HTTP/1.1"
                                        % secrets["telegram"])),
            ("maps", "/maps/geo?key=%s&q=1" % tok, [],
             lambda r: self.assertEqual(r.request_line, "GET /maps/geo?key=%s&q=1 HTTP/1.1"
                                        % secrets["maps"])),
            ("registry", "/registry/v2/",
             [("Authorization", "Basic " + base64.b64encode(("x:" + tok).encode()).decode())],
             lambda r: self.assertEqual(r.header_all("authorization"), [
                 "Basic " + base64.b64encode(secrets["registry"].encode()).decode()])),
        ]
        client = []
        for i, (prefix, target, headers, check) in enumerate(rows):
            with self.subTest(prefix):
                res = http_exchange(info.port, "GET", target, headers)
                client.append(res)
                self.assertEqual(res.status, 200, res.raw[:600])
                self.assertEqual(res.body, DEFAULT_BODY)
                req = srv.wait_requests(i + 1)[i]
                check(req)
        raw = srv.all_raw()
        self.assertNotIn(tok.encode(), raw, "the phantom reached the upstream")
        events = self.finish(run)
        self.assertTrue(matching(events, mode="connect", decision="allow"),
                        "no allowed CONNECT event " + AUDIT_BELOW)
        for prefix in secrets:
            self.assertTrue(matching(events, mode="reverse", route_id=prefix, decision="allow"),
                            "no allowed event for route %s %s" % (prefix, AUDIT_BELOW))
        blobs = {"responses": b"".join(r.raw + r.after for r in client),
                 "the child's environment": json.dumps(child_env),
                 "stdout": run.stdout.raw(), "stderr": run.stderr.raw(),
                 "the audit log": run.audit_text()}
        for secret in secrets.values():
            self.assertEqual(find_leaks(secret, blobs), [], "a secret leaked (form, where)")

    def test_command_line_adds_to_the_file(self):
        srv = self.upstream()
        echo = self.echo_server()
        secret = "np-e2e-cfg-cli-" + os.urandom(6).hex()
        path = self.write_config({
            "allowed_hosts": ["localhost"],
            "routes": [{"prefix": "file", "upstream": srv.url(path="/f")}],
            "bind_addr": "127.0.0.2", "header_timeout": 5})
        run, info = self.start_holder(
            ["-q", "-c", path, "--allow", "127.0.0.1", "--bind", "127.0.0.1",
             "--ca-file", Certs.get().ca_cert,
             "--route", "cli=%s,credential=env://NP_E2E_CLI" % srv.url(path="/c")],
            env=clean_env(NP_E2E_CLI=secret))
        self.assertEqual(info.host, "127.0.0.1", "--bind overrides the file's bind_addr")
        self.assertNotIn("NP_E2E_CLI", info.env)
        for host in ("localhost", "127.0.0.1"):  # the file's entry and the option's
            sock, resp, _ = open_tunnel(info.port, "%s:%d" % (host, echo.port), info.basic())
            self.assertEqual(resp.status, 200, "%s: %r" % (host, resp.raw))
            sock.close()
        res = http_exchange(info.port, "GET", "/file/x", [("Authorization", "Bearer " + info.token)])
        self.assertEqual(res.status, 200, res.raw[:600])
        res = http_exchange(info.port, "GET", "/cli/y", [("Authorization", "Bearer " + info.token)])
        self.assertEqual(res.status, 200, res.raw[:600])
        reqs = srv.wait_requests(2)
        self.assertEqual([r.request_line for r in reqs],
                         ["GET /f/x HTTP/1.1", "GET /c/y HTTP/1.1"])
        self.assertEqual(reqs[0].header_all("authorization"), [])
        self.assertEqual(reqs[1].header_all("authorization"), ["Bearer " + secret])
        self.finish(run)


class BadFiles(ConfigCase):

    def test_bad_inject_mode_names_the_key_path(self):
        doc = load_example()
        doc["routes"][1]["inject_mode"] = "bearer"
        path = self.write_config(doc)
        self.assert_refused(["-c", path],
                            "nonoproxy-run: %s: routes[1].inject_mode: %s\n" % (path, INJECT_ERR))

    def test_unknown_key_and_wrong_type(self):
        rows = [({"routes": [{"prefix": "p", "upstream": "https://h", "envvar": "X"}]},
                 "routes[0].envvar: unknown key"),
                ({"bind_port": 65536}, "bind_port: expected an integer from 0 to 65535"),
                ({"external_proxy": {"address": "u:%s@h:1" % PASSWORD, "bypass": []}},
                 "external_proxy.bypass: unknown key"),
                ({"external_proxy": {"address": ["u:%s@h:1" % PASSWORD]}},
                 "external_proxy.address: expected a non-empty string")]
        for i, (doc, want) in enumerate(rows):
            with self.subTest(want):
                path = self.write_config(doc, "bad%d.json" % i)
                self.assert_refused(["--config=" + path], "nonoproxy-run: %s: %s\n" % (path, want))

    def test_not_json_and_missing_file(self):
        path = self.write_config('{"allowed_hosts": ["a",]}\n')
        self.assert_refused(["-c", path],
                            "nonoproxy-run: %s: not valid JSON (line 1, column 24)\n" % path)
        missing = os.path.join(self.dir, "missing.json")
        self.assert_refused(["-c", missing],
                            "nonoproxy-run: %s: cannot read: No such file or directory\n" % missing)

    def test_value_refused_by_the_library_names_the_entry(self):
        path = self.write_config({"allowed_hosts": ["ok.example", "bad host"]})
        marker = os.path.join(self.dir, "child-ran")
        run = self.start(["-q", "-c", path], ["sh", "-c", 'echo ran > "$1"', "sh", marker],
                         env=clean_env(), audit=False)
        self.assertEqual(run.wait(), 125)
        self.assertTrue(run.stderr.text().startswith(
            "nonoproxy-run: %s: allowed_hosts[1] 'bad host': " % path), run.stderr.text())
        self.assertFalse(os.path.exists(marker))


class Password(ConfigCase):

    def test_external_proxy_password_never_printed(self):
        hold, dead = closed_port()
        self.addCleanup(hold.close)
        path = self.write_config({"external_proxy": {
            "address": "user:%s@127.0.0.1:%d" % (PASSWORD, dead),
            "bypass_hosts": ["localhost"]}})
        run, info = self.start_holder(["-v", "-c", path], env=clean_env())
        self.assertNotIn(PASSWORD, json.dumps(info.env))
        self.finish(run)
        err = run.stderr.text()
        self.assertIn("external proxy 127.0.0.1:%d (from %s: external_proxy.address), "
                      "1 bypass host" % (dead, path), err)
        self.assertNotIn(PASSWORD, err)
        self.assertNotIn(PASSWORD, run.stdout.text())
        self.assertNotIn(PASSWORD, run.audit_text())
        # A refused address: the message names the key, never the password.
        path = self.write_config({"external_proxy": {"address": "user:%s@nohost" % PASSWORD}},
                                 "bad.json")
        run = self.start(["-c", path], ["true"], env=clean_env(), audit=False)
        self.assertEqual(run.wait(), 125)
        err = run.stderr.text()
        self.assertTrue(err.startswith("nonoproxy-run: %s: external_proxy.address: " % path), err)
        self.assertNotIn(PASSWORD, err)

    def test_environment_variable_wins_over_the_file(self):
        hold, dead = closed_port()
        self.addCleanup(hold.close)
        path = self.write_config({"external_proxy": {"address": "u:%s@127.0.0.1:1" % PASSWORD}})
        run, _ = self.start_holder(
            ["-v", "-c", path],
            env=clean_env(NONOPROXY_EXTERNAL_PROXY="127.0.0.1:%d" % dead))
        self.finish(run)
        err = run.stderr.text()
        self.assertIn("external proxy 127.0.0.1:%d (from NONOPROXY_EXTERNAL_PROXY)" % dead, err)
        self.assertNotIn(PASSWORD, err)


if __name__ == "__main__":
    unittest.main()
