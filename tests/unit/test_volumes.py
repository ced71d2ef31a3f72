"""What goes into the lab's certificate volumes: each service's own files, owners and modes, never the CA key."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from labctl import certs, volumes
from labctl.errors import CertError


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("certs") / "certs"
    certs.generate(folder)
    return folder


def members(archive: volumes.VolumeArchive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive.tar)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_each_volume_carries_exactly_its_host_subfolder(certs_dir):
    found = members(volumes.archive(certs_dir))
    for folder, key in certs.VOLUMES.items():
        expected = {f"{key}/{p.relative_to(certs_dir / folder)}" for p in (certs_dir / folder).rglob("*") if p.is_file()}
        files = {name for name, m in found.items() if m.isfile() and name.startswith(key + "/")}
        assert files == expected | {f"{key}/{volumes.FINGERPRINT}"}
    assert {name.split("/")[0] for name in found} == set(volumes.MOUNTS) == set(certs.VOLUMES.values())


def test_the_ca_key_never_goes_into_a_volume(certs_dir):
    ca_key = (certs_dir / "ca" / "ca.key").read_bytes()
    archive = volumes.archive(certs_dir)
    assert not [name for name in members(archive) if name.endswith("ca.key")]
    assert ca_key not in archive.tar


def test_keys_belong_to_the_user_that_reads_them_and_nobody_else(certs_dir):
    for name, m in members(volumes.archive(certs_dir)).items():
        if not m.isfile():
            continue
        if name.endswith((".key", "key.pem")):
            reader = {"client-certs": certs.LAB_UID, "proxy-certs": certs.WWW_DATA_UID}.get(name.split("/")[0], 0)
            assert (m.uid, m.gid, m.mode) == (reader, reader, 0o600), name
        else:
            assert (m.uid, m.mode) == (0, 0o644), name


def test_only_the_folders_of_unprivileged_readers_are_searchable_by_others(certs_dir):
    found = members(volumes.archive(certs_dir))
    assert found["client-certs"].mode == 0o755 and found["proxy-certs"].mode == 0o755    # "lab", www-data
    assert found["server-certs"].mode == 0o700 and found["attacker-certs"].mode == 0o700
    assert found["dns-certs"].mode == 0o700
    assert found["server-certs/cases/expired"].mode == 0o700


def test_fingerprints_follow_the_contents(certs_dir, tmp_path):
    first = volumes.archive(certs_dir).fingerprints
    assert volumes.archive(certs_dir).fingerprints == first          # same files, same fingerprints
    copy = tmp_path / "certs"
    import shutil

    shutil.copytree(certs_dir, copy)
    (copy / "client" / "ca.crt").write_bytes((copy / "client" / "ca.crt").read_bytes() + b"\n")
    changed = volumes.archive(copy).fingerprints
    assert changed["client-certs"] != first["client-certs"]
    assert changed["server-certs"] == first["server-certs"] and changed["attacker-certs"] == first["attacker-certs"]


def test_an_incomplete_set_is_refused_before_anything_is_sent(tmp_path):
    folder = tmp_path / "certs"
    certs.generate(folder)
    (folder / "attacker" / "server.lab.test.key").unlink()
    with pytest.raises(CertError, match="server.lab.test.key is missing"):
        volumes.archive(folder)


def test_volume_names_are_composes(certs_dir):
    assert volumes.volume_name("tlslab", "server-certs") == "tlslab_server-certs"
