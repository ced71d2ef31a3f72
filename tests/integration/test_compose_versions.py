"""Both Compose versions drive the same lab: the suite runs under v2 (what most users have),
and a smoke set (up, run tls, down) under v1 (Debian's docker-compose 1.29)."""

from __future__ import annotations

import os
import shutil

import docker
import pytest

from tests.conftest import LabHandle, unique

pytestmark = pytest.mark.integration


def compose_versions(project: str) -> set[str]:
    """The compose version each of a project's containers was created by (compose labels them)."""
    found = docker.from_env().containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    return {c.labels.get("com.docker.compose.version", "?") for c in found}


def test_ci_runs_the_suite_under_compose_v2():
    from labctl.compose import find_tool

    if not os.environ.get("CI"):
        pytest.skip("outside CI the suite runs with whichever compose is installed")
    assert find_tool().version == 2, ".ci/run installs Compose v2 as the docker CLI plugin; it is not answering"


def test_session_lab_was_made_by_the_compose_labctl_chose(session_lab):
    from labctl.compose import find_tool

    versions = compose_versions(session_lab.project)
    assert len(versions) == 1 and next(iter(versions)).startswith(f"{find_tool().version}.")


def test_smoke_under_compose_v1(tmp_path):
    if not shutil.which("docker-compose"):
        if os.environ.get("CI"):
            pytest.fail("CI must have docker-compose (v1) for this test")
        pytest.skip("docker-compose (v1) is not installed")
    handle = LabHandle(unique("tv1"), {"LAB_CERTS_DIR": str(tmp_path / "certs"), "LAB_COMPOSE": "v1"})
    try:
        up = handle.run("up", "--json")
        assert up.returncode == 0, up.stderr
        assert "docker-compose (v1)" in up.stderr
        assert {s["service"]: s["health"] for s in up.json()["services"]} == {
            "wire": "healthy", "server": "healthy", "dns": "healthy", "proxy": "healthy", "client": "healthy"}
        versions = compose_versions(handle.project)
        assert versions and all(v.startswith("1.") for v in versions), versions
        run = handle.run("run", "tls", "--json")
        assert run.returncode == 0, run.stderr
        assert run.json()["passed"] is True
        down = handle.run("down", "--volumes")
        assert down.returncode == 0, down.stderr
        label = {"label": f"com.docker.compose.project={handle.project}"}
        client = docker.from_env()
        assert client.containers.list(all=True, filters=label) == []
        assert client.volumes.list(filters=label) == [] and client.networks.list(filters=label) == []
    finally:
        handle.run("down", "--volumes")
