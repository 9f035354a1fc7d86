"""Node keys: made once, kept private, and the node id derived from them."""

import hashlib
import os
import re
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from p2poverlay.identity import (
    KeyFileError, NodeKey, fingerprintOf, nodeIdOf,
)


def test_a_key_is_made_once_private_and_reused(tmp_path):
    path = str(tmp_path / "node.key")
    key, created = NodeKey.loadOrCreate(path)
    assert created
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again, created = NodeKey.loadOrCreate(path)
    assert not created
    assert again.nodeId == key.nodeId
    assert again.publicBytes == key.publicBytes


def test_the_node_id_is_the_sha256_of_the_public_key():
    key = NodeKey.generate()
    assert len(key.publicBytes) == 32
    assert key.nodeId == hashlib.sha256(key.publicBytes).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", key.nodeId)
    assert nodeIdOf(key.publicBytes) == key.nodeId
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", key.fingerprint)
    assert fingerprintOf(NodeKey.generate().publicBytes) != key.fingerprint


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_file_open_to_others_is_refused(tmp_path, mode):
    path = str(tmp_path / "node.key")
    NodeKey.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError) as e:
        NodeKey.loadOrCreate(path)
    assert str(e.value) == (f"{path} is open to others (mode {mode:04o}): "
                            f"run chmod 600 {path}")


@pytest.mark.parametrize("content, reason", [
    (b"", "holds no private key in PEM form"),
    (b"not a key\n", "holds no private key in PEM form"),
    (rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), "holds a key that is not Ed25519"),
])
def test_a_key_file_that_holds_no_node_key_is_refused(tmp_path, content,
                                                      reason):
    path = tmp_path / "node.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as e:
        NodeKey.load(str(path))
    assert str(e.value) == f"{path} {reason}"
    assert path.read_bytes() == content  # Never overwritten.
