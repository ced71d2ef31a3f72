"""Faults: kill a service mid-run, stop the resolver, restart containers, press Ctrl-C.

Each time the run fails within a bounded time with one line naming what broke
(never a silent empty capture reported as a pass), and `labctl up` brings the
lab back. These tests break their own lab, never the session's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, assert_one_line_error, running_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("faults"), prefix="tfault") as handle:
        yield handle


@pytest.fixture(autouse=True)
def healthy_again(lab):
    yield
    result = lab.run("up")
    assert result.returncode == 0, f"`labctl up` did not bring the lab back: {result.stderr}"


def spawn(lab, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labctl", "--project", lab.project, *args], cwd=ROOT,
                            env={**os.environ, **lab.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def wire_processes(lab) -> list[str]:
    _, out, _ = lab.lab().exec("wire", ["sh", "-c", "cat /proc/[0-9]*/comm"])
    return out.split()


def wait_for_running_capture(lab, timeout: float = 30.0) -> None:
    """Until the scenario's capture runs on the wire: from then on it is mid-run, whatever the
    machine's speed (a fixed sleep raced a scenario that had got faster)."""
    from labctl import capture

    l = lab.lab()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c["running"] for c in capture.listing(l)):
            return
        time.sleep(0.05)
    pytest.fail(f"no capture started on the wire within {timeout:.0f} s")


def test_server_killed_mid_scenario(lab):
    run = spawn(lab, "run", "traffic-analysis")
    wait_for_running_capture(lab)
    lab.lab().container("server").kill()
    started = time.monotonic()
    out, err = run.communicate(timeout=120)
    assert run.returncode != 0
    assert "service 'server' stopped during the run" in err, (out[-500:], err)
    assert "Traceback" not in err
    assert time.monotonic() - started < 90


def test_wire_killed_mid_capture(lab):
    assert lab.run("capture", "start", "doomed").returncode == 0
    lab.lab().container("wire").kill()
    result = lab.run("capture", "stop", "doomed")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "service 'wire'" in result.stderr and ("not running" in result.stderr or "stopped" in result.stderr)
    run = lab.run("run", "tls")                               # a scenario on a lab without its wire
    assert run.returncode != 0 and "service 'wire'" in run.stderr and "Traceback" not in run.stderr


def test_resolver_stopped(lab):
    lab.lab().container("dns").stop(timeout=1)
    started = time.monotonic()
    result = lab.run("run", "tls")
    assert result.returncode != 0
    assert "service 'dns'" in result.stderr and "labctl" in result.stderr and "up" in result.stderr
    assert time.monotonic() - started < 30


def test_server_restarted_mid_scenario(lab):
    for _ in range(3):
        run = spawn(lab, "run", "traffic-analysis")
        wait_for_running_capture(lab)
        lab.lab().container("server").restart(timeout=1)
        if run.poll() is None:
            break       # the server restarted while the scenario still ran: the case under test
        run.communicate()
        assert lab.run("up").returncode == 0
    else:
        pytest.fail("the scenario finished each time before `docker restart` returned")
    out, err = run.communicate(timeout=120)
    assert run.returncode != 0 and "Traceback" not in err
    assert "service 'server' restarted during the run" in err, (out[-500:], err)


@pytest.mark.parametrize("service", ["server", "client", "dns", "wire"])
def test_a_restarted_container_rejoins_the_path(lab, service):
    """docker restart reruns lab-init: routes via the wire, resolver, privileges, all back."""
    lab.lab().container(service).restart(timeout=1)
    assert lab.run("up").returncode == 0
    result = lab.run("run", "tls", "--json")
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr


def test_ctrl_c_leaves_no_capture_running_and_no_half_written_file(lab, tmp_path):
    pcap = tmp_path / "interrupted.pcap"
    run = spawn(lab, "run", "traffic-analysis", "--pcap", str(pcap))
    wait_for_running_capture(lab)
    time.sleep(0.3)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, (out[-300:], err)
    assert "Traceback" not in err
    assert "tcpdump" not in wire_processes(lab)
    assert not pcap.exists() and not list(tmp_path.glob(".*partial"))
    listing = lab.run("capture", "list", "--json").json()["captures"]
    assert not [c for c in listing if c["running"]]


def client_processes(lab) -> list[str]:
    _, out, _ = lab.lab().exec("client", ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; true"])
    return out.split()


def test_ctrl_c_stops_the_clients_own_processes_too(lab):
    # A download that would outlive labctl by seconds: interrupted, its client.py must go at once,
    # or it talks on into the next run's capture.
    run = spawn(lab, "client", "server.lab.test", "--path", "/bytes/1073741824", "--secret", "x")
    deadline = time.monotonic() + 30
    while "/app/client.py" not in client_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/app/client.py" in client_processes(lab), "the client never started"
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, (out[-300:], err)
    assert "/app/client.py" not in client_processes(lab)


def test_a_tagged_run_process_of_the_lab_user_is_found_and_killed(lab):
    from labctl.lab import RUN_TAG

    container = lab.lab().container("client")
    container.exec_run(["sleep", "300"], user="lab", detach=True, environment={RUN_TAG: "run-tagged-test"})
    deadline = time.monotonic() + 10
    while "300" not in client_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.lab().kill_run_processes("run-tagged-test") == 1
    assert "300" not in client_processes(lab)


def test_a_server_that_cannot_load_its_key_is_named_with_the_file(lab):
    """A service that exits at start says why in its own log; labctl quotes it instead of guessing."""
    import docker

    from labctl import images

    l = lab.lab()
    client = docker.from_env()
    # Take the key out of the lab's volume behind labctl's back, then restart the server.
    client.containers.run(images.base_image_name(l.image_prefix), ["rm", "/v/server-rsa.key"], remove=True,
                          network_mode="none", volumes={f"{lab.project}_server-certs": {"bind": "/v", "mode": "rw"}})
    server = l.container("server")
    server.restart(timeout=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server.reload()
        if server.status == "exited":
            break
        time.sleep(0.2)
    result = lab.run("run", "tls")
    assert_one_line_error(result, r"service 'server' of lab '.*' is not running \(exited with status 1: "
                                  r"server: error: cannot load /certs/server-rsa.key: no such file")
    # and `up` (the fixture's) refills the volume and brings the server back
