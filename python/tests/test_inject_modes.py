"""The four inject modes end to end against the local HTTPS upstream; secrets stay hidden."""

import base64
import json

import pytest

from nonoproxy import InjectMode, ProxyConfig, RouteConfig, start_proxy
import nptest


def start(upstream, ca_file, route, secret, events):
    cfg = ProxyConfig(routes=[route], ca_file=ca_file, audit_callback=events,
                      credential_resolver=lambda key: secret if key == "vault://svc" else None)
    return start_proxy(cfg)


CASES = [
    # (mode, route keyword arguments, client target and headers (phantom as {t}), check)
    ("header", dict(inject_mode=InjectMode.HEADER),
     "/svc/v1/x", [("Authorization", "Bearer {t}")],
     lambda req, s: req.header_all("authorization") == ["Bearer " + s]),
    ("header custom", dict(inject_header="X-Api-Key"),
     "/svc/v1/x", [("X-Api-Key", "{t}")],
     lambda req, s: req.header_all("x-api-key") == [s] and req.header("authorization") is None),
    ("basic_auth", dict(inject_mode=InjectMode.BASIC_AUTH),
     "/svc/v1/x", [("Authorization", "Basic {b}")],
     lambda req, s: req.header_all("authorization") ==
     ["Basic " + base64.b64encode(s.encode()).decode()]),
    ("url_path", dict(inject_mode=InjectMode.URL_PATH, path_pattern="/bot{}/"),
     "/svc/bot{t}/getMe", [],
     lambda req, s: req.target == "/bot%s/getMe" % s),
    ("query_param", dict(inject_mode=InjectMode.QUERY_PARAM, query_param_name="key"),
     "/svc/geo?key={t}&a=1", [],
     lambda req, s: req.target == "/geo?key=%s&a=1" % s),
]


@pytest.mark.parametrize("label, kw, target, headers, check", CASES, ids=[c[0] for c in CASES])
def test_inject_mode(upstream, ca_file, label, kw, target, headers, check):
    secret = nptest.new_secret("mode") if label != "basic_auth" else "user:" + nptest.new_secret("b")
    events = nptest.Events()
    route = RouteConfig("/svc", upstream.url(), credential_key="vault://svc", env_var="SVC_KEY",
                        **kw)
    with start(upstream, ca_file, route, secret, events) as proxy:
        token = proxy.credential_env_vars()["SVC_KEY"]
        assert token == proxy.env_vars()["NONO_PROXY_TOKEN"]
        b = base64.b64encode(("anyone:" + token).encode()).decode()
        fill = {"t": token, "b": b}
        status, body = nptest.http_request(
            proxy.port, target.format(**fill), [(k, v.format(**fill)) for k, v in headers])
        assert status == 200, body
        reqs = upstream.wait_requests(1)
        assert check(reqs[0], secret), reqs[0].request_line.replace(secret, "<secret>")
        assert token not in upstream.all_raw().decode("latin-1")
        evs = events.wait_count(1, mode="reverse", decision="allow")
        drained = proxy.drain_audit_events()
    assert [e for e in drained if e["mode"] == "reverse"] == evs
    ev = evs[0]
    assert ev["route_id"] == "svc"
    assert ev["injection_mode"] == {"header custom": "header"}.get(label, label)
    assert ev["auth_outcome"] == "succeeded" and ev["managed_credential_active"] is True
    for text in (json.dumps(drained), json.dumps(events.events), repr(route), repr(proxy)):
        assert secret not in text and token not in text


def test_every_audit_key_present(upstream, ca_file):
    events = nptest.Events()
    route = RouteConfig("/svc", upstream.url())
    with start_proxy(ProxyConfig(allowed_hosts=["allowed.example"], routes=[route],
                                 ca_file=ca_file, audit_callback=events)) as proxy:
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        assert nptest.connect_status(proxy.port, "denied.example:443", token) == 403
        events.wait_count(1, mode="connect", decision="deny")
        drained = proxy.drain_audit_events()
    keys = {"timestamp_unix_ms", "event", "mode", "decision", "target", "port", "method", "path",
            "status", "reason", "route_id", "auth_mechanism", "auth_outcome",
            "managed_credential_active", "injection_mode", "denial_category", "bytes_up",
            "bytes_down", "duration_ms"}
    assert len(drained) == 1
    ev = drained[0]
    assert set(ev) == keys
    assert ev["event"] == "decision" and ev["mode"] == "connect" and ev["decision"] == "deny"
    assert ev["target"] == "denied.example" and ev["port"] == 443 and ev["status"] == 403
    assert ev["denial_category"] == "host_denied"
    assert ev["path"] is None and ev["route_id"] is None and ev["injection_mode"] is None
    assert ev["bytes_up"] is None and ev["managed_credential_active"] is None
    assert isinstance(ev["timestamp_unix_ms"], int)


def test_resolver_exception_and_not_found(upstream, ca_file, capfd):
    secret = nptest.new_secret("raise")

    def resolver(key):
        if key == "vault://raises":
            raise RuntimeError("vault said no; secret was " + secret)
        if key == "vault://missing":
            raise KeyError(key)
        if key == "vault://wrongtype":
            return 42
        return None  # env:// etc.: the built-in sources

    routes = [RouteConfig("/a", upstream.url(), credential_key="vault://raises"),
              RouteConfig("/b", upstream.url(), credential_key="vault://missing"),
              RouteConfig("/c", upstream.url(), credential_key="vault://wrongtype"),
              RouteConfig("/d", upstream.url(), credential_key="env://NONOPROXY_PY_UNSET_VAR")]
    with start_proxy(ProxyConfig(routes=routes, ca_file=ca_file,
                                 credential_resolver=resolver)) as proxy:
        diags = {d["route"]: d for d in proxy.diagnostics()}
        assert diags["a"]["code"] == "credential_unavailable"
        assert diags["b"]["code"] == "credential_not_found"
        assert diags["c"]["code"] == "credential_unavailable"
        assert diags["d"]["code"] == "credential_not_found"
        status, body = nptest.http_request(proxy.port, "/a/x", [("Authorization", "Bearer x")])
        assert status == 503
        assert secret not in json.dumps(proxy.drain_audit_events())
        assert secret not in json.dumps(list(diags.values()))
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
