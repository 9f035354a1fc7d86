"""The collector tuning a node's process gets (p2poverlay.collector)."""

import gc

import pytest

from p2poverlay import collector, tap


@pytest.fixture
def restoredCollector():
    """Whatever a test does to the collector is undone after it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuneCollectorFreezesAndRaisesTheYoungThreshold(restoredCollector):
    gc.set_threshold(700, 10, 10)
    survivor = [object()]  # In a container: tracked by the collector.
    collector.tuneCollector()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    assert not any(o is survivor for o in gc.get_objects())


def test_cyclesMadeAfterwardsAreStillCollected(restoredCollector):
    collector.tuneCollector()

    class Cycle:
        pass

    cycle = Cycle()
    cycle.self = cycle
    del cycle
    assert gc.collect() >= 1
    assert not any(isinstance(o, Cycle) for o in gc.get_objects())


def test_theServiceTunesItsProcessAsItStarts(monkeypatch):
    calls = []
    monkeypatch.setattr(tap, "tuneCollector", lambda: calls.append(1))
    monkeypatch.setattr(tap.MultiService, "privilegedStartService",
                        lambda self: calls.append(2))
    service = tap.P2PService.__new__(tap.P2PService)
    service.foreground = False
    tap.P2PService.privilegedStartService(service)
    assert calls == [1, 2]
