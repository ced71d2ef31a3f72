"""The base image's pull path, against a registry of our own on loopback.

No public registry answers on the project's machines, so `labctl up
--base-source pull` would otherwise never run anywhere but on a user's laptop.
Here Debian's `docker-registry` serves a slim Debian image made from Debian's
packages (tests/registry.py), and labctl is pointed at it with `--pull-from`:
pull, `services/base/Dockerfile` (apt-get install inside the container),
service images, health, and a real TLS scenario over the wire.

Outside CI the test skips if docker-registry or mmdebstrap is missing; in CI
(`CI` set) it fails instead, so a missing install step cannot hide.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time

import docker
import docker.errors
import pytest

from tests.conftest import LabHandle, assert_one_line_error, unique
from tests.registry import local_registry, remove_image, slim_debian, split_ref

pytestmark = [pytest.mark.integration, pytest.mark.registry]

TOOLS = {"docker-registry": "docker-registry", "mmdebstrap": "mmdebstrap"}   # binary: Debian package
UP_TIMEOUT = 900.0          # seconds: pull, apt-get install in the base, four service builds, health
# Nothing listens on port 1 (tcpmux) on these machines; checked before use.
NOWHERE = "127.0.0.1:1/nothing:here"


def require_tools() -> None:
    """Skip (fail in CI) unless the registry and mmdebstrap are installed."""
    missing = [package for binary, package in TOOLS.items() if shutil.which(binary) is None]
    if missing:
        why = f"{' and '.join(missing)} not installed (apt-get install {' '.join(missing)})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must install it")
        pytest.skip(why)


def images_with_prefix(client: docker.DockerClient, prefix: str) -> list[str]:
    return sorted(tag for image in client.images.list() for tag in image.tags if tag.startswith(prefix))


def remove_images_with_prefix(client: docker.DockerClient, prefix: str) -> None:
    """Remove every image with a tag starting with PREFIX (ours: the prefix is unique)."""
    for image in client.images.list():
        if any(tag.startswith(prefix) for tag in image.tags):
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.ImageNotFound:
                pass


def containers_of(client: docker.DockerClient, project: str, prefix: str) -> list[str]:
    """Containers of the compose project, or running an image whose name starts with PREFIX."""
    found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    found += [c for c in client.containers.list(all=True)
              if str(c.attrs.get("Config", {}).get("Image", "")).startswith(prefix)]
    return sorted({c.name for c in found})


@pytest.fixture(scope="module")
def registry_ref(tmp_path_factory: pytest.TempPathFactory):
    """`127.0.0.1:PORT/debian:bookworm-slim` in a running local registry, not present locally.

    The registry process is stopped and its storage deleted when the module ends.
    """
    require_tools()
    client = docker.from_env()
    folder = tmp_path_factory.mktemp("registry")
    try:
        with local_registry(folder) as address:
            ref = f"{address}/debian:bookworm-slim"
            slim_debian(client, ref, progress=lambda m: print(f"registry fixture: {m}", flush=True))
            yield ref
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_up_through_a_local_registry(tmp_path, registry_ref):
    """`up --base-source pull --pull-from REF` pulls REF, builds the base on it, and the lab works."""
    client = docker.from_env()
    prefix = unique("tlslabreg")
    handle = LabHandle(unique("treg"), {"LAB_CERTS_DIR": str(tmp_path / "certs"), "LAB_IMAGE_PREFIX": prefix})
    assert images_with_prefix(client, prefix) == []
    assert not any(registry_ref in image.tags for image in client.images.list()), \
        "the slim image is still tagged locally: the pull would not go to the registry"
    try:
        started = time.monotonic()
        up = handle.run("up", "--json", "--base-source", "pull", "--pull-from", registry_ref,
                        timeout=UP_TIMEOUT)
        seconds = time.monotonic() - started
        assert up.returncode == 0, up.stderr
        report = up.json()
        print(f"labctl up through the registry path: {seconds:.1f} s wall "
              f"({report['seconds']:.1f} s by labctl's own report)", flush=True)
        steps = {s["step"]: s["outcome"] for s in report["steps"]}
        assert steps["base image"].startswith(f"{prefix}-base:"), steps
        assert steps["base image"].endswith(f"(built from {registry_ref})"), steps
        assert {s["service"]: (s["state"], s["health"]) for s in report["services"]} == {
            s: ("running", "healthy") for s in ("wire", "server", "dns", "proxy", "client")}

        # The base really sits on what was pulled from the registry: its
        # layers start with the pulled image's layer.
        pulled = client.images.get(registry_ref).attrs["RootFS"]["Layers"]
        base = client.images.get(steps["base image"].split(" ", 1)[0]).attrs["RootFS"]["Layers"]
        assert base[:len(pulled)] == pulled and len(base) > len(pulled)

        run = handle.run("run", "tls", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        down = handle.run("down", "--volumes")
        assert down.returncode == 0, down.stderr
        assert containers_of(client, handle.project, prefix) == []
    finally:
        handle.run("down", "--volumes")
        remove_images_with_prefix(client, prefix)
        remove_image(client, registry_ref)
    assert images_with_prefix(client, prefix) == []


def test_pull_from_a_registry_that_is_not_there(tmp_path):
    """Nothing listens at the reference's registry: one error line naming it, nothing left behind."""
    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex(("127.0.0.1", 1)) == 0:
            pytest.fail("something listens on 127.0.0.1:1; this test needs a port where nothing does")
    client = docker.from_env()
    prefix = unique("tlslabnoreg")
    handle = LabHandle(unique("tnoreg"), {"LAB_CERTS_DIR": str(tmp_path / "certs"), "LAB_IMAGE_PREFIX": prefix})
    try:
        result = handle.run("up", "--base-source", "pull", "--pull-from", NOWHERE, timeout=300)
        assert_one_line_error(result, re.escape(NOWHERE))
        assert images_with_prefix(client, prefix) == []
        assert containers_of(client, handle.project, prefix) == []
        repository, _ = split_ref(NOWHERE)
        assert not [t for image in client.images.list() for t in image.tags if t.startswith(repository)]
    finally:
        handle.run("down", "--volumes")
        remove_images_with_prefix(client, prefix)
