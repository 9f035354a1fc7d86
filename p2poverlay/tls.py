"""
TLS 1.3 between nodes, each side proving its node key.

Every node presents a self-signed certificate made from its own Ed25519
node key (L{certificateFor}); both sides must present one.  Certificates
are not checked against any authority: what a peer proves is that it holds
the key its node id is derived from.  OpenSSL's verification is kept for
what it checks well (the signature, the validity period, no unknown
critical extension), and only the complaint "self-signed" is forgiven
(L{NodeTLS._verify}); once the handshake completes, L{peerKeyOf} reads the
peer's key from its certificate.  The certificate carries no extension
marked critical: peers that do not know one would refuse it.

L{NodeTLS} makes the OpenSSL connections for Twisted's TLS
(C{wrapClientTLS} and C{TLSMemoryBIOFactory}).
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from zope.interface import implementer
from twisted.internet.interfaces import (
    IHandshakeListener, IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger

from p2poverlay.identity import NodeKey, nodeIdOf

# A certificate is valid from a little before it is made (clocks differ)
# for this long; a node makes a fresh one at every start.
CLOCK_SKEW = datetime.timedelta(hours=1)
CERTIFICATE_LIFETIME = datetime.timedelta(days=365)
# OpenSSL's complaints about a certificate that signed itself.
_SELF_SIGNED = frozenset({18,  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
                          19})  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN


class BadCertificate(Exception):
    """A peer's certificate proves no node key; the reason in one line."""


def certificateFor(key: NodeKey, now: datetime.datetime | None = None,
                   lifetime: datetime.timedelta = CERTIFICATE_LIFETIME
                   ) -> x509.Certificate:
    """A self-signed certificate of C{key}, valid from C{now} for C{lifetime}."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.nodeId)])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .sign(key.private, algorithm=None))


def peerKeyOf(connection: Any) -> bytes:
    """
    The raw Ed25519 key that the peer of the TLS C{connection} (a
    C{twisted.protocols.tls.TLSMemoryBIOProtocol}, or anything with
    C{getPeerCertificate}) proved in its handshake.

    @raise BadCertificate: if it showed no certificate or not an Ed25519 one.
    """
    certificate = connection.getPeerCertificate()
    if certificate is None:
        raise BadCertificate("the peer showed no certificate")
    publicKey = certificate.to_cryptography().public_key()
    if not isinstance(publicKey, Ed25519PublicKey):
        raise BadCertificate("the peer's certificate holds no Ed25519 key")
    return publicKey.public_bytes(serialization.Encoding.Raw,
                                  serialization.PublicFormat.Raw)


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class NodeTLS:
    """
    The TLS settings of a node with the key C{key}: TLS 1.3 only, its own
    certificate, and a peer certificate required both ways.
    """

    def __init__(self, key: NodeKey,
                 certificate: x509.Certificate | None = None) -> None:
        self.key = key
        self.certificate = certificate or certificateFor(key)
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.set_max_proto_version(SSL.TLS1_3_VERSION)
        context.use_certificate(self.certificate)
        context.use_privatekey(key.private)
        context.check_privatekey()
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                           self._verify)
        # Buffers go back to the allocator while a connection is idle.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        context.set_options(SSL.OP_NO_TICKET)
        self.context = context

    @staticmethod
    def _verify(connection: SSL.Connection, certificate: crypto.X509,
                error: int, depth: int, ok: int) -> bool:
        """Accept a peer's lone self-signed certificate, else what OpenSSL
        accepts (nothing, with no authorities to trust)."""
        return depth == 0 and (bool(ok) or error in _SELF_SIGNED)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.context, None)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_connect_state()
        return connection


@implementer(IHandshakeListener)
class ProvesKey:
    """
    A protocol that may run over TLS: once the handshake is through, it
    knows the key its peer proved (C{peerKey}), and closes a connection
    whose certificate proves none.
    """

    log = Logger()
    transport: Any
    # The raw Ed25519 key the peer proved, on a connection over TLS.
    peerKey: Optional[bytes] = None

    @property
    def overTLS(self) -> bool:
        """Does this connection run over TLS?"""
        return hasattr(self.transport, "getPeerCertificate")

    def handshakeCompleted(self) -> None:
        try:
            self.peerKey = peerKeyOf(self.transport)
        except BadCertificate as e:
            self.log.warn("closing connection with {peer}: {reason}",
                          peer=self.transport.getPeer(), reason=e)
            self.transport.abortConnection()
        else:
            self.keyProven()

    def provesNodeId(self, nodeId: str) -> bool:
        """Over TLS, is C{nodeId} that of the key the peer proved?  (On a
        plaintext or in-memory link nothing proves it: yes.)"""
        if not self.overTLS:
            return True
        return self.peerKey is not None and nodeIdOf(self.peerKey) == nodeId

    def keyProven(self) -> None:
        """The handshake is through and the peer proved C{peerKey}."""
