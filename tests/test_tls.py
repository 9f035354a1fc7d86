"""
TLS between node keys over real loopback sockets: both sides prove their
key, TLS 1.3 only, and every certificate that proves nothing is refused
while the listener goes on serving others.
"""

import datetime

import pytest

import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from p2poverlay.identity import NodeKey, nodeIdOf
from p2poverlay.tls import BadCertificate, NodeTLS, certificateFor, peerKeyOf
from helpers import PROMPT, waitFor


@implementer(IHandshakeListener)
class Side(Protocol):
    """Records whom it reached, or why it could not."""

    def __init__(self):
        self.peerId = None
        self.error = None
        self.lost = Deferred()
        self.received = b""

    def handshakeCompleted(self):
        try:
            self.peerId = nodeIdOf(peerKeyOf(self.transport))
        except BadCertificate as e:
            self.error = str(e)
            self.transport.abortConnection()
        else:
            self.transport.write(b"hello\n")

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lostReason = reason
        self.lost.callback(None)


class Listener:
    def __init__(self, creator):
        self.sides = []

        def make():
            side = Side()
            self.sides.append(side)
            return side

        self.port = reactor.listenTCP(
            0, TLSMemoryBIOFactory(creator, False, Factory.forProtocol(make)),
            interface="127.0.0.1")

    def dial(self, creator):
        endpoint = wrapClientTLS(creator, TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.port.getHost().port, timeout=PROMPT))
        return endpoint.connect(Factory.forProtocol(Side))


@pytest.fixture
def serve():
    """C{serve(key)}: a TLS listener of C{key}'s, stopped after the test."""
    listeners = []

    def start(key):
        listeners.append(Listener(NodeTLS(key)))
        return listeners[-1]

    yield start
    for listener in listeners:
        pytest_twisted.blockon(listener.port.stopListening())


def expiredCertificate(key):
    past = datetime.datetime.now(datetime.timezone.utc) \
        - datetime.timedelta(days=30)
    return certificateFor(key, now=past, lifetime=datetime.timedelta(days=1))


def criticalExtensionCertificate(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.nodeId)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.private.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(1))
            .not_valid_after(now + datetime.timedelta(1))
            .add_extension(x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
                critical=True)
            .sign(key.private, algorithm=None))


class RSACreator(NodeTLS):
    """A TLS 1.3 client with an RSA certificate: proves no node key."""

    def __init__(self):
        private = rsa.generate_private_key(65537, 2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(name)
                       .issuer_name(name).public_key(private.public_key())
                       .serial_number(2)
                       .not_valid_before(now - datetime.timedelta(1))
                       .not_valid_after(now + datetime.timedelta(1))
                       .sign(private, hashes.SHA256()))
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.use_certificate(certificate)
        context.use_privatekey(private)
        context.set_verify(SSL.VERIFY_PEER, self._verify)
        self.context = context


def tls12Only(key):
    creator = NodeTLS(key)
    creator.context.set_min_proto_version(SSL.TLS1_2_VERSION)
    creator.context.set_max_proto_version(SSL.TLS1_2_VERSION)
    return creator


def withoutCertificate():
    creator = NodeTLS.__new__(NodeTLS)
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_verify(SSL.VERIFY_PEER, NodeTLS._verify)
    creator.context = context
    return creator


@pytest_twisted.inlineCallbacks
def assertStillServes(listener, serverKey):
    client = yield listener.dial(NodeTLS(NodeKey.generate()))
    yield waitFor(lambda: client.peerId is not None, timeout=PROMPT,
                  what="an honest handshake after the bad one")
    assert client.peerId == serverKey.nodeId
    client.transport.loseConnection()
    yield client.lost


@pytest_twisted.inlineCallbacks
def test_both_sides_prove_their_key(serve):
    serverKey, clientKey = NodeKey.generate(), NodeKey.generate()
    listener = serve(serverKey)
    client = yield listener.dial(NodeTLS(clientKey))
    yield waitFor(lambda: listener.sides and listener.sides[0].peerId
                  and client.peerId and client.received, timeout=PROMPT,
                  what="both handshakes")
    assert client.peerId == serverKey.nodeId
    assert listener.sides[0].peerId == clientKey.nodeId
    assert client.received == b"hello\n"
    connection = client.transport._tlsConnection
    assert connection.get_protocol_version_name() == "TLSv1.3"
    client.transport.loseConnection()
    yield client.lost


@pytest_twisted.inlineCallbacks
def test_certificates_that_prove_no_node_key_are_refused(serve):
    serverKey = NodeKey.generate()
    listener = serve(serverKey)
    key = NodeKey.generate()
    bad = {
        "expired": NodeTLS(key, expiredCertificate(key)),
        "critical extension": NodeTLS(key, criticalExtensionCertificate(key)),
        "TLS 1.2": tls12Only(key),
        "no certificate": withoutCertificate(),
        "RSA": RSACreator(),
    }
    for what, creator in bad.items():
        count = len(listener.sides)
        client = yield listener.dial(creator)
        yield waitFor(lambda client=client: client.lost.called,
                      timeout=PROMPT, what=f"the {what} client refused")
        # In TLS 1.3 the client is through first; the server, checking
        # the client's certificate last, says nothing and closes.
        assert client.received == b"", what
        # The listener never took it for a peer.
        assert [side.peerId for side in listener.sides[count:]] in (
            [], [None]), what
    assert listener.sides[-1].error == \
        "the peer's certificate holds no Ed25519 key"
    yield assertStillServes(listener, serverKey)


@pytest_twisted.inlineCallbacks
def test_a_plaintext_client_on_a_tls_port_is_closed(serve):
    serverKey = NodeKey.generate()
    listener = serve(serverKey)
    client = yield TCP4ClientEndpoint(
        reactor, "127.0.0.1", listener.port.getHost().port).connect(
        Factory.forProtocol(Side))
    client.transport.write(b'{"type": "HELLO"}\n')
    yield waitFor(lambda: client.lost.called, timeout=PROMPT,
                  what="the plaintext client closed")
    assert all(side.peerId is None for side in listener.sides)
    yield assertStillServes(listener, serverKey)


def test_the_certificate_is_self_signed_by_the_node_key_and_not_critical():
    key = NodeKey.generate()
    certificate = certificateFor(key)
    assert certificate.subject == certificate.issuer
    certificate.verify_directly_issued_by(certificate)
    assert not any(e.critical for e in certificate.extensions)
    assert certificate.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value == key.nodeId
