#!/usr/bin/env bash
# The Python module installed as a Python user would (issue 13, docs/PYTHON.md), offline with
# Debian's tools and Debian's interpreter (/usr/bin/python3; the first python3 on PATH may be
# another one):
#   1. pip install --no-build-isolation --no-index ./python into a fresh
#      `python3 -m venv --system-site-packages` venv; import it from another directory and run
#      the module's pytest suite against the installed copy;
#   2. python3 -m build --no-isolation --wheel python; install that wheel into a second venv;
#      import it from / and start and stop a proxy.
# Works on a copy of the tree's sources in a temporary directory, so the tree stays clean.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=${NONOPROXY_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

step() { echo "test/install/python: $*"; }
fail() { echo "test/install/python: FAILED: $*" >&2; exit 1; }

mkdir -p "$TMP/src"
cp -r "$SRC/CMakeLists.txt" "$SRC/cmake" "$SRC/include" "$SRC/lib" "$SRC/docs" "$TMP/src/"
mkdir -p "$TMP/src/python"
cp -r "$SRC/python/setup.py" "$SRC/python/pyproject.toml" "$SRC/python/README.md" \
    "$SRC/python/src" "$SRC/python/nonoproxy" "$TMP/src/python/"

step "pip install --no-build-isolation --no-index ./python"
"$PY" -m venv --system-site-packages "$TMP/venv"
(cd "$TMP/src" && "$TMP/venv/bin/pip" install --no-build-isolation --no-index ./python) \
    >"$TMP/pip.log" 2>&1 || { cat "$TMP/pip.log" >&2; fail "pip install"; }
(cd / && "$TMP/venv/bin/python" -c 'import nonoproxy, sys; assert "site-packages" in nonoproxy.__file__, nonoproxy.__file__') ||
    fail "import nonoproxy from / after pip install"
step "pytest against the installed module"
(cd "$TMP" && NONOPROXY_PY_TEST_DIR="$SRC/test/integration" PYTHONDONTWRITEBYTECODE=1 \
    "$TMP/venv/bin/python" -m pytest -q -p no:cacheprovider "$SRC/python/tests") ||
    fail "pytest against the installed module"

step "python3 -m build --no-isolation --wheel python"
(cd "$TMP/src" && "$PY" -m build --no-isolation --wheel python) >"$TMP/build.log" 2>&1 ||
    { cat "$TMP/build.log" >&2; fail "python3 -m build"; }
"$PY" -m venv --system-site-packages "$TMP/venv2"
"$TMP/venv2/bin/pip" install --no-index "$TMP"/src/python/dist/nonoproxy-*.whl \
    >"$TMP/pip2.log" 2>&1 || { cat "$TMP/pip2.log" >&2; fail "pip install of the wheel"; }
(cd / && "$TMP/venv2/bin/python" -c '
import nonoproxy
with nonoproxy.start_proxy(nonoproxy.ProxyConfig()) as p:
    assert p.port > 0
print("wheel ok")') || fail "the installed wheel"
echo "test/install/python: all passed"
