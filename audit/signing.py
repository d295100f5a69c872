"""The checkpoint keys: an Ed25519 private key that signs chain heads, and the public keys
that check them.

The private key is read from a PEM file (PKCS#8, unencrypted: it is mounted from a secret
store, and a passphrase would only move the secret to another variable). Verifiers need the
public key only: a PEM file holding one or more ``PUBLIC KEY`` blocks (several while keys
rotate), or the private key's file, from which the public key is derived.

A key is named by its ``key_id``: the hex SHA-256 of its raw 32-byte public key. Nothing here
ever formats a private key into a message.
"""

import hashlib
import os
import re
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.checkpoints import AuditCheckpoint, checkpoint_statement

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file, never its content."""


class CheckpointSignatureError(Exception):
    """A checkpoint no trusted key signed: forged, altered, or signed by an unknown key."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class CheckpointSigner:
    """Signs chain heads with the private key; its repr shows the key id only."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.key_id = key_id(private_key.public_key())

    @classmethod
    def from_file(cls, path: Path) -> "CheckpointSigner":
        private = _load_private_key(path)
        if private is None:
            raise KeyFileError(f"{path}: no Ed25519 private key (PKCS#8 PEM) in it")
        return cls(private)

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def sign(self, *, chain: str, seq: int, record_hash: str, at: datetime) -> AuditCheckpoint:
        statement = checkpoint_statement(
            chain=chain, seq=seq, record_hash=record_hash, signed_at=at, key_id=self.key_id
        )
        return AuditCheckpoint(
            chain=chain,
            seq=seq,
            record_hash=record_hash,
            signed_at=at,
            key_id=self.key_id,
            signature=self._private_key.sign(statement).hex(),
        )


class CheckpointVerifier:
    """Checks checkpoints against the trusted public keys, found by key id."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        if not public_keys:
            raise ValueError("no public key to verify checkpoints with")
        self._keys = {key_id(key): key for key in public_keys}

    @classmethod
    def from_file(cls, path: Path) -> "CheckpointVerifier":
        return cls(load_public_keys(path))

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, checkpoint: AuditCheckpoint) -> None:
        """Return if a trusted key signed ``checkpoint``; else raise
        :class:`CheckpointSignatureError`. The key id is looked up, never trusted: a
        checkpoint naming a trusted key but signed by another fails the signature check."""
        public_key = self._keys.get(checkpoint.key_id)
        if public_key is None:
            raise CheckpointSignatureError(
                f"signed by key {checkpoint.key_id[:16]}…, which is not a trusted key"
            )
        try:
            public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.statement())
        except InvalidSignature:
            raise CheckpointSignatureError(
                f"its signature does not verify with key {checkpoint.key_id[:16]}…"
            ) from None


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in ``path``: its PUBLIC KEY blocks, or the public half of its
    private key."""
    private = _load_private_key(path)
    if private is not None:
        return [private.public_key()]
    keys = []
    for block in _PEM_BLOCK.finditer(_read(path)):
        if block.group(1) != b"PUBLIC KEY":
            continue
        try:
            key = serialization.load_pem_public_key(block.group(0))
        except ValueError:
            raise KeyFileError(f"{path}: a PUBLIC KEY block that does not parse") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{path}: a public key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise KeyFileError(f"{path}: no Ed25519 key (PEM) in it")
    return keys


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot be read ({error.strerror})") from None


def _load_private_key(path: Path) -> Ed25519PrivateKey | None:
    content = _read(path)
    if b"PRIVATE KEY-----" not in content:
        return None
    try:
        key = serialization.load_pem_private_key(content, password=None)
    except (ValueError, TypeError):
        # The exception's text could quote the file: say only what is wrong with it.
        raise KeyFileError(f"{path}: a private key that does not load (encrypted?)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: the private key is not Ed25519")
    return key


def ensure_key_file(path: Path) -> Path:
    """Create an Ed25519 private key at ``path`` (mode 0600) unless one is there, and its
    public key beside it (``<name>.pub``, for verifiers); return the public key's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created with its final mode: never readable by others, not even for a moment.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
    signer = CheckpointSigner.from_file(path)
    public = path.with_name(path.name + ".pub")
    public.write_bytes(public_key_pem(signer.public_key()))
    return public
