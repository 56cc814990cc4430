"""A private key is read once (a passphrase-protected one costs a bcrypt KDF), yet a wrong passphrase or a missing
one is refused every time, and the cache holds digests, never the secrets."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from checks.transport import ConnectFailure, ssh


@pytest.fixture
def encrypted_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"correct horse"),
    ).decode()


def test_a_key_is_read_once_and_reused(encrypted_key):
    # when: the same key and passphrase are loaded twice
    first = ssh.load_private_key(encrypted_key, "correct horse")
    second = ssh.load_private_key(encrypted_key, "correct horse")
    # then: the second is the key already read, and the cache keeps no secret text
    assert second is first
    assert ssh.fingerprint(first).startswith("SHA256:")
    stored = repr(ssh._KEY_CACHE.keys())
    assert "correct horse" not in stored and "OPENSSH" not in stored


def test_a_wrong_or_missing_passphrase_is_refused_even_after_a_good_one(encrypted_key):
    # given: the key was opened once with its passphrase
    ssh.load_private_key(encrypted_key, "correct horse")
    # when / then: another passphrase, or none, is still refused with the reason
    with pytest.raises(ConnectFailure, match="cannot be read"):
        ssh.load_private_key(encrypted_key, "wrong")
    with pytest.raises(ConnectFailure, match="no passphrase is stored"):
        ssh.load_private_key(encrypted_key)
