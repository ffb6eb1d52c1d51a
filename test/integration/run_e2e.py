"""Run one end-to-end test module, in a private network namespace when possible.

usage: run_e2e.py MODULE [unittest args...]

Inside `unshare --net` only a loopback interface exists, so a proxy bug can never send a packet
(or a DNS query) off the machine; tests that would otherwise risk that (denied names, DNS
failure) run only there and are skipped elsewhere. Select with NONOPROXY_E2E_NETNS=auto|on|off
(default auto: use it when `unshare --net` works, i.e. as root).
"""

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_loopback_up():
    """Set IFF_UP on lo (a fresh network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def netns_usable(unshare):
    """Return True when `unshare --net` works here."""
    try:
        proc = subprocess.run([unshare, "--net", "--", "true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def main():
    args = sys.argv[1:]
    if not args:
        sys.stderr.write(__doc__)
        return 2
    binary = os.environ.get("NONOPROXY_RUN", "")
    if not binary or not os.access(binary, os.X_OK):
        sys.stderr.write("run_e2e: NONOPROXY_RUN=%r is not an executable file; run through ctest "
                         "or point it at the nonoproxy-run binary\n" % binary)
        return 2
    mode = os.environ.get("NONOPROXY_E2E_NETNS", "auto")
    if args[0] == "--in-netns":
        args = args[1:]
        try:
            bring_loopback_up()
        except OSError as exc:
            sys.stderr.write("run_e2e: cannot bring lo up in the new network namespace (%s); "
                             "run with NONOPROXY_E2E_NETNS=off\n" % exc)
            return 2
        os.environ["NONOPROXY_E2E_IN_NETNS"] = "1"
        print("run_e2e: running in a private network namespace (loopback only)", flush=True)
    elif mode != "off" and os.environ.get("NONOPROXY_E2E_IN_NETNS") != "1":
        unshare = shutil.which("unshare")
        if unshare and netns_usable(unshare):
            argv = [unshare, "--net", "--", sys.executable, os.path.abspath(__file__),
                    "--in-netns"] + args
            os.execv(unshare, argv)
        if mode == "on":
            sys.stderr.write("run_e2e: NONOPROXY_E2E_NETNS=on but `unshare --net` does not work\n")
            return 2
        print("run_e2e: no private network namespace; tests that need one are skipped",
              flush=True)
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
    prog = unittest.main(module=None, argv=["run_e2e", "-v"] + args, exit=False)
    result = prog.result
    ok = result.wasSuccessful() and result.testsRun > 0
    failed = {getattr(t, "test_case", t).id()
              for t, _ in result.failures + result.errors + [(u, None) for u in
                                                             result.unexpectedSuccesses]}
    skipped = {t.id() for t, _ in result.skipped} - failed
    print("%d passed, %d failed, %d skipped"
          % (result.testsRun - len(failed) - len(skipped), len(failed), len(skipped)),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
