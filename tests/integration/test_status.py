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
        "dns": (f"{net}.53", "healthy"), "wire": (f"{net}.254", "healthy")}


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
