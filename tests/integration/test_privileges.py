"""Least privilege, inspected on the running containers: any drift from this fails.

Capabilities are read from /proc of each service's main process (the child
of the container's init), not from the compose file: what the kernel
enforces is what counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CAP_NET_ADMIN = 1 << 12
CAP_NET_RAW = 1 << 13
# What each service may be given at start (lab-init needs NET_ADMIN briefly, then drops it).
ALLOWED_CAPS = {
    "wire": {"NET_ADMIN", "NET_RAW", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "CHOWN"},
    "server": {"NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID", "SETPCAP", "DAC_OVERRIDE"},
    "dns": {"NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID", "SETPCAP"},
    "client": {"NET_ADMIN", "SETUID", "SETGID", "SETPCAP", "CHOWN", "DAC_READ_SEARCH"},
}
SERVICE_USER = {"server": 10001, "client": 10001, "dns": 65534}
MOUNTED_CERTS = {"server": "server", "client": "client", "wire": "attacker"}


@pytest.fixture(scope="module")
def containers(session_lab):
    return session_lab.lab().containers()


def main_process(session_lab, service: str) -> dict[str, int]:
    """Uid and capability sets of the service's main process (the child of PID 1, docker-init)."""
    script = ("for p in /proc/[0-9]*; do [ \"$(awk '/^PPid/{print $2}' $p/status)\" = 1 ] && "
              "awk '/^(Uid|CapEff|CapPrm|CapBnd|CapInh|CapAmb)/{print $1, $2}' $p/status && break; done")
    _, out, _ = session_lab.lab().exec(service, ["sh", "-c", script])
    fields = dict(line.split() for line in out.strip().splitlines())
    return {"uid": int(fields["Uid:"]), **{k.rstrip(":"): int(v, 16) for k, v in fields.items() if k.startswith("Cap")}}


@pytest.mark.parametrize("service", ["wire", "server", "dns", "client"])
def test_no_privileged_no_host_network_no_docker_socket(containers, service):
    host = containers[service].attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] not in ("host",) and not host["NetworkMode"].startswith("container:")
    assert host["PidMode"] in ("", "private")
    assert "ALL" in (host.get("CapDrop") or [])
    assert set(host.get("CapAdd") or []) <= ALLOWED_CAPS[service]
    for mount in containers[service].attrs["Mounts"]:
        assert "docker.sock" not in mount.get("Source", "") and "docker.sock" not in mount["Destination"]


def test_only_the_wire_may_capture(containers, session_lab):
    for service in ("server", "dns", "client"):
        assert "NET_RAW" not in (containers[service].attrs["HostConfig"].get("CapAdd") or [])
        assert not main_process(session_lab, service)["CapBnd"] & CAP_NET_RAW
    assert main_process(session_lab, "wire")["CapEff"] & CAP_NET_RAW


@pytest.mark.parametrize("service", ["server", "dns", "client"])
def test_long_running_services_are_unprivileged(session_lab, service):
    proc = main_process(session_lab, service)
    assert proc["uid"] == SERVICE_USER[service]
    assert proc["CapEff"] == 0 and proc["CapPrm"] == 0 and proc["CapAmb"] == 0
    assert not proc["CapBnd"] & CAP_NET_ADMIN       # and can never get it back


@pytest.mark.parametrize("service", ["wire", "server", "dns"])
def test_root_filesystems_are_read_only(containers, service):
    assert containers[service].attrs["HostConfig"]["ReadonlyRootfs"] is True


def test_client_rootfs_is_the_documented_exception(containers):
    # lab-init rewrites /etc/resolv.conf so lookups cross the wire (compose.yaml says why).
    assert containers["client"].attrs["HostConfig"]["ReadonlyRootfs"] is False


@pytest.mark.parametrize("service", ["wire", "server", "dns", "client"])
def test_each_container_mounts_only_its_own_certs_read_only(containers, session_lab, service):
    certs_dir = Path(session_lab.env["LAB_CERTS_DIR"]).resolve()
    binds = [m for m in containers[service].attrs["Mounts"] if m["Type"] == "bind"]
    for mount in binds:
        assert mount["RW"] is False, mount
        source = Path(mount["Source"]).resolve()
        assert source == certs_dir / MOUNTED_CERTS[service], mount
        assert not list(source.rglob("ca.key")), "the CA key must never enter a container"
    if service in MOUNTED_CERTS:
        assert len(binds) == 1
    else:
        assert binds == []
