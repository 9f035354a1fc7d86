import pytest
import pytest_twisted

from helpers import Overlay


@pytest.fixture
def overlay():
    """An L{Overlay} whose nodes are all stopped after the test."""
    net = Overlay()
    yield net
    pytest_twisted.blockon(net.stop())
