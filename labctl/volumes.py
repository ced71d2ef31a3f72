"""The lab's certificates, carried into its containers by named volumes.

No container mounts a folder of the host: on a remote engine (DOCKER_HOST,
a docker context) a bind mount names a path on the engine's machine, where
the engine makes an empty folder and the server exits for want of its key.
Instead each lab (compose project) has five named volumes, declared in
compose.yaml and each mounted read-only by one service:

    <project>_server-certs    -> server:/certs     (root-owned; read before dropping to "lab")
    <project>_client-certs    -> client:/certs     (keys owned by "lab", uid 10001, mode 0600)
    <project>_attacker-certs  -> wire:/attacker    (root-owned)
    <project>_dns-certs       -> dns:/certs        (root-owned; unbound reads its key before dropping)
    <project>_proxy-certs     -> proxy:/certs      (key owned by www-data, uid 33: nginx never runs as root)

labctl fills them through the Docker API: a short-lived helper container
from the lab's base image, with no network, receives one tar (put_archive)
and unpacks it with the owners and modes written in it. The lab CA's key is
never in the tar. Each volume holds a fingerprint of its contents, so a
second `labctl up` of a running lab leaves them alone.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
import requests

from . import certs
from .errors import LabError

FINGERPRINT = ".tlslab-certs"
# Where each volume is mounted in the lab: (service, path), as in compose.yaml.
MOUNTS = {"server-certs": ("server", "/certs"), "client-certs": ("client", "/certs"),
          "attacker-certs": ("wire", "/attacker"), "dns-certs": ("dns", "/certs"),
          "proxy-certs": ("proxy", "/certs")}
FILL_TIMEOUT = 60
ROLE = "fills the certificate volumes"
# Empty each volume, then unpack as root keeping the tar's numeric owners and modes.
FILL_SCRIPT = ("set -e; for d in /v/*; do find \"$d\" -mindepth 1 -delete; done; "
               "tar -x -p --same-owner --numeric-owner -f /tmp/certs.tar -C /v")


@dataclass(frozen=True)
class VolumeArchive:
    tar: bytes                       # members <volume>/<path>, owners and modes set
    fingerprints: dict[str, str]     # volume key -> sha256 of what goes into it


def volume_name(project: str, key: str) -> str:
    """The name compose gives a project's volume (v1 and v2 alike)."""
    return f"{project}_{key}"


def archive(certs_dir: Path) -> VolumeArchive:
    """One tar holding every file a container gets, laid out by volume.

    Raises CertError (via certs.check) before anything is read if the set is
    incomplete; the CA key is never included (certs.VOLUMES has no ca/).
    """
    certs.check(certs_dir)
    members: dict[str, list[tuple[str, bytes, int, int]]] = {key: [] for key in MOUNTS}
    for f in certs.layout(certs_dir):
        key = f.volume(certs_dir)
        if key is None:
            continue
        inside = f.path.relative_to(certs_dir).parts[1:]
        members[key].append(("/".join(inside), f.path.read_bytes(), 0o600 if f.private else 0o644,
                             f.owner(certs_dir)))
    buffer = io.BytesIO()
    fingerprints = {}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, files in members.items():
            digest = hashlib.sha256()
            # The client's folder must be searchable by "lab", the proxy's by www-data; the others only by root.
            _add_dir(tar, key, 0o755 if key in ("client-certs", "proxy-certs") else 0o700)
            made = {key}
            for relative, data, mode, uid in sorted(files):
                parts = relative.split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join([key, *parts[:depth]])
                    if folder not in made:
                        _add_dir(tar, folder, 0o700)
                        made.add(folder)
                _add_file(tar, f"{key}/{relative}", data, mode, uid)
                digest.update(b"%s\0%o\0%d\0" % (relative.encode(), mode, uid))
                digest.update(hashlib.sha256(data).digest())
            fingerprints[key] = digest.hexdigest()
            _add_file(tar, f"{key}/{FINGERPRINT}", fingerprints[key].encode() + b"\n", 0o644, 0)
    return VolumeArchive(buffer.getvalue(), fingerprints)


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int, uid: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = uid
    tar.addfile(info, io.BytesIO(data))


def _wrapped(tar: bytes) -> bytes:
    """put_archive unpacks what it is given: wrap the tar so it lands as /tmp/certs.tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as outer:
        _add_file(outer, "certs.tar", tar, 0o600, 0)
    return buffer.getvalue()


def current(containers: dict[str, Container], wanted: dict[str, str]) -> bool:
    """True when every volume, as the running lab mounts it, holds the wanted fingerprint."""
    for key, (service, path) in MOUNTS.items():
        c = containers.get(service)
        if c is None or c.status != "running":
            return False
        try:
            stream, _ = c.get_archive(f"{path}/{FINGERPRINT}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(FINGERPRINT)
                found = member.read().decode().strip() if member else ""
        except (docker.errors.APIError, tarfile.TarError):
            return False
        if found != wanted[key]:
            return False
    return True


def fill(client: docker.DockerClient, project: str, certs_dir: Path, helper_image: str,
         containers: dict[str, Container] | None = None, force: bool = False) -> str:
    """Make the project's certificate volumes hold certs_dir; return "filled" or "present".

    ``containers`` (service -> Container) lets a running lab's volumes be
    checked by fingerprint and left alone; ``force`` fills them regardless.
    Raises CertError for an incomplete certs folder and LabError when the
    helper container fails; the helper is removed whatever happens.
    """
    bundle = archive(certs_dir)
    if not force and containers and current(containers, bundle.fingerprints):
        return "present"
    mounts = {}
    for key in MOUNTS:
        name = volume_name(project, key)
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            # The labels compose puts on its own volumes: it adopts this one
            # as the project's, and `down --volumes` removes it.
            client.volumes.create(name, labels={"com.docker.compose.project": project,
                                                "com.docker.compose.volume": key})
        mounts[name] = {"bind": f"/v/{key}", "mode": "rw"}
    # Its own name each time: two `up` at once must not collide on it. Ones an
    # interrupted run left (never started, or exited) go first.
    for stale in client.containers.list(all=True, filters={"label": [f"tlslab.project={project}",
                                                                      f"tlslab.role={ROLE}"]}):
        if stale.status in ("created", "exited", "dead") and stale.name:
            _remove(client, stale.name)
    helper_name = f"{project}-fill-certs-{secrets.token_hex(3)}"
    started = False
    try:
        helper = client.containers.create(
            helper_image, ["sh", "-c", FILL_SCRIPT], name=helper_name, user="0", network_mode="none",
            volumes=mounts, labels={"tlslab.project": project, "tlslab.role": ROLE})
        helper.put_archive("/tmp", _wrapped(bundle.tar))
        helper.start()
        started = True
        try:
            status = helper.wait(timeout=FILL_TIMEOUT).get("StatusCode")
        except requests.exceptions.RequestException:
            raise LabError(f"filling the certificate volumes of lab '{project}' did not finish within "
                           f"{FILL_TIMEOUT} s — is the engine overloaded? (`docker ps` shows {helper_name})") from None
        if status != 0:
            tail = helper.logs(tail=3).decode(errors="replace").strip().replace("\n", " / ")
            raise LabError(f"filling the certificate volumes of lab '{project}' failed "
                           f"(status {status}: {tail or 'no output'})")
    except KeyboardInterrupt:
        if started:
            # Let it finish (well under a second): killed between emptying the
            # volumes and unpacking, it would leave the lab without its keys.
            try:
                client.api.wait(helper_name, timeout=10)
            except (docker.errors.APIError, requests.exceptions.RequestException):
                pass
        raise
    finally:
        _remove(client, helper_name)
    return "filled"


def _remove(client: docker.DockerClient, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
