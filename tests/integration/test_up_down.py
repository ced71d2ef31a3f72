"""`labctl up` from nothing, a second `up` that changes nothing, and `down` that leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import docker
import pytest

from tests.conftest import LabHandle, unique

pytestmark = pytest.mark.integration


def project_leftovers(client: docker.DockerClient, project: str) -> dict[str, list[str]]:
    label = {"label": f"com.docker.compose.project={project}"}
    return {"containers": [c.name for c in client.containers.list(all=True, filters=label)],
            "networks": [n.name for n in client.networks.list(filters=label)],
            "volumes": [v.name for v in client.volumes.list(filters=label)]}


def started(client: docker.DockerClient, project: str) -> dict[str, tuple[str, str]]:
    label = {"label": f"com.docker.compose.project={project}"}
    return {c.name: (c.id, c.attrs["State"]["StartedAt"]) for c in client.containers.list(all=True, filters=label)}


@pytest.mark.cold
def test_up_from_nothing_then_idempotent_then_down(tmp_path):
    """No base image, no service images, no certs: one `up` makes everything healthy."""
    client = docker.from_env()
    prefix = unique("tlslabcold")
    handle = LabHandle(unique("tc"), {"LAB_CERTS_DIR": str(tmp_path / "certs"), "LAB_IMAGE_PREFIX": prefix})
    assert not [i for i in client.images.list() if any(t.startswith(prefix) for t in i.tags)]
    try:
        first = handle.run("up", "--json", timeout=900)
        assert first.returncode == 0, first.stderr
        report = first.json()
        steps = {s["step"]: s["outcome"] for s in report["steps"]}
        assert steps["certificates"].startswith("generated")
        assert "built from" in steps["base image"]
        assert steps["service images"].startswith("built")
        assert {s["service"]: (s["state"], s["health"]) for s in report["services"]} == {
            s: ("running", "healthy") for s in ("wire", "server", "dns", "proxy", "client")}
        assert (tmp_path / "certs" / "server" / "server-rsa.key").stat().st_mode & 0o777 == 0o600
        before = started(client, handle.project)

        second = handle.run("up", "--json")
        assert second.returncode == 0, second.stderr
        steps = {s["step"]: s["outcome"] for s in second.json()["steps"]}
        assert steps["certificates"].startswith("present")
        assert "(present)" in steps["base image"] and steps["service images"] == "present"
        assert started(client, handle.project) == before, "a second up recreated or restarted containers"

        # Captures survive `down` and go only with `down --volumes`.
        assert handle.run("capture", "start", "keep").returncode == 0
        assert handle.run("capture", "stop", "keep").returncode == 0
        assert handle.run("down").returncode == 0
        left = project_leftovers(client, handle.project)
        assert left["containers"] == [] and left["networks"] == []
        assert sorted(left["volumes"]) == [f"{handle.project}_{v}" for v in
                                           ("attacker-certs", "captures", "client-certs", "dns-certs",
                                            "proxy-certs", "server-certs")]
        assert handle.run("up").returncode == 0
        listing = handle.run("capture", "list", "--json").json()
        assert [c["name"] for c in listing["captures"]] == ["keep"]
        down = handle.run("down", "--volumes")
        assert down.returncode == 0
        assert project_leftovers(client, handle.project) == {"containers": [], "networks": [], "volumes": []}
    finally:
        handle.run("down", "--volumes")
        for image in client.images.list():
            if any(tag.startswith(prefix) for tag in image.tags):
                client.images.remove(image.id, force=True)


def test_certs_force_refills_the_running_labs_volumes(tmp_path):
    """A new CA and server key reach the running lab: the client trusts only the new CA, and the
    server (restarted) presents the new certificate, so `run tls` passes only if both moved."""
    from tests.conftest import start_lab

    handle = start_lab(tmp_path, prefix="tcert")
    try:
        lab = handle.lab()
        before = lab.exec("client", ["cat", "/certs/ca.crt"], user="lab")[1]
        assert before == (tmp_path / "certs" / "client" / "ca.crt").read_text()
        forced = handle.run("certs", "--force")
        assert forced.returncode == 0, forced.stderr
        assert "refilling the certificate volumes" in forced.stderr
        after = handle.lab().exec("client", ["cat", "/certs/ca.crt"], user="lab")[1]
        assert after != before and after == (tmp_path / "certs" / "client" / "ca.crt").read_text()
        # The server, the proxy (nginx) and the resolver (unbound) all present the new certificates.
        for scenario in ("tls", "offload", "encrypted-dns"):
            run = handle.run("run", scenario, "--json")
            assert run.returncode == 0, run.stdout[-1000:] + run.stderr
            assert run.json()["passed"] is True
        # Not under a run's feet: while a run holds the lab's turn, not even the host's files change
        # (forward-secrecy reads the server's key from there mid-run).
        from labctl import turn

        key = tmp_path / "certs" / "server" / "server-rsa.key"
        held = key.read_bytes()
        with turn.taken(handle.lab(), "a test's run", lambda _: None):
            waiting = subprocess.Popen([sys.executable, "-m", "labctl", "--project", handle.project, "certs", "--force"],
                                       env={**os.environ, **handle.env}, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            time.sleep(3)
            assert waiting.poll() is None and key.read_bytes() == held
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert "waiting" in err and key.read_bytes() != held
        run = handle.run("run", "forward-secrecy", "--json")
        assert run.returncode == 0 and run.json()["passed"] is True, run.stdout[-1000:]
    finally:
        handle.run("down", "--volumes")
