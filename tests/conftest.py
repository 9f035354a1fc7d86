import gc
import signal

import pytest
import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from helpers import Overlay, capturedLog, connectRaw
from p2poverlay.netlab import Lab
from processes import Processes


@pytest.fixture
def lab(tmp_path):
    """A network L{Lab} in C{tmp_path}, closed after the test (see
    L{helpers.needsNamespaces})."""
    with Lab(tmp_path) as made:
        try:
            yield made
        finally:
            # Shown by pytest when the test failed.
            print(made.transcripts())


@pytest.fixture
def overlay():
    """An L{Overlay} whose nodes are all stopped after the test."""
    net = Overlay()
    yield net
    pytest_twisted.blockon(net.stop())


@pytest.fixture
def raw():
    """
    C{raw(node, source)} opens a raw connection to C{node} from the local
    address C{source}; every one is closed after the test (before the
    nodes are stopped: fixtures are torn down in reverse order).
    """
    clients = []

    @inlineCallbacks
    def connect(node, source="127.0.0.1", key=None):
        client = yield connectRaw(node, source, key)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def log():
    """A L{helpers.LogCapture} of every event logged while the test runs."""
    gc.collect()  # Earlier tests' garbage is not this test's business.
    with capturedLog() as capture:
        yield capture


@pytest.fixture
def processes(tmp_path):
    """Twistd processes in one directory, all killed after the test."""
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        for process in procs.started:
            process.signal(signal.SIGCONT)  # a frozen one too
        procs.cleanup()
        # Shown by pytest when the test failed.
        print(procs.transcripts())
