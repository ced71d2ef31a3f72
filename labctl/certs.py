"""The lab's certificates, made by trustme, never edited by hand.

Layout of the certs folder (everything but README.md is generated and
gitignored; `labctl certs --force` makes it all anew):

    ca/ca.crt, ca/ca.key         the lab CA; the key never leaves the host
    server/server-rsa.{crt,key}  server.lab.test, RSA key (RSA key exchange works)
    server/server-ecdsa.{crt,key}  the same name with an ECDSA key
    server/ca.crt                the CA, for checking client certificates
    server/cases/<case>/{cert,key}.pem   the verification cases (`labctl run verify`)
    client/ca.crt                whom the client trusts
    client/client-good.{crt,key}       a client certificate from the lab CA (mutual TLS)
    client/client-untrusted.{crt,key}  one from a CA the server does not trust
    attacker/                    the attacker's CA and its forged server.lab.test (the wire, in attacks)
    dns/dns.lab.test.{crt,key}   the encrypted resolver's (DNS over TLS and over HTTPS)
    proxy/www.lab.test.{crt,key} the reverse proxy's: www, www-tls, www-local and www-wrongname .lab.test
    proxy/ca.crt                 the CA, for checking the backend's certificate

No container sees this folder. `labctl up` copies each subfolder but ca/
into a named volume of the lab (labctl/volumes.py), and each container mounts
only its own, read-only: the server gets server/, the client client/, the wire
attacker/, the resolver dns/, the proxy proxy/. On the host, private keys are mode 0600 and their folders 0700.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CertError
from .files import PRIVATE, write_whole

if TYPE_CHECKING:
    import trustme      # imported where it is used: it pulls in cryptography, slow for `labctl status`

SERVER_NAME = "server.lab.test"
RESOLVER_NAME = "dns.lab.test"
# The reverse proxy's names (services/proxy/nginx.conf): TLS ends at the proxy
# and the request goes on to the application in clear, over TLS, or over the
# proxy's own loopback; the last expects a backend name the server's certificate
# does not carry (nginx refuses it).
PROXY_NAMES = ("www.lab.test", "www-tls.lab.test", "www-local.lab.test", "www-wrongname.lab.test")
KEY_TYPES = ("rsa", "ecdsa")


# Host subfolder -> the lab's named volume that carries it into a container
# (compose.yaml mounts each in one service only). ca/ has none: the CA key
# never leaves the host.
VOLUMES = {"server": "server-certs", "client": "client-certs", "attacker": "attacker-certs",
           "dns": "dns-certs", "proxy": "proxy-certs"}
# The unprivileged user the client runs as (services/base: useradd --uid 10001 lab).
LAB_UID = 10001
# Debian's www-data (base-passwd): the proxy's nginx runs as it, never as root (services/proxy).
WWW_DATA_UID = 33


@dataclass(frozen=True)
class CertFile:
    path: Path
    mounted_in: str      # which container sees it ("host only" for the CA key)
    private: bool

    def volume(self, certs_dir: Path) -> str | None:
        """The named volume this file goes into, or None for host-only files."""
        return VOLUMES.get(self.path.relative_to(certs_dir).parts[0])

    def owner(self, certs_dir: Path) -> int:
        """Its uid inside the container: a private key belongs to the user that reads it.

        The server, the wire and the resolver read their keys as root (before
        they drop privileges); the client runs as "lab" throughout, the proxy's
        nginx as www-data.
        """
        if self.private and self.volume(certs_dir) == "client-certs":
            return LAB_UID
        if self.private and self.volume(certs_dir) == "proxy-certs":
            return WWW_DATA_UID
        return 0

    def mode(self) -> int | None:
        """Its permission bits as they are on disk now (None when it is missing): never assumed."""
        try:
            return stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        """What `labctl certs` prints for it, with the mode read from disk: "private key (0600)"."""
        mode = self.mode()
        what = "private key" if self.private else "certificate"
        if mode is None:
            return f"{what} (missing)"
        if self.private and mode & 0o077:
            return f"{what} ({mode:04o}: readable by others!)"
        return f"{what} ({mode:04o})"


def layout(certs_dir: Path) -> list[CertFile]:
    """Every file `generate` writes, with who gets it."""
    files = [CertFile(certs_dir / "ca" / "ca.crt", "host only", False),
             CertFile(certs_dir / "ca" / "ca.key", "host only", True)]
    for kind in KEY_TYPES:
        files.append(CertFile(certs_dir / "server" / f"server-{kind}.crt", "server", False))
        files.append(CertFile(certs_dir / "server" / f"server-{kind}.key", "server", True))
    files.append(CertFile(certs_dir / "server" / "ca.crt", "server", False))
    for case in CASE_CERTS:
        files.append(CertFile(certs_dir / "server" / "cases" / case / "cert.pem", "server", False))
        files.append(CertFile(certs_dir / "server" / "cases" / case / "key.pem", "server", True))
    files.append(CertFile(certs_dir / "client" / "ca.crt", "client", False))
    for who in ("good", "untrusted"):
        files.append(CertFile(certs_dir / "client" / f"client-{who}.crt", "client", False))
        files.append(CertFile(certs_dir / "client" / f"client-{who}.key", "client", True))
    files.append(CertFile(certs_dir / "attacker" / "ca.crt", "wire (attacker)", False))
    files.append(CertFile(certs_dir / "attacker" / "server.lab.test.crt", "wire (attacker)", False))
    files.append(CertFile(certs_dir / "attacker" / "server.lab.test.key", "wire (attacker)", True))
    files.append(CertFile(certs_dir / "dns" / f"{RESOLVER_NAME}.crt", "dns", False))
    files.append(CertFile(certs_dir / "dns" / f"{RESOLVER_NAME}.key", "dns", True))
    files.append(CertFile(certs_dir / "proxy" / f"{PROXY_NAMES[0]}.crt", "proxy", False))
    files.append(CertFile(certs_dir / "proxy" / f"{PROXY_NAMES[0]}.key", "proxy", True))
    files.append(CertFile(certs_dir / "proxy" / "ca.crt", "proxy", False))
    return files


# The verification cases' server certificates: folder name -> what it is.
# Validity is relative to the moment of generation, so nothing goes stale
# (regenerate with `labctl certs --force` when a year has passed).
CASE_CERTS = {
    "valid-rsa": "valid, RSA key",
    "valid-ecdsa": "valid, ECDSA key",
    "chain": "valid, via an intermediate (chain sent)",
    "expired": "expired yesterday",
    "not-yet-valid": "valid from next month",
    "wrong-host": "valid, but for other.lab.test",
    "self-signed": "self-signed",
    "untrusted-root": "from a CA nobody trusts",
    "incomplete-chain": "via an intermediate (chain not sent)",
    "mtls": "valid for mtls.lab.test (the mutual-TLS listener)",
    "tls12-only": "valid for tls12-only.lab.test (the TLS 1.2 listener)",
    "legacy": "valid for legacy.lab.test (the TLS 1.0-1.1 listener)",
}


def _self_signed(host: str) -> tuple[bytes, bytes]:
    """A leaf signed by its own key: trustme only makes CA-signed leaves."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _generate_cases(certs_dir: Path, ca: trustme.CA) -> None:
    import datetime

    import trustme

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    stranger = trustme.CA(organization_name="not the lab", organization_unit_name="untrusted CA")
    intermediate = ca.create_child_ca()
    leaves = {
        "valid-rsa": ca.issue_cert("valid-rsa.lab.test", key_type=trustme.KeyType.RSA),
        "valid-ecdsa": ca.issue_cert("valid-ecdsa.lab.test", key_type=trustme.KeyType.ECDSA),
        "chain": intermediate.issue_cert("chain.lab.test"),
        "expired": ca.issue_cert("expired.lab.test", not_before=now - 30 * day, not_after=now - day),
        "not-yet-valid": ca.issue_cert("not-yet-valid.lab.test", not_before=now + 30 * day,
                                       not_after=now + 60 * day),
        "wrong-host": ca.issue_cert("other.lab.test"),
        "untrusted-root": stranger.issue_cert("untrusted-root.lab.test"),
        "incomplete-chain": intermediate.issue_cert("incomplete-chain.lab.test"),
        "mtls": ca.issue_cert("mtls.lab.test"),
        "tls12-only": ca.issue_cert("tls12-only.lab.test"),
        "legacy": ca.issue_cert("legacy.lab.test", key_type=trustme.KeyType.RSA),
    }
    for case, leaf in leaves.items():
        pems = [blob.bytes() for blob in leaf.cert_chain_pems]
        chain = pems[0] if case == "incomplete-chain" else b"".join(pems)
        _write(certs_dir / "server" / "cases" / case / "cert.pem", chain, False)
        _write(certs_dir / "server" / "cases" / case / "key.pem", leaf.private_key_pem.bytes(), True)
    cert, key = _self_signed("self-signed.lab.test")
    _write(certs_dir / "server" / "cases" / "self-signed" / "cert.pem", cert, False)
    _write(certs_dir / "server" / "cases" / "self-signed" / "key.pem", key, True)
    # The attacker's own CA and the certificate it presents for the lab's
    # server name: made here so the attack scenarios never wait for it.
    attacker = trustme.CA(organization_name="attacker", organization_unit_name="evil CA")
    forged = attacker.issue_cert("server.lab.test", common_name="server.lab.test")
    _write(certs_dir / "attacker" / "ca.crt", attacker.cert_pem.bytes(), False)
    _write(certs_dir / "attacker" / "server.lab.test.crt", b"".join(b.bytes() for b in forged.cert_chain_pems), False)
    _write(certs_dir / "attacker" / "server.lab.test.key", forged.private_key_pem.bytes(), True)
    os.chmod(certs_dir / "attacker", 0o700)
    # The encrypted resolver and the reverse proxy, signed by the lab CA like the server.
    for service, names in (("dns", (RESOLVER_NAME,)), ("proxy", PROXY_NAMES)):
        leaf = ca.issue_cert(*names, common_name=names[0], organization_name="tlslab",
                             organization_unit_name=f"lab {service}")
        _write(certs_dir / service / f"{names[0]}.crt", b"".join(b.bytes() for b in leaf.cert_chain_pems), False)
        _write(certs_dir / service / f"{names[0]}.key", leaf.private_key_pem.bytes(), True)
        os.chmod(certs_dir / service, 0o700)
    _write(certs_dir / "proxy" / "ca.crt", ca.cert_pem.bytes(), False)
    for who, issuer in (("good", ca), ("untrusted", stranger)):
        leaf = issuer.issue_cert(f"{who}-client@lab.test", common_name=f"{who} client")
        _write(certs_dir / "client" / f"client-{who}.crt", leaf.cert_chain_pems[0].bytes(), False)
        _write(certs_dir / "client" / f"client-{who}.key", leaf.private_key_pem.bytes(), True)
    for folder in (certs_dir / "server" / "cases").iterdir():
        os.chmod(folder, 0o700)
    os.chmod(certs_dir / "server" / "cases", 0o700)


def _write(path: Path, data: bytes, private: bool) -> None:
    """Write PATH whole (files.write_whole: a temporary name, then a rename), its mode set before
    the first byte and checked after the rename: 0600 for a private key, 0644 for the rest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(data, path, PRIVATE if private else 0o644, CertError)


def generate(certs_dir: Path) -> list[CertFile]:
    """Make a fresh lab CA and every certificate and key of the layout; CertError if it cannot write.

    All or nothing: the set is made in a sibling folder and swapped in, so an
    interrupted `certs --force` leaves the old set whole, never a new CA beside
    old leaves.
    """
    fresh = certs_dir.with_name(f".{certs_dir.name}.new-{os.getpid()}")
    retired = certs_dir.with_name(f".{certs_dir.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700, parents=True)
        _generate(fresh)
        tighten(fresh)                          # each key is checked 0600 before the set is swapped in
        _keep_others(certs_dir, fresh)
        if certs_dir.exists():
            os.replace(certs_dir, retired)
        os.replace(fresh, certs_dir)
        shutil.rmtree(retired, ignore_errors=True)
    except OSError as exc:
        raise CertError(f"cannot write the certificates in {certs_dir}: "
                        f"{exc.strerror or exc}{' (' + exc.filename + ')' if exc.filename else ''}") from None
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        if retired.exists() and not certs_dir.exists():
            os.replace(retired, certs_dir)      # interrupted between the two renames: keep the old set
    return layout(certs_dir)


def _keep_others(old: Path, fresh: Path) -> None:
    """Copy into the fresh set what the old folder holds that labctl does not make (certs/README.md
    in a clone): the swap replaces the whole folder, and must not delete them."""
    if not old.is_dir():
        return
    made = {f.path.relative_to(old).parts[0] for f in layout(old)}
    for entry in old.iterdir():
        if entry.name in made or (fresh / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, fresh / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, fresh / entry.name, follow_symlinks=False)


def _generate(certs_dir: Path) -> None:
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
    _generate_cases(certs_dir, ca)
    # No container reads this folder (labctl/volumes.py copies each file into
    # the lab with its own owner and mode): on the host it is the owner's alone.
    for folder in (certs_dir, certs_dir / "ca", certs_dir / "server", certs_dir / "client"):
        os.chmod(folder, 0o700)


def tighten(certs_dir: Path) -> list[str]:
    """Make every private key of the set mode 0600 and its folders 0700 where they are looser.

    Returns one phrase per file or folder changed (empty when all were tight), e.g.
    "ca/ca.key was 0644, now 0600". CertError if a mode cannot be set or does
    not hold (a filesystem that ignores permissions).
    """
    said: list[str] = []

    def fix(path: Path, want: int) -> None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            return
        if not mode & ~want & 0o777:
            return
        try:
            os.chmod(path, mode & want)
            now = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as exc:
            raise CertError(f"{path} is mode {mode:04o}, readable by others, and cannot be made "
                            f"{want:04o}: {exc.strerror or exc}") from None
        if now & ~want & 0o777:
            raise CertError(f"{path} stays mode {now:04o} after chmod {want:o} (this filesystem ignores "
                            "permissions): keep the certificates elsewhere (LAB_CERTS_DIR)")
        said.append(f"{path.relative_to(certs_dir)} was {mode:04o}, now {now:04o}")

    folders = {certs_dir} | {f.path.parent for f in layout(certs_dir)}
    folders |= {p for f in layout(certs_dir) for p in f.path.parents if certs_dir in p.parents}
    for folder in sorted(folders):
        fix(folder, 0o700)
    for f in layout(certs_dir):
        if f.private:
            fix(f.path, 0o600)
    return said


def ensure(certs_dir: Path) -> str:
    """Make what is missing: everything ("generated"), only the verification cases
    of an older set ("completed", signed by the same CA), or nothing ("present").

    An existing set's private keys (and folders) that are readable by others are
    made owner-only (tighten) and the answer says so: "present (made owner-only:
    ca/ca.key was 0644, now 0600)".
    """
    if not exist(certs_dir):
        generate(certs_dir)
        return "generated"
    how = _ensure_present(certs_dir)
    tightened = tighten(certs_dir)
    return f"{how} (made owner-only: {', '.join(tightened)})" if tightened else how


def _names_missing(cert: Path, names: tuple[str, ...]) -> bool:
    """True when CERT (PEM) is not for every one of NAMES: a set made before a name was added."""
    from cryptography import x509

    try:
        sans = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return True
    return not set(names) <= set(sans)


def _ensure_present(certs_dir: Path) -> str:
    missing_cases = not all(f.path.is_file() for f in layout(certs_dir)
                            if "cases" in f.path.parts or "attacker" in f.path.parts
                            or f.path.name.startswith("client-") or f.path.parts[-2] in ("dns", "proxy"))
    missing_cases = missing_cases or _names_missing(certs_dir / "proxy" / f"{PROXY_NAMES[0]}.crt", PROXY_NAMES)
    if missing_cases and (certs_dir / "ca" / "ca.key").is_file():
        import trustme

        try:
            ca = trustme.CA.from_pem((certs_dir / "ca" / "ca.crt").read_bytes(),
                                     (certs_dir / "ca" / "ca.key").read_bytes())
        except ValueError:
            raise CertError(f"{certs_dir / 'ca' / 'ca.key'} is not a usable CA key — "
                            "run `labctl certs --force` to make a new set") from None
        _generate_cases(certs_dir, ca)
        return "completed"
    return "present"


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
    for f in layout(certs_dir):
        if not f.path.is_file():
            raise CertError(f"{f.path} is missing — {fix}")
