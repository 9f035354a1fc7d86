"""
The address book kept compact (L{p2poverlay.addressbook},
L{p2poverlay.newtable}): entries come back as they were told, one int
stands for many equal ports, a HELLO does not add copies of the strings
the book has, and the new table, which has no index by source, picks the
same entry to evict as the rules say, against a plain model of them.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from p2poverlay import wirejson
from p2poverlay.addrgroups import addressGroup
from p2poverlay.addressbook import SHARED_PORTS, AddressBook
from p2poverlay.newtable import NewTable, keepNew, rank
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.records import CONNECTED, DEAD, KNOWN, KnownPeer


def nodeId(i):
    return f"{i:032x}"


def makeBook(maxSize=128):
    clock = Clock()
    clock.advance(1000)
    return AddressBook(maxSize, clock.seconds), clock


def decoded(i, port=9000, name=None):
    """A PEERS entry as the wire gives it: every value decoded anew."""
    line = wirejson.dumps({"node_id": nodeId(i), "host": f"10.7.{i // 250}."
                           f"{i % 250 + 1}", "port": port,
                           "name": f"n{i}" if name is None else name})
    return PeerAddress.fromDict("PEERS", wirejson.loads(line))


# -- round trips ------------------------------------------------------------------

def test_an_entry_comes_back_as_it_was_told():
    book, clock = makeBook()
    told = [decoded(i, port=9000 + i % 3) for i in range(40)]
    for i, address in enumerate(told):
        book.learn(address.node_id, address.host, address.port,
                   address.name, source=f"10.5.0.{i % 4}")
    assert len(book) == 40
    for i, address in enumerate(told):
        entry = book.get(address.node_id)
        assert (entry.node_id, entry.host, entry.port, entry.name) == (
            address.node_id, address.host, address.port, address.name)
        assert entry.source == addressGroup(f"10.5.0.{i % 4}")
        assert entry.state == KNOWN and not entry.tried
        assert entry.peerAddress() == PeerAddress(
            address.node_id, address.host, address.port, address.name)


def test_equal_ports_share_one_int_and_others_keep_their_value():
    book, _ = makeBook(maxSize=1000)
    for i in range(10):
        address = decoded(i, port=9000)
        book.learn(address.node_id, address.host, address.port)
    ports = {id(book.get(nodeId(i)).port) for i in range(10)}
    assert len(ports) == 1
    # Past the ports it keeps one int for, the rest keep their own value.
    distinct = SHARED_PORTS + 20
    for i in range(100, 100 + distinct):
        address = decoded(i, port=20000 + i)
        book.learn(address.node_id, address.host, address.port)
    assert [book.get(nodeId(i)).port for i in range(100, 100 + distinct)] \
        == [20000 + i for i in range(100, 100 + distinct)]


def test_a_hello_repeating_what_the_book_has_adds_no_copy():
    book, clock = makeBook()
    address = decoded(1)
    book.learn(address.node_id, address.host, address.port, address.name)
    first = book.get(address.node_id)
    again = decoded(1)  # equal strings, other objects
    assert again.node_id is not first.node_id
    clock.advance(1)
    entry = book.update(again.node_id, again.host, again.port, again.name,
                        CONNECTED)
    assert entry.node_id is first.node_id and entry.host is first.host
    assert entry.name is first.name
    assert entry.state == CONNECTED and entry.tried
    # What differs is taken.
    entry = book.update(again.node_id, "10.8.0.9", 9001, "renamed", CONNECTED)
    assert (entry.host, entry.port, entry.name) == ("10.8.0.9", 9001,
                                                    "renamed")


def test_a_book_of_the_default_size_keeps_its_bounds():
    book, clock = makeBook(128)
    sources = [f"10.5.{s}.1" for s in range(40)]
    for round in range(30):
        # Peer exchange: 16 addresses from each of a few sources.
        for s, source in enumerate(sources[round % 5::5]):
            for k in range(16):
                address = decoded(round * 1000 + s * 16 + k)
                book.learn(address.node_id, address.host, address.port,
                           address.name, source=source)
        # A connection now and then, later lost.
        peer = decoded(100_000 + round)
        book.update(peer.node_id, peer.host, peer.port, peer.name, CONNECTED)
        clock.advance(1)
        book.setState(peer.node_id, DEAD)
    tried = len(book.tried())
    assert 0 < tried <= book.triedSize
    counts = book.sources()
    assert sum(counts.values()) == book.newSize  # full, but within its room
    assert len(book) == tried + book.newSize <= 128
    assert max(counts.values()) <= book.sourceSize
    assert counts == _countsOf(book)


def _countsOf(book):
    counts = {}
    for entry in book.all():
        if not entry.tried:
            counts[entry.source] = counts.get(entry.source, 0) + 1
    return counts


# -- the new table against a model of its rules -----------------------------------

class Model:
    """The new table's rules over a plain list, oldest first."""

    def __init__(self):
        self.order = []  # node ids, in the order they were indexed

    def add(self, entry):
        self.order.append(entry.node_id)

    def remove(self, nodeId):
        if nodeId in self.order:
            self.order.remove(nodeId)

    def counts(self, peers):
        counts = {}
        for n in self.order:
            counts[peers[n].source] = counts.get(peers[n].source, 0) + 1
        return counts

    def worstOf(self, source, peers):
        mine = [peers[n] for n in self.order if peers[n].source == source]
        for wanted in (0, 1):
            for entry in mine:
                if rank(entry) == wanted:
                    return entry
        return min(mine, key=keepNew)

    def victim(self, peers, incoming):
        counts = self.counts(peers)
        if not counts:
            return None
        most = max(counts.values())
        tied = {s for s, held in counts.items() if held == most}
        if incoming is not None and counts.get(incoming) == most > 1:
            return self.worstOf(incoming, peers)
        if len(tied) == 1:
            return self.worstOf(next(iter(tied)), peers)
        for wanted in (0, 1):
            for n in self.order:
                if rank(peers[n]) == wanted and peers[n].source in tied:
                    return peers[n]
        return min((peers[n] for n in self.order
                    if rank(peers[n]) == 2 and peers[n].source in tied),
                   key=keepNew)


ENTRY = st.tuples(st.integers(0, 30), st.sampled_from("abcd"),
                  st.sampled_from([KNOWN, DEAD]),
                  st.sampled_from([0.0, 0.0, 5.0, 7.0]))
STEPS = st.lists(st.tuples(st.sampled_from(["add", "add", "remove", "evict"]),
                           ENTRY, st.sampled_from([None, "a", "b", "e"])),
                 max_size=120)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_new_table_evicts_as_its_rules_say(steps):
    table, model, peers = NewTable(), Model(), {}
    for time, (step, (i, source, state, lastSeen), incoming) in \
            enumerate(steps):
        peerId = nodeId(i)
        if step == "add" and peerId not in peers:
            entry = KnownPeer(peerId, "10.0.0.1", 9000, state=state,
                              last_seen=lastSeen, since=float(time),
                              source=source)
            peers[peerId] = entry
            table.add(entry)
            model.add(entry)
        elif step == "remove" and peerId in peers:
            del peers[peerId]
            table.remove(peerId)
            model.remove(peerId)
        elif step == "evict":
            expected = model.victim(peers, incoming)
            assert table.victim(peers, incoming) == expected
            if expected is not None:
                assert table.worstOf(expected.source, peers) == \
                    model.worstOf(expected.source, peers)
                # As the book does: the victim goes.
                del peers[expected.node_id]
                table.remove(expected.node_id)
                model.remove(expected.node_id)
        assert len(table) == len(model.order)
        assert table.counts == model.counts(peers)
