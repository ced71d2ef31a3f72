"""No way out of a lab, and no way between two labs."""

from __future__ import annotations

import errno
import json

import pytest

from labctl import capture
from tests import pcaputil
from tests.conftest import start_lab

pytestmark = pytest.mark.integration

# TEST-NET-1 (RFC 5737): documentation space, never routed anywhere. With no
# default route in the lab, the kernel refuses before any packet is sent.
OUTSIDE = "192.0.2.1"
PROBE = (
    "import socket, time, json\n"
    "s = socket.socket(); s.settimeout(5); t = time.monotonic()\n"
    "try:\n"
    "    s.connect(('%s', 443)); r = 0\n"
    "except OSError as e:\n"
    "    r = e.errno\n"
    "print(json.dumps({'errno': r, 'seconds': time.monotonic() - t}))\n" % OUTSIDE
)


@pytest.mark.parametrize("service", ["client", "server", "dns", "wire"])
def test_no_route_out_of_the_lab(session_lab, service):
    lab = session_lab.lab()
    status, routes, _ = lab.exec(service, ["ip", "-4", "route", "show"])
    assert status == 0 and "default" not in routes, routes
    status, out, err = lab.exec(service, ["python3", "-c", PROBE], user="nobody")
    result = json.loads(out)
    assert result["errno"] == errno.ENETUNREACH, (result, err)
    assert result["seconds"] < 1.0   # refused at once, not after a timeout


def test_resolver_answers_nothing_outside_lab_test(session_lab):
    result = session_lab.run("client", "--json", "www.example.com")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["error_kind"] == "dns", report


def test_two_labs_side_by_side_see_only_their_own_packets(session_lab, tmp_path):
    other = start_lab(tmp_path, prefix="t2")
    try:
        lab_a, lab_b = session_lab.lab(), other.lab()
        assert lab_a.net() != lab_b.net()
        capture.start(lab_a, "mine")
        capture.start(lab_b, "theirs")
        assert other.run("client", "server.lab.test").returncode == 0
        stats_a, stats_b = capture.stop(lab_a, "mine"), capture.stop(lab_b, "theirs")
        assert stats_a.complete and stats_b.complete
        seen_a = pcaputil.read(capture.read(lab_a, "mine"))
        seen_b = pcaputil.read(capture.read(lab_b, "theirs"))
        b_prefix = lab_b.net() + "."
        assert not [p for p in seen_a if p.src.startswith(b_prefix) or p.dst.startswith(b_prefix)]
        assert [p for p in seen_b if p.syn and p.dst == lab_b.address("server")]
    finally:
        assert other.run("down", "--volumes").returncode == 0
