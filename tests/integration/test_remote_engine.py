"""labctl against a Docker engine that shares no filesystem with it.

The engine runs inside a container on this machine and is reached over TCP on
127.0.0.1 (tests/remote_engine.py). A lab brought up there cannot rely on
anything in labctl's folders: bind mounts become empty folders on the
engine's side. Each test drives labctl as a user would (a subprocess with its
own environment and compose project), once through DOCKER_HOST and once
through a docker context, and checks that every trace of the lab stayed on
the remote engine, and went with `down --volumes`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import docker
import pytest

from tests import remote_engine
from tests.conftest import ROOT, Result, assert_one_line_error, unique

pytestmark = [pytest.mark.integration, pytest.mark.remote]

UP_TIMEOUT = 900        # seconds: the first `up` builds the base image for the remote engine
RUN_TIMEOUT = 600
# Variables that choose an engine or a Docker config: each test sets its own.
ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY",
                    "DOCKER_CERT_PATH", "COMPOSE_PROJECT_NAME", "LAB_PROJECT")


def _unavailable(reason: str) -> None:
    """Skip with ``reason`` on a developer's machine; in CI a missing prerequisite is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"remote-engine tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def local() -> Iterator[docker.DockerClient]:
    """The engine this test process talks to, which hosts the remote engine's container."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"no local Docker engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def engine(local: docker.DockerClient) -> Iterator[remote_engine.RemoteEngine]:
    """One engine in a container for this module; removed with its volume and network afterwards."""
    if not shutil.which("mmdebstrap"):
        _unavailable("mmdebstrap is not installed (apt-get install -y mmdebstrap)")
    if not Path("/dev/fuse").exists():
        _unavailable("/dev/fuse is missing (the engine's container needs it)")
    with remote_engine.running_engine(local, unique("tlslab-test-engine-"),
                                      progress=lambda line: print(line, file=sys.stderr)) as running:
        yield running


@pytest.fixture
def remote(engine: remote_engine.RemoteEngine) -> Iterator[docker.DockerClient]:
    client = engine.client()
    yield client
    client.close()


@dataclass
class RemoteLab:
    """A lab driven through `python -m labctl` with exactly the environment ``env``."""

    project: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> Result:
        proc = subprocess.run([sys.executable, "-m", "labctl", "--project", self.project, *args],
                              capture_output=True, text=True, env=self.env, cwd=ROOT,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr)


def user_env(tmp: Path, **docker_env: str) -> dict[str, str]:
    """This process's environment without any engine choice, plus ``docker_env`` and a certs folder."""
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_VARIABLES}
    env["LAB_CERTS_DIR"] = str(tmp / "certs")
    env.update(docker_env)
    return env


def docker_config_with_context(folder: Path, name: str, host: str) -> Path:
    """A fresh DOCKER_CONFIG folder holding one context ``name`` for ``host``; returns the folder.

    The user's Compose v2 plugin ($DOCKER_CONFIG or ~/.docker, cli-plugins/) is linked in,
    so `docker compose` still answers with this config; the user's own
    config.json and contexts are never read or written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
    if plugins.is_dir() and not (folder / "cli-plugins").exists():
        (folder / "cli-plugins").symlink_to(plugins)
    docker_cli = shutil.which("docker")
    if not docker_cli:
        pytest.fail("the docker CLI is not installed; it is needed to create a docker context")
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_VARIABLES}
    proc = subprocess.run([docker_cli, "--config", str(folder), "context", "create", name,
                           "--description", "tlslab remote-engine test", "--docker", f"host={host}"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return folder


def project_traces(client: docker.DockerClient, project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes of compose project ``project`` (and labctl's helpers)."""
    labels = [f"com.docker.compose.project={project}", f"tlslab.project={project}"]
    found: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    for label in labels:
        flt = {"label": label}
        found["containers"] += [c.name for c in client.containers.list(all=True, filters=flt)]
        found["networks"] += [n.name for n in client.networks.list(filters=flt)]
        found["volumes"] += [v.name for v in client.volumes.list(filters=flt)]
    return {kind: sorted(set(names)) for kind, names in found.items()}


def local_events_naming(client: docker.DockerClient, project: str, since: float) -> list[str]:
    """Every event on ``client``'s engine since ``since`` (epoch seconds) that names ``project``.

    Container events carry the container's labels; network and volume events
    carry the object's name, which compose derives from the project name.
    """
    seen = []
    for event in client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True):
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if any(project in str(value) for value in attributes.values()):
            seen.append(f"{event.get('Type')} {event.get('Action')} {attributes.get('name', '')}")
    return seen


def up_run_status_down(lab: RemoteLab, engine: remote_engine.RemoteEngine,
                       remote: docker.DockerClient, local: docker.DockerClient) -> None:
    """The user's whole session on the remote engine, then: nothing left there, nothing ever here."""
    since = time.time()
    try:
        up = lab.run("up", "--json", timeout=UP_TIMEOUT)
        assert up.returncode == 0, f"labctl up failed:\n{up.stderr}"
        steps = {s["step"]: s["outcome"] for s in up.json()["steps"]}
        base = steps["base image"].split(" ")[0]
        assert [i for i in remote.images.list() if base in i.tags], f"{base} is not on the remote engine"

        run = lab.run("run", "all", "--json")
        assert run.returncode == 0, f"labctl run all failed:\n{run.stderr}\n{run.stdout[-2000:]}"
        assert run.json()["passed"] is True

        status = lab.run("status", "--json")
        assert status.returncode == 0, status.stderr
        doc = status.json()
        assert "engine" in doc, doc
        assert engine.url in json.dumps(doc["engine"]), doc["engine"]
        text = lab.run("status")
        assert text.returncode == 0, text.stderr
        assert engine.url in text.stdout, text.stdout

        assert project_traces(remote, lab.project)["containers"], "the lab's containers are not on the remote engine"
    finally:
        down = lab.run("down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert project_traces(remote, lab.project) == {"containers": [], "networks": [], "volumes": []}
    assert project_traces(local, lab.project) == {"containers": [], "networks": [], "volumes": []}
    assert local_events_naming(local, lab.project, since) == [], \
        "the lab touched the local engine, not only the remote one"


def test_lab_on_a_remote_engine_through_docker_host(tmp_path, engine, remote, local):
    """DOCKER_HOST=tcp://127.0.0.1:PORT: up, run all, status names the engine, down leaves nothing."""
    lab = RemoteLab(unique("rh"), user_env(tmp_path, DOCKER_HOST=engine.url))
    up_run_status_down(lab, engine, remote, local)


def test_lab_on_a_remote_engine_through_a_docker_context(tmp_path, engine, remote, local):
    """DOCKER_CONTEXT names a context (in a private DOCKER_CONFIG) for the engine; no DOCKER_HOST."""
    config = docker_config_with_context(tmp_path / "docker-config", "tlslab-remote", engine.url)
    lab = RemoteLab(unique("rc"), user_env(tmp_path, DOCKER_CONFIG=str(config),
                                           DOCKER_CONTEXT="tlslab-remote"))
    assert "DOCKER_HOST" not in lab.env
    up_run_status_down(lab, engine, remote, local)


def test_docker_host_and_a_context_naming_another_engine_is_one_line_error(tmp_path, engine):
    """Two answers to "which engine?" must not be settled silently: one error line, no traceback."""
    config = docker_config_with_context(tmp_path / "docker-config", "elsewhere",
                                        "unix:///var/run/docker.sock")
    lab = RemoteLab(unique("rx"), user_env(tmp_path, DOCKER_HOST=engine.url, DOCKER_CONFIG=str(config),
                                           DOCKER_CONTEXT="elsewhere"))
    result = lab.run("status", timeout=60)
    assert result.returncode in (2, 3), result
    assert_one_line_error(result, r"DOCKER_HOST.*DOCKER_CONTEXT|DOCKER_CONTEXT.*DOCKER_HOST")
