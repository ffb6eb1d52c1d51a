"""A recording HTTPS (or plain HTTP) upstream for the reverse-proxy end-to-end tests.

python3 stdlib only. Raw sockets and a small HTTP/1.1 parser of its own (not http.server), so
the tests control the framing exactly and see every byte the proxy sent:

  - listens on 127.0.0.1 port 0 (and on ::1 with the same port when the host has it, so that a
    route to https://localhost:PORT works whichever address the proxy tries first);
  - TLS with the test CA's leaf certificate (npe2e.Certs), handshake in the connection's own
    thread, never in the accept loop;
  - per accepted connection: every decrypted byte received (`raw`) and each request on it
    (keep-alive: several requests per connection), with its request line, raw head, headers in
    order and byte for byte, body (de-chunked) and the body's framing;
  - answers through a programmable handler, `handler(request) -> Answer`: a fixed body with
    Content-Length, a chunked body, server-sent events spaced by an interval (the spacing is
    done here with time.sleep: it is the thing being measured), a delay before the answer,
    close without an answer, or no answer at all until the server is closed;
  - or, with handshake=False, accept TCP connections and never answer the TLS handshake.

Waiting is on events (a condition variable), never on sleeps.
"""

import socket
import ssl
import threading
import time

from npe2e import IO_TIMEOUT, SCALE, Certs, deadline_after, remaining

DEFAULT_BODY = b"hello from the recording upstream\n"
HEAD_LIMIT = 1 << 20           # a request head longer than this is a harness error
CONN_TIMEOUT = 120 * SCALE     # longest wait for the next byte from the proxy

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


class Answer:
    """What the upstream does with one request. Build with the class methods."""

    FIXED = "fixed"
    CHUNKED = "chunked"
    SSE = "sse"
    CLOSE = "close"
    HANG = "hang"

    def __init__(self, kind, status=200, headers=(), body=b"", chunks=(), count=0,
                 interval=0.0, delay=0.0, close_after=False):
        self.kind = kind
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.chunks = list(chunks)
        self.count = count
        self.interval = interval
        self.delay = delay
        self.close_after = close_after

    @classmethod
    def fixed(cls, body=DEFAULT_BODY, status=200, headers=(("Content-Type", "text/plain"),),
              delay=0.0, close_after=False):
        """Answer `body` with a Content-Length (after `delay` seconds)."""
        return cls(cls.FIXED, status=status, headers=headers, body=body, delay=delay,
                   close_after=close_after)

    @classmethod
    def chunked(cls, chunks, status=200, headers=(("Content-Type", "text/plain"),),
                interval=0.0, delay=0.0):
        """Answer with Transfer-Encoding: chunked, one chunk per item, `interval` s apart."""
        return cls(cls.CHUNKED, status=status, headers=headers, chunks=chunks,
                   interval=interval, delay=delay)

    @classmethod
    def sse(cls, count, interval):
        """Answer text/event-stream, chunked: `count` events `interval` seconds apart. Event i
        is b"id: i\\ndata: event i\\n\\n"; the send time of each goes to request.sent_times."""
        return cls(cls.SSE, headers=(("Content-Type", "text/event-stream"),
                                     ("Cache-Control", "no-cache")),
                   count=count, interval=interval)

    @classmethod
    def close(cls):
        """Close the connection without answering (after reading the whole request)."""
        return cls(cls.CLOSE)

    @classmethod
    def hang(cls):
        """Never answer; hold the connection until the server is closed."""
        return cls(cls.HANG)


def sse_event(i):
    """The bytes of server-sent event number i as Answer.sse sends them."""
    return b"id: %d\ndata: event %d\n\n" % (i, i)


def default_handler(_request):
    return Answer.fixed()


class Request:
    """One request as the upstream received it."""

    def __init__(self, conn_id, index):
        self.conn_id = conn_id
        self.index = index            # position on its connection, from 0
        self.request_line = ""
        self.method = ""
        self.target = ""
        self.version = ""
        self.head = b""               # raw head, request line to the blank line included
        self.headers = []             # [(name, value)] as sent (latin-1), in order
        self.framing = "none"         # "none", "length" or "chunked"
        self.body = b""               # de-chunked body
        self.raw_body = b""           # body bytes as framed on the wire
        self.sent_times = []          # Answer.sse: time.monotonic() after each event was sent
        self.answered = threading.Event()

    def header(self, name):
        """First value of header `name` (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    @property
    def raw(self):
        return self.head + self.raw_body

    def __repr__(self):
        return "Request(conn=%d, %r, headers=%r, %d body bytes)" % (
            self.conn_id, self.request_line, self.headers, len(self.body))


class Connection:
    """One accepted connection: every decrypted byte received and the requests on it."""

    def __init__(self, conn_id, peer):
        self.id = conn_id
        self.peer = peer
        self.raw = bytearray()
        self.requests = []
        self.handshake_ok = False
        self.handshake_error = None
        self.closed = False


class _Reader:
    """Buffered reads from a (TLS) socket for the request parser."""

    def __init__(self, sock, record):
        self.sock = sock
        self.buf = bytearray()
        self.record = record  # called with every chunk received

    def _fill(self):
        data = self.sock.recv(65536)
        if data:
            self.record(data)
            self.buf.extend(data)
        return bool(data)

    def read_until(self, delim, limit):
        """Return the bytes up to and including delim; None on a clean EOF before any byte."""
        while True:
            idx = self.buf.find(delim)
            if idx >= 0:
                out = bytes(self.buf[:idx + len(delim)])
                del self.buf[:idx + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            if not self._fill():
                if self.buf:
                    raise EOFError("EOF inside a message: %r" % bytes(self.buf[:200]))
                return None

    def read_exactly(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("EOF after %d of %d body bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class RecordingUpstream:
    """The upstream server. `handler` may be replaced at any time (it is read per request)."""

    def __init__(self, tls=True, handler=None, handshake=True):
        self.tls = tls
        self.handshake = handshake
        self.handler = handler or default_handler
        self._ctx = Certs.get().server_context() if tls else None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.connections = []
        self.errors = []
        self._socks = []
        self._listeners = []
        self.port = None
        self._bind()
        for lst in self._listeners:
            threading.Thread(target=self._accept_loop, args=(lst,), daemon=True).start()

    # -- addresses --------------------------------------------------------------------------

    def url(self, host="127.0.0.1", path=""):
        """The upstream URL for a route: scheme://host:port + path."""
        scheme = "https" if self.tls else "http"
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    def authority(self, host="127.0.0.1"):
        return "%s:%d" % (host, self.port)

    def _bind(self):
        last = None
        for _ in range(50):
            v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            try:
                v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                v6.bind(("::1", port))
            except OSError as exc:
                last = exc
                try:
                    v6.close()
                except (OSError, UnboundLocalError):
                    pass
                if exc.errno in (97, 99):  # EAFNOSUPPORT/EADDRNOTAVAIL: no ::1, IPv4 only
                    v4.listen(64)
                    self._listeners = [v4]
                    self.port = port
                    return
                v4.close()
                continue
            v4.listen(64)
            v6.listen(64)
            self._listeners = [v4, v6]
            self.port = port
            return
        raise RuntimeError("could not bind the recording upstream: %r" % (last,))

    # -- serving ------------------------------------------------------------------------------

    def _accept_loop(self, lst):
        while not self._stop.is_set():
            try:
                sock, peer = lst.accept()
            except OSError:
                return
            with self._cond:
                if self._stop.is_set():
                    sock.close()
                    return
                conn = Connection(len(self.connections), peer)
                self.connections.append(conn)
                self._socks.append(sock)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(sock, conn), daemon=True).start()

    def _record_bytes(self, conn, data):
        with self._cond:
            conn.raw.extend(data)
            self._cond.notify_all()

    def _serve(self, sock, conn):
        try:
            sock.settimeout(CONN_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls and not self.handshake:
                self._stop.wait()  # accept, never answer the ClientHello
                return
            if self.tls:
                try:
                    sock = self._ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    with self._cond:
                        conn.handshake_error = repr(exc)
                        self._cond.notify_all()
                    return
                with self._cond:
                    self._socks.append(sock)
            with self._cond:
                conn.handshake_ok = True
                self._cond.notify_all()
            reader = _Reader(sock, lambda data: self._record_bytes(conn, data))
            while not self._stop.is_set():
                req = self._read_request(reader, conn)
                if req is None:
                    return
                if not self._answer(sock, req):
                    return
        except (OSError, ValueError, EOFError, ssl.SSLError) as exc:
            if not self._stop.is_set():
                with self._cond:
                    self.errors.append("connection %d: %r" % (conn.id, exc))
        finally:
            with self._cond:
                conn.closed = True
                self._cond.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    def _read_request(self, reader, conn):
        """Read one request (head and body) and record it; None on EOF between requests."""
        head = reader.read_until(b"\r\n\r\n", HEAD_LIMIT)
        if head is None:
            return None
        req = Request(conn.id, len(conn.requests))
        req.head = head
        lines = head[:-4].decode("latin-1").split("\r\n")
        req.request_line = lines[0]
        parts = req.request_line.split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line %r" % req.request_line)
        req.method, req.target, req.version = parts
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("header line without a colon: %r" % line)
            req.headers.append((name, value.strip(" \t")))
        te = ",".join(req.header_all("transfer-encoding")).lower()
        if "chunked" in te:
            req.framing = "chunked"
            raw, body = bytearray(), bytearray()
            while True:
                size_line = reader.read_until(b"\r\n", 4096)
                if size_line is None:
                    raise EOFError("EOF before a chunk size")
                raw.extend(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers up to the blank line
                        line = reader.read_until(b"\r\n", 65536)
                        if line is None:
                            raise EOFError("EOF in the trailers")
                        raw.extend(line)
                        if line == b"\r\n":
                            break
                    break
                data = reader.read_exactly(size + 2)
                if data[-2:] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                raw.extend(data)
                body.extend(data[:-2])
            req.raw_body, req.body = bytes(raw), bytes(body)
        elif req.header("content-length") is not None:
            req.framing = "length"
            req.raw_body = req.body = reader.read_exactly(int(req.header("content-length")))
        with self._cond:
            conn.requests.append(req)
            self._cond.notify_all()
        return req

    def _write_head(self, sock, status, headers, framing_line, close):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if framing_line:
            lines.append(framing_line)
        if close:
            lines.append("Connection: close")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _answer(self, sock, req):
        """Answer req per the handler; return whether the connection stays open."""
        try:
            ans = self.handler(req)
        except Exception as exc:  # a broken handler is a test bug: report it, answer 500
            with self._cond:
                self.errors.append("handler raised %r" % (exc,))
            ans = Answer.fixed(b"handler error\n", status=500, close_after=True)
        if ans.delay > 0 and self._stop.wait(ans.delay):
            return False
        if ans.kind == Answer.CLOSE:
            return False
        if ans.kind == Answer.HANG:
            self._stop.wait()
            return False
        close = ans.close_after or (req.header("connection") or "").lower() == "close"
        no_body = req.method == "HEAD" or ans.status in (204, 304)
        if ans.kind == Answer.FIXED:
            framing = None if ans.status in (204, 304) else "Content-Length: %d" % len(ans.body)
            self._write_head(sock, ans.status, ans.headers, framing, close)
            if not no_body and ans.body:
                sock.sendall(ans.body)
        else:
            self._write_head(sock, ans.status, ans.headers, "Transfer-Encoding: chunked", close)
            if not no_body:
                items = ans.chunks if ans.kind == Answer.CHUNKED else \
                    [sse_event(i) for i in range(ans.count)]
                for i, chunk in enumerate(items):
                    if i > 0 and ans.interval > 0 and self._stop.wait(ans.interval):
                        return False
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    if ans.kind == Answer.SSE:
                        req.sent_times.append(time.monotonic())
                sock.sendall(b"0\r\n\r\n")
        req.answered.set()
        return not close

    # -- observing ----------------------------------------------------------------------------

    def requests(self):
        """Every complete request received so far, connection by connection."""
        with self._cond:
            return [r for c in self.connections for r in c.requests]

    def request_count(self):
        return len(self.requests())

    def connection_count(self):
        with self._cond:
            return len(self.connections)

    def all_raw(self):
        """Every decrypted byte received on every connection, concatenated."""
        with self._cond:
            return b"".join(bytes(c.raw) for c in self.connections)

    def wait_for(self, predicate, timeout=IO_TIMEOUT):
        """Wait until predicate(self) is true (checked whenever something is recorded)."""
        end = deadline_after(timeout)
        with self._cond:
            while not predicate(self):
                if time.monotonic() >= end:
                    return False
                self._cond.wait(remaining(end))
            return True

    def wait_requests(self, count, timeout=IO_TIMEOUT):
        """Wait until at least `count` requests were received; return them all."""
        self.wait_for(lambda s: sum(len(c.requests) for c in s.connections) >= count, timeout)
        return self.requests()

    def wait_connections(self, count, timeout=IO_TIMEOUT):
        """Wait until at least `count` connections were accepted; return the count."""
        self.wait_for(lambda s: len(s.connections) >= count, timeout)
        return self.connection_count()

    def close(self):
        self._stop.set()
        for lst in self._listeners:
            try:
                lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        with self._cond:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# Issue #4 (forward proxy, external proxy, smuggling): verbatim answers, one bind address
# --------------------------------------------------------------------------------------------

RAW = "raw"


def raw_answer(data, close=False, delay=0.0):
    """An Answer that ScriptedUpstream sends verbatim (status line, headers and body exactly as
    given, so the test controls the response framing), then closes the connection when `close`
    (a close-delimited body ends there) or reads the next request."""
    return Answer(RAW, body=data, close_after=close, delay=delay)


class ScriptedUpstream(RecordingUpstream):
    """A RecordingUpstream that can also send raw answers (raw_answer) and listen on one given
    address only (e.g. 10.200.0.1 in a private network namespace), optionally with its own TLS
    context (a certificate naming that address: npe2e.server_context_for).

    The handler is called once per request, as in RecordingUpstream."""

    def __init__(self, tls=False, handler=None, host=None, ssl_context=None, handshake=True):
        self.bind_host = host
        self._user_handler = default_handler
        super().__init__(tls=tls, handler=handler, handshake=handshake)
        if tls and ssl_context is not None:
            # Before any connection: nobody knows the port until this constructor returns.
            self._ctx = ssl_context

    # RecordingUpstream._answer reads self.handler; hand it the answer computed here.
    @property
    def handler(self):
        return self._dispatch

    @handler.setter
    def handler(self, fn):
        self._user_handler = fn or default_handler

    def _dispatch(self, req):
        ans = req.__dict__.pop("_scripted_answer", None)
        return ans if ans is not None else self._user_handler(req)

    def url(self, host=None, path=""):
        return super().url(host or self.bind_host or "127.0.0.1", path)

    def authority(self, host=None):
        return super().authority(host or self.bind_host or "127.0.0.1")

    def _bind(self):
        if self.bind_host is None:
            super()._bind()
            return
        family = socket.AF_INET6 if ":" in self.bind_host else socket.AF_INET
        lst = socket.socket(family, socket.SOCK_STREAM)
        try:
            lst.bind((self.bind_host, 0))
            lst.listen(64)
        except OSError:
            lst.close()
            raise
        self._listeners = [lst]
        self.port = lst.getsockname()[1]

    def _answer(self, sock, req):
        try:
            ans = self._user_handler(req)
        except Exception as exc:  # a broken handler is a test bug: report it, answer 500
            with self._cond:
                self.errors.append("handler raised %r" % (exc,))
            ans = Answer.fixed(b"handler error\n", status=500, close_after=True)
        if ans.kind != RAW:
            req._scripted_answer = ans
            return super()._answer(sock, req)
        if ans.delay > 0 and self._stop.wait(ans.delay):
            return False
        sock.sendall(ans.body)
        req.answered.set()
        return not ans.close_after

    def quiesce(self, timeout=IO_TIMEOUT):
        """Wait until every connection accepted so far was closed by its peer (after the proxy
        exited, say), so that every byte it sent is in `raw`; return whether they all were."""
        return self.wait_for(lambda s: all(c.closed for c in s.connections), timeout)
