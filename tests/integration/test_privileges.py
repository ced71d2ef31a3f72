"""Least privilege, inspected on the running containers: any drift from this fails.

Capabilities are read from /proc of each service's main process (the child
of the container's init), not from the compose file: what the kernel
enforces is what counts.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12
CAP_NET_RAW = 1 << 13
# What each service may be given at start (lab-init needs NET_ADMIN briefly, then drops it).
ALLOWED_CAPS = {
    "wire": {"NET_ADMIN", "NET_RAW", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "CHOWN"},
    "server": {"NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID", "SETPCAP"},
    "dns": {"NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID", "SETPCAP"},
    "client": {"NET_ADMIN", "SETUID", "SETGID", "SETPCAP"},
    "proxy": {"NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID", "SETPCAP"},
}
SERVICES = tuple(ALLOWED_CAPS)
SERVICE_USER = {"server": 10001, "client": 10001, "dns": 65534}
# service -> (its certificate volume, where it is mounted, the host subfolder it carries)
MOUNTED_CERTS = {"server": ("server-certs", "/certs", "server"), "client": ("client-certs", "/certs", "client"),
                 "wire": ("attacker-certs", "/attacker", "attacker"), "dns": ("dns-certs", "/certs", "dns"),
                 "proxy": ("proxy-certs", "/certs", "proxy")}
# Who reads each volume's private keys: root (before dropping privileges), "lab", or www-data (nginx).
KEY_READER = {"client": 10001, "proxy": 33}


def cap_names(values: list[str] | None) -> set[str]:
    """Compose v1 writes CapAdd as NET_ADMIN, v2 as CAP_NET_ADMIN: compare the names."""
    return {v.upper().removeprefix("CAP_") for v in values or []}


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


@pytest.mark.parametrize("service", SERVICES)
def test_no_privileged_no_host_network_no_docker_socket(containers, service):
    host = containers[service].attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] not in ("host",) and not host["NetworkMode"].startswith("container:")
    assert host["PidMode"] in ("", "private")
    assert "ALL" in cap_names(host.get("CapDrop"))
    assert cap_names(host.get("CapAdd")) <= ALLOWED_CAPS[service]
    for mount in containers[service].attrs["Mounts"]:
        assert "docker.sock" not in mount.get("Source", "") and "docker.sock" not in mount["Destination"]


def test_only_the_wire_may_capture(containers, session_lab):
    for service in ("server", "dns", "client", "proxy"):
        assert "NET_RAW" not in cap_names(containers[service].attrs["HostConfig"].get("CapAdd"))
        assert not main_process(session_lab, service)["CapBnd"] & CAP_NET_RAW
    assert main_process(session_lab, "wire")["CapEff"] & CAP_NET_RAW


@pytest.mark.parametrize("service", ["server", "dns", "client"])
def test_long_running_services_are_unprivileged(session_lab, service):
    proc = main_process(session_lab, service)
    assert proc["uid"] == SERVICE_USER[service]
    assert proc["CapEff"] == 0 and proc["CapPrm"] == 0 and proc["CapAmb"] == 0
    assert not proc["CapBnd"] & CAP_NET_ADMIN       # and can never get it back


@pytest.mark.parametrize("service", ["wire", "server", "dns", "proxy"])
def test_root_filesystems_are_read_only(containers, service):
    assert containers[service].attrs["HostConfig"]["ReadonlyRootfs"] is True


def processes(session_lab, service: str) -> list[dict[str, object]]:
    """Every process in a service's container but docker-init (PID 1) and the probe's own (lab.exec
    runs it under `timeout`; sh, cat and awk are the script)."""
    script = ("for p in /proc/[0-9]*; do [ \"${p#/proc/}\" = 1 ] || [ \"${p#/proc/}\" = $$ ] || "
              "echo \"$(cat $p/comm) $(awk '/^(Uid|CapEff|CapBnd)/{printf \"%s \", $2}' $p/status)\"; done")
    _, out, _ = session_lab.lab().exec(service, ["sh", "-c", script])
    rows = [line.split() for line in out.strip().splitlines()]
    return [{"comm": r[0], "uid": int(r[1]), "eff": int(r[2], 16), "bnd": int(r[3], 16)} for r in rows
            if len(r) == 4 and r[0] not in ("timeout", "sh", "cat", "awk")]


def test_the_proxy_never_runs_as_root_and_keeps_only_net_bind_service(session_lab):
    procs = {p["comm"]: p for p in processes(session_lab, "proxy")}
    assert set(procs) == {"nginx", "python3"}, procs
    for proc in processes(session_lab, "proxy"):
        if proc["comm"] == "nginx":          # master and worker alike
            assert (proc["uid"], proc["eff"], proc["bnd"]) == (33, CAP_NET_BIND_SERVICE, CAP_NET_BIND_SERVICE)
        else:                                # the loopback application (server.py)
            assert (proc["uid"], proc["eff"]) == (10001, 0)
            assert not proc["bnd"] & CAP_NET_ADMIN


def test_the_encrypted_resolver_drops_to_its_own_user(session_lab):
    procs = {p["comm"]: p for p in processes(session_lab, "dns")}
    assert set(procs) == {"dnsmasq", "unbound"}, procs
    assert procs["unbound"]["uid"] == 101 and procs["unbound"]["eff"] == 0
    assert not procs["unbound"]["bnd"] & CAP_NET_ADMIN


def test_client_rootfs_is_the_documented_exception(containers):
    # lab-init rewrites /etc/resolv.conf so lookups cross the wire (compose.yaml says why).
    assert containers["client"].attrs["HostConfig"]["ReadonlyRootfs"] is False


@pytest.mark.parametrize("service", SERVICES)
def test_no_host_folder_is_mounted_and_each_sees_only_its_own_cert_volume(containers, session_lab, service):
    mounts = containers[service].attrs["Mounts"]
    assert [m for m in mounts if m["Type"] != "volume"] == [], "a host path is mounted (breaks remote engines)"
    cert_volumes = [m for m in mounts if m["Name"].endswith("-certs")]
    if service not in MOUNTED_CERTS:
        assert cert_volumes == []
        return
    key, target, _ = MOUNTED_CERTS[service]
    assert [(m["Name"], m["Destination"], m["RW"]) for m in cert_volumes] == [
        (f"{session_lab.project}_{key}", target, False)]


def listing(session_lab, service: str, path: str) -> dict[str, tuple[int, int]]:
    """Every file under path in a service's container: name -> (uid, mode), from the tar Docker sends."""
    stream, _ = session_lab.lab().container(service).get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return {m.name.split("/", 1)[1]: (m.uid, m.mode) for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("service", ["wire", "server", "client", "dns", "proxy"])
def test_cert_volumes_hold_the_host_set_with_keys_private_to_their_reader(session_lab, service):
    from labctl import certs

    _, target, folder = MOUNTED_CERTS[service]
    certs_dir = Path(session_lab.env["LAB_CERTS_DIR"])
    expected = {str(f.path.relative_to(certs_dir / folder)) for f in certs.layout(certs_dir)
                if f.path.relative_to(certs_dir).parts[0] == folder}
    found = listing(session_lab, service, target)
    assert set(found) - {".tlslab-certs"} == expected
    reader = KEY_READER.get(service, 0)      # the server reads its keys as root, then drops
    for name, (uid, mode) in found.items():
        if name.endswith((".key", "key.pem")):
            assert (uid, mode & 0o777) == (reader, 0o600), name
        else:
            assert mode & 0o777 == 0o644, name
    assert not [n for n in found if n.endswith("ca.key")], "the CA key must never enter a container"


def test_the_client_reads_its_own_keys_but_no_other_user_can(session_lab):
    lab = session_lab.lab()
    status, _, err = lab.exec("client", ["cat", "/certs/client-good.key"], user="lab")
    assert status == 0, err
    status, _, err = lab.exec("client", ["cat", "/certs/client-good.key"], user="nobody")
    assert status != 0 and "Permission denied" in err
