"""Child process for the end-to-end tests: report what nonoproxy-run gave us, then wait.

usage: holder.py JSON_PATH MAX_LIFE_SECONDS

Writes JSON_PATH (atomically) with {"pid", "ppid", "env"} -- env being this process's whole
environment, so the test can read the proxy URL and token without them ever appearing on a
command line or on stdout -- then prints READY on stdout and reads commands from stdin:
  exit N    exit with status N
  EOF       exit 0
It exits by itself with status 99 after MAX_LIFE_SECONDS, so nothing outlives a broken test.
"""

import json
import os
import signal
import sys


def main():
    path = sys.argv[1]
    max_life = int(sys.argv[2]) if len(sys.argv) > 2 else 280
    signal.signal(signal.SIGALRM, lambda *_: os._exit(99))
    signal.alarm(max_life)
    info = {"pid": os.getpid(), "ppid": os.getppid(), "env": dict(os.environ)}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.rename(tmp, path)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "exit":
            sys.stdout.flush()
            os._exit(int(words[1]))
    sys.stderr.write("holder.py: stdin reached EOF, exiting 0 (if the test did not close it, "
                     "nonoproxy-run did not pass its stdin to the child)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
