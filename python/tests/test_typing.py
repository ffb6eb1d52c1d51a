"""The type stubs: mypy --strict accepts the seed's examples, and stubtest finds the stubs
faithful to the module at run time (names, signatures, defaults)."""

import importlib.util
import os
import subprocess
import sys

import pytest

import nonoproxy
from test_seed_examples import IMPORT_OURS, IMPORT_SEED, SEED_EXAMPLE_1, SEED_EXAMPLE_2

# What the second example uses besides the proxy: nono's sandbox, typed here.
STANDINS = '''\
from typing import Any, Sequence


def sandboxed_exec(caps: Any, argv: Sequence[str], env: Sequence[tuple[str, str]]) -> int:
    return 0


caps: Any = None
'''

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (apt-get install python3-mypy)")


def package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(nonoproxy.__file__)))


def run_mypy(args, cwd):
    env = dict(os.environ, PYTHONPATH=package_root())
    if os.path.basename(package_root()) != "site-packages":  # an installed one is found as such
        env["MYPYPATH"] = package_root()
    res = subprocess.run([sys.executable, "-m"] + args, cwd=cwd, env=env, timeout=600,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return res.returncode, res.stdout.decode(errors="replace")


def test_mypy_strict_accepts_the_seed_examples(tmp_path):
    code = (SEED_EXAMPLE_1.replace(IMPORT_SEED, IMPORT_OURS) + "\n" + STANDINS + "\n" +
            SEED_EXAMPLE_2)
    (tmp_path / "seed_example.py").write_text(code)
    status, out = run_mypy(["mypy", "--strict", "--no-incremental", "--cache-dir",
                            str(tmp_path / "cache"), "seed_example.py"], tmp_path)
    assert status == 0, out


def test_stubtest_matches_the_runtime(tmp_path):
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    status, out = run_mypy(["mypy.stubtest", "--mypy-config-file", str(tmp_path / "mypy.ini"),
                            "nonoproxy"], tmp_path)
    assert status == 0, out
