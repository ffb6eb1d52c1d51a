"""The seed's names, signatures and defaults; the extras; errors; repr; help()."""

import errno
import inspect
import socket

import pytest

import nonoproxy
from nonoproxy import (ExternalProxyConfig, InjectMode, ProxyConfig, ProxyHandle, RouteConfig,
                       start_proxy)


def test_exported_names():
    for name in ("ProxyConfig", "RouteConfig", "InjectMode", "ExternalProxyConfig",
                 "start_proxy", "ProxyHandle"):
        assert name in nonoproxy.__all__
        if isinstance(getattr(nonoproxy, name), type):
            assert getattr(nonoproxy, name).__module__ == "nonoproxy"


def test_inject_mode_members():
    assert [m.name for m in InjectMode] == ["HEADER", "URL_PATH", "QUERY_PARAM", "BASIC_AUTH"]
    assert InjectMode.HEADER != InjectMode.BASIC_AUTH
    assert InjectMode(InjectMode.QUERY_PARAM.value) is InjectMode.QUERY_PARAM


def test_proxy_config_defaults():
    c = ProxyConfig()
    assert c.allowed_hosts == []
    assert c.routes == []
    assert c.external_proxy is None
    assert c.bind_addr == "127.0.0.1"
    assert c.bind_port == 0
    assert c.max_connections == 256
    # extras: the C library's defaults
    assert c.require_auth is True
    assert c.ca_file is None
    assert (c.header_timeout_ms, c.connect_timeout_ms, c.tls_timeout_ms, c.idle_timeout_ms,
            c.response_timeout_ms) == (30000, 10000, 10000, 600000, 300000)
    assert c.audit_capacity == 4096
    assert c.credential_resolver is None and c.audit_callback is None and c.resolver is None


def test_proxy_config_positional_and_keyword():
    r = RouteConfig("/a", "https://a.example")
    e = ExternalProxyConfig("proxy.corp:3128")
    pos = ProxyConfig(["a.example"], [r], e, "127.0.0.1", 0, 7)
    kw = ProxyConfig(allowed_hosts=["a.example"], routes=[r], external_proxy=e,
                     bind_addr="127.0.0.1", bind_port=0, max_connections=7)
    for c in (pos, kw):
        assert c.allowed_hosts == ["a.example"]
        assert c.routes == [r]
        assert c.external_proxy is e
        assert c.max_connections == 7
    with pytest.raises(TypeError):
        ProxyConfig([], [], None, "127.0.0.1", 0, 7, True)  # extras are keyword-only


def test_lists_are_copied():
    hosts = ["a.example"]
    c = ProxyConfig(allowed_hosts=hosts)
    hosts.append("b.example")
    c.allowed_hosts.append("c.example")
    assert c.allowed_hosts == ["a.example"]


def test_route_config_defaults():
    r = RouteConfig("/openai", "https://api.openai.com")
    assert r.prefix == "/openai" and r.upstream == "https://api.openai.com"
    assert r.credential_key is None
    assert r.inject_mode is InjectMode.HEADER
    assert r.inject_header == "Authorization"
    assert r.credential_format == "Bearer {}"
    assert r.path_pattern is None and r.path_replacement is None
    assert r.query_param_name is None and r.env_var is None and r.tls_ca is None
    # An omitted format follows the header (the library's rule); a given one is kept.
    assert RouteConfig("/x", "https://x.example", inject_header="X-Api-Key").credential_format \
        == "{}"
    assert RouteConfig("/x", "https://x.example", inject_header="X-Api-Key",
                       credential_format="Bearer {}").credential_format == "Bearer {}"


def test_route_config_positional():
    r = RouteConfig("/p", "https://p.example", "env://K", InjectMode.URL_PATH, "X-H", "t {}",
                    "/bot{}/", "/v2/{}/", "key", "P_TOKEN")
    assert (r.credential_key, r.inject_mode, r.inject_header, r.credential_format,
            r.path_pattern, r.path_replacement, r.query_param_name, r.env_var) == \
        ("env://K", InjectMode.URL_PATH, "X-H", "t {}", "/bot{}/", "/v2/{}/", "key", "P_TOKEN")
    assert RouteConfig("/p", "https://p.example", inject_mode=3).inject_mode \
        is InjectMode.QUERY_PARAM


def test_external_proxy_defaults():
    e = ExternalProxyConfig("proxy.corp:3128")
    assert e.address == "proxy.corp:3128" and e.bypass_hosts == []
    e = ExternalProxyConfig("proxy.corp:3128", ["*.internal"])
    assert e.bypass_hosts == ["*.internal"]


@pytest.mark.parametrize("make", [
    lambda: ProxyConfig(allowed_hosts="a.example"),
    lambda: ProxyConfig(allowed_hosts=[1]),
    lambda: ProxyConfig(routes=["/a"]),
    lambda: ProxyConfig(external_proxy="proxy:3128"),
    lambda: ProxyConfig(bind_addr=None),
    lambda: ProxyConfig(bind_port="80"),
    lambda: ProxyConfig(max_connections=1.5),
    lambda: ProxyConfig(credential_resolver=3),
    lambda: ProxyConfig(audit_callback="x"),
    lambda: RouteConfig("/a"),
    lambda: RouteConfig("/a", b"https://a.example"),
    lambda: RouteConfig("/a", "https://a.example", credential_key=5),
    lambda: RouteConfig("/a", "https://a.example", inject_mode="HEADER"),
    lambda: RouteConfig("/a", "https://a.example", inject_header=None),
    lambda: ExternalProxyConfig(None),
    lambda: ExternalProxyConfig("p:1", bypass_hosts="a"),
    lambda: start_proxy(None),
])
def test_type_errors(make):
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("make", [
    lambda: ProxyConfig(bind_port=65536),
    lambda: ProxyConfig(bind_port=-1),
    lambda: ProxyConfig(max_connections=-1),
    lambda: ProxyConfig(header_timeout_ms=2 ** 32),
    lambda: RouteConfig("/a", "https://a.example", inject_mode=9),
])
def test_value_errors_at_construction(make):
    with pytest.raises(ValueError):
        make()


ROUTE = "https://a.example"


@pytest.mark.parametrize("config, words", [
    (ProxyConfig(allowed_hosts=["*"]), "allowed_hosts"),
    (ProxyConfig(allowed_hosts=["bad host"]), "allowed_hosts"),
    (ProxyConfig(bind_addr="localhost"), "bind_addr"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE), RouteConfig("a", ROUTE)]), "a"),
    (ProxyConfig(routes=[RouteConfig("/a", "ftp://a.example")]), "upstream"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, credential_format="Bearer")]),
     "credential_format"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, credential_key="env://K",
                                     inject_mode=InjectMode.QUERY_PARAM)]), "query_param_name"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, credential_key="env://K",
                                     inject_mode=InjectMode.URL_PATH)]), "path_pattern"),
    (ProxyConfig(routes=[RouteConfig("/a", ROUTE, credential_key="nope://x")]), "credential"),
    (ProxyConfig(external_proxy=ExternalProxyConfig("no-port")), "external_proxy"),
    (ProxyConfig(external_proxy=ExternalProxyConfig("p:1", ["*"])), "bypass_hosts"),
    (ProxyConfig(ca_file="/nonexistent/ca.pem"), "ca_file"),
])
def test_configuration_errors_raise_value_error(config, words):
    with pytest.raises(ValueError) as info:
        start_proxy(config)
    msg = str(info.value)
    assert words in msg
    assert "\n" not in msg


def test_bind_failure_raises_os_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(OSError) as info:
            start_proxy(ProxyConfig(bind_port=port))
    assert info.value.errno == errno.EADDRINUSE
    assert str(port) in str(info.value)


def test_handle_is_not_constructible():
    with pytest.raises(TypeError):
        ProxyHandle()


def test_handle_basics_and_context_manager():
    with start_proxy(ProxyConfig()) as proxy:
        assert isinstance(proxy, ProxyHandle)
        assert 0 < proxy.port < 65536
        assert "running" in repr(proxy)
        env = proxy.env_vars()
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "NONO_PROXY_TOKEN", "http_proxy",
                     "https_proxy", "no_proxy"):
            assert name in env
        assert str(proxy.port) in env["HTTPS_PROXY"]
        assert proxy.credential_env_vars() == {}
        assert proxy.diagnostics() == []
        assert proxy.drain_audit_events() == []
        token = env["NONO_PROXY_TOKEN"]
        assert token not in repr(proxy)
    assert "shut down" in repr(proxy)
    proxy.shutdown()  # idempotent
    assert proxy.drain_audit_events() == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", proxy.port)) != 0


def test_context_manager_shuts_down_on_exception():
    with pytest.raises(KeyError):
        with start_proxy(ProxyConfig()) as proxy:
            raise KeyError("x")
    assert "shut down" in repr(proxy)


def test_docstrings_for_help():
    for obj in (ProxyConfig, RouteConfig, ExternalProxyConfig, ProxyHandle, start_proxy,
                ProxyHandle.env_vars, ProxyHandle.credential_env_vars,
                ProxyHandle.drain_audit_events, ProxyHandle.shutdown, ProxyHandle.diagnostics):
        assert obj.__doc__ and len(obj.__doc__) > 20, obj
    assert str(inspect.signature(ProxyConfig)).startswith(
        "(allowed_hosts=[], routes=[], external_proxy=None, bind_addr='127.0.0.1', bind_port=0, "
        "max_connections=256, *, require_auth=True")
    assert str(inspect.signature(ExternalProxyConfig)) == "(address, bypass_hosts=[])"
    assert str(inspect.signature(start_proxy)) == "(config)"
    assert "inject_mode=<InjectMode.HEADER: 1>" in str(inspect.signature(RouteConfig))
    assert "credential_format='Bearer {}'" in str(inspect.signature(RouteConfig))


def test_repr_shows_config_but_no_password():
    e = ExternalProxyConfig("alice:s3cr3t-pw@proxy.corp:3128", ["*.internal"])
    r = RouteConfig("/openai", "https://api.openai.com", credential_key="env://OPENAI_KEY")
    c = ProxyConfig(allowed_hosts=["api.openai.com"], routes=[r], external_proxy=e)
    for text in (repr(e), repr(c)):
        assert "s3cr3t-pw" not in text
        assert "alice:[REDACTED]@proxy.corp:3128" in text
    assert repr(r) == ("RouteConfig(prefix='/openai', upstream='https://api.openai.com', "
                       "credential_key='env://OPENAI_KEY', inject_mode=InjectMode.HEADER, "
                       "inject_header='Authorization', credential_format='Bearer {}', "
                       "path_pattern=None, path_replacement=None, query_param_name=None, "
                       "env_var=None, tls_ca=None, endpoint_rules=[], rate_limit=None, "
                       "tls_client_cert=None, tls_client_key=None)")
    assert "api.openai.com" in repr(c)


def test_external_proxy_password_not_in_error():
    with pytest.raises(ValueError) as info:
        start_proxy(ProxyConfig(external_proxy=ExternalProxyConfig("bob:hunter2-pw@bad host:1")))
    assert "hunter2-pw" not in str(info.value)
