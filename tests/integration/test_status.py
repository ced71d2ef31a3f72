"""`labctl status` tells who is where, as a table and as JSON."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_status_json_lists_every_service_healthy_at_its_address(session_lab):
    result = session_lab.run("status", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "tlslab.status/1" and doc["up"] is True
    net = doc["subnet"].rsplit(".", 1)[0]
    assert {s["service"]: (s["address"], s["health"]) for s in doc["services"]} == {
        "client": (f"{net}.10", "healthy"), "server": (f"{net}.20", "healthy"),
        "dns": (f"{net}.53", "healthy"), "proxy": (f"{net}.30", "healthy"), "wire": (f"{net}.254", "healthy")}


def test_status_table_names_roles(session_lab):
    result = session_lab.run("status")
    assert result.returncode == 0
    assert "router and sniffer" in result.stdout and "TLS server" in result.stdout


def test_status_fails_when_a_service_is_down(tmp_path):
    from tests.conftest import start_lab

    handle = start_lab(tmp_path, prefix="tstat")
    try:
        handle.lab().container("server").stop(timeout=1)
        result = handle.run("status", "--json")
        assert result.returncode == 1
        states = {s["service"]: s["state"] for s in json.loads(result.stdout)["services"]}
        assert states["server"] == "exited" and states["client"] == "running"
        # and `up` brings it back
        assert handle.run("up").returncode == 0
        assert handle.run("status").returncode == 0
    finally:
        handle.run("down", "--volumes")


def test_logs_of_one_service(session_lab):
    session_lab.run("client", "server.lab.test")
    result = session_lab.run("logs", "dns", "--tail", "20")
    assert result.returncode == 0 and "server.lab.test" in result.stdout


def test_shell_runs_a_command_in_a_service(session_lab):
    result = session_lab.run("shell", "client", "cat", "/etc/resolv.conf")
    net = session_lab.lab().net()
    assert result.returncode == 0 and f"nameserver {net}.53" in result.stdout


def test_dns_answers_are_authoritative_for_lab_test(session_lab):
    """dnsmasq answers for the lab zone with the AA bit, as the zone's own server."""
    import json as _json

    probe = ("import socket,struct;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);"
             "q=struct.pack('!HHHHHH',7,0,1,0,0,0)+b'\\x06server\\x03lab\\x04test\\x00'+struct.pack('!HH',1,1);"
             "s.sendto(q,('%s',53));r=s.recv(512);print(__import__('json').dumps({'aa':bool(r[2]&4),'rcode':r[3]&15,"
             "'an':struct.unpack('!H',r[6:8])[0]}))" % session_lab.lab().address("dns"))
    status, out, err = session_lab.lab().exec("client", ["python3", "-c", probe], user="lab")
    assert status == 0, err
    assert _json.loads(out) == {"aa": True, "rcode": 0, "an": 1}
