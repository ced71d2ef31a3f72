"""The lab's certificates: made by trustme, checked before use, and they really work.

The handshake tests run the service programs' own make_context functions
(services/server/server.py and services/client/client.py) over a socket pair
on this machine, so the trust chain is proven without Docker.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import ssl
import threading
from pathlib import Path

import pytest

from labctl import certs, files
from labctl.errors import CertError

ROOT = Path(__file__).resolve().parents[2]


def load(service: str):
    spec = importlib.util.spec_from_file_location(f"lab_{service}", ROOT / "services" / service / f"{service}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("certs")
    certs.generate(path)
    return path


def handshake(certs_dir: Path, kind: str = "rsa", server_name: str = "server.lab.test",
              cafile: Path | None = None, insecure: bool = False) -> str:
    """One TLS handshake between the lab's server and client contexts; returns the cipher."""
    server_mod, client_mod = load("server"), load("client")
    server_ctx = server_mod.make_context(argparse.Namespace(
        min_version="1.2", max_version="1.3", ciphers=None, require_client_cert=False, client_ca=None,
        cert=str(certs_dir / "server" / f"server-{kind}.crt"), key=str(certs_dir / "server" / f"server-{kind}.key")))
    client_ctx = client_mod.make_context(argparse.Namespace(
        cafile=str(cafile or certs_dir / "client" / "ca.crt"), insecure=insecure, min_version=None,
        max_version=None, ciphers=None, cert=None, key=None, keylog=None, alpn="http/1.1"))
    a, b = socket.socketpair()
    errors: list[Exception] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(b, server_side=True):
                pass
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(a, server_hostname=server_name) as tls:
            return tls.cipher()[0]
    finally:
        thread.join(5)
        b.close()


def test_generate_writes_every_file_with_tight_modes(certs_dir):
    for f in certs.layout(certs_dir):
        assert f.path.is_file(), f.path
        assert f.path.stat().st_mode & 0o777 == (0o600 if f.private else 0o644), f.path
    assert (certs_dir / "server").stat().st_mode & 0o777 == 0o700
    assert (certs_dir / "ca").stat().st_mode & 0o777 == 0o700


def test_client_folder_holds_no_server_or_ca_key(certs_dir):
    """The client gets the CA certificate and its own client keys (mutual TLS), nothing else."""
    names = sorted(p.name for p in (certs_dir / "client").iterdir())
    assert names == ["ca.crt", "client-good.crt", "client-good.key", "client-untrusted.crt", "client-untrusted.key"]
    server_keys = {p.read_bytes() for p in (certs_dir / "server").rglob("*.key")} | \
        {p.read_bytes() for p in (certs_dir / "server").rglob("key.pem")} | {(certs_dir / "ca" / "ca.key").read_bytes()}
    assert not server_keys & {p.read_bytes() for p in (certs_dir / "client").iterdir()}


def test_ca_key_is_mounted_nowhere(certs_dir):
    assert [f.mounted_in for f in certs.layout(certs_dir) if f.path.name == "ca.key"] == ["host only"]


def test_check_accepts_a_fresh_set(certs_dir):
    certs.check(certs_dir)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_client_trusts_lab_ca(certs_dir, kind):
    assert handshake(certs_dir, kind)


def test_client_rejects_wrong_hostname(certs_dir):
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(certs_dir, server_name="other.lab.test")


def test_client_rejects_another_ca(certs_dir, tmp_path):
    other = tmp_path / "other"
    certs.generate(other)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(certs_dir, cafile=other / "client" / "ca.crt")


def test_careless_client_accepts_anything(certs_dir):
    assert handshake(certs_dir, server_name="other.lab.test", insecure=True)


def copy_set(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_check_names_a_corrupt_key(certs_dir, tmp_path):
    broken = copy_set(certs_dir, tmp_path / "c")
    (broken / "server" / "server-ecdsa.key").write_text("garbage\n")
    with pytest.raises(CertError, match=r"server-ecdsa.key is not a usable PEM private key — run `labctl certs --force`"):
        certs.check(broken)


def test_check_names_a_mismatched_key(certs_dir, tmp_path):
    broken = copy_set(certs_dir, tmp_path / "c")
    (broken / "server" / "server-rsa.key").write_bytes((broken / "server" / "server-ecdsa.key").read_bytes())
    with pytest.raises(CertError, match=r"server-rsa.key does not belong to .*server-rsa.crt"):
        certs.check(broken)


def test_check_names_a_missing_certificate(certs_dir, tmp_path):
    broken = copy_set(certs_dir, tmp_path / "c")
    (broken / "client" / "ca.crt").unlink()
    with pytest.raises(CertError, match=r"client/ca.crt is missing"):
        certs.check(broken)


def test_check_refuses_a_key_others_can_read(certs_dir, tmp_path):
    broken = copy_set(certs_dir, tmp_path / "c")
    (broken / "server" / "server-rsa.key").chmod(0o644)
    with pytest.raises(CertError, match=r"readable by others \(mode 644\)"):
        certs.check(broken)


def test_an_older_set_is_completed_with_the_same_ca(certs_dir, tmp_path):
    import shutil

    old = copy_set(certs_dir, tmp_path / "old")
    shutil.rmtree(old / "server" / "cases")
    ca_before = (old / "ca" / "ca.crt").read_bytes()
    assert certs.ensure(old) == "completed"
    certs.check(old)
    assert (old / "ca" / "ca.crt").read_bytes() == ca_before
    assert certs.ensure(old) == "present"


def test_a_proxy_certificate_made_before_a_name_was_added_is_made_anew(certs_dir, tmp_path):
    import trustme

    old = copy_set(certs_dir, tmp_path / "old")
    ca = trustme.CA.from_pem((old / "ca" / "ca.crt").read_bytes(), (old / "ca" / "ca.key").read_bytes())
    earlier = ca.issue_cert(*certs.PROXY_NAMES[:3])             # the proxy's names before www-wrongname
    (old / "proxy" / "www.lab.test.crt").write_bytes(b"".join(b.bytes() for b in earlier.cert_chain_pems))
    (old / "proxy" / "www.lab.test.key").write_bytes(earlier.private_key_pem.bytes())
    assert certs.ensure(old) == "completed"
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((old / "proxy" / "www.lab.test.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert set(certs.PROXY_NAMES) <= set(sans)
    assert certs.ensure(old) == "present"


def test_an_interrupted_regeneration_leaves_the_old_set_whole(tmp_path, monkeypatch):
    """Ctrl-C during `certs --force`: never a new CA beside the old leaves, and no half folder left."""
    folder = tmp_path / "certs"
    certs.generate(folder)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(certs, "_generate_cases", interrupted)
    with pytest.raises(KeyboardInterrupt):
        certs.generate(folder)
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs"]
    assert folder.stat().st_mode & 0o777 == 0o700


def test_certs_prints_the_mode_read_from_disk_not_a_constant(certs_dir, tmp_path):
    from labctl import render

    loose = copy_set(certs_dir, tmp_path / "loose")
    (loose / "ca" / "ca.key").chmod(0o644)
    text = render.certs_text("present", loose, certs.layout(loose))
    [ca_key] = [line for line in text.splitlines() if line.startswith("ca/ca.key")]
    assert "private key (0644: readable by others!)" in ca_key and "(0600)" not in ca_key
    [server_key] = [line for line in text.splitlines() if line.startswith("server/server-rsa.key")]
    assert server_key.endswith("private key (0600)")
    [crt] = [line for line in text.splitlines() if line.startswith("ca/ca.crt")]
    assert crt.endswith("certificate (0644)")


def test_ensure_tightens_keys_and_folders_it_finds_looser_and_says_so(certs_dir, tmp_path):
    loose = copy_set(certs_dir, tmp_path / "loose")
    (loose / "ca" / "ca.key").chmod(0o644)
    (loose / "server" / "server-rsa.key").chmod(0o640)
    (loose / "client").chmod(0o755)
    how = certs.ensure(loose)
    assert how.startswith("present (made owner-only: ")
    assert "ca/ca.key was 0644, now 0600" in how and "server/server-rsa.key was 0640, now 0600" in how
    assert "client was 0755, now 0700" in how
    for f in certs.layout(loose):
        assert f.path.stat().st_mode & 0o077 == (0 if f.private else 0o044), f.path
    certs.check(loose)                       # a loose server key no longer stops `up`
    assert certs.ensure(loose) == "present"  # and the second time there is nothing to say


def test_tighten_refuses_a_filesystem_that_ignores_modes(certs_dir, tmp_path, monkeypatch):
    import os

    loose = copy_set(certs_dir, tmp_path / "loose")
    (loose / "ca" / "ca.key").chmod(0o644)
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: None)
    with pytest.raises(CertError, match=r"ca.key stays mode 0644 after chmod 600"):
        certs.tighten(loose)


def test_writing_a_key_does_not_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "certs" / "ca"
    folder.mkdir(parents=True)
    files.partial(folder / "ca.key").symlink_to(victim)
    certs._write(folder / "ca.key", b"KEY", True)
    assert victim.read_text() == "precious"
    assert (folder / "ca.key").stat().st_mode & 0o777 == 0o600 and not files.partial(folder / "ca.key").exists()


def test_a_new_set_keeps_what_labctl_does_not_make(tmp_path):
    """certs/README.md in a clone is committed: `certs --force` swaps the whole folder, not that file."""
    folder = tmp_path / "certs"
    certs.generate(folder)
    (folder / "README.md").write_text("# certs/\n")
    old_ca = (folder / "ca" / "ca.crt").read_bytes()
    certs.generate(folder)
    assert (folder / "README.md").read_text() == "# certs/\n"
    assert (folder / "ca" / "ca.crt").read_bytes() != old_ca
