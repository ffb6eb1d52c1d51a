"""Child process: fetch one URL with urllib through the proxy from the environment.

usage: client_urllib.py URL CAFILE

Removes NO_PROXY/no_proxy first (they name 127.0.0.1 and localhost, where the test servers
live), so urllib's default ProxyHandler uses HTTPS_PROXY/HTTP_PROXY with their userinfo.
Prints the body on stdout and exits 0; on an HTTP error prints "HTTP <code>" and exits 3;
on any other error prints it on stderr and exits 4.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request


def main():
    url, cafile = sys.argv[1], sys.argv[2]
    for name in ("NO_PROXY", "no_proxy"):
        os.environ.pop(name, None)
    if not os.environ.get("https_proxy") and not os.environ.get("HTTPS_PROXY"):
        sys.stderr.write("client_urllib: no https_proxy in the environment\n")
        return 5
    ctx = ssl.create_default_context(cafile=cafile)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(),
                                         urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=60) as resp:
            sys.stdout.buffer.write(resp.read())
    except urllib.error.HTTPError as exc:
        print("HTTP %d" % exc.code)
        return 3
    except OSError as exc:
        sys.stderr.write("client_urllib: %r\n" % (exc,))
        return 4
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
