"""
The address book's two tables (L{p2poverlay.addressbook}): a node only
heard of never takes the place of one connected to, one source fills only
its share of the new table, and both facts survive a restart.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from p2poverlay.addrgroups import addressGroup
from p2poverlay.addressbook import AddressBook
from p2poverlay.records import CONNECTED, DEAD, KNOWN, LEFT, KnownPeer
from p2poverlay.store import NodeStore

ATTACKER = "10.9.9.9"


def nodeId(prefix, i):
    return f"{prefix}{i:0{32 - len(prefix)}x}"


def makeBook(maxSize=20):
    clock = Clock()
    clock.advance(1000)
    return AddressBook(maxSize, clock.seconds), clock


def connectOnce(book, clock, i, host=None):
    """A node this node was connected to, and is not any more."""
    peerId = nodeId("c", i)
    book.update(peerId, host or f"10.1.0.{i + 1}", 9000, f"c{i}", CONNECTED)
    clock.advance(1)
    book.setState(peerId, DEAD if i % 2 else LEFT)
    return peerId


def teach(book, clock, source, count, prefix, start=0):
    """C{count} nodes told of by C{source}; their ids."""
    ids = []
    for i in range(start, start + count):
        ids.append(nodeId(prefix, i))
        book.learn(ids[-1], f"10.{len(prefix)}.{i // 250}.{i % 250 + 1}",
                   9000, source=source)
        clock.advance(0.01)
    return ids


def flood(book, clock, count=1000):
    return teach(book, clock, ATTACKER, count, "fa4e")


# -- the groups -------------------------------------------------------------------

def test_public_addresses_group_by_network_local_ones_by_host():
    assert addressGroup("8.8.4.4") == addressGroup("8.8.200.1") == "8.8.0.0/16"
    assert addressGroup("8.9.4.4") != addressGroup("8.8.4.4")
    assert addressGroup("2001:4860:1::1") == "2001:4860::/32"
    assert addressGroup("::ffff:8.8.1.1") == "8.8.0.0/16"
    # Loopback, private and link-local hosts are each their own source.
    assert addressGroup("127.0.0.9") == "127.0.0.9" != addressGroup("127.0.0.2")
    assert addressGroup("10.0.0.1") != addressGroup("10.0.0.2")
    assert addressGroup("192.168.1.7") == "192.168.1.7"
    assert addressGroup("fe80::1") == "fe80::1"
    assert addressGroup("Example.ORG") == "example.org"


def test_the_source_is_the_group_of_whoever_told():
    book, _ = makeBook()
    told = book.learn(nodeId("a", 1), "10.0.0.5", 9000, source="8.8.3.3")
    selfTold = book.learn(nodeId("a", 2), "10.0.0.6", 9000)
    assert told.source == "8.8.0.0/16" and not told.tried
    assert selfTold.source == "10.0.0.6"
    assert book.sources() == {"8.8.0.0/16": 1, "10.0.0.6": 1}


def test_the_tables_share_out_the_book():
    book, _ = makeBook(maxSize=1000)
    assert (book.triedSize, book.newSize) == (250, 750)
    book, _ = makeBook(maxSize=1)
    assert (book.triedSize, book.newSize) == (0, 1)


# -- tried entries ----------------------------------------------------------------

def test_a_node_connected_to_is_tried_for_good():
    book, clock = makeBook()
    book.learn(nodeId("b", 1), "10.0.0.5", 9000, source=ATTACKER)
    entry = book.update(nodeId("b", 1), "10.0.0.5", 9000, "b", CONNECTED)
    assert entry.tried and entry.source == ATTACKER
    for state in (DEAD, KNOWN, LEFT):
        assert book.setState(nodeId("b", 1), state).tried
    assert book.sources() == {}
    assert [e.node_id for e in book.tried()] == [nodeId("b", 1)]


def test_a_flood_never_evicts_a_tried_entry():
    book, clock = makeBook(maxSize=20)
    tried = [connectOnce(book, clock, i) for i in range(book.triedSize)]
    flood(book, clock)
    assert {e.node_id for e in book.tried()} == set(tried)
    assert book.sources() == {ATTACKER: book.sourceSize}


def test_one_source_holds_a_third_of_the_new_table_at_most():
    book, clock = makeBook(maxSize=40)  # 30 in the new table
    assert book.sourceSize == 10
    fakes = flood(book, clock)
    assert book.sources() == {ATTACKER: 10}
    # The newest stay: a source's newcomer replaces its own oldest.
    assert [n for n in fakes if n in book] == fakes[-10:]


def test_a_flood_takes_no_more_than_its_share_of_others_new_entries():
    book, clock = makeBook(maxSize=20)  # 15 in the new table
    honest = (teach(book, clock, "10.2.0.1", 4, "a")
              + teach(book, clock, "10.2.0.2", 4, "b")
              + teach(book, clock, "10.2.0.3", 4, "d"))
    flood(book, clock)
    # The free room went to the flood; then it pushed out only its own,
    # even once it held as many as the others.
    assert all(nodeId in book for nodeId in honest)
    assert book.sources()[ATTACKER] == 3
    assert len(book) == 15


def test_a_source_holding_the_most_gives_way_to_the_others():
    book, clock = makeBook(maxSize=40)  # 30 in the new table, 10 a source
    fakes = flood(book, clock)
    honest = (teach(book, clock, "10.2.0.1", 10, "a")
              + teach(book, clock, "10.2.0.2", 10, "b"))
    assert len(book) == 30
    # A fourth source comes when the table is full: the four end up
    # sharing it evenly, and the first to go were the oldest, the flood's.
    honest += teach(book, clock, "10.2.0.3", 10, "d")
    counts = book.sources()
    assert sorted(counts.values()) == [7, 7, 8, 8], counts
    assert counts[ATTACKER] == 7
    assert [n for n in fakes if n in book] == fakes[-7:]
    # Now the flood only replaces its own.
    before = [n for n in honest if n in book]
    flood(book, clock, 50)
    assert all(n in book for n in before)


def test_eviction_picks_the_biggest_source_and_its_least_useful_entry():
    book, clock = makeBook(maxSize=12)  # 9 in the new table, 3 a source
    big = "10.3.0.1"
    answered = book.learn(nodeId("e", 1), "10.0.0.1", 9000, lastSeen=900.0,
                          source=big).node_id
    neverTried, refused = teach(book, clock, big, 2, "e", start=2)
    book.setState(refused, DEAD)  # Dialed, and it did not answer.
    small = [n for s in ("10.3.0.2", "10.3.0.3", "10.3.0.4")
             for n in teach(book, clock, s, 2, s[-1])]
    assert len(book) == 9
    teach(book, clock, "10.3.0.5", 1, "ab")
    assert refused not in book
    teach(book, clock, "10.3.0.6", 1, "cd")
    assert neverTried not in book
    # The big source is down to its answered entry; the others kept theirs.
    assert answered in book and all(n in book for n in small)
    assert max(book.sources().values()) == 2


def test_the_tried_table_is_bounded():
    book, clock = makeBook(maxSize=8)  # 2 tried, 6 new
    first = connectOnce(book, clock, 0, host="10.1.0.1")
    second = connectOnce(book, clock, 1)
    third = connectOnce(book, clock, 2)
    # The one seen longest ago goes back to the new table, from its source.
    assert {e.node_id for e in book.tried()} == {second, third}
    entry = book.get(first)
    assert not entry.tried and entry.source == "10.1.0.1"
    assert entry.last_seen > 0


def test_connected_entries_stay_past_every_bound():
    book, clock = makeBook(maxSize=2)
    ids = [nodeId("c", i) for i in range(3)]
    for i, peerId in enumerate(ids):
        book.update(peerId, f"10.1.0.{i + 1}", 9000, "", CONNECTED)
    assert all(e.tried for e in book.all()) and len(book) == 3
    # No room for a node only heard of.
    assert book.learn(nodeId("d", 1), "10.0.0.9", 9009) is None
    book.setState(ids[0], DEAD)
    book.learn(nodeId("d", 1), "10.0.0.9", 9009)
    assert {e.node_id for e in book.all()} == set(ids[1:])


# -- a restart ------------------------------------------------------------------

def saveAndReload(book, tmp_path, maxSize=None):
    store = NodeStore(str(tmp_path / "data"))
    store.open()
    try:
        store.savePeers(book.all())
        saved = store.loadPeers()
    finally:
        store.close()
    saved.sort(key=lambda p: (p.tried, p.last_seen), reverse=True)
    again, clock = makeBook(maxSize or book.maxSize)
    again.restore(saved)
    return again


def test_a_reload_keeps_tables_and_sources(tmp_path):
    book, clock = makeBook(maxSize=20)
    tried = [connectOnce(book, clock, i) for i in range(3)]
    teach(book, clock, "10.2.0.1", 4, "a")
    flood(book, clock)
    again = saveAndReload(book, tmp_path)
    assert {e.node_id for e in again.tried()} == set(tried)
    assert again.sources() == book.sources()
    assert {(e.node_id, e.source, e.tried) for e in again.all()} == \
        {(e.node_id, e.source, e.tried) for e in book.all()}
    assert all(e.state == KNOWN for e in again.all())


def test_the_share_rule_holds_on_reload(tmp_path):
    book, clock = makeBook(maxSize=40)  # 30 in the new table
    honest = (teach(book, clock, "10.2.0.1", 5, "a")
              + teach(book, clock, "10.2.0.2", 5, "b"))
    flood(book, clock)
    assert book.sources()[ATTACKER] == 10
    # Reloaded into a smaller book, the flood is what gives way.
    again = saveAndReload(book, tmp_path, maxSize=20)
    assert all(nodeId in again for nodeId in honest)
    assert again.sources() == {ATTACKER: 5, "10.2.0.1": 5, "10.2.0.2": 5}


def test_entries_saved_without_table_or_source_are_new_and_their_own():
    book, _ = makeBook()
    kept = book.restore([KnownPeer(nodeId("a", 1), "10.0.0.1", 9000,
                                   last_seen=5.0),
                         KnownPeer(nodeId("a", 2), "8.8.1.1", 9000)])
    assert kept == 2
    assert book.tried() == []
    assert book.sources() == {"10.0.0.1": 1, "8.8.0.0/16": 1}


def test_restore_leaves_known_entries_alone():
    book, clock = makeBook()
    book.update(nodeId("b", 1), "10.0.0.5", 9000, "b", CONNECTED)
    before = book.get(nodeId("b", 1))
    assert book.restore([KnownPeer(nodeId("b", 1), "10.6.6.6", 1)]) == 0
    assert book.get(nodeId("b", 1)) == before


# -- anchors ----------------------------------------------------------------------

def test_anchors_are_entries_of_the_book_until_dialed():
    book, _ = makeBook()
    book.learn(nodeId("a", 1), "10.0.0.1", 9000)
    book.setAnchors([nodeId("a", 1), nodeId("a", 2)])
    assert book.anchors() == [nodeId("a", 1)]
    assert book.isAnchor(nodeId("a", 1)) and not book.isAnchor(nodeId("a", 2))
    book.anchorDialed(nodeId("a", 1))
    assert book.anchors() == [] and not book.isAnchor(nodeId("a", 1))


# -- whatever happens ---------------------------------------------------------------

SOURCES = ["10.5.0.1", "10.5.0.2", "10.5.0.3", ATTACKER]
OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["learn", "learn", "learn", "connect", "dead", "known",
                     "forget"]),
    st.integers(0, 40), st.sampled_from(SOURCES),
    st.sampled_from([0.0, 0.0, 500.0])), max_size=150)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), OPERATIONS)
def test_the_tables_keep_their_rules_whatever_happens(maxSize, operations):
    book, clock = makeBook(maxSize)
    for operation, i, source, lastSeen in operations:
        clock.advance(1)
        peerId = nodeId("9", i)
        before = {e.node_id: e for e in book.all()}
        counts = book.sources()
        triedBefore = len(book.tried())
        if operation == "learn":
            book.learn(peerId, f"10.6.0.{i + 1}", 9000, lastSeen=lastSeen,
                       source=source)
            incoming = addressGroup(source)
            if peerId not in before:
                counts[incoming] = counts.get(incoming, 0) + 1
            for gone in set(before) - set(e.node_id for e in book.all()):
                # Only entries heard of go, of a source holding the most
                # (or tried ones beyond their bound, when connected nodes
                # take all the room).
                entry = before[gone]
                if entry.tried:
                    assert triedBefore > book.triedSize
                else:
                    assert counts[entry.source] == max(counts.values())
        elif operation == "connect":
            book.update(peerId, f"10.6.0.{i + 1}", 9000, "", CONNECTED)
            assert book.get(peerId).tried
        elif operation == "forget":
            book.forget(peerId)
        else:
            book.setState(peerId, DEAD if operation == "dead" else KNOWN)
        entries = book.all()
        ids = {e.node_id for e in entries}
        # Connected nodes stay (but the one just forgotten or changed).
        assert {n for n, e in before.items()
                if e.state == CONNECTED and n != peerId} <= ids
        newCounts = {}
        tried = {e.node_id for e in book.tried()}
        assert tried <= ids
        for e in entries:
            assert e.tried == (e.node_id in tried)
            if not e.tried:
                assert e.state != CONNECTED
                newCounts[e.source] = newCounts.get(e.source, 0) + 1
        assert book.sources() == newCounts
        assert sum(newCounts.values()) <= book.newSize
        if operation == "connect" or (operation == "learn"
                                      and peerId not in before):
            # Whatever was added made room (past the bound only for
            # connected nodes).
            connectedNow = sum(1 for e in entries if e.state == CONNECTED)
            assert len(entries) <= max(maxSize, connectedNow)
