"""Reverse-proxy credential routes through nonoproxy-run (issue #3): SPEC §6, §7, §9, §11.

Every route points at upstream.RecordingUpstream (HTTPS with the test CA, trusted through
--ca-file), which records every byte it receives. The child is holder.py (the test reads the
base URL and the phantom from its environment and drives requests itself) or a real client run
as the child command (curl, python3 http.client) so that it uses the variables the proxy gave it.

What every injection test checks: the upstream got the real secret exactly where the mode puts
it and never the phantom; the client side (responses, the child's environment and output,
nonoproxy-run's stdout/stderr, the audit log) never holds the secret, raw or encoded.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

from npe2e import (AUDIT_BELOW, IO_TIMEOUT, Certs, E2ETestCase, closed_port, connect_head,
                   deadline_after, exchange, find_leaks, http_exchange, holder_command, matching,
                   num, open_tunnel, require_tool, tunnel_roundtrip)
from upstream import DEFAULT_BODY, Answer, RecordingUpstream, sse_event

TLS_HANDSHAKE_TIMEOUT = 10  # SPEC §1.1 default upstream TLS handshake timeout, seconds


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def route(prefix, upstream, **opts):
    """Return ["--route", "PREFIX=UPSTREAM,key=value,..."]; option names use '-' for '_'."""
    parts = ["%s=%s" % (prefix, upstream)]
    for key, value in opts.items():
        parts.append("%s=%s" % (key.replace("_", "-"), value))
    return ["--route", ",".join(parts)]


def new_secret(label, extra=""):
    """A distinctive secret, fresh per test."""
    return "np-e2e-%s-%s%s" % (label, os.urandom(8).hex(), extra)


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def near_misses(tok):
    """Wrong phantoms one edit away from the token: [(label, value)]."""
    i = len(tok) // 2
    changed = tok[:i] + ("0" if tok[i] != "0" else "1") + tok[i + 1:]
    rows = [("one character changed", changed),
            ("truncated by one", tok[:-1]),
            ("one extra character", tok + "0"),
            ("first character dropped", tok[1:]),
            ("wrong token", "0" * len(tok) if tok != "0" * len(tok) else "1" * len(tok))]
    if tok.upper() != tok:
        rows.append(("upper-cased", tok.upper()))
    return rows


def clean_env(**extra):
    """The test's environment without stray NP_E2E_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NP_E2E_")}
    env.update(extra)
    return env


PERCENT_ENCODED = re.compile(r"^(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*$")


def split_query(target):
    """('/path', ['a=1', 'key=...']) of an origin-form target (no decoding)."""
    path, sep, query = target.partition("?")
    return path, (query.split("&") if sep else [])


# Child command: a python3 http.client client of the route, using only what the proxy put in
# its environment. argv: PHANTOM_VARIABLE PATH. Prints one JSON line.
PY_CLIENT = r"""
import http.client, json, os, sys, urllib.parse
base = os.environ.get("SVC_BASE_URL", "")
phantom = os.environ.get(sys.argv[1], "")
u = urllib.parse.urlsplit(base)
out = {"base": base, "env_keys": sorted(os.environ), "status": None, "body": ""}
try:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", u.path + sys.argv[2], headers={"Authorization": "Bearer " + phantom,
                                                    "X-Client": "python-http.client"})
    r = c.getresponse()
    out["status"] = r.status
    out["body"] = r.read().decode("latin-1")
except Exception as exc:
    out["error"] = repr(exc)
sys.stdout.write(json.dumps(out) + "\n")
"""


class ReverseCase(E2ETestCase):
    """Fixtures and assertions shared by the reverse-route tests."""

    def upstream(self, **kw):
        srv = RecordingUpstream(**kw)
        self.addCleanup(srv.close)
        return srv

    def start_routes(self, routes, env=None, options=(), ca_file=True):
        """Start nonoproxy-run with holder.py and the given routes; return (run, ProxyInfo)."""
        opts = ["-q"]
        if ca_file:
            opts += ["--ca-file", Certs.get().ca_cert]
        opts += list(options)
        for r in routes:
            opts += r
        return self.start_holder(opts, env=clean_env() if env is None else env)

    def start_child(self, routes, command, env=None, options=()):
        """Start nonoproxy-run with the routes and a real client as the child command."""
        opts = ["-q", "--ca-file", Certs.get().ca_cert] + list(options)
        for r in routes:
            opts += r
        return self.start(opts, command, env=clean_env() if env is None else env,
                          stdin=subprocess.DEVNULL)

    def get(self, info, target, headers=(), method="GET", body=None):
        return http_exchange(info.port, method, target, headers, body)

    def assert_json_error(self, res, status, label=""):
        """A complete JSON error answer: status, Content-Type JSON, Content-Length matching a
        body {"error": "..."}, Connection: close, and the connection closed after it."""
        msg = "%s: %r" % (label, res.raw[:600])
        self.assertEqual(res.status, status, msg)
        self.assertEqual(res.framing, "length", "error answer without Content-Length " + msg)
        self.assertEqual((res.header("connection") or "").lower(), "close",
                         "error answer without Connection: close " + msg)
        self.assertTrue((res.header("content-type") or "").lower().startswith("application/json"),
                        "error answer is not application/json " + msg)
        body = res.json()
        self.assertIsInstance(body, dict, msg)
        self.assertIsInstance(body.get("error"), str, "no \"error\" string in the body " + msg)
        self.assertEqual(res.after, b"", "bytes after the error answer " + msg)

    def assert_ok(self, res, body=DEFAULT_BODY, label=""):
        self.assertEqual(res.status, 200, "%s: %r" % (label, res.raw[:600]))
        self.assertEqual(res.body, body, label)

    def assert_absent(self, needle, haystack, what):
        """Fail when needle occurs in haystack, showing where without dumping either (the
        haystack may be large or hold the test's secrets)."""
        if isinstance(needle, str) and isinstance(haystack, (bytes, bytearray)):
            needle = needle.encode()
        at = haystack.find(needle) if needle else -1
        if at >= 0:
            before = haystack[max(0, at - 60):at]
            self.fail("%s (at offset %d, after %r)" % (what, at, before))

    def assert_no_phantom_upstream(self, srv, token, extra=()):
        """The upstream never received the phantom (raw, base64, or in a Basic credential)."""
        raw = srv.all_raw()
        for label, needle in [("raw", token), ("base64", b64(token))] + list(extra):
            self.assert_absent(needle, raw, "the phantom (%s) reached the upstream" % label)

    def assert_no_secret_leak(self, run, info, secrets, client=()):
        """After nonoproxy-run exited: no secret, in any spelling, on the client side."""
        blobs = {"responses the client received": b"".join(r.raw + r.after for r in client),
                 "the child's environment": json.dumps(info.env) if info is not None else "",
                 "nonoproxy-run's stdout": run.stdout.raw(),
                 "nonoproxy-run's stderr": run.stderr.raw(),
                 "the audit log": run.audit_text()}
        for secret in secrets:
            self.assertEqual(find_leaks(secret, blobs), [], "the secret leaked to the client "
                             "side (form, where)")
        if info is not None:
            audit = run.audit_text()
            self.assert_absent(info.token, audit, "the phantom in the audit log")
            self.assert_absent(info.token, urllib.parse.unquote(audit),
                               "the phantom, percent-encoded, in the audit log")

    def reverse_events(self, events, **want):
        return matching(events, mode="reverse", **want)

    def assert_route_events(self, events, count, **want):
        """Exactly `count` reverse events match `want`; return them."""
        found = self.reverse_events(events, **want)
        self.assertEqual(len(found), count, "%d reverse events with %r, expected %d %s"
                         % (len(found), want, count, AUDIT_BELOW))
        return found


# --------------------------------------------------------------------------------------------
# Injection per mode (SPEC §6.3, §6.4, §6.7)
# --------------------------------------------------------------------------------------------

class Injection(ReverseCase):

    def test_header_mode_bearer_and_bare_phantom(self):
        srv = self.upstream()
        secret = new_secret("hdr")
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_HDR", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_HDR=secret))
        env = info.env
        self.assertEqual(env.get("SVC_BASE_URL"), "http://127.0.0.1:%d/svc" % info.port)
        self.assertEqual(env.get("SVC_API_KEY"), info.token, "the phantom is the session token")
        self.assertEqual(env.get("NONO_PROXY_TOKEN"), info.token)
        self.assertFalse("NP_E2E_HDR" in env, "an env:// credential variable reached the child")
        phantom = env["SVC_API_KEY"]
        rows = [("Bearer <phantom>", "Bearer " + phantom), ("bare phantom", phantom)]
        client = []
        for i, (label, value) in enumerate(rows):
            res = self.get(info, "/svc/v1/models?limit=2",
                           [("Authorization", value), ("X-Request-Id", "req-%d" % i)])
            client.append(res)
            self.assert_ok(res, label=label)
        reqs = srv.wait_requests(len(rows))
        self.assertEqual(len(reqs), len(rows))
        for i, req in enumerate(reqs):
            with self.subTest(rows[i][0]):
                self.assertEqual(req.request_line, "GET /v1/models?limit=2 HTTP/1.1")
                self.assertEqual(req.header_all("authorization"), ["Bearer " + secret])
                self.assertEqual(req.header_all("x-request-id"), ["req-%d" % i])
        self.assert_no_phantom_upstream(srv, phantom)
        events = self.finish(run)
        for ev in self.assert_route_events(events, len(rows), decision="allow", route_id="svc"):
            self.assertEqual(num(ev, "status"), 200, ev)
            self.assertEqual(ev.get("auth_mechanism"), "phantom_header", ev)
            self.assertEqual(ev.get("auth_outcome"), "succeeded", ev)
            self.assertEqual(ev.get("injection_mode"), "header", ev)
            self.assertIs(ev.get("managed_credential_active"), True, ev)
            self.assertEqual(ev.get("method"), "GET", ev)
        self.assert_no_secret_leak(run, info, [secret], client)

    def test_header_mode_custom_format_and_header(self):
        srv = self.upstream()
        gh_secret, key_secret = new_secret("gh"), new_secret("xkey")
        run, info = self.start_routes(
            [route("gh", srv.url(path="/gh"), credential="env://NP_E2E_GH", format="token {}",
                   env_var="GH_TOKEN"),
             route("key", srv.url(path="/key"), credential="env://NP_E2E_KEY",
                   header="X-Api-Key", env_var="KEY_API_KEY")],
            env=clean_env(NP_E2E_GH=gh_secret, NP_E2E_KEY=key_secret))
        tok = info.token
        unrelated = "Basic " + b64("someone:unrelated")
        rows = [
            ("format applied to the phantom", "gh", [("Authorization", "token " + tok)]),
            ("Bearer phantom on a format route", "gh", [("Authorization", "Bearer " + tok)]),
            ("bare phantom on a format route", "gh", [("Authorization", tok)]),
            ("custom header, bare phantom", "key",
             [("X-Api-Key", tok), ("Authorization", unrelated)]),
            ("custom header, Bearer phantom", "key", [("X-Api-Key", "Bearer " + tok)]),
        ]
        client = []
        for label, prefix, headers in rows:
            res = self.get(info, "/%s/repos" % prefix, headers)
            client.append(res)
            self.assert_ok(res, label=label)
        reqs = srv.wait_requests(len(rows))
        self.assertEqual(len(reqs), len(rows))
        for (label, prefix, _), req in zip(rows, reqs):
            with self.subTest(label):
                self.assertEqual(req.target, "/%s/repos" % prefix)
                if prefix == "gh":
                    self.assertEqual(req.header_all("authorization"), ["token " + gh_secret])
                    self.assertEqual(req.header_all("x-api-key"), [])
                else:
                    self.assertEqual(req.header_all("x-api-key"), [key_secret])
        self.assertEqual(reqs[3].header_all("authorization"), [unrelated],
                         "an Authorization header that is not the route's header is kept")
        self.assert_no_phantom_upstream(srv, tok)
        events = self.finish(run)
        self.assert_route_events(events, 3, decision="allow", route_id="gh",
                                 injection_mode="header", auth_outcome="succeeded")
        self.assert_route_events(events, 2, decision="allow", route_id="key",
                                 injection_mode="header", auth_outcome="succeeded")
        self.assert_no_secret_leak(run, info, [gh_secret, key_secret], client)

    def test_basic_auth_mode(self):
        srv = self.upstream()
        secret = "e2e-user:p@ss:w0rd " + os.urandom(6).hex()
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_BASIC", inject="basic_auth",
                   env_var="SVC_PASSWORD")],
            env=clean_env(NP_E2E_BASIC=secret))
        tok = info.env["SVC_PASSWORD"]
        self.assertEqual(tok, info.token)
        rows = [("any user", "Basic " + b64("anyone:" + tok)),
                ("empty user", "Basic " + b64(":" + tok)),
                ("scheme in lower case", "basic " + b64("x:" + tok))]
        client = []
        for label, value in rows:
            res = self.get(info, "/svc/private?x=1", [("Authorization", value)])
            client.append(res)
            self.assert_ok(res, label=label)
        reqs = srv.wait_requests(len(rows))
        self.assertEqual(len(reqs), len(rows))
        want = "Basic " + base64.b64encode(secret.encode()).decode()
        for (label, _), req in zip(rows, reqs):
            with self.subTest(label):
                self.assertEqual(req.request_line, "GET /private?x=1 HTTP/1.1")
                self.assertEqual(req.header_all("authorization"), [want])
        self.assert_no_phantom_upstream(srv, tok, [(l, v.split(" ", 1)[1]) for l, v in rows])
        events = self.finish(run)
        for ev in self.assert_route_events(events, len(rows), decision="allow", route_id="svc"):
            self.assertEqual(ev.get("injection_mode"), "basic_auth", ev)
            self.assertEqual(ev.get("auth_outcome"), "succeeded", ev)
            self.assertIs(ev.get("managed_credential_active"), True, ev)
        self.assert_no_secret_leak(run, info, [secret], client)

    def test_url_path_mode(self):
        srv = self.upstream()
        secret = "123456789:AAE-" + os.urandom(10).hex()
        secret2 = "987654321:BBF-" + os.urandom(10).hex()
        run, info = self.start_routes(
            [route("tg", srv.url(), credential="env://NP_E2E_TG", inject="url_path",
                   path_pattern="/bot{}/", env_var="TG_TOKEN"),
             route("tg2", srv.url(), credential="env://NP_E2E_TG2", inject="url_path",
                   path_pattern="/bot{}/", path_replacement="/v2/key/{}/", env_var="TG2_TOKEN")],
            env=clean_env(NP_E2E_TG=secret, NP_E2E_TG2=secret2))
        tok = info.env["TG_TOKEN"]
        self.assertEqual(info.env.get("TG2_TOKEN"), tok)
        rows = [("/tg/bot%s/getMe?chat_id=5" % tok, "/bot%s/getMe?chat_id=5" % secret),
                ("/tg/bot%s/sendMessage" % tok, "/bot%s/sendMessage" % secret),
                ("/tg2/bot%s/sendMessage?x=%%2F" % tok, "/v2/key/%s/sendMessage?x=%%2F" % secret2)]
        client = []
        for target, _ in rows:
            res = self.get(info, target, [("X-Trace", "1")])
            client.append(res)
            self.assert_ok(res, label=target.replace(tok, "<phantom>"))
        reqs = srv.wait_requests(len(rows))
        self.assertEqual([r.target for r in reqs], [want for _, want in rows],
                         "upstream targets (these hold the test's secrets)")
        for req in reqs:
            self.assertEqual(req.header_all("x-trace"), ["1"])
        self.assert_no_phantom_upstream(srv, tok)
        events = self.finish(run)
        allowed = self.assert_route_events(events, 2, decision="allow", route_id="tg")
        allowed += self.assert_route_events(events, 1, decision="allow", route_id="tg2")
        for ev in allowed:
            self.assertEqual(ev.get("injection_mode"), "url_path", ev)
            self.assertEqual(ev.get("auth_mechanism"), "phantom_path", ev)
            self.assertEqual(ev.get("auth_outcome"), "succeeded", ev)
            self.assertIn("[REDACTED]", ev.get("path") or "", "phantom redacted in path: %r" % ev)
            self.assert_absent(tok, json.dumps(ev), "the phantom in an audit event")
        self.assert_no_secret_leak(run, info, [secret, secret2], client)

    def test_query_param_mode(self):
        srv = self.upstream()
        secret = "q s/e+c&r=t%%#?%s" % os.urandom(6).hex()
        run, info = self.start_routes(
            [route("maps", srv.url(), credential="env://NP_E2E_Q", inject="query_param",
                   query_param="key", env_var="MAPS_KEY")],
            env=clean_env(NP_E2E_Q=secret))
        tok = info.env["MAPS_KEY"]
        self.assertEqual(tok, info.token)
        pct_tok = "".join("%%%02X" % ord(c) for c in tok[:3]) + tok[3:]
        rows = [  # (label, client target after /maps, upstream path, other params in order)
            ("phantom first", "/geo?key=%s&a=1" % tok, "/geo", ["a=1"]),
            ("phantom among others, repeated",
             "/geo/x?a=1&key=%s&b=%%2Fx%%20y&c&d=&key=other&e=+%%2B" % tok, "/geo/x",
             ["a=1", "b=%2Fx%20y", "c", "d=", "e=+%2B"]),
            ("phantom percent-encoded by the client", "/geo?key=%s" % pct_tok, "/geo", []),
        ]
        client = []
        for label, target, _, _ in rows:
            res = self.get(info, "/maps" + target)
            client.append(res)
            self.assert_ok(res, label=label)
        reqs = srv.wait_requests(len(rows))
        self.assertEqual(len(reqs), len(rows))
        for (label, target, want_path, others), req in zip(rows, reqs):
            with self.subTest(label):
                path, params = split_query(req.target)
                self.assertEqual(path, want_path)
                _, sent = split_query(target)
                keys = [p for p in params if p.split("=", 1)[0] == "key"]
                self.assertEqual(len(keys), len([p for p in sent if p.split("=", 1)[0] == "key"]),
                                 "every key= parameter is replaced, none added or lost")
                for p in keys:
                    value = p.split("=", 1)[1]
                    self.assertRegex(value, PERCENT_ENCODED, "the secret is percent-encoded")
                    self.assertEqual(urllib.parse.unquote_to_bytes(value), secret.encode(),
                                     "the key= value decodes to the secret")
                self.assertEqual([p for p in params if p.split("=", 1)[0] != "key"], others,
                                 "the other parameters are byte-identical and in order")
                self.assertEqual([i for i, p in enumerate(params) if p.startswith("key=")],
                                 [i for i, p in enumerate(sent) if p.startswith("key=")],
                                 "key= stays where the client put it")
        self.assert_no_phantom_upstream(srv, tok, [("percent-encoded", pct_tok)])
        events = self.finish(run)
        for ev in self.assert_route_events(events, len(rows), decision="allow", route_id="maps"):
            self.assertEqual(ev.get("injection_mode"), "query_param", ev)
            self.assertEqual(ev.get("auth_mechanism"), "phantom_query", ev)
            self.assertIn("[REDACTED]", ev.get("path") or "", "phantom redacted in path: %r" % ev)
        self.assert_no_secret_leak(run, info, [secret], client)

    def test_file_credential(self):
        srv = self.upstream()
        secret = new_secret("file")
        path = os.path.join(Certs.get().dir, "secret-%s.txt" % os.urandom(4).hex())
        with open(path, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
        self.addCleanup(os.unlink, path)
        run, info = self.start_routes([route("svc", srv.url(), credential="file://" + path)])
        phantom_vars = sorted(k for k, v in info.env.items() if v == info.token)
        self.assertEqual(phantom_vars, ["NONO_PROXY_TOKEN"],
                         "a file:// key without env-var gives no phantom variable")
        res = self.get(info, "/svc/x", [("Authorization", "Bearer " + info.token)])
        self.assert_ok(res)
        req = srv.wait_requests(1)[0]
        self.assertEqual(req.header_all("authorization"), ["Bearer " + secret],
                         "one trailing newline is stripped from a file credential")
        self.finish(run)
        self.assert_no_secret_leak(run, info, [secret], [res])

    def test_base_path_and_host_rewrite(self):
        srv = self.upstream()
        secret = new_secret("base")
        run, info = self.start_routes(
            [route("svc", srv.url(path="/api/v1"), credential="env://NP_E2E_BASE",
                   env_var="SVC_API_KEY"),
             route("loc", srv.url(host="localhost"), credential="env://NP_E2E_BASE",
                   env_var="LOC_API_KEY")],
            env=clean_env(NP_E2E_BASE=secret))
        auth = [("Authorization", "Bearer " + info.token)]
        self.assertEqual(info.env.get("LOC_BASE_URL"), "http://127.0.0.1:%d/loc" % info.port)
        self.assert_ok(self.get(info, "/svc/chat/completions?stream=false", auth))
        self.assert_ok(self.get(info, "/loc/x", auth))
        reqs = srv.wait_requests(2)
        self.assertEqual(reqs[0].target, "/api/v1/chat/completions?stream=false")
        self.assertEqual(reqs[0].header_all("host"), ["127.0.0.1:%d" % srv.port])
        self.assertEqual(reqs[1].target, "/x")
        self.assertEqual(reqs[1].header_all("host"), ["localhost:%d" % srv.port])
        self.finish(run)


# --------------------------------------------------------------------------------------------
# What is forwarded (SPEC §6.4)
# --------------------------------------------------------------------------------------------

class Forwarding(ReverseCase):

    def test_headers_query_host_and_hop_by_hop(self):
        srv = self.upstream()
        secret = new_secret("fwd")
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_FWD", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_FWD=secret))
        tok = info.token
        query = "b=2&a=%20&c&z=%2F..%2F&e=caf%C3%A9&f=a+b"
        headers = [
            ("Authorization", "Bearer " + tok),
            ("X-Keep", "value  with   inner spaces; and=symbols"),
            ("X-Dup", "first"),
            ("User-Agent", "np-e2e/1.0"),
            ("X-Dup", "second"),
            ("Accept", "application/json"),
            ("Cookie", "a=b; c=d"),
            ("Connection", "keep-alive, X-Hop-Custom"),
            ("X-Hop-Custom", "hop-value-must-not-pass"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic " + b64("nono:" + tok)),
        ]
        res = http_exchange(info.port, "GET", "/svc/path/to/x?" + query, headers, close=False)
        self.assert_ok(res)
        req = srv.wait_requests(1)[0]
        self.assertEqual(req.request_line, "GET /path/to/x?%s HTTP/1.1" % query,
                         "path and query byte-identical")
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % srv.port], "Host rewritten")
        self.assertEqual(req.header_all("x-keep"), ["value  with   inner spaces; and=symbols"])
        self.assertEqual(req.header_all("x-dup"), ["first", "second"], "duplicates in order")
        self.assertEqual(req.header_all("user-agent"), ["np-e2e/1.0"])
        self.assertEqual(req.header_all("accept"), ["application/json"])
        self.assertEqual(req.header_all("cookie"), ["a=b; c=d"])
        self.assertEqual(req.header_all("authorization"), ["Bearer " + secret])
        names = req.header_names()
        for hop in ("x-hop-custom", "keep-alive", "proxy-connection", "te",
                    "proxy-authorization"):
            self.assertNotIn(hop, names, "hop-by-hop header %r forwarded: %r" % (hop, req))
        for value in req.header_all("connection"):
            self.assertNotIn("x-hop-custom", value.lower(), "client's Connection forwarded")
        self.assert_absent(b"hop-value-must-not-pass", srv.all_raw(), "a Connection-listed "
                           "header's value reached the upstream")
        self.assert_no_phantom_upstream(srv, tok, [("Basic", b64("nono:" + tok))])
        order = [n for n in names if n in ("x-keep", "x-dup", "user-agent", "accept", "cookie")]
        self.assertEqual(order, ["x-keep", "x-dup", "user-agent", "x-dup", "accept", "cookie"],
                         "end-to-end headers keep their order")
        # A Proxy-Authorization that does not hold the token is not forwarded either: it is
        # hop-by-hop, whatever its value.
        corp = "Basic " + b64("corp-user:corp-proxy-password")
        res2 = self.get(info, "/svc/y", [("Authorization", "Bearer " + tok),
                                         ("Proxy-Authorization", corp)])
        self.assert_ok(res2)
        req2 = srv.wait_requests(2)[1]
        self.assertEqual(req2.target, "/y")
        self.assertNotIn("proxy-authorization", req2.header_names(), req2)
        self.assert_absent(b64("corp-user:corp-proxy-password"), srv.all_raw(),
                           "Proxy-Authorization reached the upstream")
        self.finish(run)
        self.assert_no_secret_leak(run, info, [secret], [res, res2])

    def test_route_without_credential(self):
        srv = self.upstream()
        run, info = self.start_routes([route("open", srv.url())])
        tok = info.token
        self.assertIn("OPEN_BASE_URL", info.env)
        good = [("phantom as Authorization: Bearer", [("Authorization", "Bearer " + tok)]),
                ("Proxy-Authorization Basic",
                 [("Proxy-Authorization", "Basic " + b64("nono:" + tok))]),
                ("Proxy-Authorization Bearer", [("Proxy-Authorization", "Bearer " + tok)])]
        for label, headers in good:
            self.assert_ok(self.get(info, "/open/x", headers + [("X-Other", "1")]), label=label)
        reqs = srv.wait_requests(len(good))
        self.assertEqual(len(reqs), len(good))
        for (label, _), req in zip(good, reqs):
            with self.subTest(label):
                self.assertEqual(req.target, "/x")
                self.assertEqual(req.header_all("x-other"), ["1"])
                self.assertNotIn("proxy-authorization", req.header_names())
        self.assert_no_phantom_upstream(srv, tok, [("Basic", b64("nono:" + tok))])
        bad = [("no credential at all", []),
               ("wrong Bearer", [("Authorization", "Bearer " + near_misses(tok)[0][1])]),
               ("wrong Proxy-Authorization", [("Proxy-Authorization",
                                               "Basic " + b64("nono:" + tok[:-1]))])]
        for label, headers in bad:
            res = self.get(info, "/open/x", headers)
            with self.subTest(label):
                self.assertIn(res.status, (401, 407), "%s: %r" % (label, res.raw[:400]))
                self.assertEqual((res.header("connection") or "").lower(), "close")
        self.assertEqual(srv.request_count(), len(good), "a refused request reached upstream")
        events = self.finish(run)
        self.assert_route_events(events, len(bad), decision="deny", route_id="open",
                                 denial_category="authentication_failed")


# --------------------------------------------------------------------------------------------
# Phantom rejection (SPEC §6.3)
# --------------------------------------------------------------------------------------------

class PhantomRejection(ReverseCase):

    def test_wrong_and_near_miss_phantoms_get_401_and_nothing_upstream(self):
        srv = self.upstream()
        secrets = {p: new_secret(p) for p in ("h", "b", "u", "q")}
        secrets["b"] = "user-b:" + secrets["b"]
        run, info = self.start_routes(
            [route("h", srv.url(path="/h"), credential="env://NP_E2E_H", env_var="H_KEY"),
             route("b", srv.url(path="/b"), credential="env://NP_E2E_B", inject="basic_auth",
                   env_var="B_KEY"),
             route("u", srv.url(path="/u"), credential="env://NP_E2E_U", inject="url_path",
                   path_pattern="/bot{}/", env_var="U_KEY"),
             route("q", srv.url(path="/q"), credential="env://NP_E2E_Q", inject="query_param",
                   query_param="key", env_var="Q_KEY")],
            env=clean_env(**{"NP_E2E_" + k.upper(): v for k, v in secrets.items()}))
        tok = info.token
        rows = []  # (label, prefix, target, headers)
        for label, n in near_misses(tok):
            rows += [
                ("header: Bearer, " + label, "h", "/h/x", [("Authorization", "Bearer " + n)]),
                ("header: bare, " + label, "h", "/h/x", [("Authorization", n)]),
                ("basic_auth: " + label, "b", "/b/x",
                 [("Authorization", "Basic " + b64("u:" + n))]),
                ("url_path: " + label, "u", "/u/bot%s/getMe" % n, []),
                ("query_param: " + label, "q", "/q/x?key=%s&a=1" % n, []),
            ]
        rows += [
            ("header: none", "h", "/h/x", []),
            ("header: empty", "h", "/h/x", [("Authorization", "")]),
            ("header: Bearer without a token", "h", "/h/x", [("Authorization", "Bearer")]),
            ("header: phantom then garbage", "h", "/h/x", [("Authorization", "Bearer %s x" % tok)]),
            ("header: phantom in another header", "h", "/h/x", [("X-Api-Key", tok)]),
            ("header: phantom in the path instead", "h", "/h/%s/x" % tok, []),
            ("header: Basic scheme", "h", "/h/x", [("Authorization", "Basic " + b64("u:" + tok))]),
            ("basic_auth: none", "b", "/b/x", []),
            ("basic_auth: Bearer phantom", "b", "/b/x", [("Authorization", "Bearer " + tok)]),
            ("basic_auth: bare phantom", "b", "/b/x", [("Authorization", tok)]),
            ("basic_auth: no colon", "b", "/b/x", [("Authorization", "Basic " + b64(tok))]),
            ("basic_auth: phantom as the user", "b", "/b/x",
             [("Authorization", "Basic " + b64(tok + ":x"))]),
            ("basic_auth: not base64", "b", "/b/x", [("Authorization", "Basic %%%%")]),
            ("url_path: empty token", "u", "/u/bot/getMe", []),
            ("url_path: no pattern", "u", "/u/getMe", [("Authorization", "Bearer " + tok)]),
            ("query_param: none", "q", "/q/x?a=1", []),
            ("query_param: Bearer header instead", "q", "/q/x",
             [("Authorization", "Bearer " + tok)]),
            ("query_param: name case differs", "q", "/q/x?KEY=%s" % tok, []),
            ("query_param: longer name", "q", "/q/x?xkey=%s" % tok, []),
            ("query_param: in the path", "q", "/q/key=%s" % tok, []),
        ]
        client = []
        for label, _, target, headers in rows:
            res = self.get(info, target, headers)
            client.append(res)
            self.assert_json_error(res, 401, label)
        # A valid request per route afterwards: when it arrives, anything a refused request
        # might have sent would have arrived before it.
        valid = [("/h/x", [("Authorization", "Bearer " + tok)]),
                 ("/b/x", [("Authorization", "Basic " + b64("u:" + tok))]),
                 ("/u/bot%s/getMe" % tok, []), ("/q/x?key=%s" % tok, [])]
        for target, headers in valid:
            self.assert_ok(self.get(info, target, headers), label=target.replace(tok, "<tok>"))
        reqs = srv.wait_requests(len(valid))
        self.assertEqual(len(reqs), len(valid),
                         "refused requests reached the upstream: %r" % [r.target for r in reqs])
        raw = srv.all_raw()
        for label, n in near_misses(tok):
            self.assert_absent(n, raw, "a wrong phantom (%s) reached the upstream" % label)
        self.assert_no_phantom_upstream(srv, tok)
        events = self.finish(run)
        modes = {"h": ("header", "phantom_header"), "b": ("basic_auth", "phantom_header"),
                 "u": ("url_path", "phantom_path"), "q": ("query_param", "phantom_query")}
        for prefix, (mode, mechanism) in modes.items():
            want = len([r for r in rows if r[1] == prefix])
            for ev in self.assert_route_events(events, want, decision="deny", route_id=prefix):
                self.assertEqual(num(ev, "status"), 401, ev)
                self.assertEqual(ev.get("denial_category"), "authentication_failed", ev)
                self.assertEqual(ev.get("auth_outcome"), "failed", ev)
                self.assertEqual(ev.get("injection_mode"), mode, ev)
                self.assertIs(ev.get("managed_credential_active"), True, ev)
                if prefix != "b":  # BASIC_AUTH's mechanism is not fixed by the contract
                    self.assertEqual(ev.get("auth_mechanism"), mechanism, ev)
        self.assert_no_secret_leak(run, info, list(secrets.values()), client)

    def test_percent_encoded_phantom_never_reaches_the_audit_log(self):
        # SPEC §9: the audit log never holds the token or a phantom. A client may percent-encode
        # it (QUERY_PARAM compares the decoded value); whatever the answer, the decoded audit
        # log must not hold the token.
        srv = self.upstream()
        run, info = self.start_routes(
            [route("u", srv.url(), credential="env://NP_E2E_U", inject="url_path",
                   path_pattern="/bot{}/", env_var="U_KEY"),
             route("q", srv.url(), credential="env://NP_E2E_Q", inject="query_param",
                   query_param="key", env_var="Q_KEY")],
            env=clean_env(NP_E2E_U=new_secret("u"), NP_E2E_Q=new_secret("q")))
        tok = info.token
        full = "".join("%%%02X" % ord(c) for c in tok)
        part = "%%%02x" % ord(tok[0]) + tok[1:]
        rows = [("/u/bot%s/getMe" % full, []), ("/u/bot%s/getMe" % part, []),
                ("/q/x?key=%s" % full, []), ("/q/x?a=1&key=%s" % part, [])]
        for target, headers in rows:
            res = self.get(info, target, headers)
            self.assertIn(res.status, (200, 401), res.raw[:300])
        events = self.finish(run)
        self.assertEqual(len(self.reverse_events(events)), len(rows), AUDIT_BELOW)
        audit = run.audit_text()
        self.assert_absent(tok, urllib.parse.unquote(audit),
                           "the phantom (percent-decoded) in the audit log")
        self.assert_absent(tok[1:], audit, "the phantom (after its first character) in the "
                           "audit log")


# --------------------------------------------------------------------------------------------
# Prefix matching and traversal (SPEC §6.1)
# --------------------------------------------------------------------------------------------

class Routing(ReverseCase):

    def setUp(self):
        self.srv = self.upstream()
        self.secret = new_secret("rt")
        self.run_, self.info = self.start_routes(
            [route("svc", self.srv.url(), credential="env://NP_E2E_RT", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_RT=self.secret))
        self.auth = [("Authorization", "Bearer " + self.info.token)]

    def test_prefix_boundary(self):
        unknown = ["/svcX", "/svcX/a", "/sv", "/sv/a", "/SVC/a", "/Svc", "/", "/other/a",
                   "/svc.x/a", "/svc-/a", "/x/svc/a", "//svc/a"]
        for target in unknown:
            self.assert_json_error(self.get(self.info, target, self.auth), 404, target)
        self.assertEqual(self.srv.request_count(), 0)
        routed = [("/svc", "/"), ("/svc/", "/"), ("/svc?x=1", "/?x=1"), ("/svc/a", "/a"),
                  ("/svc/a/b/?c=d", "/a/b/?c=d")]
        for target, _ in routed:
            self.assert_ok(self.get(self.info, target, self.auth), label=target)
        reqs = self.srv.wait_requests(len(routed))
        self.assertEqual([r.target for r in reqs], [want for _, want in routed])
        events = self.finish(self.run_)
        for ev in self.assert_route_events(events, len(unknown), decision="deny",
                                           denial_category="route_not_found"):
            self.assertEqual(num(ev, "status"), 404, ev)
        self.assert_route_events(events, len(routed), decision="allow", route_id="svc")

    def test_traversal_out_of_the_prefix_gets_400(self):
        escaping = ["/svc/../x", "/svc/%2e%2e/x", "/svc/..%2fx", "/svc/%2E%2E%2Fx",
                    "/svc/a/../../x", "/svc/./../x", "/svc/%2e./x", "/svc/.%2E/x", "/svc/..",
                    "/svc/..%5cx", "/svc/a/%2e%2e/%2E%2e/x", "/svc/a%2f..%2f..%2fx",
                    "/svc/..?q=1"]
        for target in escaping:
            self.assert_json_error(self.get(self.info, target, self.auth), 400, target)
        inside = [("/svc/a/../b", "/b"), ("/svc/./c", "/c"), ("/svc/a?x=../../y", "/a?x=../../y")]
        for target, _ in inside:
            self.assert_ok(self.get(self.info, target, self.auth), label=target)
        reqs = self.srv.wait_requests(len(inside))
        self.assertEqual([r.target for r in reqs], [want for _, want in inside],
                         "escaping requests reached the upstream, or paths not normalised")
        events = self.finish(self.run_)
        for ev in self.assert_route_events(events, len(escaping), decision="deny"):
            self.assertEqual(num(ev, "status"), 400, ev)


# --------------------------------------------------------------------------------------------
# Streaming, bodies, keep-alive (SPEC §6.4, §6.6)
# --------------------------------------------------------------------------------------------

def body_digest_handler(req):
    """Answer with the length and SHA-256 of the request body."""
    info = {"len": len(req.body), "sha256": hashlib.sha256(req.body).hexdigest(),
            "framing": req.framing}
    return Answer.fixed(json.dumps(info).encode(), headers=(("Content-Type", "application/json"),))


class Streaming(ReverseCase):

    def setUp(self):
        self.srv = self.upstream()
        self.secret = new_secret("st")
        self.run_, self.info = self.start_routes(
            [route("svc", self.srv.url(), credential="env://NP_E2E_ST", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_ST=self.secret))
        self.hdrs = {"Authorization": "Bearer " + self.info.token}

    def connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.info.port, timeout=IO_TIMEOUT)
        self.addCleanup(conn.close)
        return conn

    def test_sse_events_flow_one_by_one(self):
        count, interval = 5, 0.2
        self.srv.handler = lambda req: Answer.sse(count, interval)
        conn = self.connection()
        conn.request("GET", "/svc/v1/stream", headers=self.hdrs)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
        buf, events, arrivals = b"", [], []
        end = deadline_after(IO_TIMEOUT)
        while len(events) < count and time.monotonic() < end:
            data = resp.read1(65536)
            if not data:
                break
            now = time.monotonic()
            buf += data
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                events.append(ev + b"\n\n")
                arrivals.append(now)
        self.assertEqual(events, [sse_event(i) for i in range(count)])
        self.assertEqual(resp.read(), b"", "nothing after the last event")
        sent = self.srv.requests()[0].sent_times
        self.assertEqual(len(sent), count)
        self.assertLess(arrivals[0], sent[-1],
                        "the first event arrived only after the last was sent: buffered")
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        for i, gap in enumerate(gaps):
            self.assertGreaterEqual(gap, interval / 2,
                                    "events %d and %d arrived %.3f s apart (sent %.3f s apart): "
                                    "the proxy batches events; all gaps %r"
                                    % (i, i + 1, gap, sent[i + 1] - sent[i], gaps))
        self.finish(self.run_)

    def test_request_bodies_content_length_and_chunked(self):
        self.srv.handler = body_digest_handler
        big = os.urandom(1 << 20)
        conn = self.connection()
        conn.request("POST", "/svc/upload", body=big,
                     headers=dict(self.hdrs, **{"Content-Type": "application/octet-stream"}))
        resp = conn.getresponse()
        got = json.loads(resp.read())
        self.assertEqual(resp.status, 200)
        self.assertEqual((got["len"], got["sha256"]), (len(big), hashlib.sha256(big).hexdigest()))
        sizes = [1, 4095, 65536, 100000]
        sizes.append(len(big) - 1 - sum(sizes))  # the chunked body is big[:-1]
        chunks, off = [], 0
        for n in sizes:
            chunks.append(big[off:off + n])
            off += n
        conn.request("PUT", "/svc/upload2", body=iter(chunks), encode_chunked=True,
                     headers=dict(self.hdrs, **{"Transfer-Encoding": "chunked"}))
        resp = conn.getresponse()
        got = json.loads(resp.read())
        self.assertEqual(resp.status, 200)
        self.assertEqual((got["len"], got["sha256"]),
                         (len(big) - 1, hashlib.sha256(big[:-1]).hexdigest()))
        conn.request("POST", "/svc/empty", body=b"", headers=self.hdrs)
        resp = conn.getresponse()
        self.assertEqual(json.loads(resp.read())["len"], 0)
        reqs = self.srv.wait_requests(3)
        self.assertEqual([(r.method, r.target) for r in reqs],
                         [("POST", "/upload"), ("PUT", "/upload2"), ("POST", "/empty")])
        self.assertEqual(reqs[0].body, big)
        self.assertEqual(reqs[1].body, big[:-1])
        self.assertEqual(reqs[0].header_all("content-type"), ["application/octet-stream"])
        for r in reqs:
            self.assertFalse(r.header_all("content-length") and r.header_all("transfer-encoding"),
                             "both Content-Length and Transfer-Encoding sent upstream: %r" % r)
        self.finish(self.run_)

    def test_response_framings(self):
        big = os.urandom((1 << 20) + 17)
        chunks = [os.urandom(n) for n in (1, 10, 4096, 70000, 3)]
        answers = {"/big": Answer.fixed(big, headers=(("Content-Type", "application/x-bin"),)),
                   "/chunked": Answer.chunked(chunks),
                   "/nocontent": Answer.fixed(b"", status=204, headers=()),
                   "/head": Answer.fixed(b"0123456789")}
        self.srv.handler = lambda req: answers[req.target]
        conn = self.connection()
        conn.request("GET", "/svc/big", headers=self.hdrs)
        resp = conn.getresponse()
        data = resp.read()
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(data), len(big))
        self.assertTrue(data == big, "1 MiB body differs")
        self.assertEqual(resp.getheader("Content-Type"), "application/x-bin")
        conn.request("GET", "/svc/chunked", headers=self.hdrs)
        resp = conn.getresponse()
        self.assertEqual(resp.read(), b"".join(chunks))
        conn.request("GET", "/svc/nocontent", headers=self.hdrs)
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (204, b""))
        conn.request("HEAD", "/svc/head", headers=self.hdrs)
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, b""))
        conn.request("GET", "/svc/big", headers=self.hdrs)  # the connection is still usable
        self.assertEqual(conn.getresponse().read(), big)
        self.finish(self.run_)

    def test_keep_alive_reuses_connections(self):
        conn = self.connection()
        socks = []
        for i in range(5):
            conn.request("GET", "/svc/ka/%d" % i, headers=self.hdrs)
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, DEFAULT_BODY), "request %d" % i)
            self.assertFalse(resp.will_close, "the proxy closes the client connection after "
                             "request %d" % i)
            socks.append(conn.sock)
        self.assertTrue(all(s is socks[0] for s in socks), "http.client had to reconnect")
        reqs = self.srv.wait_requests(5)
        self.assertEqual([r.target for r in reqs], ["/ka/%d" % i for i in range(5)])
        self.assertLessEqual(self.srv.connection_count(), 2,
                             "upstream connections are not reused (%d for 5 requests)"
                             % self.srv.connection_count())
        self.finish(self.run_)


# --------------------------------------------------------------------------------------------
# Credentials and the child's environment (SPEC §7, §11)
# --------------------------------------------------------------------------------------------

class Credentials(ReverseCase):

    def test_env_credential_is_removed_from_the_child(self):
        srv = self.upstream()
        secret = new_secret("env")
        secret2 = new_secret("env2")
        env = clean_env(NP_E2E_SECRET=secret, OPENAI_API_KEY=secret2)
        run = self.start_child(
            [route("svc", srv.url(), credential="env://NP_E2E_SECRET"),
             route("openai", srv.url(path="/openai"), credential="env://OPENAI_API_KEY",
                   env_var="OPENAI_API_KEY")],
            [sys.executable, "-c", PY_CLIENT, "NONO_PROXY_TOKEN", "/v1/whoami?x=1"], env=env)
        self.assertEqual(run.wait(), 0, "the child's exit status")
        out = json.loads(run.stdout.text().strip().splitlines()[-1])
        self.assertEqual(out.get("status"), 200, out)
        self.assertEqual(out["body"].encode("latin-1"), DEFAULT_BODY)
        self.assertNotIn("NP_E2E_SECRET", out["env_keys"],
                         "the env:// credential variable reached the child")
        self.assertIn("OPENAI_API_KEY", out["env_keys"],
                      "the phantom variable named like the removed real key is given")
        req = srv.wait_requests(1)[0]
        self.assertEqual(req.target, "/v1/whoami?x=1")
        self.assertEqual(req.header_all("authorization"), ["Bearer " + secret])
        self.assertEqual(req.header_all("x-client"), ["python-http.client"])
        self.assert_no_secret_leak(run, None, [secret, secret2])

    def test_parent_environment_does_not_hold_the_secret(self):
        """The child cannot read the real key from nonoproxy-run's own environment block
        (/proc/<ppid>/environ, readable by a same-user child): the value is wiped there."""
        srv = self.upstream()
        secret = new_secret("ppid")
        script = "import os; print(open('/proc/%d/environ' % os.getppid(), 'rb').read().hex())"
        run = self.start_child(
            [route("svc", srv.url(), credential="env://NP_E2E_SECRET")],
            [sys.executable, "-c", script], env=clean_env(NP_E2E_SECRET=secret))
        self.assertEqual(run.wait(), 0, "the child's exit status")
        block = bytes.fromhex(run.stdout.text().strip().splitlines()[-1])
        self.assertIn(b"NP_E2E_SECRET=", block, "the probe read the parent's environment")
        self.assertNotIn(secret.encode(), block, "the real key is readable in the parent's "
                         "/proc/<pid>/environ")

    def test_env_credential_child_environment(self):
        secret = new_secret("envh")
        srv = self.upstream()
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_SECRET"),
             route("openai", srv.url(), credential="env://OPENAI_API_KEY",
                   env_var="OPENAI_API_KEY")],
            env=clean_env(NP_E2E_SECRET=secret, OPENAI_API_KEY=secret + "-2"))
        self.assertFalse("NP_E2E_SECRET" in info.env, "an env:// credential variable reached "
                         "the child")
        self.assertEqual(info.env.get("OPENAI_API_KEY"), info.token,
                         "OPENAI_API_KEY holds the phantom, not the real key")
        self.assertEqual(sorted(k for k, v in info.env.items() if v == info.token),
                         ["NONO_PROXY_TOKEN", "OPENAI_API_KEY"],
                         "phantom variables: env:// keys without env-var give none")
        self.assertEqual(info.env.get("SVC_BASE_URL"), "http://127.0.0.1:%d/svc" % info.port)
        self.assertEqual(info.env.get("OPENAI_BASE_URL"),
                         "http://127.0.0.1:%d/openai" % info.port)
        self.finish(run)
        self.assert_no_secret_leak(run, info, [secret, secret + "-2"])

    def test_missing_credential_is_a_start_error(self):
        srv = self.upstream()
        rows = [("env", "env://NP_E2E_MISSING"),
                ("file", "file:///nonexistent/np-e2e-%s" % os.urandom(4).hex())]
        for label, key in rows:
            with self.subTest(label):
                run = self.start(["-q", "--ca-file", Certs.get().ca_cert]
                                 + route("svc", srv.url())
                                 + route("lostsvc", srv.url(), credential=key),
                                 holder_command, env=clean_env())
                self.assertEqual(run.wait(), 125, "exit status for a missing credential")
                err = run.stderr.text()
                self.assertIn("lostsvc", err, "the message names the route")
                self.assertIn(key, err, "the message names the reference")
                self.assertFalse(os.path.exists(os.path.join(run.workdir, "holder.json")),
                                 "the child was started")
        self.assertEqual(srv.connection_count(), 0)

    def test_allow_missing_credentials_answers_503(self):
        srv = self.upstream()
        run, info = self.start_routes(
            [route("miss", srv.url(), credential="env://NP_E2E_MISSING", env_var="MISS_KEY"),
             route("svc", srv.url())],
            options=["--allow-missing-credentials"])
        self.assertEqual(info.env.get("MISS_BASE_URL"), "http://127.0.0.1:%d/miss" % info.port)
        self.assertFalse("MISS_KEY" in info.env, "a phantom variable for a credential not loaded")
        res = self.get(info, "/miss/x", [("Authorization", "Bearer " + info.token)])
        self.assert_json_error(res, 503)
        res = self.get(info, "/miss/x")
        self.assert_json_error(res, 503, "without a phantom")
        self.assert_ok(self.get(info, "/svc/x", [("Authorization", "Bearer " + info.token)]))
        reqs = srv.wait_requests(1)
        self.assertEqual([r.target for r in reqs], ["/x"], "the 503 route reached the upstream")
        events = self.finish(run)
        for ev in self.assert_route_events(events, 2, decision="deny", route_id="miss"):
            self.assertEqual(num(ev, "status"), 503, ev)
            self.assertEqual(ev.get("denial_category"), "managed_credential_unavailable", ev)
            self.assertIs(ev.get("managed_credential_active"), False, ev)
            self.assertEqual(ev.get("injection_mode"), "header", ev)


# --------------------------------------------------------------------------------------------
# Upstream failures (SPEC §6.5, §6.6)
# --------------------------------------------------------------------------------------------

class UpstreamFailures(ReverseCase):

    def start_one(self, upstream_url, options=(), ca_file=True):
        secret = new_secret("fail")
        run, info = self.start_routes(
            [route("svc", upstream_url, credential="env://NP_E2E_FAIL", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_FAIL=secret), options=options, ca_file=ca_file)
        return run, info, secret, [("Authorization", "Bearer " + info.token)]

    def assert_failure_events(self, events, status, count=1, category=None):
        found = self.assert_route_events(events, count, decision="deny", route_id="svc")
        for ev in found:
            self.assertEqual(num(ev, "status"), status, ev)
            if category is not None:
                self.assertEqual(ev.get("denial_category"), category, ev)
        return found

    def test_upstream_closes_without_answer_502(self):
        srv = self.upstream(handler=lambda req: Answer.close())
        run, info, secret, auth = self.start_one(srv.url())
        res = self.get(info, "/svc/x", auth)
        self.assert_json_error(res, 502)
        self.assertGreaterEqual(len(srv.requests()), 1, "the request reached the upstream")
        events = self.finish(run)
        self.assert_failure_events(events, 502)
        self.assert_no_secret_leak(run, info, [secret], [res])

    def test_upstream_refuses_connection_502(self):
        holder, port = closed_port()
        self.addCleanup(holder.close)
        run, info, secret, auth = self.start_one("https://127.0.0.1:%d" % port)
        res = self.get(info, "/svc/x", auth)
        self.assert_json_error(res, 502)
        events = self.finish(run)
        self.assert_failure_events(events, 502)
        self.assert_no_secret_leak(run, info, [secret], [res])

    def test_untrusted_upstream_certificate_502_and_tls_ca(self):
        srv = self.upstream()
        secret = new_secret("tls")
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_TLS", env_var="SVC_API_KEY"),
             route("pinned", srv.url(), credential="env://NP_E2E_TLS", env_var="PINNED_KEY",
                   tls_ca=Certs.get().ca_cert)],
            env=clean_env(NP_E2E_TLS=secret), ca_file=False)
        auth = [("Authorization", "Bearer " + info.token)]
        res = self.get(info, "/svc/x", auth)
        self.assert_json_error(res, 502, "certificate not trusted without --ca-file")
        self.assertEqual(srv.request_count(), 0, "a request went over an unverified connection")
        self.assert_ok(self.get(info, "/pinned/x", auth), label="route with tls-ca")
        self.assertEqual([r.target for r in srv.wait_requests(1)], ["/x"])
        events = self.finish(run)
        self.assert_failure_events(events, 502)
        self.assert_no_secret_leak(run, info, [secret], [res])

    def test_tls_handshake_timeout_504(self):
        # SPEC §1.1: upstream TLS handshake timeout 10 s (not settable from the command line).
        srv = self.upstream(handshake=False)
        run, info, secret, auth = self.start_one(srv.url())
        t0 = time.monotonic()
        res = http_exchange(info.port, "GET", "/svc/x", auth,
                            timeout=TLS_HANDSHAKE_TIMEOUT + IO_TIMEOUT)
        elapsed = time.monotonic() - t0
        self.assert_json_error(res, 504, "upstream never answers the TLS handshake")
        self.assertGreaterEqual(elapsed, TLS_HANDSHAKE_TIMEOUT * 0.9)
        events = self.finish(run)
        self.assert_failure_events(events, 504, category="upstream_timeout")

    def test_connect_timeout_504(self):
        # A listener with a full accept queue: the kernel drops further SYNs, so the proxy's
        # connect() neither succeeds nor fails until --connect-timeout.
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lst.close)
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        for _ in range(8):  # fill the accept queue (its length is backlog + 1 on Linux)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
            self.addCleanup(s.close)
        run, info, secret, auth = self.start_one("https://127.0.0.1:%d" % port,
                                                 options=["--connect-timeout", "1"])
        t0 = time.monotonic()
        res = self.get(info, "/svc/x", auth)
        elapsed = time.monotonic() - t0
        self.assert_json_error(res, 504, "upstream connect timed out")
        self.assertGreaterEqual(elapsed, 0.9)
        events = self.finish(run)
        self.assert_failure_events(events, 504, category="upstream_timeout")


# --------------------------------------------------------------------------------------------
# CONNECT to a route's upstream (SPEC §4)
# --------------------------------------------------------------------------------------------

class ConnectBypass(ReverseCase):

    def test_connect_to_route_upstream_is_refused(self):
        srv = self.upstream()
        other = self.echo_server()
        secret = new_secret("byp")
        run, info = self.start_routes(
            [route("svc", srv.url(), credential="env://NP_E2E_BYP", env_var="SVC_API_KEY")],
            env=clean_env(NP_E2E_BYP=secret))
        target = srv.authority()
        resp = exchange(info.port, connect_head(target, info.basic()))
        self.assertErrorResponse(resp, 403)
        self.assertEqual(srv.connection_count(), 0, "the tunnel reached the route's upstream")
        sock, resp, extra = open_tunnel(info.port, "127.0.0.1:%d" % other.port, info.basic())
        self.assertEqual(resp.status, 200, "CONNECT to another port of the same host: %r"
                         % resp.raw)
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"ping\n", extra), b"ping\n")
        events = self.finish(run)
        ev = self.assertOneEvent(events, mode="connect", decision="deny",
                                 denial_category="connect_bypasses_l7")
        self.assertEqual(num(ev, "status"), 403, ev)
        self.assertEqual(ev.get("target"), "127.0.0.1", ev)
        self.assertEqual(num(ev, "port"), srv.port, ev)

    def test_curl_through_https_proxy_to_route_upstream_gets_403(self):
        curl = require_tool("curl")
        srv = self.upstream()
        secret = new_secret("bypc")
        run = self.start_child(
            [route("svc", srv.url(), credential="env://NP_E2E_BYPC", env_var="SVC_API_KEY")],
            [curl, "--noproxy", "", "-sS", "--max-time", "60", "-o", "/dev/null",
             "-w", "connect=%{http_connect}\\n", "--cacert", Certs.get().ca_cert,
             srv.url(path="/direct")],
            env=clean_env(NP_E2E_BYPC=secret))
        rc = run.wait()
        self.assertNotEqual(rc, 0, "curl reached the route upstream around the proxy")
        self.assertIn("connect=403", run.stdout.text())
        self.assertEqual(srv.connection_count(), 0)
        self.assertOneEvent(run.audit_events(), mode="connect", decision="deny",
                            denial_category="connect_bypasses_l7")


# --------------------------------------------------------------------------------------------
# Real clients as the child command (SPEC §7, §11)
# --------------------------------------------------------------------------------------------

class RealClients(ReverseCase):

    def test_curl_child_uses_base_url_and_phantom(self):
        curl = require_tool("curl")
        srv = self.upstream()
        secret = new_secret("curl")
        script = ('exec "$0" -sS --max-time 60 -w "\\nstatus=%{http_code}\\n" '
                  '"$SVC_BASE_URL/v1/x?q=1" -H "Authorization: Bearer $SVC_API_KEY" '
                  '-H "X-Client: curl"')
        run = self.start_child(
            [route("svc", srv.url(), credential="env://NP_E2E_CURL", env_var="SVC_API_KEY")],
            ["sh", "-c", script, curl], env=clean_env(NP_E2E_CURL=secret))
        self.assertEqual(run.wait(), 0, "curl's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY + b"\nstatus=200\n")
        req = srv.wait_requests(1)[0]
        self.assertEqual(req.target, "/v1/x?q=1")
        self.assertEqual(req.header_all("authorization"), ["Bearer " + secret])
        self.assertEqual(req.header_all("x-client"), ["curl"])
        self.assertEqual(req.header_all("host"), [srv.authority()])
        self.assert_route_events(run.audit_events(), 1, decision="allow", route_id="svc")
        self.assert_no_secret_leak(run, None, [secret])

    def test_python_http_client_child(self):
        srv = self.upstream()
        secret = new_secret("py")
        run = self.start_child(
            [route("svc", srv.url(), credential="env://NP_E2E_PY", env_var="SVC_API_KEY")],
            [sys.executable, "-c", PY_CLIENT, "SVC_API_KEY", "/v1/chat?model=m"],
            env=clean_env(NP_E2E_PY=secret))
        self.assertEqual(run.wait(), 0)
        out = json.loads(run.stdout.text().strip().splitlines()[-1])
        self.assertEqual(out.get("status"), 200, out)
        self.assertEqual(out["body"].encode("latin-1"), DEFAULT_BODY)
        self.assertRegex(out["base"], r"^http://127\.0\.0\.1:\d+/svc$")
        req = srv.wait_requests(1)[0]
        self.assertEqual(req.target, "/v1/chat?model=m")
        self.assertEqual(req.header_all("authorization"), ["Bearer " + secret])
        self.assert_no_secret_leak(run, None, [secret])


if __name__ == "__main__":
    unittest.main()
