"""OS keyring credentials (Secret Service through libsecret) for reverse routes: SPEC §7, §11
(issue #3).

The module starts its own D-Bus session bus (dbus-run-session) and its own gnome-keyring-daemon
(secrets component, login keyring created and unlocked with a password given on stdin) under a
temporary HOME and XDG_RUNTIME_DIR, stores entries with secret-tool exactly as other nono tools
do (`secret-tool store --label=... service nono username KEY`), then runs nonoproxy-run inside
that session (DBUS_SESSION_BUS_ADDRESS inherited) with keyring-backed routes. Works as root.
Missing tools make the module fail, never skip: they are part of the test dependencies.
"""

import json
import os
import select
import shutil
import subprocess
import tempfile
import unittest

from npe2e import (AUDIT_BELOW, IO_TIMEOUT, START_TIMEOUT, Certs, E2ETestCase, deadline_after,
                   find_leaks, holder_command, http_exchange, matching, num, remaining)
from upstream import DEFAULT_BODY, RecordingUpstream

TOOLS = [("dbus-run-session", "dbus-daemon"), ("gnome-keyring-daemon", "gnome-keyring"),
         ("secret-tool", "libsecret-tools"), ("gdbus", "libglib2.0-bin"),
         ("curl", "curl")]
KEYRING_PASSWORD = b"np-e2e-keyring-password"


def require_tools():
    """Return {command: path}; raise naming the Debian packages of the missing commands."""
    paths, missing = {}, []
    for cmd, pkg in TOOLS:
        path = shutil.which(cmd)
        if path is None:
            missing.append((cmd, pkg))
        paths[cmd] = path
    if missing:
        raise RuntimeError("the keyring end-to-end tests need %s (apt-get install %s)"
                           % (", ".join(c for c, _ in missing),
                              " ".join(sorted({p for _, p in missing}))))
    return paths


def read_line(proc, pipe, what, timeout=START_TIMEOUT):
    """Read one line from a child's pipe within timeout; fail clearly on EOF or timeout."""
    end = deadline_after(timeout)
    buf = b""
    fd = pipe.fileno()
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], remaining(end))
        if not ready:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        byte = os.read(fd, 1)
        if not byte:
            err = b""
            if proc.stderr is not None and proc.stderr is not pipe:
                try:
                    proc.wait(timeout=5)
                    err = proc.stderr.read()
                except subprocess.TimeoutExpired:
                    pass
            raise RuntimeError("%s: EOF before a line (exit %r): %s"
                               % (what, proc.poll(), err.decode(errors="replace")))
        buf += byte
    return buf.decode("utf-8", errors="replace").strip()


class KeyringSession:
    """A private session bus with an unlocked gnome-keyring (secrets component)."""

    def __init__(self):
        self.tools = require_tools()
        self.home = tempfile.mkdtemp(prefix="nonoproxy-e2e-keyring-")
        runtime = os.path.join(self.home, "run")
        os.mkdir(runtime, 0o700)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NP_E2E_", "DBUS_", "GNOME_KEYRING", "XDG_"))}
        env.update(HOME=self.home, XDG_RUNTIME_DIR=runtime)
        self.bus = self.daemon = None
        try:
            # The session lives as long as `cat` reads its stdin: closing it ends the session.
            self.bus = subprocess.Popen(
                [self.tools["dbus-run-session"], "--", "sh", "-c",
                 'printf "%s\\n" "$DBUS_SESSION_BUS_ADDRESS"; exec cat >/dev/null'],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            address = read_line(self.bus, self.bus.stdout, "the session bus address")
            if not address:
                raise RuntimeError("dbus-run-session gave an empty DBUS_SESSION_BUS_ADDRESS")
            env["DBUS_SESSION_BUS_ADDRESS"] = address
            self.env = env
            self.daemon = subprocess.Popen(
                [self.tools["gnome-keyring-daemon"], "--foreground", "--unlock",
                 "--components=secrets"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env)
            self.daemon.stdin.write(KEYRING_PASSWORD)  # creates and unlocks the login keyring
            self.daemon.stdin.close()
            # Wait (an event, not a sleep) until the daemon owns the Secret Service name, so
            # that no D-Bus activation starts a second daemon behind our back.
            try:
                self._run([self.tools["gdbus"], "wait", "--session", "--timeout",
                           str(int(START_TIMEOUT)), "org.freedesktop.secrets"],
                          "gdbus wait org.freedesktop.secrets")
            except RuntimeError as exc:
                state = self.daemon.poll()
                err = self.daemon.stderr.read().decode(errors="replace") if state is not None \
                    else "(still running)"
                raise RuntimeError("%s; gnome-keyring-daemon exit status %r: %s"
                                   % (exc, state, err)) from None
        except BaseException:
            self.close()
            raise

    def _run(self, argv, what, data=None):
        proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.env, timeout=START_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (what, proc.returncode,
                                                      proc.stderr.decode(errors="replace")))
        return proc.stdout

    def store(self, service, username, secret):
        """Store a secret exactly as `secret-tool store` does for nono (secret on stdin)."""
        self._run([self.tools["secret-tool"], "store", "--label=np-e2e %s/%s" % (service, username),
                   "service", service, "username", username], "secret-tool store",
                  data=secret.encode())
        got = self._run([self.tools["secret-tool"], "lookup", "service", service,
                         "username", username], "secret-tool lookup")
        if got != secret.encode():
            raise RuntimeError("the keyring gives back %d bytes instead of the %d stored"
                               % (len(got), len(secret)))

    def close(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=IO_TIMEOUT)
        if self.bus is not None and self.bus.poll() is None:
            try:
                self.bus.stdin.close()
            except OSError:
                pass
            try:
                self.bus.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.bus.kill()
                self.bus.wait(timeout=IO_TIMEOUT)
        for proc in (self.daemon, self.bus):
            if proc is not None:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
        shutil.rmtree(self.home, ignore_errors=True)


def route(prefix, upstream, **opts):
    parts = ["%s=%s" % (prefix, upstream)]
    parts += ["%s=%s" % (k.replace("_", "-"), v) for k, v in opts.items()]
    return ["--route", ",".join(parts)]


class Keyring(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        cls.keyring = KeyringSession()

    @classmethod
    def tearDownClass(cls):
        cls.keyring.close()

    def setUp(self):
        self.srv = RecordingUpstream()
        self.addCleanup(self.srv.close)
        tag = os.urandom(6).hex()
        self.secret_bare = "np-e2e-keyring-bare-" + tag
        self.secret_uri = "np-e2e-keyring-uri-" + tag
        self.keyring.store("nono", "np-e2e-key", self.secret_bare)
        self.keyring.store("np-svc", "np-acct", self.secret_uri)
        self.options = ["-q", "--ca-file", Certs.get().ca_cert]
        self.options += route("svc", self.srv.url(host="localhost"), credential="np-e2e-key")
        self.options += route("acct", self.srv.url(path="/acct"),
                              credential="keyring://np-svc/np-acct")

    def assert_no_leak(self, run, blobs):
        blobs = dict(blobs, **{"nonoproxy-run's stdout": run.stdout.raw(),
                               "nonoproxy-run's stderr": run.stderr.raw(),
                               "the audit log": run.audit_text()})
        for secret in (self.secret_bare, self.secret_uri):
            self.assertEqual(find_leaks(secret, blobs), [], "a keyring secret leaked")

    def test_curl_child_gets_keyring_secret_injected(self):
        script = ('"$0" -sS --max-time 60 -w "\\nstatus=%{http_code}\\n" "$SVC_BASE_URL/v1/a" '
                  '-H "Authorization: Bearer $NP_E2E_KEY" && '
                  '"$0" -sS --max-time 60 -w "\\nstatus=%{http_code}\\n" "$ACCT_BASE_URL/b?x=1" '
                  '-H "Authorization: Bearer $NONO_PROXY_TOKEN"')
        run = self.start(self.options, ["sh", "-c", script, self.keyring.tools["curl"]],
                         env=self.keyring.env, stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, "the child's exit status")
        self.assertEqual(run.stdout.raw(), (DEFAULT_BODY + b"\nstatus=200\n") * 2)
        reqs = self.srv.wait_requests(2)
        self.assertEqual([r.target for r in reqs], ["/v1/a", "/acct/b?x=1"])
        self.assertEqual(reqs[0].header_all("authorization"), ["Bearer " + self.secret_bare],
                         "bare keyring name (service nono)")
        self.assertEqual(reqs[0].header_all("host"), [self.srv.authority("localhost")])
        self.assertEqual(reqs[1].header_all("authorization"), ["Bearer " + self.secret_uri],
                         "keyring://service/account")
        events = run.audit_events()
        for prefix in ("svc", "acct"):
            found = matching(events, mode="reverse", decision="allow", route_id=prefix)
            self.assertEqual(len(found), 1, "allow events for %s %s" % (prefix, AUDIT_BELOW))
            self.assertIs(found[0].get("managed_credential_active"), True, found[0])
        self.assert_no_leak(run, {})

    def test_phantom_variables_and_rejection(self):
        run, info = self.start_holder(self.options, env=self.keyring.env)
        env = info.env
        self.assertEqual(env.get("NP_E2E_KEY"), info.token,
                         "bare key np-e2e-key gives the phantom variable NP_E2E_KEY")
        self.assertEqual(sorted(k for k, v in env.items() if v == info.token),
                         ["NONO_PROXY_TOKEN", "NP_E2E_KEY"],
                         "keyring:// keys without env-var give no phantom variable")
        self.assertEqual(env.get("ACCT_BASE_URL"), "http://127.0.0.1:%d/acct" % info.port)
        res = http_exchange(info.port, "GET", "/svc/x",
                            [("Authorization", "Bearer " + info.token[:-1])])
        self.assertEqual(res.status, 401, res.raw)
        self.assertEqual(self.srv.request_count(), 0, "a wrong phantom reached upstream")
        ok = http_exchange(info.port, "GET", "/svc/x", [("Authorization", "Bearer " + info.token)])
        self.assertEqual((ok.status, ok.body), (200, DEFAULT_BODY), ok.raw)
        self.assertEqual(self.srv.wait_requests(1)[0].header_all("authorization"),
                         ["Bearer " + self.secret_bare])
        events = self.finish(run)
        deny = matching(events, mode="reverse", decision="deny", route_id="svc",
                        denial_category="authentication_failed")
        self.assertEqual(len(deny), 1, AUDIT_BELOW)
        self.assertEqual(num(deny[0], "status"), 401)
        self.assert_no_leak(run, {"the child's environment": json.dumps(env),
                                  "responses": res.raw + ok.raw})

    def test_missing_keyring_entry(self):
        missing = ["np-e2e-absent-" + os.urandom(4).hex(), "keyring://np-svc/np-absent"]
        for key in missing:
            with self.subTest(key):
                run = self.start(self.options + route("lostsvc", self.srv.url(), credential=key),
                                 holder_command, env=self.keyring.env)
                self.assertEqual(run.wait(), 125, "exit status for a missing keyring entry")
                err = run.stderr.text()
                self.assertIn("lostsvc", err, "the message names the route")
                self.assertIn(key, err, "the message names the reference")
                self.assertFalse(os.path.exists(os.path.join(run.workdir, "holder.json")),
                                 "the child was started")
        run, info = self.start_holder(self.options + ["--allow-missing-credentials"]
                                      + route("lostsvc", self.srv.url(), credential=missing[0]),
                                      env=self.keyring.env)
        res = http_exchange(info.port, "GET", "/lostsvc/x",
                            [("Authorization", "Bearer " + info.token)])
        self.assertEqual(res.status, 503, res.raw)
        self.assertIsInstance(res.json().get("error"), str, res.raw)
        ok = http_exchange(info.port, "GET", "/acct/y", [("Authorization", "Bearer " + info.token)])
        self.assertEqual(ok.status, 200, "the other keyring routes still work: %r" % ok.raw)
        self.assertEqual([r.target for r in self.srv.wait_requests(1)], ["/acct/y"])
        events = self.finish(run)
        ev = self.assertOneEvent(events, mode="reverse", route_id="lostsvc",
                                 denial_category="managed_credential_unavailable")
        self.assertEqual(num(ev, "status"), 503)


if __name__ == "__main__":
    unittest.main()
