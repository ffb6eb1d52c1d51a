"""End-to-end test harness for nonoproxy-run (python3 stdlib only).

Fixtures, all on loopback and port 0 so that test modules can run in parallel:
  - a throw-away test CA and a leaf certificate (SAN DNS:localhost, IP:127.0.0.1, IP:::1) made
    with the openssl command into a temporary directory;
  - an HTTP(S) server answering a known body and recording every request;
  - TCP echo servers (echo as bytes arrive, or echo everything after the client's EOF);
  - ProxyRun: one nonoproxy-run process with its audit log, its stdout/stderr collected by reader
    threads, and helpers to wait for events (a line, the exit) with bounded timeouts;
  - raw proxy clients that speak CONNECT / absolute-form HTTP over a plain socket.

E2ETestCase prints, for a test that failed, every nonoproxy-run it started: the command, the exit
status, stdout, stderr and the audit log. Each test also runs under a watchdog: past
PER_TEST_TIMEOUT it kills the processes the test started and dumps the Python stacks.

Environment:
  NONOPROXY_RUN                   path of the nonoproxy-run binary (required)
  NONOPROXY_E2E_TIMEOUT_SCALE     multiplies every timeout (default 1; the defaults already allow
                                  for ASan/TSan builds)
  NONOPROXY_E2E_IN_NETNS          set to 1 by run_e2e.py when the tests run in a private network
                                  namespace (only loopback exists; nothing can leave the machine)
"""

import atexit
import base64
import faulthandler
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = float(os.environ.get("NONOPROXY_E2E_TIMEOUT_SCALE", "1") or "1")

# Timeouts in seconds. Generous because sanitizer builds are 2-10x slower; all are upper bounds
# on waits for events, never sleeps.
START_TIMEOUT = 60 * SCALE      # nonoproxy-run started and the child reported ready
IO_TIMEOUT = 30 * SCALE         # one request/response exchange through the proxy
EXIT_TIMEOUT = 30 * SCALE       # nonoproxy-run exits after its child did
PER_TEST_TIMEOUT = 150 * SCALE  # watchdog for one test method
CHILD_MAX_LIFE = 280 * SCALE    # holder.py exits by itself after this long

BODY = b"hello from upstream\n"
TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")

IN_NETNS = os.environ.get("NONOPROXY_E2E_IN_NETNS") == "1"
AUDIT_BELOW = "(the audit log is printed with the diagnostics below)"


def deadline_after(seconds):
    """Return the monotonic time `seconds` from now."""
    return time.monotonic() + seconds


def remaining(deadline):
    """Return the seconds left until `deadline` (at least a tiny positive value)."""
    return max(0.001, deadline - time.monotonic())


def nonoproxy_run_path():
    """Return the path of the binary under test, or raise with a clear message."""
    path = os.environ.get("NONOPROXY_RUN", "")
    if not path:
        raise RuntimeError("NONOPROXY_RUN is not set: run these tests through ctest, or set it to "
                           "the path of the nonoproxy-run binary")
    if not os.access(path, os.X_OK):
        raise RuntimeError("NONOPROXY_RUN=%r is not an executable file" % path)
    return path


def require_tool(name):
    """Return the full path of a command the tests need, or raise naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError("the end-to-end tests need the %r command (apt-get install %s)"
                           % (name, name))
    return path


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

class Certs:
    """A test CA and a leaf certificate for localhost / 127.0.0.1 / ::1, made once per process."""

    _lock = threading.Lock()
    _instance = None

    def __init__(self, directory):
        self.dir = directory
        self.ca_cert = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        self.leaf_cert = os.path.join(directory, "leaf.pem")
        self.leaf_key = os.path.join(directory, "leaf.key")

    @classmethod
    def get(cls):
        """Return the process-wide certificates, generating them on first use."""
        with cls._lock:
            if cls._instance is None:
                directory = tempfile.mkdtemp(prefix="nonoproxy-e2e-certs-")
                inst = cls(directory)
                inst._generate()
                cls._instance = inst
            return cls._instance

    @classmethod
    def cleanup(cls):
        """Remove the certificate directory (called at interpreter exit)."""
        if cls._instance is not None:
            shutil.rmtree(cls._instance.dir, ignore_errors=True)
            cls._instance = None

    def _openssl(self, *args):
        """Run one openssl command in the certificate directory; raise with its output on error."""
        cmd = [require_tool("openssl")] + list(args)
        proc = subprocess.run(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError("openssl failed (%d): %s\n%s"
                               % (proc.returncode, " ".join(cmd),
                                  proc.stdout.decode(errors="replace")))

    def _generate(self):
        """Write ca.pem/ca.key and leaf.pem/leaf.key (EC P-256, valid for two days)."""
        ca_ext = os.path.join(self.dir, "ca.ext")
        leaf_ext = os.path.join(self.dir, "leaf.ext")
        with open(ca_ext, "w", encoding="ascii") as f:
            f.write("basicConstraints=critical,CA:TRUE\n"
                    "keyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n")
        with open(leaf_ext, "w", encoding="ascii") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n")
        self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
        self._openssl("req", "-new", "-key", "ca.key", "-subj", "/CN=nonoproxy e2e test CA",
                      "-out", "ca.csr")
        self._openssl("x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "2",
                      "-set_serial", "1", "-extfile", "ca.ext", "-out", "ca.pem")
        self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key")
        self._openssl("req", "-new", "-key", "leaf.key", "-subj", "/CN=localhost",
                      "-out", "leaf.csr")
        self._openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-days", "2", "-set_serial", "2", "-extfile", "leaf.ext", "-out", "leaf.pem")

    def server_context(self):
        """Return a server-side SSLContext holding the leaf certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.leaf_cert, self.leaf_key)
        return ctx

    def client_context(self):
        """Return a verifying client SSLContext trusting only the test CA."""
        return ssl.create_default_context(cafile=self.ca_cert)


# --------------------------------------------------------------------------------------------
# Upstream servers
# --------------------------------------------------------------------------------------------

class _RecordingHandler(BaseHTTPRequestHandler):
    """Answer every GET/HEAD/POST with BODY and record the request in server.log."""

    protocol_version = "HTTP/1.1"
    timeout = 60 * SCALE

    def setup(self):
        tls = self.server.tls_context
        if tls is not None:
            # Handshake here, in the connection's own thread, never in the accept loop.
            self.request.settimeout(self.timeout)
            self.request = tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.tls_context is not None:
                try:
                    self.request.close()
                except OSError:
                    pass

    def _answer(self, with_body):
        length = int(self.headers.get("Content-Length", "0") or "0")
        body_in = self.rfile.read(length) if length > 0 else b""
        self.server.record({
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [(k, v) for k, v in self.headers.items()],
            "body": body_in,
            "peer": self.client_address[0],
        })
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if with_body:
            self.wfile.write(BODY)

    def do_GET(self):  # noqa: N802 (http.server naming)
        self._answer(True)

    def do_POST(self):  # noqa: N802
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def log_message(self, *args):
        pass


class _OneStackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, family, addr, owner):
        self.address_family = family
        self.owner = owner
        self.tls_context = owner.tls_context
        super().__init__(addr, _RecordingHandler)

    def record(self, req):
        self.owner.record(req)

    def handle_error(self, request, client_address):
        # A client that drops a connection is not a harness error; keep stderr readable.
        self.owner.errors.append(repr(sys.exc_info()[1]))


class UpstreamHTTPServer:
    """An HTTP or HTTPS server on 127.0.0.1 and ::1 with one shared port; records requests."""

    def __init__(self, tls=False):
        self.tls_context = Certs.get().server_context() if tls else None
        self.requests = []
        self.errors = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._servers = []
        self._threads = []
        self.port = None
        self._bind()

    def _bind(self):
        """Bind IPv4 on port 0, then IPv6 ::1 on the same port (bounded retries)."""
        last = None
        for _ in range(50):
            v4 = _OneStackHTTPServer(socket.AF_INET, ("127.0.0.1", 0), self)
            port = v4.server_address[1]
            try:
                v6 = _OneStackHTTPServer(socket.AF_INET6, ("::1", port), self)
            except OSError as exc:
                last = exc
                v4.server_close()
                if exc.errno in (97, 99):  # EAFNOSUPPORT/EADDRNOTAVAIL: no ::1, IPv4 only
                    v4 = _OneStackHTTPServer(socket.AF_INET, ("127.0.0.1", 0), self)
                    self._start([v4])
                    return
                continue
            self._start([v4, v6])
            return
        raise RuntimeError("could not bind 127.0.0.1 and ::1 on one port: %r" % (last,))

    def _start(self, servers):
        self._servers = servers
        self.port = servers[0].server_address[1]
        for srv in servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def record(self, req):
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def wait_requests(self, count, timeout=IO_TIMEOUT):
        """Wait until at least `count` requests were recorded; return the list."""
        end = deadline_after(timeout)
        with self._cond:
            while len(self.requests) < count and time.monotonic() < end:
                self._cond.wait(remaining(end))
            return list(self.requests)

    def close(self):
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()


class EchoServer:
    """A TCP server on 127.0.0.1 (and ::1 on the same port when possible).

    mode "echo": send back every chunk as it arrives, close after the client's EOF.
    mode "echo_then_close": read until the client's EOF, then send everything back and close.
    Every connection's received bytes are recorded in `received` (a list of bytearrays).
    """

    def __init__(self, mode="echo"):
        assert mode in ("echo", "echo_then_close")
        self.mode = mode
        self.received = []
        self._cond = threading.Condition()
        self._listeners = []
        self._closing = False
        self._conns = []
        self.port = None
        self._bind()
        for lst in self._listeners:
            threading.Thread(target=self._accept_loop, args=(lst,), daemon=True).start()

    def _bind(self):
        last = None
        for _ in range(50):
            v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            try:
                v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            except OSError:
                v4.listen(64)
                self._listeners = [v4]
                self.port = port
                return
            try:
                v6.bind(("::1", port))
            except OSError as exc:
                last = exc
                v6.close()
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
        raise RuntimeError("could not bind the echo server: %r" % (last,))

    def _accept_loop(self, lst):
        while True:
            try:
                conn, _ = lst.accept()
            except OSError:
                return
            with self._cond:
                if self._closing:
                    conn.close()
                    return
                buf = bytearray()
                self.received.append(buf)
                self._conns.append(conn)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(conn, buf), daemon=True).start()

    def _serve(self, conn, buf):
        conn.settimeout(CHILD_MAX_LIFE)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                with self._cond:
                    buf.extend(data)
                    self._cond.notify_all()
                if self.mode == "echo":
                    conn.sendall(data)
            if self.mode == "echo_then_close":
                conn.sendall(bytes(buf))
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def connection_count(self):
        with self._cond:
            return len(self.received)

    def wait_received(self, predicate, timeout=IO_TIMEOUT):
        """Wait until predicate(list of received byte strings) is true; return that list."""
        end = deadline_after(timeout)
        with self._cond:
            while time.monotonic() < end:
                snap = [bytes(b) for b in self.received]
                if predicate(snap):
                    return snap
                self._cond.wait(remaining(end))
            return [bytes(b) for b in self.received]

    def close(self):
        with self._cond:
            self._closing = True
            conns = list(self._conns)
        for lst in self._listeners:
            try:
                lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        for c in conns:
            try:
                c.close()
            except OSError:
                pass


def closed_port():
    """Return (socket, port): a loopback port that is bound but not listening (connect refused).

    Keep the socket open while the port must stay refused, so no one else can take it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# nonoproxy-run
# --------------------------------------------------------------------------------------------

class _StreamCollector:
    """Read one pipe in a thread, keeping all bytes and a queue of complete lines."""

    def __init__(self, pipe, name):
        self.name = name
        self.data = bytearray()
        self.lines = queue.Queue()
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe):
        pending = b""
        try:
            while True:
                chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
                if not chunk:
                    break
                with self._lock:
                    self.data.extend(chunk)
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            if pending:
                self.lines.put(pending)
            self.lines.put(None)
            self.closed.set()

    def text(self):
        with self._lock:
            return bytes(self.data).decode("utf-8", errors="replace")

    def raw(self):
        with self._lock:
            return bytes(self.data)

    def join(self, timeout):
        self._thread.join(timeout)


class ProxyRun:
    """One nonoproxy-run process: options, child command, audit log and collected output."""

    def __init__(self, options, command, audit=True, env=None, stdin=subprocess.PIPE,
                 workdir=None, argv_prefix=()):
        self.workdir = workdir or tempfile.mkdtemp(prefix="nonoproxy-e2e-")
        self._own_workdir = workdir is None
        self.audit_path = os.path.join(self.workdir, "audit.jsonl") if audit else None
        self.argv = [nonoproxy_run_path()] + list(options)
        if audit:
            self.argv += ["--audit-log", self.audit_path]
        if callable(command):
            command = command(self.workdir)
        if command is not None:  # None: no COMMAND (--serve)
            self.argv += ["--"] + list(command)
        self.env = dict(os.environ if env is None else env)
        # argv_prefix: a wrapper that execs nonoproxy-run (same pid), e.g. to give it a
        # controlling terminal (e2e_policy.py, --ask).
        self.proc = subprocess.Popen(list(argv_prefix) + self.argv, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, cwd=self.workdir, start_new_session=True)
        self.pid = self.proc.pid
        self.stdout = _StreamCollector(self.proc.stdout, "stdout")
        self.stderr = _StreamCollector(self.proc.stderr, "stderr")
        self.returncode = None
        self.killed_by_harness = False
        self.child_info = None
        self._audit_text = None
        self.notes = []

    # -- waiting --------------------------------------------------------------------------

    def wait_line(self, predicate, timeout=START_TIMEOUT):
        """Return the first stdout line (str) for which predicate is true; fail on EOF/timeout."""
        end = deadline_after(timeout)
        while True:
            try:
                line = self.stdout.lines.get(timeout=remaining(end))
            except queue.Empty:
                raise AssertionError("timed out after %.0f s waiting for a line on the child's "
                                     "stdout" % timeout) from None
            if line is None:
                self.stdout.lines.put(None)
                raise AssertionError("nonoproxy-run's stdout closed before the expected line "
                                     "(did the child or nonoproxy-run exit early?)")
            text = line.decode("utf-8", errors="replace")
            if predicate(text):
                return text

    def wait(self, timeout=EXIT_TIMEOUT):
        """Wait for nonoproxy-run to exit and its pipes to drain; return its exit status.

        Raise AssertionError (after killing it) if it does not exit in time."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("nonoproxy-run did not exit within %.0f s (killed)" % timeout) \
                from None
        self.stdout.join(IO_TIMEOUT)
        self.stderr.join(IO_TIMEOUT)
        if not (self.stdout.closed.is_set() and self.stderr.closed.is_set()):
            self.notes.append("stdout/stderr still open %.0f s after nonoproxy-run exited: "
                              "a process it started is still running" % IO_TIMEOUT)
        return self.returncode

    def exit_status(self):
        """Return the exit status as a shell would show it (128+N for signal N)."""
        rc = self.returncode
        if rc is not None and rc < 0:
            return 128 - rc
        return rc

    def send(self, data):
        """Write to the child's stdin (through nonoproxy-run)."""
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self):
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def kill(self):
        """Kill nonoproxy-run's whole session (it was started as a session leader)."""
        if self.proc.poll() is None:
            self.killed_by_harness = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.returncode is None:
            self.returncode = self.proc.returncode

    def _kill_leftovers(self):
        """SIGKILL whatever is left in nonoproxy-run's process group (it was started as the
        leader of a new session, so its pid names the group; the kernel does not reuse a pid
        while a group of that id exists)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            return
        self.notes.append("processes of nonoproxy-run's group were still running at cleanup "
                          "(killed)")

    # -- holder child -----------------------------------------------------------------------

    def holder_ready(self, timeout=START_TIMEOUT):
        """Wait for holder.py's READY line and return the JSON it wrote (env, pid, ppid)."""
        self.wait_line(lambda s: s.strip() == "READY", timeout)
        with open(os.path.join(self.workdir, "holder.json"), encoding="utf-8") as f:
            self.child_info = json.load(f)
        return self.child_info

    def release_holder(self, status=0):
        """Ask holder.py to exit with `status`, close its stdin, and wait for nonoproxy-run."""
        try:
            self.send(b"exit %d\n" % status)
        except OSError:
            pass
        self.close_stdin()
        return self.wait()

    # -- audit --------------------------------------------------------------------------------

    def audit_text(self):
        if self._audit_text is not None:
            return self._audit_text
        if self.audit_path is None:
            return ""
        try:
            with open(self.audit_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError as exc:
            return "<audit log unreadable: %s>" % exc

    def audit_events(self):
        """Return the audit log as a list of dicts; fail if a line is not one JSON object."""
        events = []
        for n, line in enumerate(self.audit_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError as exc:
                raise AssertionError("audit log line %d is not JSON (%s): %r" % (n, exc, line)) \
                    from None
            if not isinstance(ev, dict):
                raise AssertionError("audit log line %d is not a JSON object: %r" % (n, line))
            events.append(ev)
        return events

    # -- teardown and diagnostics ---------------------------------------------------------------

    def close(self):
        """Kill if still running, keep the audit text in memory, remove the work directory."""
        self.close_stdin()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5 * SCALE)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._kill_leftovers()
        self.stdout.join(5)
        self.stderr.join(5)
        self._audit_text = self.audit_text()
        for pipe, reader in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            if reader.closed.is_set():  # closing under a blocked reader would wait for it
                try:
                    pipe.close()
                except OSError:
                    pass
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def diagnostics(self):
        parts = ["---- nonoproxy-run pid %d ----" % self.pid,
                 "argv: %s" % shlex.join(self.argv),
                 "exit status: %r%s" % (self.exit_status(),
                                        " (killed by the harness)" if self.killed_by_harness
                                        else "")]
        parts += ["note: %s" % n for n in self.notes]
        parts += ["-- stdout --", self.stdout.text().rstrip("\n"),
                  "-- stderr --", self.stderr.text().rstrip("\n"),
                  "-- audit log (%s) --" % self.audit_path, self.audit_text().rstrip("\n"),
                  "---- end of pid %d ----" % self.pid]
        # Printed when a test fails: the session token (stdout of --serve, a child's output)
        # is masked, so a failing run never prints it.
        return re.sub(r"[0-9a-f]{64}", "<64 hex: masked>", "\n".join(parts))


def holder_command(workdir, max_life=None):
    """Return the child command for holder.py, which writes WORKDIR/holder.json."""
    return [sys.executable, os.path.join(HERE, "holder.py"), os.path.join(workdir, "holder.json"),
            str(int(max_life or CHILD_MAX_LIFE))]


class ProxyInfo:
    """What the child saw: the proxy URL, port and token (parsed from holder.json)."""

    def __init__(self, child_info):
        env = child_info["env"]
        self.env = env
        self.child_pid = child_info["pid"]
        url = env.get("HTTPS_PROXY", "")
        m = re.match(r"^http://([^:@/]+):([^@/]+)@(127\.0\.0\.1|\[[0-9a-fA-F:]+\]):(\d+)/?$", url)
        if not m:
            raise AssertionError("HTTPS_PROXY in the child's environment is not "
                                 "http://USER:TOKEN@127.0.0.1:PORT: %r" % url)
        self.user = m.group(1)
        self.token = m.group(2)
        self.host = m.group(3).strip("[]")
        self.port = int(m.group(4))

    def basic(self, user=None, token=None):
        """Return a Basic Proxy-Authorization value for user:token."""
        cred = "%s:%s" % (self.user if user is None else user,
                          self.token if token is None else token)
        return "Basic " + base64.b64encode(cred.encode()).decode()


# --------------------------------------------------------------------------------------------
# Raw proxy clients
# --------------------------------------------------------------------------------------------

class Response:
    """A parsed HTTP response head (+ body when Content-Length says so)."""

    def __init__(self, raw):
        self.raw = raw
        head, sep, rest = raw.partition(b"\r\n\r\n")
        self.complete_head = bool(sep)
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0] if lines else ""
        parts = self.status_line.split(" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.status = None
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))
        self.rest = rest
        length = self.header("content-length")
        if length is not None and length.isdigit():
            self.body = rest[:int(length)]
        else:
            self.body = rest

    def header(self, name):
        """Return the first value of header `name` (case-insensitive) or None."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "Response(%r)" % (self.raw[:600],)


def connect_proxy(port, host="127.0.0.1", timeout=IO_TIMEOUT):
    """Open a TCP connection to the proxy."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_head(sock, timeout=IO_TIMEOUT, limit=1 << 20):
    """Read until the end of a response head or EOF; return (head_bytes_incl_crlfcrlf, extra)."""
    end = deadline_after(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < limit:
        sock.settimeout(remaining(end))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out after %.0f s waiting for a response head; got %r"
                                 % (timeout, buf[:400])) from None
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    head, sep, extra = buf.partition(b"\r\n\r\n")
    return head + sep, extra


def read_to_eof(sock, timeout=IO_TIMEOUT, initial=b"", limit=16 << 20):
    """Read until EOF (or a reset); return all bytes. Fail on timeout."""
    end = deadline_after(timeout)
    buf = bytearray(initial)
    while len(buf) < limit:
        sock.settimeout(remaining(end))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out after %.0f s waiting for EOF; got %r"
                                 % (timeout, bytes(buf[:400]))) from None
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf.extend(chunk)
    return bytes(buf)


def read_exactly(sock, n, timeout=IO_TIMEOUT, initial=b""):
    """Read until `n` bytes were received; fail on EOF or timeout."""
    end = deadline_after(timeout)
    buf = bytearray(initial)
    while len(buf) < n:
        sock.settimeout(remaining(end))
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            raise AssertionError("timed out waiting for %d bytes; got %d" % (n, len(buf))) \
                from None
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes: %r" % (len(buf), n, bytes(buf[:200])))
        buf.extend(chunk)
    return bytes(buf)


def exchange(port, request, timeout=IO_TIMEOUT):
    """Send `request` (bytes) on a fresh connection, read the answer to EOF; return Response.

    For answers that close the connection (errors, 407, 403, ...)."""
    with connect_proxy(port, timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return Response(read_to_eof(s, timeout))


def connect_head(target, auth=None, version="HTTP/1.1", extra_headers=(), host_header=True):
    """Build a CONNECT request head for `target` ("host:port")."""
    lines = ["CONNECT %s %s" % (target, version)]
    if host_header:
        lines.append("Host: %s" % target)
    if auth is not None:
        lines.append("Proxy-Authorization: %s" % auth)
    lines += list(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_tunnel(port, target, auth, timeout=IO_TIMEOUT, early=b""):
    """CONNECT through the proxy; return (socket, Response, bytes after the head).

    The caller owns the socket; it is closed here if the status is not 200."""
    s = connect_proxy(port, timeout=timeout)
    try:
        s.sendall(connect_head(target, auth) + early)
        head, extra = read_head(s, timeout)
        resp = Response(head)
        if resp.status != 200:
            resp = Response(head + read_to_eof(s, timeout, initial=extra))
            s.close()
            return None, resp, b""
        return s, resp, extra
    except BaseException:
        s.close()
        raise


def tunnel_roundtrip(sock, payload, extra=b"", timeout=IO_TIMEOUT):
    """Send payload through an open echo tunnel and read the same number of bytes back."""
    sock.sendall(payload)
    return read_exactly(sock, len(payload), timeout, initial=extra)


# --------------------------------------------------------------------------------------------
# Audit helpers
# --------------------------------------------------------------------------------------------

def num(event, key):
    """Return event[key] as an int, or None when it is missing, null or not a number."""
    val = event.get(key)
    if isinstance(val, bool) or val is None:
        return None
    try:
        return int(val)
    except (TypeError, ValueError):
        return None


def matching(events, **want):
    """Return the events whose fields equal every `want` item (port compared as an integer)."""
    out = []
    for ev in events:
        ok = True
        for key, val in want.items():
            have = ev.get(key)
            if key == "port" and have is not None:
                try:
                    have = int(have)
                except (TypeError, ValueError):
                    pass
            if have != val:
                ok = False
                break
        if ok:
            out.append(ev)
    return out


# --------------------------------------------------------------------------------------------
# Test case base
# --------------------------------------------------------------------------------------------

class E2ETestCase(unittest.TestCase):
    """Base class: tracks the nonoproxy-run processes and fixtures a test starts.

    On failure, prints each process's diagnostics; a watchdog bounds each test's duration."""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        self._runs = []
        before = len(result.failures) + len(result.errors)
        watchdog = threading.Timer(PER_TEST_TIMEOUT, self._watchdog_fired)
        watchdog.daemon = True
        watchdog.start()
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT + 60 * SCALE, exit=True)
        try:
            return super().run(result)
        finally:
            watchdog.cancel()
            faulthandler.cancel_dump_traceback_later()
            if len(result.failures) + len(result.errors) > before and self._runs:
                sys.stderr.write("\n==== diagnostics for %s ====\n" % self.id())
                for r in self._runs:
                    sys.stderr.write(r.diagnostics() + "\n")
                sys.stderr.flush()

    def _watchdog_fired(self):
        sys.stderr.write("\n==== %s exceeded %.0f s: killing its processes ====\n"
                         % (self.id(), PER_TEST_TIMEOUT))
        faulthandler.dump_traceback(all_threads=True)
        for r in list(getattr(self, "_runs", [])):
            if r.proc.poll() is None:
                r.notes.append("killed by the per-test watchdog after %.0f s" % PER_TEST_TIMEOUT)
                r.kill()

    # -- fixtures ---------------------------------------------------------------------------

    def start(self, options, command, **kw):
        """Start nonoproxy-run; it is closed (and killed if needed) at cleanup."""
        r = ProxyRun(options, command, **kw)
        self._runs.append(r)
        self.addCleanup(r.close)
        return r

    def start_holder(self, options, **kw):
        """Start nonoproxy-run with holder.py as the child; return (run, ProxyInfo)."""
        r = self.start(options, holder_command, **kw)
        info = ProxyInfo(r.holder_ready())
        return r, info

    def https_server(self):
        srv = UpstreamHTTPServer(tls=True)
        self.addCleanup(srv.close)
        return srv

    def http_server(self):
        srv = UpstreamHTTPServer(tls=False)
        self.addCleanup(srv.close)
        return srv

    def echo_server(self, mode="echo"):
        srv = EchoServer(mode)
        self.addCleanup(srv.close)
        return srv

    def finish(self, run, status=0):
        """Release holder.py, wait for nonoproxy-run, assert it exited with `status`."""
        rc = run.release_holder(status)
        self.assertEqual(rc, status, "nonoproxy-run exit status")
        return run.audit_events()

    # -- assertions ----------------------------------------------------------------------------

    def finish_without_token_leak(self, run, info):
        """Release holder.py, then assert the token is in none of nonoproxy-run's outputs."""
        tok = info.token.encode()
        self.assertEqual(run.release_holder(0), 0, "nonoproxy-run exit status")
        self.assertNotIn(tok, run.stdout.raw(), "the token on nonoproxy-run's stdout")
        self.assertNotIn(tok, run.stderr.raw(), "the token on nonoproxy-run's stderr")
        audit = run.audit_text()
        self.assertTrue(audit.strip(), "the audit log is empty")
        self.assertNotIn(info.token, audit, "the token in the audit log")

    def assertErrorResponse(self, resp, status, connection_close=True):  # noqa: N802
        """Assert a complete error response: status, Content-Length matching the body, and
        Connection: close."""
        self.assertTrue(resp.complete_head, "no complete response head: %r" % (resp.raw[:400],))
        self.assertEqual(resp.status, status, "status line %r" % resp.status_line)
        self.assertTrue(resp.status_line.startswith("HTTP/1."), resp.status_line)
        length = resp.header("content-length")
        self.assertIsNotNone(length, "error response without Content-Length: %r" % resp.raw[:400])
        self.assertEqual(int(length), len(resp.rest), "Content-Length %s but %d body bytes before "
                         "EOF" % (length, len(resp.rest)))
        if connection_close:
            self.assertEqual((resp.header("connection") or "").lower(), "close",
                             "error response without Connection: close: %r" % resp.raw[:400])

    def assertOneEvent(self, events, **want):  # noqa: N802
        """Assert that at least one audit event matches `want`; return the first match."""
        found = matching(events, **want)
        self.assertTrue(found, "no audit event with %r among %d events %s"
                        % (want, len(events), AUDIT_BELOW))
        return found[0]


atexit.register(Certs.cleanup)


# --------------------------------------------------------------------------------------------
# Origin-form HTTP clients for reverse-proxy routes (issue #3)
# --------------------------------------------------------------------------------------------

class HTTPResult:
    """One HTTP response read with its framing: head, decoded body and every byte received."""

    def __init__(self):
        self.raw = b""           # every byte received for this response (head + framed body)
        self.status_line = ""
        self.status = None
        self.headers = []        # [(lower-case name, value)] in order
        self.body = b""          # decoded body (de-chunked)
        self.framing = "none"    # "none", "length", "chunked" or "close"
        self.after = b""         # bytes received after the response (http_exchange: until EOF)

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self):
        """The body parsed as JSON; fail with the raw bytes when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as exc:
            raise AssertionError("response body is not JSON (%s): %r" % (exc, self.raw[:600])) \
                from None

    def __repr__(self):
        return "HTTPResult(%r)" % (self.raw[:600],)


class _SockReader:
    """Deadline-bounded buffered reads from a socket."""

    def __init__(self, sock, timeout, initial=b""):
        self.sock = sock
        self.end = deadline_after(timeout)
        self.timeout = timeout
        self.buf = bytearray(initial)
        self.seen = bytearray()  # bytes handed out

    def _fill(self):
        self.sock.settimeout(remaining(self.end))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out after %.0f s reading a response; got %r"
                                 % (self.timeout, bytes(self.seen + self.buf)[:600])) from None
        except ConnectionResetError:
            data = b""
        self.buf.extend(data)
        return bool(data)

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.seen.extend(out)
        return out

    def until(self, delim, what):
        while True:
            idx = self.buf.find(delim)
            if idx >= 0:
                return self._take(idx + len(delim))
            if not self._fill():
                raise AssertionError("EOF before the end of %s; got %r"
                                     % (what, bytes(self.seen + self.buf)[:600]))

    def exactly(self, n, what):
        while len(self.buf) < n:
            if not self._fill():
                raise AssertionError("EOF in %s after %d of %d bytes; got %r"
                                     % (what, len(self.buf), n, bytes(self.seen)[:600]))
        return self._take(n)

    def to_eof(self, limit=64 << 20):
        while len(self.buf) < limit and self._fill():
            pass
        return self._take(len(self.buf))


def read_http_response(sock, timeout=IO_TIMEOUT, method="GET", initial=b""):
    """Read one response from sock framed per RFC 9112 §6.3 (HEAD/1xx/204/304: no body;
    chunked; Content-Length; else until EOF). Returns (HTTPResult, bytes read past its end)."""
    rd = _SockReader(sock, timeout, initial)
    res = HTTPResult()
    while True:
        head = rd.until(b"\r\n\r\n", "a response head")
        lines = head[:-4].decode("latin-1").split("\r\n")
        res.status_line = lines[0]
        parts = res.status_line.split(" ", 2)
        try:
            res.status = int(parts[1])
        except (IndexError, ValueError):
            raise AssertionError("bad status line %r" % res.status_line) from None
        res.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            res.headers.append((name.strip().lower(), value.strip()))
        if res.status >= 200 or res.status == 101:
            break
    te = ",".join(res.header_all("transfer-encoding")).lower()
    if method == "HEAD" or res.status in (204, 304) or 100 <= res.status < 200:
        res.framing = "none"
    elif "chunked" in te:
        res.framing = "chunked"
        body = bytearray()
        while True:
            size_line = rd.until(b"\r\n", "a chunk size line")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise AssertionError("bad chunk size line %r" % size_line) from None
            if size == 0:
                while rd.until(b"\r\n", "the trailers") != b"\r\n":
                    pass
                break
            data = rd.exactly(size + 2, "a chunk")
            if data[-2:] != b"\r\n":
                raise AssertionError("chunk data not followed by CRLF: %r" % data[-20:])
            body.extend(data[:-2])
        res.body = bytes(body)
    elif res.header("content-length") is not None:
        res.framing = "length"
        res.body = rd.exactly(int(res.header("content-length")), "a Content-Length body")
    else:
        res.framing = "close"
        res.body = rd.to_eof()
    res.raw = bytes(rd.seen)
    return res, bytes(rd.buf)


def origin_request(method, target, host, headers=(), body=None):
    """Build request bytes: request line, Host, the given (name, value) headers in order, and
    Content-Length when body is not None and no Transfer-Encoding/Content-Length was given."""
    lines = ["%s %s HTTP/1.1" % (method, target)]
    if host is not None:
        lines.append("Host: %s" % host)
    names = set()
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
        names.add(name.lower())
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def http_exchange(port, method, target, headers=(), body=None, timeout=IO_TIMEOUT,
                  close=True):
    """Send one origin-form request to 127.0.0.1:port on a fresh connection and read the
    response; with close (default) the request says Connection: close and everything up to
    EOF is read too (HTTPResult.after holds what came after the response)."""
    hdrs = list(headers)
    if close:
        hdrs.append(("Connection", "close"))
    with connect_proxy(port, timeout=timeout) as s:
        try:
            s.sendall(origin_request(method, target, "127.0.0.1:%d" % port, hdrs, body))
        except (BrokenPipeError, ConnectionResetError):
            pass
        res, extra = read_http_response(s, timeout, method=method)
        if close:
            res.after = read_to_eof(s, timeout, initial=extra)
        return res


def leak_forms(secret):
    """The spellings of a secret that must not leak: raw, percent-encoded (every reserved byte,
    and the query form with '+'), base64 (with and without padding)."""
    import urllib.parse  # local: keeps the harness imports unchanged for the other modules
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    forms = {"raw": raw,
             "percent-encoded": urllib.parse.quote(raw, safe="").encode("ascii"),
             "form-encoded": urllib.parse.quote_plus(raw, safe="").encode("ascii"),
             "base64": base64.b64encode(raw),
             "base64 unpadded": base64.b64encode(raw).rstrip(b"=")}
    return {k: v for k, v in forms.items() if v}


def find_leaks(secret, blobs):
    """Return [(form, blob label)] for every spelling of secret found in the labelled blobs
    ({label: bytes or str})."""
    found = []
    for label, blob in blobs.items():
        data = blob.encode("utf-8", errors="replace") if isinstance(blob, str) else bytes(blob)
        for form, needle in leak_forms(secret).items():
            if needle in data:
                found.append((form, label))
    return found


# --------------------------------------------------------------------------------------------
# Forward proxy, external proxy and smuggling helpers (issue #4)
# --------------------------------------------------------------------------------------------

def url_authority(url):
    """The authority ("host:port") of an absolute URL such as http://host:port/path."""
    return url.split("/")[2]


def absolute_request(method, url, auth, headers=(), body=None, host=None):
    """Absolute-form request bytes for a forward proxy: `METHOD URL HTTP/1.1`, Host (the URL's
    authority unless `host` is given; False for none), Proxy-Authorization `auth` (None: no
    such header), the (name, value) headers in order, and Content-Length when body is not None
    and no Content-Length/Transfer-Encoding header was given."""
    if host is None:
        host = url_authority(url)
    hdrs = [] if auth is None else [("Proxy-Authorization", auth)]
    hdrs += list(headers)
    return origin_request(method, url, host if host is not False else None, hdrs, body)


def read_http_responses(sock, methods, timeout=IO_TIMEOUT):
    """Read one response per entry of `methods` (the request methods, in order) from one
    connection; return (list of HTTPResult, bytes read past the last one)."""
    out = []
    extra = b""
    for method in methods:
        res, extra = read_http_response(sock, timeout, method=method, initial=extra)
        out.append(res)
    return out, extra


_LEAVES_LOCK = threading.Lock()
_LEAVES = {}


def leaf_certificate(*sans):
    """Return (cert path, key path) of a leaf certificate signed by the test CA for the given
    subjectAltName entries ("IP:10.200.0.1", "DNS:example.test"); made once per set."""
    certs = Certs.get()
    key = (certs.dir,) + tuple(sorted(sans))
    with _LEAVES_LOCK:
        if key in _LEAVES:
            return _LEAVES[key]
        name = "leaf%d" % (len(_LEAVES) + 1)
        ext = os.path.join(certs.dir, name + ".ext")
        with open(ext, "w", encoding="ascii") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n" % ",".join(key[1:]))
        certs._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout",
                       "-out", name + ".key")
        certs._openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=nonoproxy e2e " + name,
                       "-out", name + ".csr")
        certs._openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                       "-days", "2", "-set_serial", str(10 + len(_LEAVES)), "-extfile", ext,
                       "-out", name + ".pem")
        _LEAVES[key] = (os.path.join(certs.dir, name + ".pem"),
                        os.path.join(certs.dir, name + ".key"))
        return _LEAVES[key]


def server_context_for(*sans):
    """A server-side SSLContext with a leaf for the given subjectAltName entries."""
    cert, key = leaf_certificate(*sans)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
