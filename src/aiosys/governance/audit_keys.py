"""The Ed25519 key that signs the audit log's checkpoints (``cryptography``).

The operator names a PEM file (PKCS#8 private key): ``App(audit_key=...)``, the
``AIOSYS_AUDIT_KEY`` environment variable, or ``key`` under ``[audit]`` in aiosys.toml.
Without one, the embedded default generates a key on first use at ``.aiosys/audit_key.pem``
(mode 0600) and logs where once. A verifier needs only the public half: a public-key PEM
file works wherever a key file is read for verifying.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError

log = logging.getLogger("aiosys.audit")

DEFAULT_KEY = Path(".aiosys") / "audit_key.pem"


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The private key in the PEM file ``path``; ``ConfigError`` if it cannot be read or is
    not an unencrypted Ed25519 private key."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"audit key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"audit key {path}: an Ed25519 key is needed, not {type(key).__name__}")
    return key


def load_verify_key(path: str | Path) -> Ed25519PublicKey:
    """The public key of the PEM file ``path``: a public key, or the public half of a
    private one; ``ConfigError`` otherwise."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"audit key {path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"audit key {path}: an Ed25519 key is needed, not {type(key).__name__}")
    return key


def default_signing_key(path: Path = DEFAULT_KEY) -> Ed25519PrivateKey:
    """The embedded default's key at ``path``, generated (mode 0600) if there is none yet.
    Processes starting together agree: the key is written whole to a file of this process
    and linked into place (``os.link`` fails if ``path`` exists), so ``path`` never exists
    half written, and the losers read the winner's."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            os.link(draft, path)
        except FileExistsError:
            pass  # another process's key is in place: read it below
        except OSError as exc:
            raise ConfigError(f"cannot create the audit key {path}: {exc.strerror}") from None
        else:
            log.warning(
                "audit: generated a checkpoint signing key at %s (mode 0600); configure your "
                "own with audit_key / AIOSYS_AUDIT_KEY / [audit] key in aiosys.toml",
                path,
            )
            return key
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(draft)
    return load_signing_key(path)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_from_pem(text: str) -> Ed25519PublicKey:
    """The public key in PEM text (an extract's header); ``ConfigError`` if it is not one."""
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"an Ed25519 key is needed, not {type(key).__name__}")
    return key


def sign(key: Ed25519PrivateKey, payload: str) -> str:
    """The Ed25519 signature of ``payload`` (UTF-8), base64."""
    return base64.b64encode(key.sign(payload.encode())).decode()


def signature_ok(key: Ed25519PublicKey, payload: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), payload.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key {path}: {exc.strerror or exc}") from None
