"""The lab's certificates, made by trustme, never edited by hand.

Layout of the certs folder (everything but README.md is generated and
gitignored; `labctl certs --force` makes it all anew):

    ca/ca.crt, ca/ca.key         the lab CA; the key never leaves the host
    server/server-rsa.{crt,key}  server.lab.test, RSA key (RSA key exchange works)
    server/server-ecdsa.{crt,key}  the same name with an ECDSA key
    server/ca.crt                the CA, for checking client certificates
    client/ca.crt                the only thing the client gets: whom to trust

Each container mounts one subfolder read-only: the server gets server/,
the client gets client/. Private keys are mode 0600, their folders 0700.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import CertError

SERVER_NAME = "server.lab.test"
KEY_TYPES = ("rsa", "ecdsa")


@dataclass(frozen=True)
class CertFile:
    path: Path
    mounted_in: str      # which container sees it ("host only" for the CA key)
    private: bool


def layout(certs_dir: Path) -> list[CertFile]:
    """Every file `generate` writes, with who gets it."""
    files = [CertFile(certs_dir / "ca" / "ca.crt", "host only", False),
             CertFile(certs_dir / "ca" / "ca.key", "host only", True)]
    for kind in KEY_TYPES:
        files.append(CertFile(certs_dir / "server" / f"server-{kind}.crt", "server", False))
        files.append(CertFile(certs_dir / "server" / f"server-{kind}.key", "server", True))
    files.append(CertFile(certs_dir / "server" / "ca.crt", "server", False))
    files.append(CertFile(certs_dir / "client" / "ca.crt", "client", False))
    return files


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def generate(certs_dir: Path) -> list[CertFile]:
    """Make a fresh lab CA and the server's RSA and ECDSA certificates."""
    import trustme  # imported here: it pulls in cryptography, slow for `labctl status`

    ca = trustme.CA(organization_name="tlslab", organization_unit_name="lab CA",
                    key_type=trustme.KeyType.RSA)
    ca_pem = ca.cert_pem.bytes()
    _write(certs_dir / "ca" / "ca.crt", ca_pem, False)
    _write(certs_dir / "ca" / "ca.key", ca.private_key_pem.bytes(), True)
    for kind, key_type in (("rsa", trustme.KeyType.RSA), ("ecdsa", trustme.KeyType.ECDSA)):
        leaf = ca.issue_cert(SERVER_NAME, common_name=SERVER_NAME, organization_name="tlslab",
                             organization_unit_name=f"lab server ({kind.upper()})", key_type=key_type)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        _write(certs_dir / "server" / f"server-{kind}.crt", chain, False)
        _write(certs_dir / "server" / f"server-{kind}.key", leaf.private_key_pem.bytes(), True)
    _write(certs_dir / "server" / "ca.crt", ca_pem, False)
    _write(certs_dir / "client" / "ca.crt", ca_pem, False)
    # The server runs as root only long enough to read its key; the client
    # runs as an unprivileged user and must be able to read the CA certificate.
    os.chmod(certs_dir / "ca", 0o700)
    os.chmod(certs_dir / "server", 0o700)
    os.chmod(certs_dir / "client", 0o755)
    return layout(certs_dir)


def exist(certs_dir: Path) -> bool:
    """True when any generated file is present (then `check` decides if it is usable)."""
    return any(f.path.exists() for f in layout(certs_dir))


def check(certs_dir: Path) -> None:
    """Raise CertError naming the first missing, corrupt or mismatched file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    fix = "run `labctl certs --force` to make a new set"
    for kind in KEY_TYPES:
        crt = certs_dir / "server" / f"server-{kind}.crt"
        key = certs_dir / "server" / f"server-{kind}.key"
        for path in (crt, key, certs_dir / "client" / "ca.crt", certs_dir / "ca" / "ca.crt"):
            if not path.is_file():
                raise CertError(f"{path} is missing — {fix}")
        try:
            cert = x509.load_pem_x509_certificate(crt.read_bytes())
        except ValueError:
            raise CertError(f"{crt} is not a PEM certificate — {fix}") from None
        try:
            private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise CertError(f"{key} is not a usable PEM private key — {fix}") from None
        if private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
            raise CertError(f"{key} does not belong to {crt} — {fix}")
        if key.stat().st_mode & 0o077:
            raise CertError(f"{key} is readable by others (mode {key.stat().st_mode & 0o777:o}); "
                            f"chmod 600 it or {fix}")
