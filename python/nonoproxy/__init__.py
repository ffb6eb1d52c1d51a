"""nonoproxy: a domain-filtering, credential-injecting proxy for sandboxed child processes.

The seed's Python API (ProxyConfig, RouteConfig, InjectMode, ExternalProxyConfig, start_proxy,
ProxyHandle) and the policy extras (RateLimit, Decision) over libnonoproxy, which the C
extension nonoproxy._nonoproxy links statically.
See docs/PYTHON.md in the source tree.
"""

from nonoproxy._nonoproxy import (
    LIBRARY_VERSION,
    Decision,
    ExternalProxyConfig,
    InjectMode,
    ProxyConfig,
    ProxyHandle,
    RateLimit,
    RouteConfig,
    start_proxy,
)

__all__ = [
    "Decision",
    "ExternalProxyConfig",
    "InjectMode",
    "LIBRARY_VERSION",
    "ProxyConfig",
    "ProxyHandle",
    "RateLimit",
    "RouteConfig",
    "start_proxy",
]
