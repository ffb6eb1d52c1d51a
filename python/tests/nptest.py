"""Helpers shared by the nonoproxy module's tests: loopback clients and event waits.

Every wait is on an event with a generous timeout (sanitizer builds are slow), never a sleep."""

import base64
import os
import socket
import threading

from npe2e import IO_TIMEOUT, SCALE, Certs, server_context_for  # noqa: F401 (re-exported)
from upstream import ScriptedUpstream  # noqa: F401 (re-exported)
from e2e_policy import client_certificate  # noqa: F401 (re-exported)

TIMEOUT = IO_TIMEOUT


class Events:
    """An audit_callback that keeps every event and lets a test wait for some."""

    def __init__(self):
        self._cond = threading.Condition()
        self.events = []

    def __call__(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=TIMEOUT):
        """Wait until predicate(events) is true; return the events (AssertionError on timeout)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.events), timeout)
            assert ok, "timed out waiting for audit events; have %r" % (self.events,)
            return list(self.events)

    def wait_count(self, n, **want):
        """Wait for n events whose keys equal want; return them."""
        def match(evs):
            return len([e for e in evs if all(e.get(k) == v for k, v in want.items())]) >= n
        evs = self.wait_for(match)
        return [e for e in evs if all(e.get(k) == v for k, v in want.items())]


def recv_head(sock):
    """Read a response head (to the blank line) and what follows in the same reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_request(port, target, headers=(), method="GET"):
    """Send one request to the proxy's port; return (status, body) after close."""
    status, _, body = http_exchange(port, target, headers, method)
    return status, body


def http_exchange(port, target, headers=(), method="GET"):
    """Send one request to the proxy's port; return (status, headers dict with lower-case names,
    body) after close."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % port,
                 "Connection: close"]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body


def connect_status(port, authority, token=None):
    """Send CONNECT authority through the proxy; return the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (authority, authority)
        if token is not None:
            req += "Proxy-Authorization: Basic %s\r\n" % base64.b64encode(
                ("nono:" + token).encode()).decode()
        s.sendall((req + "\r\n").encode())
        head = recv_head(s)
    return int(head.split(b" ", 2)[1]) if head else 0


def new_secret(label):
    """A fresh secret that cannot appear anywhere by chance."""
    return "sk-%s-%s" % (label, os.urandom(12).hex())
