"""The seed document's two Python examples, with only the import line changed.

The examples name https://api.openai.com and the keyring account "openai-key". To run them
unchanged against a local HTTPS upstream, the test hands the examples a ProxyConfig that adds
three extras of this module to what the example passes: a resolver that sends api.openai.com:443
to the local upstream, the test CA as ca_file, and a credential_resolver that answers
"openai-key" (the upstream listens on port 443 of its own loopback address, see
Port443Upstream). `sandboxed_exec` and `caps` (nono's sandbox, not part of the proxy) are stood in
for by a plain child process running agent.py."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import nonoproxy
import nptest

# Verbatim from the seed's ProxyConfig page (../shared/reference), import line changed.
SEED_EXAMPLE_1 = '''\
from nono_py import ProxyConfig, RouteConfig, InjectMode, start_proxy

config = ProxyConfig(
    allowed_hosts=["api.openai.com", "*.anthropic.com"],
    routes=[
        RouteConfig(
            prefix="/openai",
            upstream="https://api.openai.com",
            credential_key="openai-key",
        ),
    ],
)
proxy = start_proxy(config)
'''

SEED_EXAMPLE_2 = '''\
proxy = start_proxy(config)

# Pass to sandboxed child
env = list(proxy.env_vars().items()) + list(proxy.credential_env_vars().items())
result = sandboxed_exec(caps, ["python", "agent.py"], env=env)

# Review what happened
for event in proxy.drain_audit_events():
    print(f"[{event['decision']}] {event['mode']} -> {event['target']}")

proxy.shutdown()
'''

IMPORT_SEED = "from nono_py import"
IMPORT_OURS = "from nonoproxy import"

# The child: one request through the route with the phantom, one CONNECT to a host that is not
# allowed; it writes what it saw (its environment included) to agent-out.json.
AGENT = textwrap.dedent('''\
    import base64, json, os, socket, urllib.parse, urllib.request
    base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_KEY"]
    req = urllib.request.Request(base + "/v1/models", headers={"Authorization": "Bearer " + key})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=120) as r:
        status, body = r.status, r.read().decode()
    p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    s = socket.create_connection((p.hostname, p.port), timeout=120)
    auth = base64.b64encode(("%s:%s" % (p.username, p.password)).encode()).decode()
    s.sendall(("CONNECT evil.example:443 HTTP/1.1\\r\\nHost: evil.example:443\\r\\n"
               "Proxy-Authorization: Basic %s\\r\\n\\r\\n" % auth).encode())
    connect = s.recv(4096).split(b"\\r\\n")[0].decode()
    with open("agent-out.json", "w") as f:
        json.dump({"env": dict(os.environ), "status": status, "body": body,
                   "connect": connect}, f)
''')


class Port443Upstream(nptest.ScriptedUpstream):
    """The recording HTTPS upstream on port 443 of a loopback address of its own (127.x.y.z,
    random), since the route's upstream is https://api.openai.com and the library keeps the
    port the resolver is asked for. Binding port 443 needs root (CAP_NET_BIND_SERVICE)."""

    def __init__(self, ctx):
        host = "127.%d.%d.%d" % tuple(os.urandom(3))
        super().__init__(tls=True, host=host, ssl_context=ctx)

    def _bind(self):
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lst.bind((self.bind_host, 443))
            lst.listen(64)
        except PermissionError:
            lst.close()
            pytest.skip("binding port 443 (the seed example's upstream port) needs root")
        self._listeners = [lst]
        self.port = 443


def test_seed_examples(tmp_path, capsys):
    secret = nptest.new_secret("openai")
    srv = Port443Upstream(nptest.server_context_for("DNS:api.openai.com"))
    events = nptest.Events()
    lookups = []

    def resolver(host, port):
        lookups.append((host, port))
        assert (host, port) == ("api.openai.com", 443)
        return [srv.bind_host]

    def credential_resolver(key):
        return secret if key == "openai-key" else None

    real_config = nonoproxy.ProxyConfig

    def test_config(*args, **kw):
        return real_config(*args, **kw, resolver=resolver,
                                     ca_file=nptest.Certs.get().ca_cert,
                                     credential_resolver=credential_resolver,
                                     audit_callback=events)

    def sandboxed_exec(caps, argv, env):
        assert caps is None
        argv = [sys.executable if argv[0] == "python" else argv[0]] + argv[1:]
        child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        child_env.update(dict(env))
        res = subprocess.run(argv, env=child_env, cwd=tmp_path, timeout=nptest.TIMEOUT * 4,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        assert res.returncode == 0, res.stdout.decode(errors="replace")
        # The events of both requests are recorded (the ring first, then the callback).
        events.wait_count(1, mode="reverse", decision="allow")
        events.wait_count(1, mode="connect", decision="deny")
        return res

    (tmp_path / "agent.py").write_text(AGENT)
    ns = {"__name__": "seed_example"}
    code1 = SEED_EXAMPLE_1.replace(IMPORT_SEED, IMPORT_OURS)
    assert code1.count("\n") == SEED_EXAMPLE_1.count("\n")
    nonoproxy.ProxyConfig = test_config
    try:
        exec(compile(code1, "seed_example_1", "exec"), ns)
        first = ns["proxy"]
        ns.update(sandboxed_exec=sandboxed_exec, caps=None)
        exec(compile(SEED_EXAMPLE_2, "seed_example_2", "exec"), ns)
    finally:
        nonoproxy.ProxyConfig = real_config
        srv.close()
    first.shutdown()
    out = capsys.readouterr().out

    # The printed lines of the example.
    assert "[allow] reverse -> api.openai.com" in out
    assert "[deny] connect -> evil.example" in out
    # The upstream received the real key, the child only the phantom (OPENAI_KEY: the name the
    # library derives from credential_key "openai-key").
    reqs = srv.requests()
    assert [r.header("authorization") for r in reqs] == ["Bearer " + secret]
    assert reqs[0].target == "/v1/models"
    agent = json.loads((tmp_path / "agent-out.json").read_text())
    assert agent["status"] == 200
    assert agent["connect"].split(" ")[1] == "403"
    child_env = agent["env"]
    token = child_env["NONO_PROXY_TOKEN"]
    assert child_env["OPENAI_KEY"] == token
    assert secret not in json.dumps(child_env)
    assert child_env["OPENAI_BASE_URL"].endswith("/openai")
    # Nothing the test can see holds the secret.
    assert secret not in out
    assert secret not in json.dumps(events.events)
    assert secret not in repr(ns["config"]) and secret not in repr(ns["proxy"])
    assert lookups and set(lookups) == {("api.openai.com", 443)}
