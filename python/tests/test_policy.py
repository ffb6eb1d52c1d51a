"""The policy extras of issue 14 (SPEC §13) through real sockets: endpoint rules, rate limits,
denied_hosts, strict_allowlist, the decide callback, client certificates; their types, defaults
and errors."""

import base64
import gc
import json
import socket
import ssl
import sys
import threading
import time

import pytest

from nonoproxy import Decision, ProxyConfig, RateLimit, RouteConfig, start_proxy
import nptest


class Hidden(str):
    """A secret in a test: sent and compared as itself, shown masked. pytest's assertion
    messages show the repr of every call's arguments, which would print the token."""

    def __repr__(self):
        return "'<hidden>'"


def auth(proxy):
    return [("Authorization", Hidden("Bearer " + proxy.env_vars()["NONO_PROXY_TOKEN"]))]


def token(proxy):
    return Hidden(proxy.env_vars()["NONO_PROXY_TOKEN"])


# ------------------------------------------------------------------------------------------------
# Construction: defaults, attributes, types, values
# ------------------------------------------------------------------------------------------------

def test_defaults():
    r = RouteConfig("/a", "https://a.example")
    assert r.endpoint_rules == [] and r.rate_limit is None
    assert r.tls_client_cert is None and r.tls_client_key is None
    c = ProxyConfig()
    assert c.denied_hosts == [] and c.strict_allowlist is False
    assert c.decide is None and c.decide_timeout == 30.0
    rl = RateLimit(60)
    assert (rl.requests_per_minute, rl.burst, rl.max_delay_ms) == (60, 5, 0)
    assert [(d.name, d.value) for d in Decision] == [("DENY", 0), ("ALLOW_ONCE", 1),
                                                     ("ALLOW_SESSION", 2)]
    assert Decision.__module__ == RateLimit.__module__ == "nonoproxy"


def test_attributes_and_repr():
    rules = [("GET", "/v1/models"), ["*", "/v1/chat/**"]]
    r = RouteConfig("/a", "https://a.example", endpoint_rules=rules,
                    rate_limit={"requests_per_minute": 60, "burst": 2, "max_delay_ms": 100},
                    tls_client_cert="/etc/c.pem", tls_client_key="/etc/c.key")
    rules.append(("POST", "/x"))
    assert r.endpoint_rules == [("GET", "/v1/models"), ("*", "/v1/chat/**")]
    r.endpoint_rules.append(("PUT", "/y"))
    assert len(r.endpoint_rules) == 2  # a copy
    assert isinstance(r.rate_limit, RateLimit)
    assert (r.rate_limit.requests_per_minute, r.rate_limit.burst,
            r.rate_limit.max_delay_ms) == (60, 2, 100)
    assert repr(r).endswith(
        "tls_ca=None, endpoint_rules=[('GET', '/v1/models'), ('*', '/v1/chat/**')], "
        "rate_limit=RateLimit(requests_per_minute=60, burst=2, max_delay_ms=100), "
        "tls_client_cert='/etc/c.pem', tls_client_key='/etc/c.key')")
    rl = RateLimit(requests_per_minute=10, burst=1, max_delay_ms=5)
    assert RouteConfig("/a", "https://a.example", rate_limit=rl).rate_limit is rl

    def decide(host, port, mode, method):
        return "deny"

    c = ProxyConfig(denied_hosts=("evil.example", "10.9.0.0/16"), strict_allowlist=True,
                    decide=decide, decide_timeout=2)
    assert c.denied_hosts == ["evil.example", "10.9.0.0/16"]
    assert c.strict_allowlist is True and c.decide is decide
    assert c.decide_timeout == 2.0 and isinstance(c.decide_timeout, float)
    with pytest.raises(AttributeError):
        c.strict_allowlist = False  # read-only like the rest
    with pytest.raises(AttributeError):
        rl.burst = 3


@pytest.mark.parametrize("make", [
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules="GET /x"),
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules=[("GET",)]),
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules=[("GET", "/x", "y")]),
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules=[("GET", 1)]),
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules=["GET"]),
    lambda: RouteConfig("/a", "https://a.example", endpoint_rules=5),
    lambda: RouteConfig("/a", "https://a.example", rate_limit=60),
    lambda: RouteConfig("/a", "https://a.example", rate_limit=[60]),
    lambda: RouteConfig("/a", "https://a.example", rate_limit={"rpm": 60}),
    lambda: RouteConfig("/a", "https://a.example", tls_client_cert=b"/c.pem"),
    lambda: RouteConfig("/a", "https://a.example", tls_client_key=1),
    lambda: RouteConfig("/a", "https://a.example", None, 1, "Authorization", None, None, None,
                        None, None, None, []),  # the extras are keyword-only
    lambda: RateLimit("60"),
    lambda: RateLimit(60, burst=1.5),
    lambda: RateLimit(60, max_delay_ms=True),
    lambda: ProxyConfig(denied_hosts="evil.example"),
    lambda: ProxyConfig(denied_hosts=[1]),
    lambda: ProxyConfig(decide="deny"),
    lambda: ProxyConfig(decide_timeout="30"),
    lambda: ProxyConfig(decide_timeout=None),
])
def test_type_errors(make):
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("make", [
    lambda: RateLimit(0),
    lambda: RateLimit(-1),
    lambda: RateLimit(60, burst=0),
    lambda: RateLimit(60, max_delay_ms=2 ** 32),
    lambda: RouteConfig("/a", "https://a.example", rate_limit={"requests_per_minute": 0}),
    lambda: ProxyConfig(decide_timeout=-0.5),
    lambda: ProxyConfig(decide_timeout=float("nan")),
    lambda: ProxyConfig(decide_timeout=1e10),
])
def test_value_errors_at_construction(make):
    with pytest.raises(ValueError):
        make()


ROUTE = "https://a.example"


@pytest.mark.parametrize("config, words", [
    (ProxyConfig(denied_hosts=["*"]), "denied_hosts"),
    (ProxyConfig(denied_hosts=["bad host"]), "denied_hosts"),
    (ProxyConfig(allowed_hosts=["169.254.0.0/16"]), "allowed_hosts"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, endpoint_rules=[("GET", "v1")])]),
     "endpoint_rules[0].path"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, endpoint_rules=[("GET", "/x"), ("", "/y")])]),
     "endpoint_rules[1].method"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, rate_limit=RateLimit(10 ** 9))]),
     "rate_limit_per_minute"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, tls_client_cert="/nonexistent/c.pem")]),
     "tls_client_key"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, tls_client_key="/nonexistent/c.key")]),
     "tls_client_cert"),
    (ProxyConfig(routes=[RouteConfig("/a", "http://127.0.0.1:1", tls_client_cert="/c.pem",
                                     tls_client_key="/c.key")]), "tls_client_cert"),
])
def test_configuration_errors_raise_value_error(config, words):
    with pytest.raises(ValueError) as info:
        start_proxy(config)
    msg = str(info.value)
    assert words in msg, msg
    assert "\n" not in msg


# ------------------------------------------------------------------------------------------------
# Endpoint rules and rate limits on a route
# ------------------------------------------------------------------------------------------------

def test_endpoint_rules_allow_and_deny(upstream, ca_file):
    events = nptest.Events()
    route = RouteConfig("/svc", upstream.url(),
                        endpoint_rules=[("GET", "/v1/models"), ("*", "/v1/chat/**")])
    with start_proxy(ProxyConfig(routes=[route], ca_file=ca_file,
                                 audit_callback=events)) as proxy:
        allowed = [("GET", "/svc/v1/models"), ("POST", "/svc/v1/chat/completions"),
                   ("DELETE", "/svc/v1/chat/a/b/c")]
        denied = [("POST", "/svc/v1/models"), ("GET", "/svc/v1/files"),
                  ("GET", "/svc/v1/chat/../files"), ("GET", "/svc/v1/chat%2F..%2Ffiles"),
                  ("GET", "/svc/v1//models/x")]
        for method, target in allowed:
            status, body = nptest.http_request(proxy.port, target, auth(proxy), method=method)
            assert status == 200, (method, target, body)
        for method, target in denied:
            status, _, body = nptest.http_exchange(proxy.port, target, auth(proxy),
                                                   method=method)
            assert status == 403, (method, target)
            assert json.loads(body) == {"error": "endpoint not allowed"}
        evs = events.wait_count(len(denied), mode="reverse", decision="deny")
        reqs = upstream.wait_requests(len(allowed))
    assert [r.request_line.split(" ")[:2] for r in reqs] == \
        [["GET", "/v1/models"], ["POST", "/v1/chat/completions"], ["DELETE", "/v1/chat/a/b/c"]]
    assert len(upstream.requests()) == len(allowed)  # nothing denied reached it
    assert all(e["denial_category"] == "endpoint_policy" and e["status"] == 403 for e in evs)
    assert evs[0]["method"] == "POST" and evs[0]["route_id"] == "svc"
    assert "/v1/models" in evs[0]["path"]


def test_rate_limit_429_with_retry_after(upstream, ca_file):
    events = nptest.Events()
    route = RouteConfig("/svc", upstream.url(),
                        rate_limit={"requests_per_minute": 1, "burst": 2})
    with start_proxy(ProxyConfig(routes=[route], ca_file=ca_file,
                                 audit_callback=events)) as proxy:
        got = [nptest.http_exchange(proxy.port, "/svc/x", auth(proxy)) for _ in range(3)]
        evs = events.wait_count(1, mode="reverse", decision="deny")
    assert [g[0] for g in got] == [200, 200, 429]
    retry = int(got[2][1]["retry-after"])
    assert 1 <= retry <= 60
    assert len(upstream.requests()) == 2
    assert evs[0]["denial_category"] == "rate_limited" and evs[0]["status"] == 429


def test_rate_limit_waits_up_to_max_delay(upstream, ca_file):
    """600 a minute is one token each 100 ms: with max_delay_ms the request beyond the burst
    waits for its token instead of getting 429."""
    route = RouteConfig("/svc", upstream.url(),
                        rate_limit=RateLimit(600, burst=1, max_delay_ms=int(5000 * nptest.SCALE)))
    with start_proxy(ProxyConfig(routes=[route], ca_file=ca_file)) as proxy:
        statuses = [nptest.http_request(proxy.port, "/svc/x", auth(proxy))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]


# ------------------------------------------------------------------------------------------------
# denied_hosts and strict_allowlist
# ------------------------------------------------------------------------------------------------

def test_denied_hosts_on_connect(upstream):
    asked = []

    def resolver(host, port):
        asked.append(host)
        return {"lab.example": ["10.9.1.2"], "ok.example": ["127.0.0.1"]}.get(host, [])

    events = nptest.Events()
    cfg = ProxyConfig(allowed_hosts=["*.example"],
                      denied_hosts=["evil.example", "*.ads.example", "10.9.0.0/16"],
                      resolver=resolver, audit_callback=events)
    with start_proxy(cfg) as proxy:
        for authority in ("evil.example:443", "x.ads.example:443", "lab.example:443"):
            assert nptest.connect_status(proxy.port, authority, token(proxy)) == 403, authority
        ok = "ok.example:%d" % upstream.port
        assert nptest.connect_status(proxy.port, ok, token(proxy)) == 200
        evs = events.wait_count(3, mode="connect", decision="deny")
    assert all(e["denial_category"] == "host_denied" for e in evs)
    # A denied name never reaches the resolver; a range is judged on the resolved addresses.
    assert "evil.example" not in asked and "x.ads.example" not in asked
    assert "lab.example" in asked


def test_strict_allowlist(upstream):
    target = "127.0.0.1:%d" % upstream.port
    with start_proxy(ProxyConfig()) as proxy:
        assert nptest.connect_status(proxy.port, target, token(proxy)) == 200
    with start_proxy(ProxyConfig(strict_allowlist=True)) as proxy:
        assert nptest.connect_status(proxy.port, target, token(proxy)) == 403
    with start_proxy(ProxyConfig(allowed_hosts=["127.0.0.1"], strict_allowlist=True)) as proxy:
        assert nptest.connect_status(proxy.port, target, token(proxy)) == 200


# ------------------------------------------------------------------------------------------------
# The decide callback
# ------------------------------------------------------------------------------------------------

class Decider:
    """A decide callable that records its calls and answers with answer (or raises it)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, host, port, mode, method):
        with self.lock:
            self.calls.append((host, port, mode, method))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class Unraisable:
    """Collects what reaches sys.unraisablehook (from the proxy's threads) while in a with
    block. Set inside the test itself: pytest installs its own hook around each test phase."""

    def __enter__(self):
        self.seen = []
        self._saved = sys.unraisablehook
        sys.unraisablehook = lambda u: self.seen.append(u.exc_value)
        return self.seen

    def __exit__(self, *exc):
        sys.unraisablehook = self._saved
        return False


@pytest.mark.parametrize("answer", ["once", Decision.ALLOW_ONCE], ids=["str", "enum"])
def test_decide_allow_once_asks_each_time(upstream, answer):
    d = Decider(answer)
    target = "127.0.0.1:%d" % upstream.port
    with start_proxy(ProxyConfig(decide=d)) as proxy:
        assert nptest.connect_status(proxy.port, target, token(proxy)) == 200
        assert nptest.connect_status(proxy.port, target, token(proxy)) == 200
        assert proxy.diagnostics() == []
    assert d.calls == [("127.0.0.1", upstream.port, "connect", "CONNECT")] * 2


@pytest.mark.parametrize("answer", ["session", Decision.ALLOW_SESSION], ids=["str", "enum"])
def test_decide_allow_session_is_remembered(upstream, answer):
    d = Decider(answer)
    events = nptest.Events()
    target = "127.0.0.1:%d" % upstream.port
    with start_proxy(ProxyConfig(decide=d, audit_callback=events)) as proxy:
        for _ in range(3):
            assert nptest.connect_status(proxy.port, target, token(proxy)) == 200
        diags = proxy.diagnostics()
        evs = events.wait_count(3, mode="connect", decision="allow", event="decision")
    assert len(d.calls) == 1
    assert [g["code"] for g in diags] == ["host_granted"]
    assert target in diags[0]["message"]
    assert all("granted" in (e["reason"] or "") for e in evs), evs


@pytest.mark.parametrize("answer", ["deny", Decision.DENY], ids=["str", "enum"])
def test_decide_deny(upstream, answer):
    d = Decider(answer)
    events = nptest.Events()
    with start_proxy(ProxyConfig(decide=d, audit_callback=events)) as proxy:
        status = nptest.connect_status(proxy.port, "127.0.0.1:%d" % upstream.port, token(proxy))
        evs = events.wait_count(1, mode="connect", decision="deny")
    assert status == 403 and len(d.calls) == 1
    assert evs[0]["denial_category"] == "host_denied"


@pytest.mark.parametrize("answer, exc_type", [
    (RuntimeError("decide failed"), RuntimeError),
    ("yes", ValueError),
    (42, ValueError),
    (True, ValueError),
    (None, ValueError),
])
def test_decide_exception_or_wrong_answer_denies(upstream, answer, exc_type):
    d = Decider(answer)
    with Unraisable() as seen:
        with start_proxy(ProxyConfig(decide=d)) as proxy:
            status = nptest.connect_status(proxy.port, "127.0.0.1:%d" % upstream.port,
                                           token(proxy))
    assert status == 403 and len(d.calls) == 1
    assert [type(e) for e in seen] == [exc_type]


def test_decide_not_asked_for_listed_hosts(upstream):
    d = Decider("once")
    cfg = ProxyConfig(allowed_hosts=["127.0.0.1:%d" % upstream.port],
                      denied_hosts=["evil.example"], decide=d)
    with start_proxy(cfg) as proxy:
        assert nptest.connect_status(proxy.port, "127.0.0.1:%d" % upstream.port,
                                     token(proxy)) == 200
        assert nptest.connect_status(proxy.port, "evil.example:443", token(proxy)) == 403
        assert nptest.connect_status(proxy.port, "169.254.169.254:80", token(proxy)) == 403
    assert d.calls == []


def test_decide_on_forward_requests():
    plain = nptest.ScriptedUpstream(tls=False)
    try:
        d = Decider(Decision.ALLOW_ONCE)
        with start_proxy(ProxyConfig(decide=d)) as proxy:
            url = "http://127.0.0.1:%d/x" % plain.port
            b64 = base64.b64encode(("nono:" + token(proxy)).encode()).decode()
            status, _ = nptest.http_request(proxy.port, url,
                                            [("Proxy-Authorization", "Basic " + b64)],
                                            method="POST")
        assert status == 200
        assert d.calls == [("127.0.0.1", plain.port, "forward", "POST")]
    finally:
        plain.close()


def test_decide_called_once_for_eight_concurrent_clients(upstream):
    """Eight clients ask for one host at once: the callback runs once, the others wait for its
    answer (the library coalesces them), and the session grant answers later ones."""
    sent = threading.Semaphore(0)
    calls = []

    def decide(host, port, mode, method):
        calls.append(host)
        for _ in range(8):  # until every client has sent its CONNECT
            assert sent.acquire(timeout=nptest.TIMEOUT)
        time.sleep(0.2 * nptest.SCALE)  # and the proxy has read it
        return "session"

    target = "127.0.0.1:%d" % upstream.port
    statuses = []
    with start_proxy(ProxyConfig(decide=decide)) as proxy:
        tok = token(proxy)

        def client():
            with socket.create_connection(("127.0.0.1", proxy.port),
                                          timeout=nptest.TIMEOUT) as s:
                s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s"
                           "\r\n\r\n" % (target, target, base64.b64encode(
                               ("nono:" + tok).encode()).decode())).encode())
                sent.release()
                head = nptest.recv_head(s)
            statuses.append(int(head.split(b" ", 2)[1]))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(nptest.TIMEOUT * 2)
        assert nptest.connect_status(proxy.port, target, tok) == 200
    assert calls == ["127.0.0.1"]
    assert statuses == [200] * 8


def test_decide_late_answer_denies(upstream):
    def slow(host, port, mode, method):
        time.sleep(0.5)
        return "once"

    with start_proxy(ProxyConfig(decide=slow, decide_timeout=0.05)) as proxy:
        assert nptest.connect_status(proxy.port, "127.0.0.1:%d" % upstream.port,
                                     token(proxy)) == 403


def test_shutdown_while_decide_runs(upstream):
    """shutdown() releases the GIL: a decide call in progress finishes (it needs the GIL to
    return) and shutdown() then returns; the client is denied."""
    entered = threading.Event()
    release = threading.Event()

    def decide(host, port, mode, method):
        entered.set()
        busy = time.monotonic() + 0.2 * nptest.SCALE
        while time.monotonic() < busy:  # pure Python: needs the GIL throughout
            pass
        release.wait(nptest.TIMEOUT)
        return "once"

    proxy = start_proxy(ProxyConfig(decide=decide))
    result = []
    client = threading.Thread(target=lambda: result.append(nptest.connect_status(
        proxy.port, "127.0.0.1:%d" % upstream.port, token(proxy))))
    client.start()
    assert entered.wait(nptest.TIMEOUT)
    timer = threading.Timer(0.3 * nptest.SCALE, release.set)
    timer.start()
    started = time.monotonic()
    proxy.shutdown()
    assert time.monotonic() - started < nptest.TIMEOUT
    client.join(nptest.TIMEOUT)
    timer.join()
    assert result in ([403], [0])  # denied, or the connection closed by the shutdown


def refcounts(*objs):
    return tuple(sys.getrefcount(o) for o in objs)


class ClosingListener:
    """A TCP listener that accepts and closes at once: a CONNECT target that keeps nothing."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(nptest.TIMEOUT)


def test_no_reference_or_memory_growth_over_repeated_decides():
    answer = Decision.ALLOW_ONCE
    d = Decider(answer)
    target = ClosingListener()
    try:
        with start_proxy(ProxyConfig(decide=d, audit_capacity=0)) as proxy:
            tok = token(proxy)
            authority = "127.0.0.1:%d" % target.port

            def cycle(n):
                for _ in range(n):
                    assert nptest.connect_status(proxy.port, authority, tok) == 200
                d.calls.clear()
                gc.collect()

            cycle(300)  # warm the interpreter's caches and free lists, once
            before = refcounts(d, answer, None)
            blocks = sys.getallocatedblocks()
            cycle(300)
            grown = sys.getallocatedblocks() - blocks
            after = refcounts(d, answer, None)
    finally:
        target.close()
    assert after == before
    # A leak of the arguments or the answer would be at least one block per call.
    assert grown < 100, "%d blocks more after 300 decides" % grown


# ------------------------------------------------------------------------------------------------
# Client certificates
# ------------------------------------------------------------------------------------------------

def mtls_upstream():
    ctx = nptest.server_context_for("DNS:localhost", "IP:127.0.0.1", "IP:::1")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(nptest.Certs.get().ca_cert)
    return nptest.ScriptedUpstream(tls=True, ssl_context=ctx)


def test_client_certificate_to_an_upstream_that_requires_one(ca_file):
    srv = mtls_upstream()
    try:
        cert, key = nptest.client_certificate()
        with_cert = RouteConfig("/with", srv.url(), tls_client_cert=cert, tls_client_key=key)
        without = RouteConfig("/without", srv.url())
        events = nptest.Events()
        with start_proxy(ProxyConfig(routes=[with_cert, without], ca_file=ca_file,
                                     audit_callback=events)) as proxy:
            assert nptest.http_request(proxy.port, "/with/x", auth(proxy))[0] == 200
            assert nptest.http_request(proxy.port, "/without/x", auth(proxy))[0] == 502
            events.wait_count(2, mode="reverse")
            drained = proxy.drain_audit_events()
        assert [r.request_line for r in srv.requests()] == ["GET /x HTTP/1.1"]
        with open(key, encoding="ascii") as f:
            body = "".join(f.read().strip().splitlines()[1:-1])
        for text in (repr(with_cert), json.dumps(drained), json.dumps(events.events)):
            assert body[:40] not in text
        assert key in repr(with_cert)  # the path, not the key
    finally:
        srv.close()


def test_missing_client_key_file_is_a_start_error(tmp_path, ca_file):
    cert, _ = nptest.client_certificate()
    route = RouteConfig("/m", "https://127.0.0.1:1", tls_client_cert=cert,
                        tls_client_key=str(tmp_path / "missing.key"))
    with pytest.raises(ValueError) as info:
        start_proxy(ProxyConfig(routes=[route], ca_file=ca_file))
    assert "tls_client_key" in str(info.value) and "'m'" in str(info.value)
