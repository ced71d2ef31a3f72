"""What a new user will try: each gets one clear line, a fitting exit status, no traceback."""

from __future__ import annotations

import docker
import pytest

from labctl import certs
from tests.conftest import LabHandle, assert_one_line_error, labctl, unique

pytestmark = pytest.mark.integration


def test_docker_daemon_not_reachable():
    result = labctl("status", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 3
    assert_one_line_error(result, r"cannot reach the Docker daemon .* is it running")


@pytest.mark.parametrize("command", [["logs", "mailserver"], ["shell", "mailserver"]])
def test_unknown_service_lists_the_real_ones(command):
    result = labctl(*command)
    assert result.returncode == 2
    assert_one_line_error(result, r"unknown service 'mailserver'.*wire, server, dns, proxy, client")


def test_down_when_nothing_is_up_is_a_no_op():
    result = labctl("--project", unique("nothing"), "down")
    assert result.returncode == 0 and "nothing to remove" in result.stdout
    assert result.stderr == ""


def test_status_of_a_lab_that_is_not_up():
    result = labctl("--project", unique("nothing"), "status")
    assert result.returncode == 1 and "is not up" in result.stdout


def test_bad_project_name():
    result = labctl("--project", "My Lab", "status")
    assert result.returncode == 2
    assert_one_line_error(result, "project name 'My Lab' must be")


@pytest.mark.parametrize("damage, message", [
    ("missing", r"server-rsa.key is missing"),
    ("corrupt", r"server-rsa.key is not a usable PEM private key"),
    ("swapped", r"server-rsa.key does not belong to .*server-rsa.crt"),
])
def test_up_refuses_broken_certs_and_leaves_nothing_behind(tmp_path, damage, message):
    certs_dir = tmp_path / "certs"
    certs.generate(certs_dir)
    key = certs_dir / "server" / "server-rsa.key"
    if damage == "missing":
        key.unlink()
    elif damage == "corrupt":
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    else:
        key.write_bytes((certs_dir / "server" / "server-ecdsa.key").read_bytes())
    handle = LabHandle(unique("tbad"), {"LAB_CERTS_DIR": str(certs_dir)})
    try:
        result = handle.run("up")
        assert result.returncode == 2
        assert_one_line_error(result, message + r".*labctl certs --force")
        label = {"label": f"com.docker.compose.project={handle.project}"}
        client = docker.from_env()
        assert client.containers.list(all=True, filters=label) == []
        assert client.networks.list(filters=label) == []
    finally:
        handle.run("down", "--volumes")


def test_unknown_capture_is_reported(session_lab):
    result = session_lab.run("capture", "stop", "never-started")
    assert result.returncode == 2                 # an unknown name is bad input
    assert_one_line_error(result, "no capture named 'never-started'")


def test_client_with_bad_arguments(session_lab):
    result = session_lab.run("client", "server.lab.test", "--no-such-flag")
    assert result.returncode == 2
    assert_one_line_error(result, "unrecognized arguments: --no-such-flag")


def registry_reachable() -> bool:
    import docker.errors

    try:
        docker.from_env().images.pull("debian", tag="bookworm-slim")
        return True
    except docker.errors.APIError:
        return False


def test_pull_only_base_without_a_registry_says_so(tmp_path):
    if registry_reachable():
        pytest.skip("a registry answers here, so the pull path succeeds instead")
    prefix = unique("tlslabpull")
    handle = LabHandle(unique("tpull"), {"LAB_CERTS_DIR": str(tmp_path / "certs"), "LAB_IMAGE_PREFIX": prefix})
    try:
        result = handle.run("up", "--base-source", "pull")
        assert result.returncode == 1
        assert_one_line_error(result, r"cannot pull debian:bookworm-slim \(no registry reachable")
        client = docker.from_env()
        assert not [t for i in client.images.list() for t in i.tags if t.startswith(prefix)]
        assert client.containers.list(all=True, filters={"label": f"com.docker.compose.project={handle.project}"}) == []
    finally:
        handle.run("down", "--volumes")
