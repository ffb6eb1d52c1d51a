# Type stubs for nonoproxy (the C extension nonoproxy._nonoproxy); checked with mypy --strict.
import enum
from types import TracebackType
from typing import Any, Callable, Iterable, Literal, Optional, Type, TypedDict, Union, final

from typing_extensions import Required

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

LIBRARY_VERSION: str

class InjectMode(enum.IntEnum):
    HEADER = 1
    URL_PATH = 2
    QUERY_PARAM = 3
    BASIC_AUTH = 4

class Decision(enum.IntEnum):
    DENY = 0
    ALLOW_ONCE = 1
    ALLOW_SESSION = 2

@final
class RateLimit:
    def __init__(
        self, requests_per_minute: int, burst: int = 5, max_delay_ms: int = 0
    ) -> None: ...
    @property
    def requests_per_minute(self) -> int: ...
    @property
    def burst(self) -> int: ...
    @property
    def max_delay_ms(self) -> int: ...

class _RateLimitDict(TypedDict, total=False):
    requests_per_minute: Required[int]
    burst: int
    max_delay_ms: int

@final
class RouteConfig:
    def __init__(
        self,
        prefix: str,
        upstream: str,
        credential_key: Optional[str] = None,
        inject_mode: InjectMode = InjectMode.HEADER,
        inject_header: str = "Authorization",
        credential_format: str = "Bearer {}",
        path_pattern: Optional[str] = None,
        path_replacement: Optional[str] = None,
        query_param_name: Optional[str] = None,
        env_var: Optional[str] = None,
        *,
        tls_ca: Optional[str] = None,
        endpoint_rules: Iterable[tuple[str, str]] = [],
        rate_limit: Union[RateLimit, _RateLimitDict, None] = None,
        tls_client_cert: Optional[str] = None,
        tls_client_key: Optional[str] = None,
    ) -> None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def upstream(self) -> str: ...
    @property
    def credential_key(self) -> Optional[str]: ...
    @property
    def inject_mode(self) -> InjectMode: ...
    @property
    def inject_header(self) -> str: ...
    @property
    def credential_format(self) -> str: ...
    @property
    def path_pattern(self) -> Optional[str]: ...
    @property
    def path_replacement(self) -> Optional[str]: ...
    @property
    def query_param_name(self) -> Optional[str]: ...
    @property
    def env_var(self) -> Optional[str]: ...
    @property
    def tls_ca(self) -> Optional[str]: ...
    @property
    def endpoint_rules(self) -> list[tuple[str, str]]: ...
    @property
    def rate_limit(self) -> Optional[RateLimit]: ...
    @property
    def tls_client_cert(self) -> Optional[str]: ...
    @property
    def tls_client_key(self) -> Optional[str]: ...

@final
class ExternalProxyConfig:
    def __init__(self, address: str, bypass_hosts: Iterable[str] = []) -> None: ...
    @property
    def address(self) -> str: ...
    @property
    def bypass_hosts(self) -> list[str]: ...

_AuditEvent = dict[str, Any]
_Credential_Resolver = Callable[[str], Union[str, bytes, None]]
_AuditCallback = Callable[[_AuditEvent], object]
_Resolver = Callable[[str, int], Iterable[str]]
_DecideAnswer = Union[Decision, str]  # "deny", "once" or "session"
_Decide = Callable[[str, int, str, str], _DecideAnswer]

@final
class ProxyConfig:
    def __init__(
        self,
        allowed_hosts: Iterable[str] = [],
        routes: Iterable[RouteConfig] = [],
        external_proxy: Optional[ExternalProxyConfig] = None,
        bind_addr: str = "127.0.0.1",
        bind_port: int = 0,
        max_connections: int = 256,
        *,
        require_auth: bool = True,
        ca_file: Optional[str] = None,
        header_timeout_ms: int = 30000,
        connect_timeout_ms: int = 10000,
        tls_timeout_ms: int = 10000,
        idle_timeout_ms: int = 600000,
        response_timeout_ms: int = 300000,
        audit_capacity: int = 4096,
        credential_resolver: Optional[_Credential_Resolver] = None,
        audit_callback: Optional[_AuditCallback] = None,
        resolver: Optional[_Resolver] = None,
        denied_hosts: Iterable[str] = [],
        strict_allowlist: bool = False,
        decide: Optional[_Decide] = None,
        decide_timeout: float = 30.0,
    ) -> None: ...
    @property
    def allowed_hosts(self) -> list[str]: ...
    @property
    def routes(self) -> list[RouteConfig]: ...
    @property
    def external_proxy(self) -> Optional[ExternalProxyConfig]: ...
    @property
    def bind_addr(self) -> str: ...
    @property
    def bind_port(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def require_auth(self) -> bool: ...
    @property
    def ca_file(self) -> Optional[str]: ...
    @property
    def header_timeout_ms(self) -> int: ...
    @property
    def connect_timeout_ms(self) -> int: ...
    @property
    def tls_timeout_ms(self) -> int: ...
    @property
    def idle_timeout_ms(self) -> int: ...
    @property
    def response_timeout_ms(self) -> int: ...
    @property
    def audit_capacity(self) -> int: ...
    @property
    def credential_resolver(self) -> Optional[_Credential_Resolver]: ...
    @property
    def audit_callback(self) -> Optional[_AuditCallback]: ...
    @property
    def resolver(self) -> Optional[_Resolver]: ...
    @property
    def denied_hosts(self) -> list[str]: ...
    @property
    def strict_allowlist(self) -> bool: ...
    @property
    def decide(self) -> Optional[_Decide]: ...
    @property
    def decide_timeout(self) -> float: ...

@final
class ProxyHandle:
    @property
    def port(self) -> int: ...
    def env_vars(self) -> dict[str, str]: ...
    def credential_env_vars(self) -> dict[str, str]: ...
    def drain_audit_events(self) -> list[_AuditEvent]: ...
    def diagnostics(self) -> list[dict[str, str]]: ...
    def shutdown(self) -> None: ...
    def __enter__(self) -> "ProxyHandle": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

def start_proxy(config: ProxyConfig) -> ProxyHandle: ...
