"""A Docker engine that shares no filesystem with labctl, for the remote-engine tests.

The engine is dockerd running inside a container on the local engine, reached
over TCP on 127.0.0.1 only. Nothing labctl writes on the host (the
certificates folder, the compose file's folder) exists on that engine's side:
bind mounts become empty folders there, as with an engine on another machine.

No registry is reachable on the project's machines, so the engine's image is
made from Debian packages with mmdebstrap and imported through the API, tagged
by a hash of its recipe: built once per machine, then reused.

Measured on the project's machines (Docker Engine 20.10.24, cgroup v1 hybrid
layout, kernel 6.18, 2 cores, another test run busy on the same engine):

- image: mmdebstrap 28 s, import 4 s (`engine_image`, first call);
- engine start to API answering: 1.7-2.4 s with `--tls=false`, 16.9 s without
  it (dockerd's deliberate 15 s pause before plain TCP); smoke_check 0.7-1.0 s;
- storage: overlay2 (backing filesystem ext4, the volume) and fuse-overlayfs
  both ran containers; overlay2 is tried first;
- cgroups: without the read-write remount the engine answers but every
  container fails: `mkdir /sys/fs/cgroup/cpuset/docker: read-only file system`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

import docker
import docker.errors
import requests
import requests.exceptions

from labctl import images
from labctl.errors import NotHealthy
from labctl.waiting import NotReady, wait_for

Progress = Callable[[str], None]

SUITE = "bookworm"
VARIANT = "apt"
PACKAGES = ("docker.io", "iptables", "ca-certificates", "procps", "fuse-overlayfs")
IMAGE_REPOSITORY = "tlslab-test-engine"
# On every container, volume, network and image made here, so leftovers can be found:
#   docker ps -a --filter label=tlslab.test=remote-engine
LABEL = {"tlslab.test": "remote-engine"}
ENGINE_PORT = 2375
# The inner /var/lib/docker is a volume on the host's ext4, where the kernel's
# overlay mounts fine; fuse-overlayfs (through /dev/fuse) also works here.
STORAGE_DRIVERS = ("overlay2", "fuse-overlayfs")
# `--tls=false` states the intent to serve plain TCP, which spares dockerd's
# deliberate 15 s pause; the port is published on 127.0.0.1 only and the
# container sits on its own network.
DOCKERD_ARGS = ("--tls=false",)

# What runs inside the engine's container, as `sh -c SCRIPT`.
#
# Docker mounts the cgroup filesystems read-only into a container that is not
# --privileged (and --privileged is refused here: the bounding set lacks
# CAP_SYS_RESOURCE). The inner dockerd must create cgroups for its
# containers, so remount them read-write first (CAP_SYS_ADMIN is held):
#   cgroup v1 (these machines: a tmpfs at /sys/fs/cgroup and one cgroup mount
#   per controller): remount the tmpfs, then every cgroup mount with
#   `mount -o remount,bind,rw`;
#   cgroup v2 (one cgroup2 mount at /sys/fs/cgroup): remount it, move every
#   process out of the root cgroup and enable all controllers for children,
#   as moby's hack/dind does. NOT measured here (these machines are v1).
# Then exec dockerd, so that `docker stop` signals dockerd itself and it
# stops its own containers.
ENGINE_SCRIPT = r"""
set -eu
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || mount -o remount,bind,rw /sys/fs/cgroup
for dir in $(awk '$0 ~ / - cgroup2? / {print $5}' /proc/self/mountinfo); do
    [ "$dir" = /sys/fs/cgroup ] || mount -o remount,bind,rw "$dir"
done
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control
fi
echo "cgroups read-write: $(awk '$0 ~ / - cgroup2? / {print $5}' /proc/self/mountinfo | tr '\n' ' ')"
exec dockerd --host tcp://0.0.0.0:PORT --storage-driver DRIVER ARGS
"""


def recipe_hash() -> str:
    """Twelve hex digits naming what goes into the engine's image."""
    text = "\n".join([SUITE, VARIANT, *PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def engine_image_name() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_hash()}"


def engine_image(client: docker.DockerClient, progress: Progress = print) -> str:
    """Return the engine image's reference on ``client``, building it on first use.

    `mmdebstrap --variant=apt --include=PACKAGES bookworm` and an import
    through the API (labctl's own images.rootfs_image: about 28 s + 4 s here).
    Two sessions never build at once: the second waits on labctl's build
    lock, then finds the image. Raises DockerUnavailable or ImageError.
    """
    name = engine_image_name()
    if images.image_exists(client, name):
        return name
    with images.build_lock(name):
        if images.image_exists(client, name):       # built by another session while we waited
            return name
        started = time.monotonic()
        progress(f"building {name}: mmdebstrap --variant={VARIANT} {SUITE} with {', '.join(PACKAGES)}")
        images.rootfs_image(client, name, variant=VARIANT, packages=PACKAGES,
                            changes=tuple(f"LABEL {key}={value}" for key, value in LABEL.items())
                            + (f"LABEL tlslab.recipe={recipe_hash()}",), progress=lambda _: None)
        progress(f"{name}: built in {time.monotonic() - started:.1f} s")
        return name


@dataclass(frozen=True)
class RemoteEngine:
    """A running engine.

    ``url`` is ``tcp://127.0.0.1:PORT``; ``container``, ``volume`` (its
    /var/lib/docker) and ``network`` are names on the local engine;
    ``started_in`` is seconds from container start to the API answering.
    """

    url: str
    container: str
    volume: str
    network: str
    storage_driver: str
    started_in: float

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, timeout: int = 120) -> docker.DockerClient:
        """A Docker SDK client for this engine (``timeout`` in seconds; close it when done)."""
        return docker.DockerClient(base_url=self.url, timeout=timeout)


class EngineFailed(RuntimeError):
    """The engine's container exited, its API did not answer, or it could not run a container."""


def logs_tail(client: docker.DockerClient, container: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a container's log, indented, for error messages."""
    try:
        text = client.api.logs(container, tail=lines).decode(errors="replace")
    except docker.errors.APIError as exc:
        return f"    (no logs: {exc.explanation or exc})"
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def _create_engine(client: docker.DockerClient, image: str, name: str, volume: str,
                   network: str, driver: str) -> str:
    """Create and start the engine's container; return its id."""
    host_config = client.api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        devices=["/dev/fuse:/dev/fuse:rwm"],
        binds={volume: {"bind": "/var/lib/docker", "mode": "rw"}},
        port_bindings={ENGINE_PORT: ("127.0.0.1",)},   # an ephemeral host port, loopback only
        network_mode=network,
    )
    # `--security-opt systempaths=unconfined` is a CLI option, not an API one
    # (the daemon rejects it in SecurityOpt): the CLI sends empty MaskedPaths
    # and ReadonlyPaths instead, so do the same. Without it /proc/sys is
    # read-only and the inner runc cannot mount a fresh /proc.
    host_config["MaskedPaths"] = []
    host_config["ReadonlyPaths"] = []
    script = (ENGINE_SCRIPT.replace("PORT", str(ENGINE_PORT)).replace("DRIVER", driver)
              .replace("ARGS", " ".join(DOCKERD_ARGS)))
    created = client.api.create_container(image, command=["sh", "-c", script], name=name,
                                          labels=LABEL, ports=[ENGINE_PORT],
                                          host_config=host_config, detach=True)
    client.api.start(created["Id"])
    return created["Id"]


def _published_url(client: docker.DockerClient, container: str) -> str:
    """``tcp://127.0.0.1:PORT`` for the host port the local engine chose for ENGINE_PORT."""
    attrs = client.api.inspect_container(container)
    bindings = (attrs["NetworkSettings"]["Ports"] or {}).get(f"{ENGINE_PORT}/tcp") or []
    ports = [b["HostPort"] for b in bindings if b.get("HostIp") == "127.0.0.1"]
    if not ports:
        raise EngineFailed(f"port {ENGINE_PORT} of the engine's container is not published "
                           f"on 127.0.0.1: {bindings}")
    return f"tcp://127.0.0.1:{ports[0]}"


def _wait_for_api(client: docker.DockerClient, container: str, url: str, timeout: float) -> None:
    """GET ``url``/_ping until it answers OK, at most ``timeout`` seconds; fail early if the container stops."""
    ping_url = url.replace("tcp://", "http://", 1) + "/_ping"

    def ping() -> None:
        state = client.api.inspect_container(container)["State"]
        if not state["Running"]:
            raise EngineFailed(f"the engine's container exited with status {state['ExitCode']}")
        try:
            response = requests.get(ping_url, timeout=5)
        except requests.exceptions.RequestException as exc:
            raise NotReady(type(exc).__name__) from None
        if response.status_code != 200:
            raise NotReady(f"HTTP {response.status_code}")

    try:
        wait_for(ping, what=f"the engine at {url}", timeout=timeout, interval=0.5)
    except NotHealthy as exc:
        raise EngineFailed(str(exc)) from None


def tiny_image_tar() -> bytes:
    """A root filesystem tarball holding only the host's `true` and the libraries it links.

    Enough to prove an engine runs containers, without a registry or the lab's
    base image (about 2 MB with glibc).
    """
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    ldd = subprocess.run(["ldd", true], capture_output=True, text=True, check=True).stdout
    paths = [true, *re.findall(r"(/\S+) \(0x", ldd)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        for path in paths:
            tar.add(path, arcname=path.lstrip("/"))
    return buffer.getvalue()


def smoke_check(engine: RemoteEngine) -> float:
    """Run `true` on the engine the way the lab's wire runs; return the seconds it took.

    Imports tiny_image_tar() through the engine's API, then runs it on an
    `internal: true` user-defined network with a fixed address, NET_ADMIN and
    the wire's sysctls (ip_forward=1, send_redirects=0). Leaves nothing behind
    on the engine. Raises EngineFailed with the engine's answer if it cannot.
    """
    started = time.monotonic()
    tag = f"tlslab-test-smoke:{uuid.uuid4().hex[:8]}"
    remote = engine.client(timeout=60)
    network = None
    try:
        remote.api.import_image_from_data(tiny_image_tar(), repository=tag.split(":")[0],
                                          tag=tag.split(":")[1])
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.250.0.0/24")])
        network = remote.networks.create(tag.replace(":", "-"), driver="bridge", internal=True,
                                         ipam=ipam, labels=LABEL)
        net_name = network.name
        true = os.path.realpath(shutil.which("true") or "/bin/true")
        created = remote.api.create_container(
            tag, [true], labels=LABEL,
            host_config=remote.api.create_host_config(
                network_mode=net_name, cap_add=["NET_ADMIN"],
                sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"}),
            networking_config=remote.api.create_networking_config(
                {net_name: remote.api.create_endpoint_config(ipv4_address="10.250.0.254")}))
        try:
            remote.api.start(created["Id"])
            status = remote.api.wait(created["Id"], timeout=60)["StatusCode"]
            if status != 0:
                output = remote.api.logs(created["Id"]).decode(errors="replace")[-300:]
                raise EngineFailed(f"`true` exited {status} on the engine: {output}")
        finally:
            remote.api.remove_container(created["Id"], force=True)
    except docker.errors.APIError as exc:
        raise EngineFailed(f"the engine could not run a container: {exc.explanation or exc}") from None
    finally:
        if network is not None:
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
        with contextlib.suppress(docker.errors.APIError):
            remote.images.remove(tag, force=True)
        remote.close()
    return time.monotonic() - started


def _remove_engine(client: docker.DockerClient, container: str | None, volume: str | None,
                   network: str | None) -> None:
    """Stop (dockerd stops its own containers), then remove what we made. Missing is fine."""
    if container:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.stop(container, timeout=20)
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container, force=True, v=True)
    if volume:
        # The container is gone; the volume can still be busy for a moment.
        for attempt in range(10):
            try:
                client.api.remove_volume(volume, force=True)
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                if attempt == 9:
                    raise
                time.sleep(1)
    if network:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(network)


@contextlib.contextmanager
def running_engine(client: docker.DockerClient, name: str | None = None, *,
                   image: str | None = None, storage_drivers: tuple[str, ...] = STORAGE_DRIVERS,
                   timeout: float = 60, progress: Progress = print) -> Iterator[RemoteEngine]:
    """Run an engine in a container named ``name`` and yield it once it runs containers.

    ``name`` defaults to a unique ``tlslab-test-engine-XXXXXXXX``; the volume
    is ``NAME-var-lib-docker`` and the network ``NAME-net``. Each storage
    driver in ``storage_drivers`` is tried in turn until one gives an engine
    that answers within ``timeout`` seconds and passes smoke_check(). Raises
    EngineFailed with each attempt's reason and the container's last log lines.
    On exit the container, its volume and its network are removed, always.
    """
    image = image or engine_image(client, progress)
    name = name or f"tlslab-test-engine-{uuid.uuid4().hex[:8]}"
    failures: list[str] = []
    for driver in storage_drivers:
        container: str | None = None
        volume: str | None = None
        network: str | None = None
        try:
            network = client.networks.create(f"{name}-net", driver="bridge", labels=LABEL).name
            volume = client.volumes.create(name=f"{name}-var-lib-docker", labels=LABEL).name
            started = time.monotonic()
            container = _create_engine(client, image, name, volume, network, driver)
            url = _published_url(client, container)
            try:
                _wait_for_api(client, container, url, timeout)
                engine = RemoteEngine(url=url, container=name, volume=volume, network=network,
                                      storage_driver=driver, started_in=time.monotonic() - started)
                smoke = smoke_check(engine)
            except EngineFailed as exc:
                failures.append(f"{driver}: {exc}\n{logs_tail(client, container)}")
                continue
            progress(f"engine {name} at {url} ({driver}): API answered {engine.started_in:.1f} s "
                     f"after start, smoke check {smoke:.1f} s")
            yield engine
            return
        finally:
            _remove_engine(client, container, volume, network)
    raise EngineFailed(f"no storage driver of {', '.join(storage_drivers)} gave a working engine:\n"
                       + "\n".join(failures))
