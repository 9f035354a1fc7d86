"""
A node's long-term identity: an Ed25519 key, and the node id derived from it.

The node id is the SHA-256 of the raw 32-byte public key, as 64 lowercase
hex digits: nobody can claim an id without proving the key (in the TLS
handshake), and ids are spread evenly (routing by id uses them as keys).
The key lives in the node's data directory, readable by its owner only; a
key file that others can read is refused, as ssh refuses one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from typing import Tuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "node.key"


class KeyFileError(Exception):
    """A key file that cannot be used, with a one-line reason."""


def nodeIdOf(publicKey: bytes) -> str:
    """The node id of the raw Ed25519 public key C{publicKey}."""
    return hashlib.sha256(publicKey).hexdigest()


def fingerprintOf(publicKey: bytes) -> str:
    """A key's fingerprint as ssh writes one: ``SHA256:`` and base64."""
    digest = hashlib.sha256(publicKey).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def readPrivateFile(path: str, limit: int = 65536) -> bytes:
    """
    The first C{limit} bytes of the secret file C{path}.

    @raise KeyFileError: if others may read it, or it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"{path} is open to others (mode "
                    f"{stat.S_IMODE(mode):04o}): run chmod 600 {path}")
            return f.read(limit)
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from None


class NodeKey:
    """A node's private key, and what follows from it."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.publicBytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.nodeId = nodeIdOf(self.publicBytes)
        self.fingerprint = fingerprintOf(self.publicBytes)

    @classmethod
    def generate(cls) -> "NodeKey":
        return cls(Ed25519PrivateKey.generate())

    # -- files ------------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> "NodeKey":
        """
        Read a key saved by L{save}.

        @raise KeyFileError: if others may read it, or it holds no
            Ed25519 key.
        """
        data = readPrivateFile(path)
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise KeyFileError(f"{path} holds no private key in PEM "
                               f"form") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a key that is not Ed25519")
        return cls(private)

    def save(self, path: str) -> None:
        """Write the key to C{path} (mode 0600), atomically."""
        data = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        temporary = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)

    @classmethod
    def loadOrCreate(cls, path: str) -> Tuple["NodeKey", bool]:
        """
        The key at C{path}, made and saved first if there is none.

        @return: the key, and whether it was made now.
        @raise KeyFileError: if the file exists but cannot be used.
        """
        if os.path.lexists(path):
            return cls.load(path), False
        key = cls.generate()
        try:
            key.save(path)
        except OSError as e:
            raise KeyFileError(f"cannot write {path}: {e.strerror}") from None
        return key, True
