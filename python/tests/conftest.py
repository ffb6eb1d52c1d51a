"""pytest configuration for the nonoproxy module's tests.

The HTTPS upstream and the test CA are the end-to-end harness's (test/integration/upstream.py and
npe2e.py): that directory goes on sys.path. NONOPROXY_PY_TEST_DIR names it when the tests run from
elsewhere (ctest sets it)."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.environ.get("NONOPROXY_PY_TEST_DIR") or os.path.join(HERE, "..", "..", "test",
                                                                      "integration")
sys.path.insert(0, os.path.abspath(INTEGRATION))
sys.path.insert(0, HERE)

import nptest  # noqa: E402  (needs the paths above)


@pytest.fixture
def upstream():
    """A recording HTTPS upstream on 127.0.0.1 (leaf for localhost/127.0.0.1, test CA)."""
    srv = nptest.ScriptedUpstream(tls=True)
    yield srv
    srv.close()


@pytest.fixture
def ca_file():
    """Path of the test CA's certificate (PEM)."""
    return nptest.Certs.get().ca_cert
