"""A throwaway container registry on loopback, and a slim Debian image to put in it.

No public registry can be reached from the machines this lab is tested on, so
the "pull" path of the base image (`labctl up --base-source pull`) is tested
against a registry of our own:

- `local_registry` runs Debian's `docker-registry` (the reference registry,
  github.com/docker/distribution) as a subprocess, storing blobs in a
  temporary folder and listening on 127.0.0.1 only, on a free port;
- `slim_debian` makes a `debian:bookworm-slim` look-alike from Debian's
  packages with mmdebstrap, imports it, pushes it there and drops the local
  tag, so that a later pull really goes over the wire to the registry.

The Docker engine talks plain HTTP to registries in 127.0.0.0/8 (its default
`insecure-registries`), so no certificates are needed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import docker
import docker.errors
import docker.utils

from labctl import images

REGISTRY_BINARY = "docker-registry"
SUITE = "bookworm"
# What Debian's own slim images leave out: documentation and translations.
SLIM_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
# The image configuration debian:bookworm-slim has (docker import sets none).
SLIM_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["bash"]')
# A manifest request must name the formats it accepts, or the registry answers 404.
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))

Progress = Callable[[str], None]


class RegistryError(RuntimeError):
    """The local registry did not start, or an image did not get into it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (bind to port 0, read it, close).

    Another process may take it before we use it; `local_registry` retries.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def split_ref(ref: str) -> tuple[str, str]:
    """`host:port/name:tag` -> (`host:port/name`, `tag`), by the SDK's parser; the tag defaults to `latest`."""
    repository, tag = docker.utils.parse_repository_tag(ref)
    return repository, tag or "latest"


def registry_answers(address: str, timeout: float = 2.0) -> bool:
    """True if `GET http://ADDRESS/v2/` answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def manifest_exists(address: str, repository: str, tag: str, timeout: float = 5.0) -> bool:
    """True if the registry at ADDRESS serves a manifest for REPOSITORY:TAG (timeout in seconds)."""
    request = urllib.request.Request(f"http://{address}/v2/{repository}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _write_config(path: Path, storage: Path, address: str) -> None:
    """The registry's configuration: filesystem storage, plain HTTP on ADDRESS, no auth.

    JSON is YAML, so json.dumps writes a valid config without a YAML library.
    """
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        # A secret of its own keeps the log free of the "no HTTP secret" warning.
        "http": {"addr": address, "secret": secrets.token_hex(16)},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate PROC, wait up to GRACE seconds, then kill it and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def local_registry(tmp_dir: Path, start_timeout: float = 30.0, attempts: int = 3) -> Iterator[str]:
    """Run a registry on loopback for the duration of the block; yield `127.0.0.1:PORT`.

    Blobs are stored under TMP_DIR/storage, the config is TMP_DIR/config.yml and
    the registry's log TMP_DIR/registry.log. Waits at most START_TIMEOUT seconds
    for `GET /v2/` to answer 200; if the chosen port was taken in the meantime
    (the registry exits at once) it tries another port, ATTEMPTS times in all.
    The process is always terminated and reaped on exit, even on error.
    """
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryError(f"{REGISTRY_BINARY} is not installed (apt-get install docker-registry)")
    tmp_dir = Path(tmp_dir)
    storage = tmp_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = tmp_dir / "config.yml"
    log_path = tmp_dir / "registry.log"
    failures: list[str] = []
    for _ in range(attempts):
        address = f"127.0.0.1:{free_port()}"
        _write_config(config, storage, address)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if registry_answers(address, timeout=1.0):
                    break
                time.sleep(0.1)
            else:
                tail = " / ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
                if proc.poll() is not None:
                    failures.append(f"{address}: exited with status {proc.returncode}: {tail}")
                    continue      # most likely the port was taken: try another
                raise RegistryError(f"the registry on {address} did not answer GET /v2/ "
                                    f"within {start_timeout:.0f} s: {tail}")
            yield address
            return
        finally:
            _stop(proc)
    raise RegistryError(f"the registry did not start in {attempts} attempts: " + "; ".join(failures))


def _push(client: docker.DockerClient, repository: str, tag: str) -> str:
    """Push REPOSITORY:TAG and return the digest the registry gave it.

    The engine reports failures inside the stream (`error`/`errorDetail`),
    not as an exception, so every message is read.
    """
    digest = ""
    for message in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail", {}).get("message") or message.get("error")
            raise RegistryError(f"pushing {repository}:{tag} failed: {detail}")
        digest = message.get("aux", {}).get("Digest", digest)
    if not digest:
        raise RegistryError(f"pushing {repository}:{tag} ended without a digest")
    return digest


def slim_debian(client: docker.DockerClient, ref: str, progress: Progress = print) -> str:
    """Put a slim Debian bookworm image into a registry as REF; return its digest.

    REF names the registry, e.g. `127.0.0.1:5000/debian:bookworm-slim`. The
    root filesystem comes from Debian's packages (labctl's images.rootfs_image:
    mmdebstrap minbase, no man pages, docs or translations: about 30 s and
    125 MB), is imported as REF, pushed and checked in the registry; the local
    tag is removed afterwards (also on failure), so that pulling REF really
    goes to the registry.
    """
    repository, tag = split_ref(ref)
    address, _, path = repository.partition("/")
    if not path:
        raise ValueError(f"{ref} names no registry host")
    try:
        started = time.monotonic()
        progress(f"mmdebstrap --variant=minbase {SUITE} as {ref}")
        images.rootfs_image(client, ref, variant="minbase", excludes=SLIM_EXCLUDES, changes=SLIM_CHANGES,
                            progress=lambda _: None)
        progress(f"{ref} made in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        digest = _push(client, repository, tag)
        progress(f"pushed {ref} ({digest}) in {time.monotonic() - started:.1f} s")
        if not manifest_exists(address, path, tag):
            raise RegistryError(f"the push of {ref} reported {digest} but the registry has no such manifest")
        return digest
    finally:
        remove_image(client, ref)


def remove_image(client: docker.DockerClient, ref: str) -> bool:
    """Remove the local image REF if it is there; True if it was removed."""
    if not images.image_exists(client, ref):
        return False
    client.images.remove(ref)
    return True
