"""The type stubs: mypy --strict accepts the seed's examples, and stubtest finds the stubs
faithful to the module at run time (names, signatures, defaults)."""

import importlib.util
import os
import subprocess
import sys

import pytest

import nonoproxy
from test_seed_examples import IMPORT_OURS, IMPORT_SEED, SEED_EXAMPLE_1, SEED_EXAMPLE_2

# What the second example uses besides the proxy: nono's sandbox, typed here.
STANDINS = '''\
from typing import Any, Sequence


def sandboxed_exec(caps: Any, argv: Sequence[str], env: Sequence[tuple[str, str]]) -> int:
    return 0


caps: Any = None
'''

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (apt-get install python3-mypy)")


def package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(nonoproxy.__file__)))


def run_mypy(args, cwd):
    env = dict(os.environ, PYTHONPATH=package_root())
    if os.path.basename(package_root()) != "site-packages":  # an installed one is found as such
        env["MYPYPATH"] = package_root()
    res = subprocess.run([sys.executable, "-m"] + args, cwd=cwd, env=env, timeout=600,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return res.returncode, res.stdout.decode(errors="replace")


def test_mypy_strict_accepts_the_seed_examples(tmp_path):
    code = (SEED_EXAMPLE_1.replace(IMPORT_SEED, IMPORT_OURS) + "\n" + STANDINS + "\n" +
            SEED_EXAMPLE_2)
    (tmp_path / "seed_example.py").write_text(code)
    status, out = run_mypy(["mypy", "--strict", "--no-incremental", "--cache-dir",
                            str(tmp_path / "cache"), "seed_example.py"], tmp_path)
    assert status == 0, out


def test_stubtest_matches_the_runtime(tmp_path):
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    status, out = run_mypy(["mypy.stubtest", "--mypy-config-file", str(tmp_path / "mypy.ini"),
                            "nonoproxy"], tmp_path)
    assert status == 0, out


POLICY_EXAMPLE = '''\
from nonoproxy import Decision, ProxyConfig, RateLimit, RouteConfig, start_proxy


def decide(host: str, port: int, mode: str, method: str) -> Decision:
    return Decision.ALLOW_ONCE if host.endswith(".example") else Decision.DENY


def ask(host: str, port: int, mode: str, method: str) -> str:
    return "session"


route = RouteConfig("/openai", "https://api.openai.com", credential_key="env://OPENAI_KEY",
                    endpoint_rules=[("GET", "/v1/models"), ("*", "/v1/chat/**")],
                    rate_limit=RateLimit(60, burst=5), tls_client_cert="/c.pem",
                    tls_client_key="/c.key")
other = RouteConfig("/gh", "https://api.github.com",
                    rate_limit={"requests_per_minute": 30, "max_delay_ms": 500})
config = ProxyConfig(routes=[route, other], denied_hosts=["evil.example", "10.9.0.0/16"],
                     strict_allowlist=True, decide=decide, decide_timeout=5.0)
config2 = ProxyConfig(decide=ask)
rules: list[tuple[str, str]] = route.endpoint_rules
limit = route.rate_limit
per_minute: int = limit.requests_per_minute if limit is not None else 0
timeout: float = config.decide_timeout
proxy = start_proxy(config)
proxy.shutdown()
'''


def test_mypy_strict_accepts_the_policy_extras(tmp_path):
    (tmp_path / "policy_example.py").write_text(POLICY_EXAMPLE)
    status, out = run_mypy(["mypy", "--strict", "--no-incremental", "--cache-dir",
                            str(tmp_path / "cache"), "policy_example.py"], tmp_path)
    assert status == 0, out
